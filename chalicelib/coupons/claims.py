"""Giving out a campaign's coupons: claims, points exchange and guides' gifts.

Every way a member gets a coupon is one `TransactWriteItems`:

    stock shard    remaining - 1   if remaining > 0 and the shard is not closed
    claim count    claimed + 1     if absent or claimed < perMemberLimit
    coupon         put             if absent
    member check                   if the campaign has tiers, or a guide gives
    points spend                   exchange only: the points ledger's own conditions

so the stock never goes below zero, no member exceeds the limit and no
coupon exists without both, whatever runs at the same time. A refusal is
read from the cancellation reasons, mapped back to the item that failed.

Which shard? A claim picks one at random among the shards this container
has not seen run dry, and writes. It does not read the shards first: that
read would double the round trips of every claim and still race with other
claims. If the shard's condition fails, the shard is remembered as dry (for
`DRY_SECONDS`; stock only ever goes down) and the claim tries another, so a
claim that lands on an empty shard pays one more round trip. Random picks
spread the writes evenly, so the busiest shard takes about 1/shards of them
and the campaign's write rate is `shards` times what one item allows. Only
when every shard has failed does the claim read all of them (one query): if
some still hold stock it goes on with those, otherwise the campaign is sold
out, which this container then remembers for `SOLD_OUT_SECONDS` so the rest
of a rush is refused without a round trip. A `TransactionConflict` (another
transaction holding the same shard at that instant) is retried after a short
random pause, on a freshly picked shard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, db
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
from chalicelib.coupons.models import AVAILABLE, Campaign, ClaimCount, Coupon, StockShard, expiry_shard
from chalicelib.errors import ForbiddenError, SiyuError

__all__ = ["claim", "exchange", "give", "new_coupon_id", "DRY_SECONDS", "SOLD_OUT_SECONDS", "forget_shards"]

DRY_SECONDS = 30.0
SOLD_OUT_SECONDS = 10.0
MAX_CONFLICT_RETRIES = 12
EXCHANGE_ATTEMPTS = 4
FAILED = "ConditionalCheckFailed"
CONFLICT = "TransactionConflict"

_lock = threading.Lock()
_dry: dict[str, tuple[float, set[int]]] = {}
_sold_out: dict[str, float] = {}


@dataclasses.dataclass(frozen=True)
class _Extra:
    """Items another domain adds to the claim's transaction, and what their failure means."""

    add: Callable[[TransactWrite], None]
    refusal: Callable[[], Exception]


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
    return _grant(campaign, member_id, source="claim", member_check=_tier_check(campaign, member_id))


def give(guide_id: str, member_id: str, campaign_id: str) -> dict[str, Any]:
    """A guide gives a coupon of a guide campaign to a customer bound to them."""
    if not guide_id:
        raise ForbiddenError("only a guide gives coupons to customers")
    if not service.valid_id(member_id):
        raise NotYourCustomerError()
    campaign = _open_campaign(campaign_id, channel="guide")

    def refusal() -> SiyuError:
        from chalicelib.members import service as members

        if members.bound_guide(member_id) != guide_id:
            return NotYourCustomerError()
        return NotEligibleError("this customer's tier is not in the campaign's audience")

    def add(write: TransactWrite) -> None:
        from chalicelib.members import service as members

        members.require_member(write, member_id, tiers=campaign.tiers, guide_id=guide_id)

    return _grant(campaign, member_id, source="guide", given_by=guide_id, member_check=_Extra(add, refusal))


def exchange(member_id: str, campaign_id: str) -> dict[str, Any]:
    """Spend the campaign's points price on one of its coupons: both happen or neither.

    The points spend needs no read: it joins the claim's transaction with its
    condition (enough points). If the transaction is cancelled, the ledger says
    whether the points are short, and otherwise the exchange is tried again.
    """
    from chalicelib.points import service as points

    campaign = _open_campaign(campaign_id, channel="exchange")
    coupon_id = new_coupon_id()
    for _ in range(EXCHANGE_ATTEMPTS):
        spend = points.prepare_spend(
            member_id,
            int(campaign.points_price),
            transfer_id=f"exchange#{coupon_id}",
            reason="exchange",
            reference=coupon_id,
        )
        try:
            return _grant(
                campaign,
                member_id,
                source="exchange",
                member_check=_tier_check(campaign, member_id),
                more=[_Extra(spend.add_to, _PointsMoved)],
                coupon_id=coupon_id,
            )
        except _PointsMoved:
            spend.explain()  # raises InsufficientPointsError when the points are now short
            time.sleep(random.uniform(0.005, 0.02))
    raise ClaimBusyError()


