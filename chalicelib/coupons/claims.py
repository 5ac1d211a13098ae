"""Giving out a campaign's coupons: claims, points exchange and guides' gifts.

Every way a member gets a coupon is one composed `TransactWriteItems`:

    member check                   if the campaign has tiers, or a guide gives  -> NOT_ELIGIBLE
    points spend                   exchange only: the points ledger's own conditions
    claim count    claimed + 1     if absent or claimed < perMemberLimit       -> LIMIT_REACHED
    coupon         put             if absent
    stock shard    remaining - 1   if remaining > 0 and the shard is not closed

so the stock never goes below zero, no member exceeds the limit and no
coupon exists without both, whatever runs at the same time. The composer
explains a refusal in that order, so a member who may not claim hears that
before anything about the stock.

Which shard? A claim picks one at random among the shards this container
has not seen run dry, and writes. It does not read the shards first: that
read would double the round trips of every claim and still race with other
claims. If the shard's condition fails, the shard is remembered as dry (for
`DRY_SECONDS`; stock only ever goes down) and the claim is planned again on
another, so a claim that lands on an empty shard pays one more round trip.
Random picks spread the writes evenly, so the busiest shard takes about
1/shards of them and the campaign's write rate is `shards` times what one
item allows. When every shard this container knows of has failed, or this
claim has landed on `READ_AFTER_LANDINGS` empty shards (a container new to a
nearly sold-out campaign would otherwise try them one by one), the claim
reads all of them (one query): if some still hold stock it goes on with
those, otherwise the campaign is sold out, which this container then
remembers for `SOLD_OUT_SECONDS` so the rest of a rush is refused without a
round trip.
Contention (another transaction holding the same shard at that instant) is
the composer's to retry; the retry picks its shard afresh.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from chalicelib import clock, transact
from chalicelib.coupons import service
from chalicelib.coupons.errors import (
    ClaimBusyError,
    EndedError,
    LimitReachedError,
    NotEligibleError,
    NotStartedError,
    NotYourCustomerError,
    SoldOutError,
)
from chalicelib.coupons.models import AVAILABLE, Campaign, ClaimCount, Coupon, StockShard, day_key, expiry_shard
from chalicelib.errors import ForbiddenError
from chalicelib.transact import Explain, Transaction, TransactionRefusedError

__all__ = [
    "claim",
    "exchange",
    "give",
    "new_coupon_id",
    "DRY_SECONDS",
    "SOLD_OUT_SECONDS",
    "READ_AFTER_LANDINGS",
    "forget_shards",
]

DRY_SECONDS = 30.0
SOLD_OUT_SECONDS = 10.0
READ_AFTER_LANDINGS = 2

_lock = threading.Lock()
_dry: dict[str, tuple[float, set[int]]] = {}
_sold_out: dict[str, float] = {}

# Another domain's items in the claim's transaction, each with its explanation.
_AddItems = Callable[[Transaction], None]


def new_coupon_id() -> str:
    """Time-ordered (milliseconds first) so a member's coupons list newest first."""
    return f"c{int(time.time() * 1000):011x}{secrets.token_hex(4)}"


def forget_shards(campaign_id: str) -> None:
    with _lock:
        _dry.pop(campaign_id, None)
        _sold_out.pop(campaign_id, None)


# --- Entry points --------------------------------------------------------------------

def claim(member_id: str, campaign_id: str) -> dict[str, Any]:
    """A member claims a coupon of a public campaign."""
    campaign = _open_campaign(campaign_id, channel="public")
    return _grant(campaign, member_id, source="claim", also=[_claimant_check(campaign, member_id)])


