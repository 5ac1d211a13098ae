"""Coupons at checkout, for the orders domain: quote, lock, use, return.

    quote = checkout.quote(member_id, coupon_id, basket)      # discount in fen, or COUPON_NOT_APPLICABLE
    checkout.lock(member_id, coupon_id, order_id)             # with the order's creation
    checkout.use(member_id, coupon_id, order_id)              # when the order is paid
    checkout.release(member_id, coupon_id, order_id)          # cancelled before payment
    checkout.restore(member_id, coupon_id, order_id)          # fully refunded

A coupon is held by at most one unpaid order: the lock is a conditional write
(`available`, within validity, or already locked by this same order, so a
retried step changes nothing). Each step also has an `add_*` form that puts
the same write, with the explanation of its refusal, into a transaction the
orders domain is composing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from chalicelib import clock, db, transact
from chalicelib.coupons import service
from chalicelib.coupons.errors import (
    CouponNotApplicableError,
    CouponNotFoundError,
    CouponNotLockedError,
    refusal_for,
)
from chalicelib.coupons.models import AVAILABLE, EXPIRY_SHARDS, LOCKED, USED, Coupon, day_key, expiry_shard
from chalicelib.errors import ConflictError
from chalicelib.transact import Transaction

__all__ = [
    "BasketLine",
    "Basket",
    "discount_for",
    "quote",
    "lock",
    "use",
    "release",
    "restore",
    "add_lock",
    "add_use",
    "add_release",
    "coupon_key",
    "no_such_coupon",
    "locked_coupons",
    "still_locked",
]


@dataclasses.dataclass(frozen=True)
class BasketLine:
    sku_id: str
    unit_price: int  # fen, the price the member pays before the coupon
    qty: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.qty


@dataclasses.dataclass(frozen=True)
class Basket:
    lines: tuple[BasketLine, ...]
    store_id: str | None = None  # the store that fulfils the order, if known

    @property
    def goods(self) -> int:
        return sum(line.amount for line in self.lines)


def discount_for(coupon: Coupon, basket: Basket, now: Any = None) -> int:
    """The discount in fen this coupon gives on this basket; COUPON_NOT_APPLICABLE with the reason if none."""
    now = now or clock.now()
    status = service.effective_status(coupon, now)
    if status != AVAILABLE:
        raise CouponNotApplicableError(f"this coupon is {status}")
    if coupon.valid_from > now:
        raise CouponNotApplicableError("this coupon is not valid yet")
    if coupon.kind == "service":
        raise CouponNotApplicableError("a service voucher is redeemed in store")
    if coupon.store_ids and basket.store_id not in coupon.store_ids:
        raise CouponNotApplicableError("this coupon is for other stores")
    eligible = sum(line.amount for line in basket.lines if not coupon.sku_ids or line.sku_id in coupon.sku_ids)
    if eligible <= 0:
        raise CouponNotApplicableError("no item of this order is covered by this coupon")
    threshold = int(coupon.threshold or 0)
    if eligible < threshold:
        raise CouponNotApplicableError(f"the covered items must reach {threshold} fen")
    if coupon.kind == "cash":
        return min(int(coupon.value), eligible)
    # discount: `value` is the percentage paid; the member keeps any fraction of a fen
    off = eligible * (100 - int(coupon.value)) // 100
    if coupon.max_off is not None:
        off = min(off, int(coupon.max_off))
    return off


def coupon_key(member_id: str, coupon_id: str) -> tuple[type[Coupon], tuple[str, str]]:
    """The key of a member's coupon, for a caller's multi-table `db.batch_get`."""
    return Coupon, (member_id, coupon_id)


def no_such_coupon() -> int:
    raise CouponNotApplicableError("no such coupon")


def locked_coupons() -> Any:
    """Every coupon an order holds now, as (member id, coupon id, order id), found by the `locked` index."""
    for shard in range(EXPIRY_SHARDS):
        for coupon in Coupon.locked.query(f"{shard:02d}"):
            yield coupon.member_id, coupon.coupon_id, coupon.order_id


def still_locked(keys: list[tuple[str, str]]) -> list[tuple[str, str, str | None]]:
    """Those of these coupons that are locked now, read again consistently."""
    found = db.batch_get([(Coupon, key) for key in keys])
    return [(coupon.member_id, coupon.coupon_id, coupon.order_id)
            for coupon in found if coupon is not None and coupon.status == LOCKED]


def quote(member_id: str, coupon_id: str, basket: Basket) -> int:
    """Read the member's coupon and price it against the basket (fen off)."""
    try:
        coupon = service.get_coupon(member_id, coupon_id)
    except Exception as exc:
        raise CouponNotApplicableError("no such coupon") from exc
    return discount_for(coupon, basket)


# --- Conditions, named ---------------------------------------------------------------

def _held_by(order_id: str) -> Any:
    return (Coupon.status == LOCKED) & (Coupon.order_id == order_id)


def _lockable(order_id: str, now: Any) -> Any:
    free_and_valid = (Coupon.status == AVAILABLE) & (Coupon.valid_to > now) & (Coupon.valid_from <= now)
    return Coupon.coupon_id.exists() & (free_and_valid | _held_by(order_id))


