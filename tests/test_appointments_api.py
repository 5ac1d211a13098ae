"""Every row of API.md's "Stores and appointments" table, over HTTP on the local stack."""

from __future__ import annotations

import datetime as dt

from chalicelib import clock
from tests.appointment_helpers import at, future_day, grant, login, staff_token, store_body
from tests.conftest import unique


def new_store(api, admin_token) -> str:
    store_id = unique("store")
    answer = api.put(f"/admin/stores/{store_id}", admin_token, json=store_body())
    assert answer.status_code == 200, answer.text
    return store_id


def book(api, token, store_id, service_id, start, **extra):
    body = {"storeId": store_id, "serviceId": service_id, "start": clock.iso(start)}
    return api.post("/appointments", token, json=body, **extra)


def test_a_member_finds_a_slot_books_it_and_sees_it(api, admin_token):
    store_id = new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    slots = api.get(f"/stores/{store_id}/slots", params={"serviceId": "repair", "date": day.isoformat()})
    assert slots.status_code == 200, slots.text
    first = slots.json()["slots"][0]
    assert first["start"] == clock.iso(at(day, "10:00")) and first["capacity"] == 1 and first["remaining"] == 1

    body = {"storeId": store_id, "serviceId": "repair", "start": first["start"], "note": "屏幕碎了"}
    made = api.post("/appointments", token, json=body)
    assert made.status_code == 200, made.text
    answer = made.json()
    assert {k: answer[k] for k in ("storeId", "serviceId", "start", "end", "status")} == {
        "storeId": store_id,
        "serviceId": "repair",
        "start": first["start"],
        "end": clock.iso(at(day, "11:00")),
        "status": "booked",
    }
    mine = api.get("/members/me/appointments", token).json()
    assert [item["appointmentId"] for item in mine["items"]] == [answer["appointmentId"]]
    assert mine["nextCursor"] is None
    one = api.get(f"/appointments/{answer['appointmentId']}", token)
    assert one.status_code == 200 and one.json()["note"] == "屏幕碎了"
    after = api.get(f"/stores/{store_id}/slots", params={"serviceId": "repair", "date": day.isoformat()}).json()
    assert after["slots"][0]["remaining"] == 0 and after["slots"][0]["status"] == "full"


def test_the_booking_errors_of_the_contract(api, admin_token):
    store_id = new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    _, other, _ = login(api)
    assert book(api, token, store_id, "repair", at(day, "13:00")).status_code == 200
    full = book(api, other, store_id, "repair", at(day, "13:00"))
    assert full.status_code == 409 and full.json()["code"] == "SLOT_FULL"
    overlapping = book(api, token, store_id, "film", at(day, "13:20"))
    assert overlapping.status_code == 409 and overlapping.json()["code"] == "ALREADY_BOOKED"
    past = book(api, token, store_id, "film", at(future_day(-2), "13:20"))
    assert past.status_code == 409 and past.json()["code"] == "SLOT_CLOSED"
    off_grid = book(api, token, store_id, "film", at(day, "13:05"))
    assert off_grid.status_code == 409 and off_grid.json()["code"] == "SLOT_CLOSED"
    after_hours = book(api, token, store_id, "film", at(day, "21:00"))
    assert after_hours.status_code == 409 and after_hours.json()["code"] == "SLOT_CLOSED"
    too_far = book(api, token, store_id, "film", at(future_day(60), "10:00"))
    assert too_far.status_code == 409 and too_far.json()["code"] == "SLOT_CLOSED"