def give(guide_id: str, member_id: str, campaign_id: str) -> dict[str, Any]:
    """A guide gives a coupon of a guide campaign to a customer bound to them."""
    if not guide_id:
        raise ForbiddenError("only a guide gives coupons to customers")
    if not service.valid_id(member_id):
        raise NotYourCustomerError()
    campaign = _open_campaign(campaign_id, channel="guide")

    def not_given(old: Any) -> Exception:
        from chalicelib.members import service as members

        if members.bound_guide(member_id) != guide_id:
            return NotYourCustomerError()
        return NotEligibleError("this customer's tier is not in the campaign's audience")

    check = _member_check(member_id, not_given, tiers=campaign.tiers, guide_id=guide_id)
    return _grant(campaign, member_id, source="guide", given_by=guide_id, also=[check])


def exchange(member_id: str, campaign_id: str) -> dict[str, Any]:
    """Spend the campaign's points price on one of its coupons: both happen or neither.

    The points spend needs no read: it joins the claim's transaction with its
    condition (enough points). If the ledger refuses, it says whether the
    points are short; otherwise the exchange is planned again.
    """
    from chalicelib.points import service as points

    campaign = _open_campaign(campaign_id, channel="exchange")
    coupon_id = new_coupon_id()

    def spend(txn: Transaction) -> None:
        prepared = points.prepare_spend(
            member_id,
            int(campaign.points_price),
            transfer_id=f"exchange#{coupon_id}",
            reason="exchange",
            reference=coupon_id,
        )
        prepared.add_to(txn)

    also = [_claimant_check(campaign, member_id), spend]
    return _grant(campaign, member_id, source="exchange", also=also, coupon_id=coupon_id)


# --- The claim ------------------------------------------------------------------------

def _open_campaign(campaign_id: str, channel: str) -> Campaign:
    campaign = service.campaign(campaign_id)
    if campaign.channel != channel:
        raise NotEligibleError(_CHANNEL_REFUSALS.get(campaign.channel, NotEligibleError.default_message))
    now = clock.now()
    if campaign.status != "active" or now >= campaign.claim_to:
        raise EndedError()
    if now < campaign.claim_from:
        raise NotStartedError()
    with _lock:
        sold_out_until = _sold_out.get(campaign_id, 0.0)
    if sold_out_until > time.monotonic():
        raise SoldOutError()
    return campaign


_CHANNEL_REFUSALS = {
    "exchange": "coupons of this campaign are exchanged for points",
    "guide": "coupons of this campaign are given by shopping guides",
    "public": "coupons of this campaign are claimed, not exchanged or given",
}


def _member_check(member_id: str, explain: Explain, *, tiers: Any = None, guide_id: str | None = None) -> _AddItems:
    def add(txn: Transaction) -> None:
        from chalicelib.members import service as members

        members.require_member(txn, member_id, tiers=tiers, guide_id=guide_id, explain=explain)

    return add


def _claimant_check(campaign: Campaign, member_id: str) -> _AddItems:
    """The member claiming for themself is live and, if the campaign names tiers, of one of them."""

    def refused(old: Any) -> Exception:
        from chalicelib.members import service as members

        try:
            members.live(old)
        except members.MemberGoneError as gone:
            return gone
        return NotEligibleError("this campaign is for other member tiers")

    return _member_check(member_id, refused, tiers=campaign.tiers)


def _grant(
    campaign: Campaign,
    member_id: str,
    *,
    source: str,
    given_by: str | None = None,
    also: list[_AddItems],
    coupon_id: str | None = None,
) -> dict[str, Any]:
    coupon = _coupon(campaign, member_id, coupon_id or new_coupon_id(), source, given_by)
    campaign_id = campaign.campaign_id
    has_stock = (StockShard.remaining > 0) & StockShard.closed.does_not_exist()
    below_limit = ClaimCount.claimed.does_not_exist() | (ClaimCount.claimed < int(campaign.per_member_limit))
    shards = _ShardPicker(campaign)

    def build(txn: Transaction) -> None:
        for add in also:
            add(txn)
        txn.update(
            ClaimCount(member_id, campaign_id),
            [ClaimCount.claimed.add(1)],
            below_limit,
            label="limit",
            explain=lambda old: LimitReachedError(),
        )
        txn.save(coupon, Coupon.coupon_id.does_not_exist(), label="coupon")
        # A dry shard explains nothing: the claim is planned again on another one.
        shard = shards.pick(txn.previous_refusal)
        txn.update(StockShard(campaign_id, shard), [StockShard.remaining.add(-1)], has_stock, label="stock")

    transact.write(build, busy=ClaimBusyError, replan=True)
    return service.coupon_view(coupon)


