"""Exchanging points for a coupon: the spend and the claim are one atomic step."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.coupons import claims, service
from chalicelib.coupons.errors import LimitReachedError, NotEligibleError, SoldOutError
from chalicelib.errors import ConflictError
from chalicelib.points import service as points
from tests.conftest import unique
from tests.coupon_helpers import login_member, new_campaign, open_campaigns, set_tier


def _member_with_points(amount: int) -> tuple[str, str]:
    _, member_id, token = login_member()
    if amount:
        points.earn(member_id, amount, transfer_id=unique("grant"), reason="adjust")
    return member_id, token


def test_an_exchange_spends_the_price_and_gives_the_coupon(stack):
    campaign = new_campaign(pointsPrice=300, totalStock=10)
    member_id, _ = _member_with_points(1000)
    coupon = claims.exchange(member_id, campaign["campaignId"])
    assert coupon["status"] == "available" and coupon["source"] == "exchange"
    assert points.available(member_id) == 700
    assert service.remaining(campaign["campaignId"]) == 9


def test_short_points_change_nothing(stack):
    campaign = new_campaign(pointsPrice=300, totalStock=10)
    member_id, _ = _member_with_points(200)
    with pytest.raises(ConflictError) as refused:
        claims.exchange(member_id, campaign["campaignId"])
    assert refused.value.code == "INSUFFICIENT_POINTS"
    assert points.available(member_id) == 200
    assert service.remaining(campaign["campaignId"]) == 10
    assert service.member_coupons(member_id, None, 20, None)["items"] == []


def test_a_refused_claim_spends_no_points(stack):
    sold_out = new_campaign(pointsPrice=100, totalStock=1)
    member_id, _ = _member_with_points(1000)
    claims.exchange(member_id, sold_out["campaignId"])
    with pytest.raises(LimitReachedError):
        claims.exchange(member_id, sold_out["campaignId"])
    other, _ = _member_with_points(1000)
    with pytest.raises(SoldOutError):
        claims.exchange(other, sold_out["campaignId"])
    assert points.available(member_id) == 900 and points.available(other) == 1000

    for_geeks = new_campaign(pointsPrice=100, tiers=["geek"])
    with pytest.raises(NotEligibleError):
        claims.exchange(other, for_geeks["campaignId"])
    assert points.available(other) == 1000
    set_tier(other, "geek")
    claims.exchange(other, for_geeks["campaignId"])
    assert points.available(other) == 900


def test_racing_exchanges_never_overspend(stack):
    campaign = new_campaign(pointsPrice=300, totalStock=50, perMemberLimit=10)
    member_id, _ = _member_with_points(1000)

    def attempt(_: int) -> str:
        try:
            claims.exchange(member_id, campaign["campaignId"])
        except ConflictError as error:
            return error.code
        return "granted"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    assert outcomes.count("granted") == 3
    assert points.available(member_id) == 100
    assert len(service.member_coupons(member_id, None, 20, None)["items"]) == 3
    assert service.remaining(campaign["campaignId"]) == 47


def test_exchange_over_http(api, stack):
    from tests.coupon_helpers import campaign_body
    from tests.test_coupons_api import login_admin

    admin = login_admin(api)
    campaign = api.post("/admin/campaigns", admin, json=campaign_body(pointsPrice=500)).json()
    member_id, token = _member_with_points(600)
    listed = {c["campaignId"]: c for c in open_campaigns(api, token)}
    assert listed[campaign["campaignId"]]["pointsPrice"] == 500
    claim = api.post(f"/coupons/campaigns/{campaign['campaignId']}/claim", token)
    assert claim.status_code == 409 and claim.json()["code"] == "NOT_ELIGIBLE"
    key = {"Idempotency-Key": unique("exchange")}
    first = api.post("/points/exchange", token, json={"campaignId": campaign["campaignId"]}, headers=key)
    assert first.status_code == 200, first.text
    again = api.post("/points/exchange", token, json={"campaignId": campaign["campaignId"]}, headers=key)
    assert again.json()["couponId"] == first.json()["couponId"]
    assert points.available(member_id) == 100
    short = api.post("/points/exchange", token, json={"campaignId": campaign["campaignId"]})
    assert short.status_code == 409 and short.json()["code"] == "INSUFFICIENT_POINTS"
    assert api.post("/points/exchange", token, json={}).status_code == 400
    assert api.post("/points/exchange", token, json={"campaignId": "cp-none"}).status_code == 404