def _lock_actions(coupon_id: str, order_id: str, now: Any) -> list[Any]:
    return [Coupon.status.set(LOCKED), Coupon.order_id.set(order_id), Coupon.locked_at.set(now),
            Coupon.locked_shard.set(expiry_shard(coupon_id))]


def _usable(order_id: str) -> Any:
    used_by_order = (Coupon.status == USED) & (Coupon.used_order_id == order_id)
    return _held_by(order_id) | used_by_order


def _use_actions(coupon_id: str, order_id: str, now: Any) -> list[Any]:
    return [
        Coupon.status.set(USED),
        Coupon.used_order_id.set(order_id),
        Coupon.used_at.set(now),
        Coupon.redeemed_day.set(day_key(clock.shanghai_date(now), coupon_id)),
        Coupon.order_id.remove(),
        Coupon.locked_shard.remove(),
        Coupon.open_shard.remove(),
    ]


def _release_actions() -> list[Any]:
    return [Coupon.status.set(AVAILABLE), Coupon.order_id.remove(), Coupon.locked_at.remove(), Coupon.locked_shard.remove()]


def _key(member_id: str, coupon_id: str) -> Coupon:
    return Coupon(member_id, coupon_id)


# --- Single writes ---------------------------------------------------------------------

def lock(member_id: str, coupon_id: str, order_id: str) -> None:
    """Hold the coupon for an unpaid order; a second order gets COUPON_LOCKED."""
    now = clock.now()
    try:
        _write(member_id, coupon_id, _lock_actions(coupon_id, order_id, now), _lockable(order_id, now))
    except UpdateError as exc:
        if not _failed_condition(exc):
            raise
        raise _why_not_lockable(_find(member_id, coupon_id), now) from exc


def use(member_id: str, coupon_id: str, order_id: str) -> None:
    """The order holding the coupon was paid: the coupon is used (again: no change)."""
    now = clock.now()
    try:
        _write(member_id, coupon_id, _use_actions(coupon_id, order_id, now), _usable(order_id))
    except UpdateError as exc:
        if not _failed_condition(exc):
            raise
        raise CouponNotLockedError() from exc


def release(member_id: str, coupon_id: str, order_id: str) -> bool:
    """The unpaid order was cancelled or closed: the coupon is available again.

    True if it was returned; False if this order did not hold it (already
    returned, or never locked), which changes nothing.
    """
    try:
        _write(member_id, coupon_id, _release_actions(), _held_by(order_id))
    except UpdateError as exc:
        if not _failed_condition(exc):
            raise
        return False
    return True


def restore(member_id: str, coupon_id: str, order_id: str) -> bool:
    """A paid order using the coupon was fully refunded before completion: give it back.

    The coupon returns to `available` (the nightly job expires it if its validity
    has ended). False if this order had not used it, which changes nothing.
    """
    actions = [
        Coupon.status.set(AVAILABLE),
        Coupon.used_order_id.remove(),
        Coupon.used_at.remove(),
        Coupon.redeemed_day.remove(),
        Coupon.open_shard.set(expiry_shard(coupon_id)),
    ]
    try:
        _write(member_id, coupon_id, actions, (Coupon.status == USED) & (Coupon.used_order_id == order_id))
    except UpdateError as exc:
        if not _failed_condition(exc):
            raise
        return False
    return True


# --- The same writes inside the orders domain's transaction -----------------------------

def add_lock(txn: Transaction, member_id: str, coupon_id: str, order_id: str) -> None:
    now = clock.now()
    txn.update(
        _key(member_id, coupon_id),
        _lock_actions(coupon_id, order_id, now),
        _lockable(order_id, now),
        label="coupon",
        explain=lambda old: _why_not_lockable(old, now),
    )


def add_use(txn: Transaction, member_id: str, coupon_id: str, order_id: str) -> None:
    txn.update(
        _key(member_id, coupon_id),
        _use_actions(coupon_id, order_id, clock.now()),
        _usable(order_id),
        label="coupon",
        explain=lambda old: CouponNotLockedError(),
    )


def add_release(txn: Transaction, member_id: str, coupon_id: str, order_id: str) -> None:
    txn.update(
        _key(member_id, coupon_id),
        _release_actions(),
        _held_by(order_id),
        label="coupon",
        explain=lambda old: CouponNotLockedError(),
    )


# --- Helpers -------------------------------------------------------------------------------

def _write(member_id: str, coupon_id: str, actions: list[Any], condition: Any) -> None:
    coupon = _key(member_id, coupon_id)
    transact.retrying(lambda: coupon.update(actions=actions, condition=condition))


def _failed_condition(exc: UpdateError | PutError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _find(member_id: str, coupon_id: str) -> Coupon | None:
    try:
        return service.get_coupon(member_id, coupon_id)
    except CouponNotFoundError:
        return None


def _why_not_lockable(coupon: Coupon | None, now: Any) -> ConflictError:
    if coupon is None:
        return CouponNotApplicableError("no such coupon")
    status = service.effective_status(coupon, now)
    return refusal_for(status) or CouponNotApplicableError("this coupon is not valid yet")