def _coupon(campaign: Campaign, member_id: str, coupon_id: str, source: str, given_by: str | None) -> Coupon:
    now = clock.now()
    return Coupon(
        member_id,
        coupon_id,
        campaign_id=campaign.campaign_id,
        title=campaign.title,
        kind=campaign.kind,
        value=campaign.value,
        threshold=campaign.threshold,
        max_off=campaign.max_off,
        valid_from=campaign.valid_from,
        valid_to=campaign.valid_to,
        store_ids=campaign.store_ids,
        sku_ids=campaign.sku_ids,
        source=source,
        given_by=given_by,
        status=AVAILABLE,
        open_shard=expiry_shard(coupon_id),
        created_at=now,
        claimed_day=day_key(clock.shanghai_date(now), coupon_id),
    )


class _ShardPicker:
    """The shard one claim writes to, picked again each time the claim is planned."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.shard = -1
        self.landings = 0
        # After a confirming read: the shards that still had stock.
        self.candidates: list[int] | None = None
        self.heard: TransactionRefusedError | None = None

    def pick(self, refusal: TransactionRefusedError | None) -> int:
        # The composer hands the last refusal to every later attempt, retries after contention too.
        if refusal is not None and refusal is not self.heard:
            self.heard = refusal
            if refusal.refused("stock"):
                self.landings += 1
                _mark_dry(self.campaign.campaign_id, self.shard)
                if self.candidates is not None and self.shard in self.candidates:
                    self.candidates.remove(self.shard)
        read_now = self.candidates is None and self.landings >= READ_AFTER_LANDINGS
        shard = None if read_now else _pick(self.campaign, self.candidates)
        if shard is None:
            self.candidates = _confirm(self.campaign)
            shard = random.choice(self.candidates)
        self.shard = shard
        return shard


def _pick(campaign: Campaign, candidates: list[int] | None) -> int | None:
    """A random shard not known to be dry, or None when this container knows them all dry."""
    if candidates is not None:
        return random.choice(candidates) if candidates else None
    now = time.monotonic()
    with _lock:
        entry = _dry.get(campaign.campaign_id)
        dry = entry[1] if entry and entry[0] > now else set()
        left = [shard for shard in range(int(campaign.shard_count)) if shard not in dry]
    return random.choice(left) if left else None


def _mark_dry(campaign_id: str, shard: int) -> None:
    now = time.monotonic()
    with _lock:
        entry = _dry.get(campaign_id)
        if entry is None or entry[0] <= now:
            entry = (now + DRY_SECONDS, set())
            _dry[campaign_id] = entry
        entry[1].add(shard)


def _confirm(campaign: Campaign) -> list[int]:
    """The shards tried were dry: read them all (one query) before saying the campaign is sold out."""
    found = service.shards(campaign.campaign_id)
    if any(shard.closed for shard in found):
        service.forget_campaign(campaign.campaign_id)
        raise EndedError()
    with_stock = [int(shard.shard) for shard in found if int(shard.remaining) > 0]
    now = time.monotonic()
    with _lock:
        _dry[campaign.campaign_id] = (now + DRY_SECONDS, {int(s.shard) for s in found} - set(with_stock))
        if not with_stock:
            _sold_out[campaign.campaign_id] = now + SOLD_OUT_SECONDS
    if not with_stock:
        raise SoldOutError()
    return with_stock
