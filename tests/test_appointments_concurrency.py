"""Racing bookings against DynamoDB Local, over HTTP: the conditions hold, not luck."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from chalicelib import clock
from tests.appointment_helpers import at, future_day, login, make_store


def test_capacity_plus_eight_members_racing_for_one_slot_get_exactly_capacity_bookings(api):
    capacity = 3
    film = {"serviceId": "film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": capacity}
    store_id = make_store(services=[film])
    start = clock.iso(at(future_day(), "15:00"))
    tokens = [login(api)[1] for _ in range(capacity + 8)]
    body = {"storeId": store_id, "serviceId": "film", "start": start}

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        answers = list(pool.map(lambda token: api.post("/appointments", token, json=body), tokens))

    assert Counter(answer.status_code for answer in answers) == {200: capacity, 409: 8}
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"SLOT_FULL"}
    slots = api.get(f"/stores/{store_id}/slots", params={"serviceId": "film", "date": start[:10]}).json()["slots"]
    slot = next(s for s in slots if s["start"] == start)
    assert slot["remaining"] == 0 and slot["status"] == "full"


def test_one_member_racing_five_times_for_overlapping_slots_gets_one_booking(api):
    store_id, other_store = make_store(), make_store()
    day = future_day()
    _, token, _ = login(api)
    # Every pair of these overlaps (all cover 11:40-12:00), in two stores and three services.
    bodies = [
        {"storeId": store_id, "serviceId": "repair", "start": clock.iso(at(day, "11:00"))},
        {"storeId": store_id, "serviceId": "check", "start": clock.iso(at(day, "11:30"))},
        {"storeId": store_id, "serviceId": "film", "start": clock.iso(at(day, "11:40"))},
        {"storeId": other_store, "serviceId": "repair", "start": clock.iso(at(day, "11:00"))},
        {"storeId": other_store, "serviceId": "film", "start": clock.iso(at(day, "11:40"))},
    ]

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda body: api.post("/appointments", token, json=body), bodies))

    assert Counter(answer.status_code for answer in answers) == {200: 1, 409: 4}
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"ALREADY_BOOKED"}
    mine = api.get("/members/me/appointments", token).json()["items"]
    assert len(mine) == 1 and mine[0]["status"] == "booked"


def test_one_member_racing_five_times_for_the_same_slot_gets_one_booking(api):
    store_id = make_store()
    _, token, _ = login(api)
    body = {"storeId": store_id, "serviceId": "check", "start": clock.iso(at(future_day(), "16:00"))}

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: api.post("/appointments", token, json=body), range(5)))

    assert Counter(answer.status_code for answer in answers) == {200: 1, 409: 4}
    slots = api.get(f"/stores/{store_id}/slots", params={"serviceId": "check", "date": body["start"][:10]}).json()
    assert next(s for s in slots["slots"] if s["start"] == body["start"])["remaining"] == 2


def test_a_reschedule_into_a_full_slot_changes_nothing_even_while_others_race_for_it(api):
    store_id = make_store()
    day = future_day()
    _, mover, _ = login(api)
    body = {"storeId": store_id, "serviceId": "repair", "start": clock.iso(at(day, "10:00"))}
    made = api.post("/appointments", mover, json=body)
    assert made.status_code == 200, made.text
    target = clock.iso(at(day, "12:00"))
    racers = [login(api)[1] for _ in range(4)]

    def book(token: str):
        return api.post("/appointments", token, json={"storeId": store_id, "serviceId": "repair", "start": target})

    with ThreadPoolExecutor(max_workers=5) as pool:
        racing = [pool.submit(book, token) for token in racers]
        moving = pool.submit(
            lambda: api.post(f"/appointments/{made.json()['appointmentId']}/reschedule", mover, json={"start": target})
        )
        answers = [future.result() for future in racing] + [moving.result()]

    assert sum(answer.status_code == 200 for answer in answers) == 1
    listed = api.get(f"/stores/{store_id}/slots", params={"serviceId": "repair", "date": target[:10]})
    slots = {s["start"]: s for s in listed.json()["slots"]}
    assert slots[target]["remaining"] == 0
    mine = api.get("/members/me/appointments", mover).json()["items"]
    if moving.result().status_code == 200:
        assert mine[0]["start"] == target and slots[clock.iso(at(day, "10:00"))]["remaining"] == 1
    else:
        assert moving.result().json()["code"] == "SLOT_FULL"
        assert mine[0]["start"] == clock.iso(at(day, "10:00")) and slots[clock.iso(at(day, "10:00"))]["remaining"] == 0
