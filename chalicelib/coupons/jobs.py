"""The nightly `coupon-expiry` job: expire ended coupons, remind members three days ahead.

Both read the sparse `open-by-expiry` index (only open coupons are in it,
spread over `EXPIRY_SHARDS` partitions), so the job's work grows with what is
due, not with every coupon ever given.

A reminder is one message per member per day, covering all their coupons
that end on the Shanghai day three days after the run ("3 coupons end on
11-26"), not one per coupon: a member holding five coupons of a launch wants
one nudge, and each message spends one of their subscription credits. Its
key, `coupon-expiry#<memberId>#<day>`, is the message's idempotency key, so a
replay of the same night (or a rerun after a failure) sends nothing twice;
`send_once` sends only if the member holds a credit for the template.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.config import settings
from chalicelib.coupons.models import AVAILABLE, EXPIRED, EXPIRY_SHARDS, Campaign, Coupon
from chalicelib.coupons.service import LISTING, forget_campaign

__all__ = ["run", "expire_coupons", "send_reminders", "end_campaigns", "REMIND_DAYS_AHEAD"]

REMIND_DAYS_AHEAD = 3


def run(now: dt.datetime) -> dict[str, Any]:
    """Everything the job does as of `now`; counts of what it did."""
    counts: dict[str, Any] = {"expired": expire_coupons(now)}
    counts.update(send_reminders(now))
    counts["campaignsEnded"] = end_campaigns(now)
    return counts


def _open_shards() -> list[str]:
    return [f"{shard:02d}" for shard in range(EXPIRY_SHARDS)]


def expire_coupons(now: dt.datetime) -> int:
    """Mark available coupons whose validity ended as expired (locked ones wait for their order)."""
    expired = 0
    for shard in _open_shards():
        for coupon in Coupon.open_by_expiry.query(
            shard, Coupon.valid_to <= now, filter_condition=Coupon.status == AVAILABLE
        ):
            try:
                coupon.update(
                    actions=[Coupon.status.set(EXPIRED), Coupon.expired_at.set(now), Coupon.open_shard.remove()],
                    condition=(Coupon.status == AVAILABLE) & (Coupon.valid_to <= now),
                )
            except UpdateError as exc:
                if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                    raise
                continue  # used or locked since the index was read
            expired += 1
    return expired


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=clock.SHANGHAI)
    return start, start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)


def send_reminders(now: dt.datetime) -> dict[str, int]:
    """One message per member whose available coupons end three Shanghai days from `now`."""
    from chalicelib.members import service as members
    from chalicelib.messaging import service as messaging

    day = clock.shanghai_date(now) + dt.timedelta(days=REMIND_DAYS_AHEAD)
    start, end = _day_bounds(day)
    ending: dict[str, list[Coupon]] = collections.defaultdict(list)
    for shard in _open_shards():
        for coupon in Coupon.open_by_expiry.query(
            shard, Coupon.valid_to.between(start, end), filter_condition=Coupon.status == AVAILABLE
        ):
            ending[coupon.member_id].append(coupon)
    outcomes: collections.Counter[str] = collections.Counter()
    openids = members.openids(list(ending)) if ending else {}
    template = settings().template_coupon_expiry
    for member_id, coupons in sorted(ending.items()):
        outcome = messaging.send_once(
            key=f"coupon-expiry#{member_id}#{day.isoformat()}",
            member_id=member_id,
            openid=openids.get(member_id),
            template_id=template,
            data=_message(coupons),
            page="pages/coupons/index?status=available",
            at=now,
        )
        outcomes[outcome] += 1
    return {
        "remindersDue": len(ending),
        "remindersSent": outcomes[messaging.SENT],
        "remindersWithoutCredit": outcomes[messaging.NO_CREDIT],
        "remindersAlreadySent": outcomes[messaging.ALREADY_SENT],
        "remindersFailed": outcomes[messaging.FAILED] + outcomes[messaging.REFUSED],
    }


def _message(coupons: list[Coupon]) -> dict[str, str]:
    """The template's fields (WeChat caps `thing` values at 20 characters)."""
    soonest = min(coupon.valid_to for coupon in coupons)
    title = coupons[0].title if len(coupons) == 1 else f"{len(coupons)}张优惠券"
    return {
        "thing1": title[:20],
        "time2": soonest.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        "thing3": "优惠券即将到期，记得使用"[:20],
    }


def end_campaigns(now: dt.datetime) -> int:
    """Campaigns whose claim window has closed leave the listing."""
    ended = 0
    for campaign in Campaign.active.query(LISTING):
        if campaign.claim_to > now:
            continue
        try:
            campaign.update(
                actions=[Campaign.status.set("ended"), Campaign.listing.remove()],
                condition=Campaign.status == "active",
            )
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
            continue
        forget_campaign(campaign.campaign_id)
        ended += 1
    return ended
