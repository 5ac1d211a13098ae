"""The order sweeper: what a lost callback left behind, found through the sparse `due` index.

An order is on the index only while something is due for it (`<kind>#<shard>`
by `due_at`), and the write that settles it takes it off, so a run reads what
is due and nothing else, never a scan:

    unpaid     past its payment deadline: WeChat Pay is asked first; paid after
               all, the payment is applied (and its execution started); else the
               order is closed there and here
    unsettled  paid, but its execution never settled the payment: started if it
               does not exist; if it failed, WeChat Pay is asked and the money refunded
    refund     a refund WeChat Pay has not confirmed: asked again; never asked for
               (we stopped before asking), asked for now
    earned     completed, and its refund window closed: the points it earned are posted

Every move is the same idempotent move the API or the execution makes, so a
replayed or overlapping run changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from chalicelib import clock, observability
from chalicelib.orders import flow, lifecycle
from chalicelib.orders.models import (
    DUE_EARNED,
    DUE_REFUND,
    DUE_SHARDS,
    DUE_UNPAID,
    DUE_UNSETTLED,
    PENDING_PAYMENT,
    REFUNDING,
    Order,
)
from chalicelib.orders.service import find_order

__all__ = ["sweep", "MAX_PER_RUN", "MAX_SECONDS"]

# A run stops after this many orders or seconds (the function times out at 30): the next run,
# five minutes later, goes on from what is still due, since only a settled order leaves the index.
MAX_PER_RUN = 2000
MAX_SECONDS = 20.0


def _due(kind: str, moment: dt.datetime) -> Iterator[str]:
    for shard in range(DUE_SHARDS):
        for key in Order.due.query(f"{kind}#{shard}", Order.due_at <= moment):
            yield key.order_id


def _unpaid(order: Order) -> str:
    if order.status != PENDING_PAYMENT:
        return "skipped"
    closed = lifecycle.close_unpaid(order, "not paid by the deadline")
    return "closed" if closed.status != PENDING_PAYMENT else "skipped"


def _unsettled(order: Order) -> str:
    status = flow.execution_status(order.order_id)
    if status is None:
        flow.start(order.order_id)
        return "started"
    if status in ("FAILED", "TIMED_OUT", "ABORTED"):
        from chalicelib.wechat import pay

        paid = pay.query_order(order.order_id)
        if paid is None or paid.get("trade_state") not in ("SUCCESS", "REFUND"):
            observability.logger().error("a paid order's execution failed and WeChat Pay does not know the payment",
                           extra={"order_id": order.order_id, "trade_state": (paid or {}).get("trade_state")})
            return "unresolved"
        lifecycle.compensate(order.order_id, "the order's execution failed")
        return "compensated"
    return "running"


def _refund(order: Order) -> str:
    from chalicelib.wechat import pay

    if order.status != REFUNDING or order.refund_no is None:
        return "skipped"
    known = pay.query_refund(order.refund_no)
    if known is None:
        lifecycle.finish_refund(order)
        return "refund_requested"
    if known.get("status") in ("SUCCESS", "ABNORMAL", "CLOSED"):
        lifecycle.apply_refund({"out_trade_no": order.order_id, "out_refund_no": order.refund_no,
                                "refund_status": known["status"]})
        return f"refund_{known['status'].lower()}"
    return "refund_processing"


def _earned(order: Order) -> str:
    return "points_posted" if lifecycle.close_refund_window(order) else "skipped"


_HANDLERS = {DUE_UNPAID: _unpaid, DUE_UNSETTLED: _unsettled, DUE_REFUND: _refund, DUE_EARNED: _earned}


def sweep(moment: dt.datetime) -> dict[str, Any]:
    """Look at every order due by `moment` (at most MAX_PER_RUN); counts of what was done."""
    outcomes: Counter[str] = Counter()
    seen = 0
    stop_at = time.monotonic() + MAX_SECONDS
    for kind, handle in _HANDLERS.items():
        for order_id in _due(kind, moment):
            if seen >= MAX_PER_RUN or time.monotonic() > stop_at:
                outcomes["leftForNextRun"] = 1
                break
            seen += 1
            order = find_order(order_id)
            if order is None:
                continue
            try:
                outcomes[handle(order)] += 1
            except Exception:
                # One order WeChat Pay or a partner cannot answer for now waits for the next run.
                observability.logger().exception("order sweep failed", extra={"order_id": order_id, "due": kind})
                outcomes["failed"] += 1
    return {"checked": seen, **dict(sorted(outcomes.items())), "at": clock.iso(moment)}
