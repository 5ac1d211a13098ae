"""The nightly coupon-expiry job: ended coupons expire, members get one reminder, replays change nothing."""

from __future__ import annotations

import datetime as dt

from chalicelib import clock
from chalicelib.config import settings
from chalicelib.coupons import checkout, claims, jobs, service
from chalicelib.messaging import service as messaging
from tests.coupon_helpers import login_member, new_campaign


def _messages(stack, openid: str) -> list[dict]:
    with stack.sandbox.wechat.lock:
        return [m for m in stack.sandbox.wechat.messages if m["touser"] == openid]


def _noon_in_days(days: int) -> dt.datetime:
    day = clock.shanghai_date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(12), tzinfo=clock.SHANGHAI)


def test_ended_coupons_expire_and_a_replay_changes_nothing(stack):
    now = clock.now()
    short = new_campaign(totalStock=5, perMemberLimit=5, validTo=(now + dt.timedelta(hours=1)).isoformat())
    _, member_id, _ = login_member()
    ended = claims.claim(member_id, short["campaignId"])["couponId"]
    locked = claims.claim(member_id, short["campaignId"])["couponId"]
    used = claims.claim(member_id, short["campaignId"])["couponId"]
    checkout.lock(member_id, locked, "order-1")
    checkout.lock(member_id, used, "order-2")
    checkout.use(member_id, used, "order-2")
    lasting = claims.claim(member_id, new_campaign()["campaignId"])["couponId"]

    later = now + dt.timedelta(hours=2)
    first = jobs.run(later)
    assert first["expired"] >= 1
    statuses = {c: service.get_coupon(member_id, c).status for c in (ended, locked, used, lasting)}
    assert statuses == {ended: "expired", locked: "locked", used: "used", lasting: "available"}
    assert service.get_coupon(member_id, ended).open_shard is None
    jobs.run(later)
    assert service.get_coupon(member_id, ended).status == "expired"

    # The order holding the locked one is cancelled: it comes back and the next run expires it.
    assert checkout.release(member_id, locked, "order-1")
    jobs.run(later)
    assert service.get_coupon(member_id, locked).status == "expired"


def test_a_member_with_a_credit_gets_one_reminder_for_all_coupons_ending_in_three_days(stack):
    ends = _noon_in_days(3)
    first = new_campaign(title="耳机券", validTo=ends.isoformat())
    second = new_campaign(title="手表券", validTo=(ends + dt.timedelta(hours=6)).isoformat())
    not_yet = new_campaign(title="平板券", validTo=_noon_in_days(4).isoformat())
    openid, member_id, _ = login_member()
    for campaign in (first, second, not_yet):
        claims.claim(member_id, campaign["campaignId"])
    messaging.accept(member_id, [settings().template_coupon_expiry])
    silent_openid, silent_id, _ = login_member()
    claims.claim(silent_id, first["campaignId"])

    tonight = dt.datetime.combine(clock.shanghai_date(), dt.time(0, 20), tzinfo=clock.SHANGHAI)
    result = jobs.run(tonight)
    assert result["remindersSent"] >= 1 and result["remindersWithoutCredit"] >= 1
    sent = _messages(stack, openid)
    assert len(sent) == 1
    assert sent[0]["template_id"] == settings().template_coupon_expiry
    assert sent[0]["data"]["thing1"]["value"] == "2张优惠券"
    assert _messages(stack, silent_openid) == []

    messaging.accept(member_id, [settings().template_coupon_expiry])
    replay = jobs.run(tonight)
    assert replay["remindersAlreadySent"] >= 1
    assert len(_messages(stack, openid)) == 1
    assert messaging.credits(member_id)["credits"][settings().template_coupon_expiry] == 1


def test_a_used_coupon_gets_no_reminder(stack):
    ends = _noon_in_days(3)
    campaign = new_campaign(validTo=ends.isoformat(), threshold=0)
    openid, member_id, _ = login_member()
    coupon_id = claims.claim(member_id, campaign["campaignId"])["couponId"]
    checkout.lock(member_id, coupon_id, "order-1")
    checkout.use(member_id, coupon_id, "order-1")
    messaging.accept(member_id, [settings().template_coupon_expiry])
    jobs.run(dt.datetime.combine(clock.shanghai_date(), dt.time(0, 20), tzinfo=clock.SHANGHAI))
    assert _messages(stack, openid) == []


def test_campaigns_past_their_claim_window_leave_the_listing(stack):
    now = clock.now()
    campaign = new_campaign(claimTo=(now + dt.timedelta(hours=1)).isoformat())
    jobs.run(now + dt.timedelta(hours=2))
    found = service.admin_campaign(campaign["campaignId"])
    assert found["status"] == "ended"


def test_the_job_runs_from_the_sandbox_cron_as_of_the_given_moment(stack, api):
    import requests

    answer = requests.post(
        f"{stack.sandbox_url}/sandbox/cron/coupon-expiry", json={"now": "2026-11-23T16:20:00Z"}, timeout=60
    ).json()
    assert answer["job"] == "coupon-expiry"
    assert {"expired", "remindersSent", "remindersAlreadySent", "campaignsEnded"} <= set(answer["result"])