def test_bad_booking_requests_are_400_naming_the_field(api, admin_token):
    store_id = new_store(api, admin_token)
    _, token, _ = login(api)
    day = future_day()
    cases = [
        ({"storeId": store_id, "serviceId": "film"}, "start"),
        ({"storeId": store_id, "serviceId": "film", "start": "tomorrow at ten"}, "start"),
        ({"storeId": store_id, "serviceId": "film", "start": 1700000000}, "start"),
        ({"storeId": store_id, "serviceId": "film", "start": clock.iso(at(day, "10:00"))[:16] + ":30+08:00"}, "start"),
        ({"storeId": 12, "serviceId": "film", "start": clock.iso(at(day, "10:00"))}, "storeId"),
        ({"storeId": store_id, "serviceId": "film", "start": clock.iso(at(day, "10:00")), "note": "x" * 201}, "note"),
    ]
    for body, field in cases:
        answer = api.post("/appointments", token, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["code"] == "INVALID_REQUEST" and field in answer.json()["message"], answer.text
    unknown = book(api, token, store_id, "nails", at(day, "10:00"))
    assert unknown.status_code == 404
    for params, field in (
        ({"serviceId": "film"}, "date"),
        ({"serviceId": "film", "date": "2031-13-01"}, "date"),
        ({"date": "2031-01-01"}, "serviceId"),
    ):
        answer = api.get(f"/stores/{store_id}/slots", params=params)
        assert answer.status_code == 400 and field in answer.json()["message"]


def test_an_idempotency_key_answers_the_first_booking_again(api, admin_token):
    store_id = new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    key = {"Idempotency-Key": unique("key")}
    first = book(api, token, store_id, "check", at(day, "10:00"), headers=key)
    again = book(api, token, store_id, "check", at(day, "10:00"), headers=key)
    different = book(api, token, store_id, "check", at(day, "15:00"), headers=key)
    assert first.status_code == 200 and again.status_code == 200
    assert again.json() == first.json()
    assert different.status_code == 422 and different.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(api.get("/members/me/appointments", token).json()["items"]) == 1


def test_cancel_and_reschedule_over_http(api, admin_token):
    store_id = new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    made = book(api, token, store_id, "film", at(day, "10:00")).json()
    moved = api.post(
        f"/appointments/{made['appointmentId']}/reschedule", token, json={"start": clock.iso(at(day, "11:00"))}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == clock.iso(at(day, "11:00")) and moved.json()["status"] == "booked"
    moved_id = moved.json()["appointmentId"]
    assert moved_id != made["appointmentId"] and moved.json()["rescheduledFrom"] == made["appointmentId"]
    bad = api.post(f"/appointments/{moved_id}/reschedule", token, json={"start": "soon"})
    assert bad.status_code == 400 and "start" in bad.json()["message"]
    old = api.get(f"/appointments/{made['appointmentId']}", token).json()
    assert old["status"] == "rescheduled" and old["rescheduledTo"] == moved_id
    cancelling_old = api.post(f"/appointments/{made['appointmentId']}/cancel", token)
    assert cancelling_old.status_code == 409 and cancelling_old.json()["code"] == "NOT_BOOKED"
    listed = api.get(f"/stores/{store_id}/slots", params={"serviceId": "film", "date": day.isoformat()})
    slots = {s["start"]: s for s in listed.json()["slots"]}
    assert slots[clock.iso(at(day, "10:00"))]["remaining"] == 2 and slots[clock.iso(at(day, "11:00"))]["remaining"] == 1
    assert api.get(f"/appointments/{moved_id}", token).json()["status"] == "booked"
    key = {"Idempotency-Key": unique("k")}
    cancelled = api.post(f"/appointments/{moved_id}/cancel", token, headers=key)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    listed = api.get(f"/stores/{store_id}/slots", params={"serviceId": "film", "date": day.isoformat()})
    slots = {s["start"]: s for s in listed.json()["slots"]}
    assert slots[clock.iso(at(day, "10:00"))]["remaining"] == 2 and slots[clock.iso(at(day, "11:00"))]["remaining"] == 2
    cancelled_only = api.get("/members/me/appointments", token, params={"status": "cancelled"}).json()["items"]
    assert [item["appointmentId"] for item in cancelled_only] == [moved_id]
    everything = api.get("/members/me/appointments", token).json()["items"]
    assert [item["appointmentId"] for item in everything] == [moved_id]
    rescheduled = api.get("/members/me/appointments", token, params={"status": "rescheduled"}).json()["items"]
    assert [item["appointmentId"] for item in rescheduled] == [made["appointmentId"]]
    for appointment_id in (moved_id, made["appointmentId"]):
        moving_finished = api.post(
            f"/appointments/{appointment_id}/reschedule", token, json={"start": clock.iso(at(day, "12:00"))}
        )
        assert moving_finished.status_code == 409 and moving_finished.json()["code"] == "NOT_BOOKED"


def test_cancelling_inside_the_cut_off_is_409_too_late(api, admin_token):
    store_id = new_store(api, admin_token)
    day = future_day()
    openid = unique("late")
    _, token, _ = login(api, openid)
    made = book(api, token, store_id, "film", at(day, "14:00")).json()
    with clock.frozen_at(at(day, "13:00")):
        token = api.login(openid)  # a token valid at the frozen moment
        answer = api.post(f"/appointments/{made['appointmentId']}/cancel", token)
    assert answer.status_code == 409 and answer.json()["code"] == "TOO_LATE"


def test_another_members_booking_is_404(api, admin_token):
    store_id = new_store(api, admin_token)
    _, owner, _ = login(api)
    _, stranger, _ = login(api)
    made = book(api, owner, store_id, "film", at(future_day(), "10:40")).json()
    for method, path in (
        ("GET", f"/appointments/{made['appointmentId']}"),
        ("POST", f"/appointments/{made['appointmentId']}/cancel"),
        ("POST", f"/appointments/{made['appointmentId']}/reschedule"),
    ):
        answer = api.request(method, path, stranger, json={"start": clock.iso(at(future_day(), "11:00"))})
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND", (path, answer.text)
    assert api.post("/appointments/not-an-id/cancel", stranger).status_code == 404
    forged = made["appointmentId"].rsplit(".", 1)[0] + ".0123456789abcdef"
    for method, path in (("GET", f"/appointments/{forged}"), ("POST", f"/appointments/{forged}/cancel")):
        answer = api.request(method, path, owner)
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND", (path, answer.text)
    assert api.get(f"/appointments/{made['appointmentId']}", owner).status_code == 200


def test_staff_and_guides_see_their_own_stores_day(api, admin_token):
    store_id, other_store = new_store(api, admin_token), new_store(api, admin_token)
    day = future_day()
    _, token, member_id = login(api)
    made = book(api, token, store_id, "repair", at(day, "15:00")).json()
    staff, guide = staff_token(api, store_id), staff_token(api, store_id, "guide")
    stranger = staff_token(api, other_store)

    for who in (staff, guide):
        answer = api.get("/store/appointments", who, params={"date": day.isoformat()})
        assert answer.status_code == 200, answer.text
        seen = [(item["appointmentId"], item["memberId"]) for item in answer.json()["items"]]
        assert seen == [(made["appointmentId"], member_id)]
    assert api.get("/store/appointments", stranger, params={"date": day.isoformat()}).json()["items"] == []
    foreign = api.get("/store/appointments", stranger, params={"date": day.isoformat(), "storeId": store_id})
    assert foreign.status_code == 403 and foreign.json()["code"] == "FORBIDDEN"
    assert api.get("/store/appointments", token).status_code == 403
    as_admin = api.get("/store/appointments", admin_token, params={"date": day.isoformat(), "storeId": store_id})
    assert len(as_admin.json()["items"]) == 1
    assert api.get("/store/appointments", admin_token).status_code == 400
    assert api.get("/store/appointments", staff, params={"date": "tomorrow"}).status_code == 400


def test_staff_of_the_store_check_the_customer_in(api, admin_token):
    store_id, other_store = new_store(api, admin_token), new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    member_openid = unique("member")
    _, token, _ = login(api, member_openid)
    made = book(api, token, store_id, "check", at(day, "17:00")).json()
    path = f"/store/appointments/{made['appointmentId']}/checkin"
    staff_openid, stranger_openid, guide_openid = grant(store_id), grant(other_store), grant(store_id, "guide")

    with clock.frozen_at(at(day, "16:55")):
        staff, stranger, guide = api.login(staff_openid), api.login(stranger_openid), api.login(guide_openid)
        member = api.login(member_openid)
        guide_answer = api.post(path, guide)
        foreign = api.post(path, stranger)
        as_member = api.post(path, member)
        arrived = api.post(path, staff, headers={"Idempotency-Key": unique("k")})
    assert guide_answer.status_code == 403 and foreign.status_code == 403
    assert as_member.status_code == 403
    assert arrived.status_code == 200, arrived.text
    assert arrived.json()["status"] == "checked_in" and "checkedInAt" in arrived.json()
    assert api.get(f"/appointments/{made['appointmentId']}", token).json()["status"] == "checked_in"


def test_a_booking_left_open_becomes_a_no_show_through_the_cron_sandbox(api, admin_token, stack):
    import requests

    store_id = new_store(api, admin_token)
    day = future_day(9)  # no other test books near this day, so the job only finds this booking
    _, token, _ = login(api)
    made = book(api, token, store_id, "film", at(day, "19:40")).json()
    moment = (at(day, "20:00") + dt.timedelta(minutes=1)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ran = requests.post(f"{stack.sandbox_url}/sandbox/cron/appointment-no-shows", json={"now": moment}, timeout=30)
    assert ran.status_code == 200 and ran.json()["result"]["noShows"] == 1
    assert api.get(f"/appointments/{made['appointmentId']}", token).json()["status"] == "no_show"


def test_the_members_list_pages_and_refuses_forged_cursors(api, admin_token):
    import base64
    import json

    store_id = new_store(api, admin_token)
    day = future_day()
    _, token, _ = login(api)
    made = [book(api, token, store_id, "film", at(day, hhmm)).json()["appointmentId"] for hhmm in ("10:00", "12:00")]
    made.append(book(api, token, store_id, "film", at(day, "14:00")).json()["appointmentId"])
    first = api.get("/members/me/appointments", token, params={"limit": 2}).json()
    rest = api.get("/members/me/appointments", token, params={"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [item["appointmentId"] for item in first["items"] + rest["items"]] == made[::-1]

    def forged(key: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()

    theirs = {"appointment_id": {"S": "a1"}, "member_id": {"S": "someone-else"}, "start": {"S": "x"}}
    for cursor in ("garbage", forged({"x": 1}), forged(theirs), forged({**theirs, "member_id": {"N": "1"}})):
        answer = api.get("/members/me/appointments", token, params={"cursor": cursor})
        assert answer.status_code == 400 and "cursor" in answer.json()["message"], answer.text
    staff = staff_token(api, store_id)
    answer = api.get("/store/appointments", staff, params={"date": day.isoformat(), "cursor": forged(theirs)})
    assert answer.status_code == 400
