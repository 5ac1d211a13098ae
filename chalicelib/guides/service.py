"""Guides' commissions: who an order is credited to, what it earns them, and their monthly figures.

A leaf domain: orders tell it what completed (`Attribution`, `CommissionLine`),
and it keeps one commission per order, keyed by the order, each move once:

    completion ──record──> pending ──refund window closes──> settled
                               └──────refund────────────────> voided
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from chalicelib import clock, observability, transact
from chalicelib.errors import InvalidRequestError
from chalicelib.guides.config import guides_config
from chalicelib.guides.models import PENDING, SETTLED, VOIDED, Commission, CustomerSegment

__all__ = [
    "Attribution",
    "CommissionLine",
    "attribute",
    "commission_amount",
    "record",
    "settle",
    "void",
    "month_of",
    "statement",
    "performance",
    "statement_csv",
    "STATEMENT_COLUMNS",
    "Segment",
    "save_segments",
    "segment_key",
]


@dataclass(frozen=True)
class Attribution:
    """Who an order counts for (ECShopX's split)."""

    fulfilling_store_id: str
    acquiring_guide_id: str | None = None  # the guide the customer is bound to at completion
    acquiring_store_id: str | None = None
    promoting_guide_id: str | None = None  # the guide whose link the order came from, or who placed it
    promoting_store_id: str | None = None
    credited_guide_id: str | None = None  # decided once, at completion (`attribute`)
    credited_store_id: str | None = None


@dataclass(frozen=True)
class CommissionLine:
    category: str | None
    amount: int  # fen of the line before the order's discounts


def attribute(
    fulfilling_store_id: str, acquiring: tuple[str | None, str | None], promoting: tuple[str | None, str | None]
) -> Attribution:
    """Who the order counts for, and the (guide, store) its sales and commission are credited to,
    as the brand's policy says; with no guide at all, the fulfilling store is credited."""
    first, second = (promoting, acquiring) if guides_config().credit == "sharing" else (acquiring, promoting)
    guide_id, store_id = next(((guide, store) for guide, store in (first, second) if guide), (None, None))
    return Attribution(
        fulfilling_store_id=fulfilling_store_id,
        acquiring_guide_id=acquiring[0], acquiring_store_id=acquiring[1],
        promoting_guide_id=promoting[0], promoting_store_id=promoting[1],
        credited_guide_id=guide_id, credited_store_id=store_id or fulfilling_store_id,
    )


def commission_amount(lines: list[CommissionLine], sales: int) -> int:
    """The commission on `sales` fen, shared over the lines by their amounts, at each line's category rate.

    Each line's share of the sales is rounded down, the remainder given to the
    largest lines first (so the shares add up to `sales`); each line's
    commission is rounded down to the fen.
    """
    total = sum(line.amount for line in lines)
    if total <= 0 or sales <= 0:
        return 0
    shares = [sales * line.amount // total for line in lines]
    by_size = sorted(range(len(lines)), key=lambda index: -lines[index].amount)
    for index in by_size[: sales - sum(shares)]:
        shares[index] += 1
    config = guides_config()
    return sum(share * config.rate_bp(line.category) // 10_000 for share, line in zip(shares, lines))


def month_of(moment: dt.datetime) -> str:
    return clock.shanghai_date(moment).strftime("%Y-%m")


def _key(guide_id: str, completed_at: dt.datetime, order_id: str) -> tuple[str, str]:
    return guide_id, f"{month_of(completed_at)}#{order_id}"


def record(
    order_id: str, member_id: str, attribution: Attribution, lines: list[CommissionLine], sales: int,
    completed_at: dt.datetime,
) -> Commission | None:
    """The completed order's pending commission for its credited guide, once (None: no guide is
    credited, or it was recorded before)."""
    guide_id, store_id = attribution.credited_guide_id, attribution.credited_store_id
    if guide_id is None:
        return None
    commission = Commission(
        *_key(guide_id, completed_at, order_id),
        order_id=order_id,
        member_id=member_id,
        status=PENDING,
        sales=sales,
        amount=commission_amount(lines, sales),
        store_id=store_id,
        acquiring_guide_id=attribution.acquiring_guide_id,
        acquiring_store_id=attribution.acquiring_store_id,
        promoting_guide_id=attribution.promoting_guide_id,
        promoting_store_id=attribution.promoting_store_id,
        fulfilling_store_id=attribution.fulfilling_store_id,
        completed_at=completed_at,
    )
    try:
        transact.retrying(lambda: commission.save(condition=Commission.month_order.does_not_exist()))
    except PutError as exc:
        if not transact.condition_failed(exc):
            raise
        return None  # recorded before: a retried completion
    observability.info("commission pending", order_id=order_id, guide_id=guide_id, amount=int(commission.amount))
    return commission


def _move(guide_id: str, completed_at: dt.datetime, order_id: str, status: str, stamp: Any) -> bool:
    """`pending` -> `status`, once; False if the commission is not pending (moved before, or none)."""
    commission = Commission(*_key(guide_id, completed_at, order_id))
    pending = Commission.status == PENDING
    try:
        transact.retrying(lambda: commission.update(
            actions=[Commission.status.set(status), stamp.set(clock.now())], condition=pending,
        ))
    except UpdateError as exc:
        if not transact.condition_failed(exc):
            raise
        return False
    observability.info(f"commission {status}", order_id=order_id, guide_id=guide_id)
    return True


def settle(guide_id: str, completed_at: dt.datetime, order_id: str) -> bool:
    """The order's refund window closed: its commission is the guide's, once."""
    return _move(guide_id, completed_at, order_id, SETTLED, Commission.settled_at)


def void(guide_id: str, completed_at: dt.datetime, order_id: str) -> bool:
    """The order was refunded: its pending commission is void, once."""
    return _move(guide_id, completed_at, order_id, VOIDED, Commission.voided_at)


def _check_month(month: str) -> str:
    try:
        dt.datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise InvalidRequestError("month", "must be YYYY-MM") from exc
    return month


def _of_month(guide_id: str, month: str) -> Iterator[Commission]:
    return Commission.query(guide_id, Commission.month_order.startswith(f"{_check_month(month)}#"))


STATEMENT_COLUMNS = ("orderId", "completedAt", "status", "sales", "commission", "storeId",
                     "acquiringGuideId", "promotingGuideId", "fulfillingStoreId")


def _line(commission: Commission) -> dict[str, Any]:
    return {
        "orderId": commission.order_id,
        "completedAt": clock.iso(commission.completed_at),
        "status": commission.status,
        "sales": int(commission.sales),
        "commission": int(commission.amount),
        "storeId": commission.store_id,
        "acquiringGuideId": commission.acquiring_guide_id,
        "promotingGuideId": commission.promoting_guide_id,
        "fulfillingStoreId": commission.fulfilling_store_id,
    }


def statement(guide_id: str, month: str) -> dict[str, Any]:
    """The guide's monthly statement: every order credited to them that completed in `month`, and the totals."""
    commissions = list(_of_month(guide_id, month))
    return {**_figures(guide_id, month, commissions), "lines": [_line(commission) for commission in commissions]}


def statement_csv(statement: dict[str, Any]) -> str:
    """The statement as a spreadsheet: one row per order, then the month's totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(STATEMENT_COLUMNS)
    for line in statement["lines"]:
        writer.writerow([line[column] if line[column] is not None else "" for column in STATEMENT_COLUMNS])
    writer.writerow([])
    for name in ("guideId", "month", "orders", "sales", "customers", "commission", "commissionPending",
                 "commissionSettled", "voided"):
        writer.writerow([name, statement[name]])
    return out.getvalue()


def performance(guide_id: str, month: str) -> dict[str, Any]:
    """`{orders, sales, customers, commission}` credited to the guide in `month` (refunded orders left out)."""
    return _figures(guide_id, month, list(_of_month(guide_id, month)))


def _figures(guide_id: str, month: str, commissions: list[Commission]) -> dict[str, Any]:
    counted = [commission for commission in commissions if commission.status != VOIDED]

    def commission_of(*statuses: str) -> int:
        return sum(int(commission.amount) for commission in counted if commission.status in statuses)

    return {
        "guideId": guide_id,
        "month": month,
        "orders": len(counted),
        "sales": sum(int(commission.sales) for commission in counted),
        "customers": len({commission.member_id for commission in counted}),
        "commission": commission_of(PENDING, SETTLED),
        "commissionPending": commission_of(PENDING),
        "commissionSettled": commission_of(SETTLED),
        "voided": len(commissions) - len(counted),
    }


# --- Customer segments -------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    member_id: str
    tags: list[str]
    paid_orders: int
    average_order_value: int
    last_order_at: dt.datetime | None
    last_visit_at: dt.datetime | None


def save_segments(guide_id: str, day: dt.date, segments: list[Segment]) -> None:
    """Each customer's segment as of `day`, overwritten (a replay writes the same)."""
    with CustomerSegment.batch_write() as batch:
        for segment in segments:
            batch.save(CustomerSegment(
                guide_id, segment.member_id, tags=segment.tags, paid_orders=segment.paid_orders,
                average_order_value=segment.average_order_value, last_order_at=segment.last_order_at,
                last_visit_at=segment.last_visit_at, computed_for=day.isoformat(),
            ))


def segment_key(guide_id: str, member_id: str) -> tuple[type[CustomerSegment], tuple[str, str]]:
    """The key of a customer's segment, for a caller's `db.batch_get`."""
    return CustomerSegment, (guide_id, member_id)
