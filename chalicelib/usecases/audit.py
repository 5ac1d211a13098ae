"""The nightly audit: the day's points ledger and the coupon locks, each breach an alarm.

Each breach count is published as a metric (`LedgerBreaches`,
`CouponLockBreaches`); the alarms of the deployed stack watch them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from chalicelib import clock, observability
from chalicelib.coupons import checkout
from chalicelib.orders import service as orders
from chalicelib.points import audit as ledger

__all__ = ["run"]

_SHOWN = 10  # breaches the report names; the metric and the log count them all


# An unpaid order holds its coupon; a paid one until its execution settles the payment.
_HOLDING = frozenset({"pending_payment", "paid"})


def _lock_breaches(locked: list[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    holders = orders.coupon_holders([order_id for _, _, order_id in locked if order_id])
    breaches = []
    for member_id, coupon_id, order_id in locked:
        status, held_coupon = holders.get(order_id or "", (None, None))
        if status not in _HOLDING or held_coupon != coupon_id:
            breaches.append({"memberId": member_id, "couponId": coupon_id, "orderId": order_id,
                             "orderStatus": status})
    return breaches


def coupon_lock_breaches(member_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every locked coupon (of these members, if given) belongs to a live order that names it.

    A lock that moves while the audit reads is read again before it counts.
    """
    wanted = set(member_ids) if member_ids is not None else None
    locked = [lock for lock in checkout.locked_coupons() if wanted is None or lock[0] in wanted]
    suspects = _lock_breaches(locked)
    if not suspects:
        return []
    still_locked = checkout.still_locked([(breach["memberId"], breach["couponId"]) for breach in suspects])
    return _lock_breaches(still_locked)


def run(moment: dt.datetime) -> dict[str, Any]:
    """The ledger's proof of the Shanghai day before `moment`, with the coupon locks' audit beside it.

    The stock audit and the ledger's full proof visit every row: they run on the
    segmented state machine (chalicelib.usecases.whole_table_jobs).
    """
    day = clock.shanghai_date(moment) - dt.timedelta(days=1)
    points = ledger.audit_day(day)
    locks = coupon_lock_breaches()
    for breach in locks:
        observability.logger().error("coupon lock breach", extra={"breach": breach})
    observability.count("LedgerBreaches", points["breaches"])
    observability.count("CouponLockBreaches", len(locks))
    return {**points, "couponLocks": {"breaches": len(locks), "examples": locks[:_SHOWN]}, "at": clock.iso(moment)}
