"""Claiming coupons at the service level, against DynamoDB Local, including the races."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock, db
from chalicelib.coupons import claims, service
from chalicelib.coupons.errors import (
    EndedError,
    LimitReachedError,
    NotEligibleError,
    NotStartedError,
    SoldOutError,
)
from chalicelib.coupons.models import StockShard
from tests.conftest import live_member
from tests.coupon_helpers import new_campaign, new_member, set_tier


def _outcome(action):
    try:
        action()
    except (SoldOutError, LimitReachedError) as error:
        return error.code
    return "granted"


def test_a_claim_gives_a_coupon_with_the_campaigns_terms(stack):
    campaign = new_campaign(totalStock=10, shardCount=2)
    member_id = live_member()
    coupon = claims.claim(member_id, campaign["campaignId"])
    assert coupon["status"] == "available" and coupon["campaignId"] == campaign["campaignId"]
    assert (coupon["kind"], coupon["value"], coupon["threshold"]) == ("cash", 2000, 20000)
    assert coupon["validTo"] == campaign["validTo"]
    assert service.remaining(campaign["campaignId"]) == 9
    mine = service.member_coupons(member_id, None, 20, None)["items"]
    assert [c["couponId"] for c in mine] == [coupon["couponId"]]


def test_stock_is_split_over_the_shards_and_remaining_is_their_sum(stack):
    campaign = new_campaign(totalStock=1003, shardCount=16)
    shards = service.shards(campaign["campaignId"])
    assert len(shards) == 16
    assert {int(s.remaining) for s in shards} == {62, 63}
    assert service.remaining(campaign["campaignId"]) == 1003 == campaign["remaining"]


def test_a_warm_claim_is_one_round_trip(stack):
    campaign = new_campaign(totalStock=50, shardCount=4, perMemberLimit=5)
    claims.claim(live_member(), campaign["campaignId"])  # the container reads the campaign once
    member_id = live_member()
    with db.recording() as log:
        claims.claim(member_id, campaign["campaignId"])
    assert [request.operation for request in log] == ["TransactWriteItems"]


def test_a_claim_moves_on_from_a_dry_shard_and_sold_out_means_every_shard(stack):
    campaign = new_campaign(totalStock=4, shardCount=4, perMemberLimit=10)
    campaign_id = campaign["campaignId"]
    member_id = live_member()
    for _ in range(4):
        claims.claim(member_id, campaign_id)
    assert service.remaining(campaign_id) == 0
    with pytest.raises(SoldOutError):
        claims.claim(member_id, campaign_id)
    assert all(int(s.remaining) == 0 for s in service.shards(campaign_id))


def test_a_claim_that_lands_on_an_empty_shard_takes_one_more_round_trip(stack, monkeypatch):
    campaign = new_campaign(totalStock=4, shardCount=2, perMemberLimit=5)
    campaign_id = campaign["campaignId"]
    StockShard(campaign_id, 0).update(actions=[StockShard.remaining.set(0)])
    service.campaign(campaign_id)
    monkeypatch.setattr(claims.random, "choice", lambda shards: shards[0])  # shard 0 first
    first, second = live_member(), live_member()
    with db.recording() as log:
        claims.claim(first, campaign_id)
    assert [request.operation for request in log] == ["TransactWriteItems", "TransactWriteItems"]
    with db.recording() as log:
        claims.claim(second, campaign_id)  # this container now knows shard 0 is dry
    assert len(log) == 1
    assert service.remaining(campaign_id) == 0


def test_the_per_member_limit_holds(stack):
    campaign = new_campaign(totalStock=10, perMemberLimit=2)
    member_id = live_member()
    claims.claim(member_id, campaign["campaignId"])
    claims.claim(member_id, campaign["campaignId"])
    with pytest.raises(LimitReachedError):
        claims.claim(member_id, campaign["campaignId"])
    assert service.remaining(campaign["campaignId"]) == 8


def test_a_campaign_not_started_or_ended_refuses(stack):
    now = clock.now()
    later = new_campaign(claimFrom=(now + dt.timedelta(days=1)).isoformat())
    with pytest.raises(NotStartedError):
        claims.claim(live_member(), later["campaignId"])
    campaign = new_campaign(claimTo=(now + dt.timedelta(hours=1)).isoformat())
    with clock.frozen_at(now + dt.timedelta(hours=2)):
        with pytest.raises(EndedError):
            claims.claim(live_member(), campaign["campaignId"])


def test_a_stopped_campaign_refuses_claims_even_from_a_container_that_cached_it(stack):
    campaign = new_campaign(totalStock=10, shardCount=2)
    campaign_id = campaign["campaignId"]
    claims.claim(live_member(), campaign_id)
    cached = service.campaign(campaign_id)
    service.stop_campaign(campaign_id, stopped_by="tests")
    # Another container still holds the active campaign in its cache.
    with service._cache_lock:
        service._campaigns[campaign_id] = (float("inf"), cached)
    try:
        with pytest.raises(EndedError):
            claims.claim(live_member(), campaign_id)
    finally:
        service.forget_campaign(campaign_id)
    assert service.admin_campaign(campaign_id)["status"] == "stopped"


def test_a_tier_audience_is_a_condition_of_the_claim(stack):
    campaign = new_campaign(tiers=["geek", "black_gold"])
    explorer, geek = new_member(), new_member()
    set_tier(geek, "geek")
    with pytest.raises(NotEligibleError):
        claims.claim(explorer, campaign["campaignId"])
    assert claims.claim(geek, campaign["campaignId"])["status"] == "available"
    assert service.remaining(campaign["campaignId"]) == 99


def test_guide_and_exchange_campaigns_cannot_be_claimed(stack):
    guide_campaign = new_campaign(channel="guide")
    with pytest.raises(NotEligibleError):
        claims.claim(live_member(), guide_campaign["campaignId"])
    exchange_campaign = new_campaign(pointsPrice=500)
    with pytest.raises(NotEligibleError):
        claims.claim(live_member(), exchange_campaign["campaignId"])


def test_sixty_members_racing_for_twenty_five_coupons_get_exactly_twenty_five(stack):
    campaign = new_campaign(totalStock=25, shardCount=4)
    campaign_id = campaign["campaignId"]
    service.campaign(campaign_id)
    members = [live_member("racer") for _ in range(60)]
    with ThreadPoolExecutor(max_workers=60) as pool:
        outcomes = list(pool.map(lambda m: _outcome(lambda: claims.claim(m, campaign_id)), members))
    assert outcomes.count("granted") == 25
    assert outcomes.count("SOLD_OUT") == 35
    assert service.remaining(campaign_id) == 0
    held = sum(len(service.member_coupons(m, None, 20, None)["items"]) for m in members)
    assert held == 25


def test_one_member_racing_ten_times_against_a_limit_of_two_gets_two(stack):
    campaign = new_campaign(totalStock=100, shardCount=4, perMemberLimit=2)
    campaign_id = campaign["campaignId"]
    service.campaign(campaign_id)
    member_id = live_member("greedy")
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: _outcome(lambda: claims.claim(member_id, campaign_id)), range(10)))
    assert outcomes.count("granted") == 2
    assert outcomes.count("LIMIT_REACHED") == 8
    assert len(service.member_coupons(member_id, None, 20, None)["items"]) == 2
    assert service.remaining(campaign_id) == 98


def test_a_claim_reads_every_shard_after_landing_on_two_empty_ones(stack, monkeypatch):
    campaign = new_campaign(totalStock=8, shardCount=8, perMemberLimit=5)
    campaign_id = campaign["campaignId"]
    for shard in range(7):
        StockShard(campaign_id, shard).update(actions=[StockShard.remaining.set(0)])
    service.campaign(campaign_id)
    monkeypatch.setattr(claims.random, "choice", lambda shards: shards[0])  # the lowest shard first
    member_id = live_member()
    with db.recording() as log:
        claims.claim(member_id, campaign_id)
    assert [request.operation for request in log] == [
        "TransactWriteItems", "TransactWriteItems", "Query", "TransactWriteItems",
    ]
    assert service.remaining(campaign_id) == 0
