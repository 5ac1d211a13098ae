"""Who is refused at once: a deleted member on every route; a revoked role on that role's routes (DESIGN rule 11)."""

from __future__ import annotations

from chalicelib import clock
from tests.appointment_helpers import at, future_day, grant, make_store
from tests.conftest import new_admin, unique
from tests.coupon_helpers import new_campaign


def _login(api, openid: str) -> tuple[str, str]:
    answer = api.post("/auth/login", json={"code": f"dev:{openid}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"], answer.json()["member"]["memberId"]


def test_a_deleted_members_token_is_refused_on_every_route_and_moves_nothing(api, admin_token):
    token, member_id = _login(api, unique("leaver"))
    campaign = new_campaign(totalStock=5)
    store_id = make_store()
    reminder = api.get("/config/subscriptions").json()["templates"]["appointmentReminder"]
    assert api.delete("/members/me", token).status_code == 204

    booking = {"storeId": store_id, "serviceId": "repair", "start": clock.iso(at(future_day(), "10:00"))}
    calls = [
        ("GET", "/members/me", None),
        ("PUT", "/members/me/profile", {"nickname": "还在"}),
        ("GET", "/points", None),
        ("GET", "/points/entries", None),
        ("POST", "/points/checkin", None),
        ("GET", "/coupons/campaigns", None),
        ("POST", f"/coupons/campaigns/{campaign['campaignId']}/claim", None),
        ("GET", "/members/me/coupons", None),
        ("POST", "/appointments", booking),
        ("GET", "/members/me/appointments", None),
        ("POST", "/members/me/subscriptions", {"templateIds": [reminder]}),
        ("GET", "/members/me/subscriptions", None),
        ("DELETE", "/members/me", None),
    ]
    for method, path, body in calls:
        answer = api.request(method, path, token, json=body)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code} {answer.text}"
        assert answer.json()["code"] == "UNAUTHENTICATED"

    from chalicelib.coupons import service as coupons
    from chalicelib.points.models import PointsBalance

    assert coupons.remaining(campaign["campaignId"]) == 5
    assert PointsBalance.count(member_id, consistent_read=True) == 0
    slots = api.get(f"/stores/{store_id}/slots", params={"serviceId": "repair", "date": future_day().isoformat()})
    assert slots.json()["slots"][0]["remaining"] == 1


def test_an_admin_adjust_on_a_deleted_member_is_404_whatever_its_sign(api, admin_token):
    token, member_id = _login(api, unique("leaver"))
    assert api.delete("/members/me", token).status_code == 204
    for delta in (50, -50):
        answer = api.post("/admin/points/adjust", admin_token, json={"memberId": member_id, "delta": delta, "reason": "x"})
        assert answer.status_code == 404, f"{delta}: {answer.text}"


def test_a_write_admitted_just_before_the_deletion_is_refused_by_its_own_condition(api, stack):
    """The edge's check and the write are two round trips: the write carries the member's liveness itself."""
    import pytest

    from chalicelib.appointments import service as appointments
    from chalicelib.appointments.schemas import BookingRequest
    from chalicelib.coupons import claims
    from chalicelib.coupons import service as coupons
    from chalicelib.members import service as members
    from chalicelib.points.models import PointsBalance
    from chalicelib.usecases import own_writes

    token, member_id = _login(api, unique("leaver"))
    campaign, store_id = new_campaign(totalStock=5), make_store()
    reminder = api.get("/config/subscriptions").json()["templates"]["appointmentReminder"]
    members.delete_member(member_id)

    start = at(future_day(), "10:00")
    writes = [
        lambda: own_writes.checkin(member_id),
        lambda: own_writes.accept_subscriptions(member_id, [reminder]),
        lambda: claims.claim(member_id, campaign["campaignId"]),
        lambda: appointments.book(member_id, BookingRequest(store_id=store_id, service_id="repair", start=start)),
    ]
    for write in writes:
        with pytest.raises(members.MemberGoneError):
            write()
    assert coupons.remaining(campaign["campaignId"]) == 5
    assert PointsBalance.count(member_id, consistent_read=True) == 0
    assert appointments.slots(store_id, "repair", future_day())["slots"][0]["remaining"] == 1


