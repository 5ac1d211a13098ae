"""Every row of API.md's "Coupons" table, over HTTP against the local stack."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock
from chalicelib.coupons import checkout
from tests.conftest import new_admin, unique
from tests.coupon_helpers import campaign_body, guide_token, login_member, open_campaigns, set_tier, staff_token

CLAIM_FIELDS = {"couponId", "campaignId", "kind", "value", "threshold", "validFrom", "validTo", "status"}
LISTING_FIELDS = {
    "campaignId", "title", "kind", "value", "threshold", "validFrom", "validTo", "remaining", "perMemberLimit", "claimed",
}


@pytest.fixture
def create(api, admin_token):
    def make(**overrides):
        response = api.post("/admin/campaigns", admin_token, json=campaign_body(**overrides))
        assert response.status_code == 201, response.text
        return response.json()

    return make


def _claim(api, token, campaign_id, **kwargs):
    return api.post(f"/coupons/campaigns/{campaign_id}/claim", token, **kwargs)


def _member_id(api, token):
    return api.get("/members/me", token).json()["memberId"]


# --- POST /admin/campaigns, GET, stop ----------------------------------------------------

def test_an_admin_creates_a_campaign_and_reads_it_back(api, admin_token, create):
    campaign = create(title="新品首发券", totalStock=1000, shardCount=16, perMemberLimit=2, storeIds=["sh-a"])
    assert campaign["remaining"] == 1000 and campaign["shardCount"] == 16 and campaign["status"] == "active"
    assert campaign["validTo"].endswith("+08:00") and campaign["storeIds"] == ["sh-a"]
    again = api.get(f"/admin/campaigns/{campaign['campaignId']}", admin_token)
    assert again.status_code == 200 and again.json()["remaining"] == 1000 and again.json()["given"] == 0
    create()
    first = api.get("/admin/campaigns?limit=1", admin_token).json()
    assert len(first["items"]) == 1 and first["nextCursor"]
    second = api.get(f"/admin/campaigns?limit=1&cursor={first['nextCursor']}", admin_token).json()
    assert second["items"][0]["campaignId"] != first["items"][0]["campaignId"]


def test_a_forged_admin_cursor_is_an_invalid_request(api, admin_token):
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps({"member_id": {"N": "1"}}).encode()).decode()
    response = api.get(f"/admin/campaigns?cursor={forged}", admin_token)
    assert response.status_code == 400 and "cursor" in response.json()["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "voucher"}, "kind"),
        ({"totalStock": 0}, "totalStock"),
        ({"totalStock": "10"}, "totalStock"),
        ({"value": -1}, "value"),
        ({"title": None}, "title"),
        ({"perMemberLimit": 0}, "perMemberLimit"),
        ({"validTo": "2020-01-01T00:00:00+08:00"}, "validTo"),
        ({"validFrom": "not a date"}, "validFrom"),
        ({"kind": "discount", "value": 100}, "value"),
        ({"kind": "cash", "value": 2000, "threshold": 1000}, "threshold"),
        ({"kind": "cash", "maxOff": 100}, "maxOff"),
        ({"tiers": ["diamond"]}, "tiers"),
        ({"storeIds": ["bad id!"]}, "storeIds.0"),
        ({"shardCount": 65}, "shardCount"),
        ({"totalStock": 3, "shardCount": 4}, "shardCount"),
        ({"channel": "exchange"}, "pointsPrice"),
        ({"claimTo": "2099-01-01T00:00:00+08:00"}, "claimTo"),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_field(api, admin_token, overrides, field):
    response = api.post("/admin/campaigns", admin_token, json=campaign_body(**overrides))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_REQUEST"
    assert response.json()["message"].startswith(field), response.json()["message"]


def test_only_admins_create_campaigns(api, member):
    _, token = member
    assert api.post("/admin/campaigns", token, json=campaign_body()).status_code == 403
    assert api.post("/admin/campaigns", json=campaign_body()).status_code == 401


def test_a_stopped_campaign_refuses_claims(api, admin_token, create, member):
    _, token = member
    campaign = create()
    stopped = api.post(f"/admin/campaigns/{campaign['campaignId']}/stop", admin_token)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    response = _claim(api, token, campaign["campaignId"])
    assert response.status_code == 409 and response.json()["code"] == "ENDED"
    listed = open_campaigns(api, token)
    assert campaign["campaignId"] not in {c["campaignId"] for c in listed}


def test_an_unknown_campaign_is_not_found(api, admin_token, member):
    _, token = member
    assert api.get("/admin/campaigns/cp-nope", admin_token).status_code == 404
    assert _claim(api, token, "cp-nope").status_code == 404


# --- GET /coupons/campaigns ----------------------------------------------------------------

def test_a_member_sees_the_campaigns_open_to_them_with_stock_and_their_count(api, create, member):
    _, token = member
    open_one = create(totalStock=40, shardCount=4, perMemberLimit=3)
    for_geeks = create(tiers=["geek"])
    for_guides = create(channel="guide")
    later = create(claimFrom=(clock.now() + dt.timedelta(days=1)).isoformat())
    assert _claim(api, token, open_one["campaignId"]).status_code == 200
    listed = {c["campaignId"]: c for c in open_campaigns(api, token)}
    mine = listed[open_one["campaignId"]]
    assert LISTING_FIELDS <= set(mine)
    assert mine["remaining"] == 39 and mine["claimed"] == 1 and mine["perMemberLimit"] == 3
    assert not {for_geeks["campaignId"], for_guides["campaignId"], later["campaignId"]} & set(listed)


def test_a_tier_campaign_is_listed_for_that_tier(api, create):
    _, member_id, token = login_member()
    for_geeks = create(tiers=["geek"])
    set_tier(member_id, "geek")
    listed = {c["campaignId"] for c in open_campaigns(api, token)}
    assert for_geeks["campaignId"] in listed


# --- POST /coupons/campaigns/{campaignId}/claim --------------------------------------------

def test_a_claim_answers_the_coupon(api, create, member):
    _, token = member
    campaign = create()
    response = _claim(api, token, campaign["campaignId"])
    assert response.status_code == 200, response.text
    coupon = response.json()
    assert CLAIM_FIELDS <= set(coupon) and coupon["status"] == "available"
    assert coupon["campaignId"] == campaign["campaignId"] and coupon["value"] == 2000


def test_claim_errors(api, create, member):
    _, token = member
    sold = create(totalStock=1, perMemberLimit=1)
    assert _claim(api, token, sold["campaignId"]).status_code == 200
    other = login_member()[2]
    assert _claim(api, other, sold["campaignId"]).json()["code"] == "SOLD_OUT"

    limited = create(totalStock=10, perMemberLimit=1)
    assert _claim(api, token, limited["campaignId"]).status_code == 200
    second = _claim(api, token, limited["campaignId"])
    assert second.status_code == 409 and second.json()["code"] == "LIMIT_REACHED"

    for_geeks = create(tiers=["geek"])
    assert _claim(api, token, for_geeks["campaignId"]).json()["code"] == "NOT_ELIGIBLE"

    later = create(claimFrom=(clock.now() + dt.timedelta(days=1)).isoformat())
    assert _claim(api, token, later["campaignId"]).json()["code"] == "NOT_STARTED"

    ending = create(claimTo=(clock.now() + dt.timedelta(minutes=5)).isoformat())
    with clock.frozen_at(clock.now() + dt.timedelta(minutes=10)):
        ended = _claim(api, token, ending["campaignId"])
    assert ended.status_code == 409 and ended.json()["code"] == "ENDED"


def test_a_claim_retried_with_its_idempotency_key_gives_one_coupon(api, create, member):
    _, token = member
    campaign = create(perMemberLimit=5)
    key = {"Idempotency-Key": unique("claim")}
    first = _claim(api, token, campaign["campaignId"], headers=key)
    again = _claim(api, token, campaign["campaignId"], headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json()["couponId"] == again.json()["couponId"]
    assert len(api.get("/members/me/coupons", token).json()["items"]) == 1


def test_sixty_members_racing_over_http_get_exactly_the_stock(api, create):
    campaign = create(totalStock=25, shardCount=4)
    tokens = [login_member("racer")[2] for _ in range(60)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda token: _claim(api, token, campaign["campaignId"]), tokens))
    codes = [a.json().get("code", "granted") if a.status_code != 200 else "granted" for a in answers]
    assert codes.count("granted") == 25 and codes.count("SOLD_OUT") == 35


# --- GET /members/me/coupons -------------------------------------------------------------------

def test_a_member_lists_their_coupons_by_status(api, create):
    _, member_id, token = login_member()
    campaign = create(totalStock=10, perMemberLimit=5, threshold=0, validTo=(clock.now() + dt.timedelta(hours=1)).isoformat())
    ids = [_claim(api, token, campaign["campaignId"]).json()["couponId"] for _ in range(3)]
    checkout.lock(member_id, ids[0], "order-1")
    checkout.lock(member_id, ids[1], "order-2")
    checkout.use(member_id, ids[1], "order-2")

    everything = api.get("/members/me/coupons", token).json()
    assert [c["couponId"] for c in everything["items"]] == list(reversed(ids))  # newest first
    locked = api.get("/members/me/coupons?status=locked", token).json()["items"]
    assert [(c["couponId"], c["orderId"]) for c in locked] == [(ids[0], "order-1")]
    used = api.get("/members/me/coupons?status=used", token).json()["items"]
    assert [c["couponId"] for c in used] == [ids[1]]
    available = api.get("/members/me/coupons?status=available", token).json()["items"]
    assert [c["couponId"] for c in available] == [ids[2]]
    with clock.frozen_at(clock.now() + dt.timedelta(minutes=90)):
        expired = api.get("/members/me/coupons?status=expired", token).json()["items"]
    assert [c["couponId"] for c in expired] == [ids[2]]


def test_the_coupon_list_pages_with_a_cursor(api, create):
    _, _, token = login_member()
    campaign = create(totalStock=10, perMemberLimit=5)
    ids = [_claim(api, token, campaign["campaignId"]).json()["couponId"] for _ in range(5)]
    first = api.get("/members/me/coupons?limit=2", token).json()
    second = api.get(f"/members/me/coupons?limit=2&cursor={first['nextCursor']}", token).json()
    third = api.get(f"/members/me/coupons?limit=2&cursor={second['nextCursor']}", token).json()
    seen = [c["couponId"] for page in (first, second, third) for c in page["items"]]
    assert seen == list(reversed(ids)) and third["nextCursor"] is None


def test_bad_list_parameters_are_invalid_requests(api, member):
    _, token = member
    assert api.get("/members/me/coupons?status=lost", token).json()["code"] == "INVALID_REQUEST"
    assert api.get("/members/me/coupons?limit=0", token).status_code == 400
    assert api.get("/members/me/coupons?cursor=%%%", token).status_code == 400


# --- GET /coupons/{couponId}/code and POST /store/coupons/redeem -------------------------------

def _held_coupon(api, create, **overrides):
    _, _, token = login_member()
    campaign = create(**overrides)
    return token, _claim(api, token, campaign["campaignId"]).json()["couponId"]


def test_a_code_is_short_lived_and_another_members_coupon_is_not_found(api, create, member):
    token, coupon_id = _held_coupon(api, create)
    code = api.get(f"/coupons/{coupon_id}/code", token)
    assert code.status_code == 200 and set(code.json()) >= {"payload", "expiresAt"}
    expires = clock.parse_iso(code.json()["expiresAt"])
    assert dt.timedelta(0) < expires - clock.now() <= dt.timedelta(minutes=5)
    _, stranger = member
    hidden = api.get(f"/coupons/{coupon_id}/code", stranger)
    assert hidden.status_code == 404 and hidden.json()["code"] == "NOT_FOUND"
    assert api.get("/coupons/c-nope/code", token).status_code == 404


def test_staff_redeem_a_coupon_at_their_store(api, create):
    token, coupon_id = _held_coupon(api, create, kind="service", value=4900, threshold=0, storeIds=["sh-xuhui"])
    payload = api.get(f"/coupons/{coupon_id}/code", token).json()["payload"]
    staff = staff_token(api, "sh-xuhui")
    redeemed = api.post("/store/coupons/redeem", staff, json={"payload": payload})
    assert redeemed.status_code == 200, redeemed.text
    body = redeemed.json()
    assert body["status"] == "used" and body["storeId"] == "sh-xuhui" and body["usedAt"].endswith("+08:00")
    assert body["couponId"] == coupon_id
    used = api.get("/members/me/coupons?status=used", token).json()["items"]
    assert [c["couponId"] for c in used] == [coupon_id]
    again = api.get(f"/coupons/{coupon_id}/code", token)
    assert again.status_code == 409 and again.json()["code"] == "COUPON_USED"


def test_redemption_errors(api, create):
    token, coupon_id = _held_coupon(api, create, storeIds=["sh-xuhui"])
    payload = api.get(f"/coupons/{coupon_id}/code", token).json()["payload"]
    wrong = api.post("/store/coupons/redeem", staff_token(api, "sh-pudong"), json={"payload": payload})
    assert wrong.status_code == 409 and wrong.json()["code"] == "WRONG_STORE"

    staff = staff_token(api, "sh-xuhui")
    forged = payload[:-4] + ("AAAA" if not payload.endswith("AAAA") else "BBBB")
    response = api.post("/store/coupons/redeem", staff, json={"payload": forged})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"
    assert "payload" in response.json()["message"]
    _, coupon, member, expires, signature = payload.split(".")
    stretched = f"sc1.{coupon}.{member}.{int(expires) + 3600}.{signature}"
    assert api.post("/store/coupons/redeem", staff, json={"payload": stretched}).status_code == 400
    other_member = login_member()[1]
    borrowed = f"sc1.{coupon}.{other_member}.{expires}.{signature}"
    assert api.post("/store/coupons/redeem", staff, json={"payload": borrowed}).status_code == 400
    assert api.post("/store/coupons/redeem", staff, json={"payload": "garbage"}).status_code == 400
    assert api.post("/store/coupons/redeem", staff, json={}).status_code == 400

    with clock.frozen_at(clock.now() + dt.timedelta(minutes=6)):
        late = api.post("/store/coupons/redeem", staff, json={"payload": payload})
    assert late.status_code == 409 and late.json()["code"] == "CODE_EXPIRED"

    assert api.post("/store/coupons/redeem", token, json={"payload": payload}).status_code == 403
    assert api.post("/store/coupons/redeem", staff, json={"payload": payload}).status_code == 200
    used = api.post("/store/coupons/redeem", staff, json={"payload": payload})
    assert used.status_code == 409 and used.json()["code"] == "COUPON_USED"


def test_a_coupon_that_ended_after_its_code_was_shown_is_expired(api, create):
    now = clock.now()
    token, coupon_id = _held_coupon(api, create, validTo=(now + dt.timedelta(minutes=3)).isoformat())
    payload = api.get(f"/coupons/{coupon_id}/code", token).json()["payload"]
    with clock.frozen_at(now + dt.timedelta(minutes=4)):
        response = api.post("/store/coupons/redeem", staff_token(api, "sh-xuhui"), json={"payload": payload})
        code = api.get(f"/coupons/{coupon_id}/code", token)
    assert response.status_code == 409 and response.json()["code"] == "COUPON_EXPIRED"
    assert code.status_code == 409 and code.json()["code"] == "COUPON_EXPIRED"


def test_six_simultaneous_scans_redeem_once(api, create):
    token, coupon_id = _held_coupon(api, create)
    payload = api.get(f"/coupons/{coupon_id}/code", token).json()["payload"]
    staff = staff_token(api, "sh-jingan")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: api.post("/store/coupons/redeem", staff, json={"payload": payload}), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409, 409, 409, 409]
    assert [a.json()["code"] for a in answers if a.status_code == 409] == ["COUPON_USED"] * 5


def test_a_locked_coupon_cannot_be_redeemed_in_store(api, create):
    _, member_id, token = login_member()
    campaign = create()
    coupon_id = _claim(api, token, campaign["campaignId"]).json()["couponId"]
    payload = api.get(f"/coupons/{coupon_id}/code", token).json()["payload"]
    checkout.lock(member_id, coupon_id, "order-x")
    response = api.post("/store/coupons/redeem", staff_token(api, "sh-xuhui"), json={"payload": payload})
    assert response.status_code == 409 and response.json()["code"] == "COUPON_LOCKED"


# --- POST /guide/customers/{memberId}/coupons ----------------------------------------------------

def test_a_guide_gives_a_coupon_to_a_bound_customer(api, create):
    guide_id, guide = guide_token(api, "sh-xuhui")
    _, customer_id, customer = login_member("customer", scene=f"g={guide_id}")
    campaign = create(channel="guide", totalStock=2, perMemberLimit=1)
    given = api.post(f"/guide/customers/{customer_id}/coupons", guide, json={"campaignId": campaign["campaignId"]})
    assert given.status_code == 200, given.text
    assert given.json()["status"] == "available" and given.json()["source"] == "guide"
    mine = api.get("/members/me/coupons", customer).json()["items"]
    assert [c["couponId"] for c in mine] == [given.json()["couponId"]]
    again = api.post(f"/guide/customers/{customer_id}/coupons", guide, json={"campaignId": campaign["campaignId"]})
    assert again.status_code == 409 and again.json()["code"] == "LIMIT_REACHED"


def test_a_guide_cannot_give_to_a_customer_not_bound_to_them(api, create):
    _, guide = guide_token(api, "sh-xuhui")
    other_guide_id, _ = guide_token(api, "sh-xuhui")
    _, stranger_id, _ = login_member("customer", scene=f"g={other_guide_id}")
    _, unbound_id, _ = login_member("customer")
    campaign = create(channel="guide")
    for member_id in (stranger_id, unbound_id, "m-nobody"):
        response = api.post(f"/guide/customers/{member_id}/coupons", guide, json={"campaignId": campaign["campaignId"]})
        assert response.status_code == 404, response.text
    assert api.get(f"/admin/campaigns/{campaign['campaignId']}", login_admin(api)).json()["remaining"] == 100


def login_admin(api):
    return new_admin(api)[1]


def test_guides_give_only_guide_campaigns_and_members_cannot_give(api, create, member):
    guide_id, guide = guide_token(api, "sh-xuhui")
    _, customer_id, _ = login_member("customer", scene=f"g={guide_id}")
    public = create()
    response = api.post(f"/guide/customers/{customer_id}/coupons", guide, json={"campaignId": public["campaignId"]})
    assert response.status_code == 409 and response.json()["code"] == "NOT_ELIGIBLE"
    _, token = member
    guide_campaign = create(channel="guide")
    forbidden = api.post(f"/guide/customers/{customer_id}/coupons", token, json={"campaignId": guide_campaign["campaignId"]})
    assert forbidden.status_code == 403