class _PointsMoved(Exception):
    """The ledger's conditions failed: the balance changed since the spend was planned."""


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


def _tier_check(campaign: Campaign, member_id: str) -> _Extra | None:
    if not campaign.tiers:
        return None

    def add(write: TransactWrite) -> None:
        from chalicelib.members import service as members

        members.require_member(write, member_id, tiers=campaign.tiers)

    return _Extra(add, lambda: NotEligibleError("this campaign is for other member tiers"))


def _grant(
    campaign: Campaign,
    member_id: str,
    *,
    source: str,
    given_by: str | None = None,
    member_check: _Extra | None = None,
    more: list[_Extra] | None = None,
    coupon_id: str | None = None,
) -> dict[str, Any]:
    coupon = _coupon(campaign, member_id, coupon_id or new_coupon_id(), source, given_by)
    extras = ([member_check] if member_check else []) + (more or [])
    _take(campaign, coupon, extras)
    return service.coupon_view(coupon)


def _coupon(campaign: Campaign, member_id: str, coupon_id: str, source: str, given_by: str | None) -> Coupon:
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
        created_at=clock.now(),
    )


def _take(campaign: Campaign, coupon: Coupon, extras: list[_Extra]) -> int:
    """Write the claim on some shard with stock; the shard it took the coupon from."""
    campaign_id = campaign.campaign_id
    has_stock = (StockShard.remaining > 0) & StockShard.closed.does_not_exist()
    below_limit = ClaimCount.claimed.does_not_exist() | (ClaimCount.claimed < int(campaign.per_member_limit))
    conflicts = 0
    candidates: list[int] | None = None
    while True:
        shard = _pick(campaign, candidates)
        if shard is None:
            candidates = _confirm(campaign)
            shard = random.choice(candidates)
        write = db.transaction()
        parts: dict[str, set[int]] = {}
        try:
            with write:
                with _part(write, parts, "stock"):
                    write.update(
                        StockShard(campaign_id, shard), actions=[StockShard.remaining.add(-1)], condition=has_stock
                    )
                with _part(write, parts, "limit"):
                    write.update(
                        ClaimCount(coupon.member_id, campaign_id),
                        actions=[ClaimCount.claimed.add(1)],
                        condition=below_limit,
                    )
                write.save(coupon, condition=Coupon.coupon_id.does_not_exist())
                for index, extra in enumerate(extras):
                    with _part(write, parts, f"extra{index}"):
                        extra.add(write)
            return shard
        except TransactWriteError as exc:
            codes = db.cancellation_codes(exc)
            failed = _parts_with(write, parts, codes, FAILED)
            for index, extra in enumerate(extras):
                if f"extra{index}" in failed:
                    raise extra.refusal() from exc
            if "limit" in failed:
                raise LimitReachedError() from exc
            if "stock" in failed:
                _mark_dry(campaign_id, shard)
                if candidates is not None and shard in candidates:
                    candidates.remove(shard)
                continue
            if CONFLICT in codes and conflicts < MAX_CONFLICT_RETRIES:
                conflicts += 1
                time.sleep(random.uniform(0.002, 0.01) * conflicts)
                continue
            if CONFLICT in codes:
                raise ClaimBusyError() from exc
            raise


def _items(write: TransactWrite) -> list[dict[str, Any]]:
    """The items in the order the request sends them: pynamodb groups condition
    checks, deletes, puts, then updates, whatever order they were added in, and
    the cancellation reasons follow that order."""
    return [*write._condition_check_items, *write._delete_items, *write._put_items, *write._update_items]


@contextlib.contextmanager
def _part(write: TransactWrite, parts: dict[str, set[int]], name: str) -> Iterator[None]:
    """Remember which items the block added to `write`, as the part `name`."""
    before = {id(item) for item in _items(write)}
    yield
    parts[name] = {id(item) for item in _items(write)} - before


def _parts_with(write: TransactWrite, parts: dict[str, set[int]], codes: list[str | None], code: str) -> set[str]:
    """The parts holding an item whose cancellation reason is `code`."""
    hit = {id(item) for item, reason in zip(_items(write), codes) if reason == code}
    return {name for name, ids in parts.items() if ids & hit}


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
    """Every shard this container tried was dry: read them all (one query) before saying so."""
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