def _store_day(api, token: str, store_id: str):
    return api.get("/store/appointments", token, params={"date": future_day().isoformat(), "storeId": store_id})


def test_a_revoked_role_is_refused_on_its_routes_and_nobody_else_is_logged_out(api, admin_token, monkeypatch):
    from chalicelib.members import access

    store_id = make_store()
    revoked, kept = grant(store_id), grant(store_id)
    revoked_token, _ = _login(api, revoked)
    kept_token, _ = _login(api, kept)
    assert _store_day(api, revoked_token, store_id).status_code == 200  # the container now caches their grants

    assert api.delete(f"/admin/staff/{revoked}", admin_token, params={"role": "staff"}).status_code == 204
    monkeypatch.setattr(access, "GRANTS_CACHE_SECONDS", 0.0)  # the cache period has passed

    refused = _store_day(api, revoked_token, store_id)
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert _store_day(api, kept_token, store_id).status_code == 200
    assert _store_day(api, admin_token, store_id).status_code == 200
    assert api.get("/members/me", revoked_token).status_code == 200
    assert api.post("/points/checkin", revoked_token).status_code == 200
    again, _ = _login(api, revoked)
    assert _store_day(api, again, store_id).status_code == 403


def test_a_revocation_within_the_cache_period_holds_once_it_ends(api, admin_token):
    from chalicelib.members import access

    store_id = make_store()
    openid = grant(store_id)
    token, _ = _login(api, openid)
    assert _store_day(api, token, store_id).status_code == 200
    assert api.delete(f"/admin/staff/{openid}", admin_token).status_code == 204
    assert 0 < access.GRANTS_CACHE_SECONDS <= 60
    access.forget_grants()  # what a new container, or this one after the period, sees
    assert _store_day(api, token, store_id).status_code == 403


def test_revoking_needs_an_admin_and_a_known_person(api, admin_token):
    store_id = make_store()
    openid = grant(store_id)
    staff_token, _ = _login(api, openid)
    assert api.delete(f"/admin/staff/{grant(store_id)}", staff_token).status_code == 403
    assert api.delete(f"/admin/staff/{unique('nobody')}", admin_token).status_code == 404
    assert api.delete(f"/admin/staff/{openid}", admin_token, params={"role": "chief"}).status_code == 400
    assert api.delete(f"/admin/staff/{openid}", admin_token, params={"role": "guide"}).status_code == 204
    assert api.delete(f"/admin/staff/{openid}", admin_token).status_code == 204
    assert api.delete(f"/admin/staff/{openid}", admin_token).status_code == 204


def test_an_admin_keeps_their_own_admin_role_and_another_admin_may_take_it(api):
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    store_id = make_store()
    chief, _ = new_admin(api)
    _, deputy_token = new_admin(api)
    members.grant_role(StaffGrant(openid=chief, role="guide", storeId=store_id, name="HQ"), granted_by="tests")
    chief_token, _ = _login(api, chief)

    for role in ({}, {"role": "admin"}):
        refused = api.delete(f"/admin/staff/{chief}", chief_token, params=role)
        assert refused.status_code == 409 and refused.json()["code"] == "OWN_ADMIN_ROLE", refused.text
    assert api.get("/admin/staff", chief_token).status_code == 200
    assert api.delete(f"/admin/staff/{chief}", chief_token, params={"role": "guide"}).status_code == 204

    assert api.delete(f"/admin/staff/{chief}", deputy_token).status_code == 204
    again, _ = _login(api, chief)
    assert api.get("/admin/staff", again).status_code == 403


def test_revoking_a_role_the_person_does_not_hold_logs_nobody_out(api):
    from chalicelib.members import access

    store_id = make_store()
    openid = grant(store_id)
    token, _ = _login(api, openid)
    admin, admin_token = new_admin(api)

    for role in ({"role": "guide"}, {"role": "admin"}):
        assert api.delete(f"/admin/staff/{openid}", admin_token, params=role).status_code == 204
    assert api.delete(f"/admin/staff/{admin}", admin_token, params={"role": "staff"}).status_code == 204
    access.forget_grants()
    assert _store_day(api, token, store_id).status_code == 200
    assert api.get("/admin/staff", admin_token).status_code == 200
