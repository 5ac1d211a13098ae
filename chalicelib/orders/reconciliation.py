"""The daily payment reconciliation: yesterday's WeChat Pay bills matched against our orders and refunds.

Every bill line is matched to an order by its `out_trade_no` (a refund line also
by its `out_refund_no`) and the amounts compared. WeChat Pay's day and ours may
split at a different side of midnight, so nothing is called a mismatch on the
strength of one day's sets alone:

    bill line, order not in our day   read the order itself: paid (refunded) here
                                      with the same transaction (refund) is a match
    our order, not on the bill        ask WeChat Pay: paid (refunded) on the day
                                      before or after is that day's line, not a mismatch

The fund flow closes the loop: the day's income minus refunds there must equal
the trade bill's settled total minus its refund total.

Each mismatch raises the `PayReconciliationMismatch` alarm once (a replay raises
none it raised before) and the day's result is stored by bill date, the same
item again on a replay. A bill that fails its hash check is refused: an alarm,
an error, and nothing stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib import clock, observability
from chalicelib.db import batch_get
from chalicelib.orders.models import Order, PayReconciliation, ReconciliationMismatch
from chalicelib.orders.service import orders_paid_on, orders_refunded_on

__all__ = [
    "MISSING_HERE",
    "MISSING_AT_WECHAT",
    "AMOUNT_DIFFERS",
    "REFUND_MISSING_HERE",
    "REFUND_MISSING_AT_WECHAT",
    "REFUND_AMOUNT_DIFFERS",
    "FUND_FLOW_DIFFERS",
    "MISMATCH_ALARM",
    "REFUSED_ALARM",
    "MAX_STORED_MISMATCHES",
    "Mismatch",
    "reconcile",
    "stored_result",
]

MISSING_HERE = "missing_here"  # paid at WeChat Pay, no such paid order here
MISSING_AT_WECHAT = "missing_at_wechat"  # paid here, on no bill of WeChat Pay's
AMOUNT_DIFFERS = "amount_differs"
REFUND_MISSING_HERE = "refund_missing_here"  # refunded at WeChat Pay, a refund we never asked for
REFUND_MISSING_AT_WECHAT = "refund_missing_at_wechat"
REFUND_AMOUNT_DIFFERS = "refund_amount_differs"
FUND_FLOW_DIFFERS = "fund_flow_differs"  # ourAmount: the trade bill's net; wechatAmount: the fund flow's

MISMATCH_ALARM = "PayReconciliationMismatch"
REFUSED_ALARM = "PayReconciliationBillRefused"
MAX_STORED_MISMATCHES = 1000
PAID_AT_WECHAT = frozenset({"SUCCESS", "REFUND"})
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Mismatch:
    kind: str
    order_id: str | None
    our_amount: int | None  # fen
    wechat_amount: int | None  # fen
    transaction_id: str | None = None
    refund_no: str | None = None

    def view(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "kind": self.kind, "ourAmount": self.our_amount,
                "wechatAmount": self.wechat_amount, "transactionId": self.transaction_id, "refundNo": self.refund_no}

    def sort_key(self) -> tuple[str, str, str, str]:
        return self.kind, self.order_id or "", self.refund_no or "", self.transaction_id or ""


def reconcile(now: dt.datetime) -> dict[str, Any]:
    """Reconcile the Shanghai day before `now`; the result, also stored and logged."""
    bill_date = clock.shanghai_date(now) - ONE_DAY
    trade, flow = _bills(bill_date)
    payments = [line for line in trade.lines if line.is_payment]
    refunds = [line for line in trade.lines if line.is_refund]
    paid_here = {order.order_id: order for order in orders_paid_on(bill_date)}
    refunded_here = {order.order_id: order for order in orders_refunded_on(bill_date)}
    known = {**paid_here, **refunded_here}
    known.update(_read_orders(line.out_trade_no for line in trade.lines if line.out_trade_no not in known))

    payment_mismatches, payments_matched = _match_payments(payments, known)
    refund_mismatches, refunds_matched = _match_refunds(refunds, known)
    mismatches = payment_mismatches + refund_mismatches
    mismatches += _unbilled_payments(paid_here.values(), {line.out_trade_no for line in payments}, bill_date)
    mismatches += _unbilled_refunds(refunded_here.values(), {line.out_refund_no for line in refunds}, bill_date)
    mismatches += _fund_flow_mismatch(trade, flow)
    mismatches.sort(key=Mismatch.sort_key)

    result = {
        "billDate": bill_date.isoformat(),
        "tradeLines": len(payments),
        "refundLines": len(refunds),
        "matched": payments_matched + refunds_matched,
        "mismatches": [mismatch.view() for mismatch in mismatches],
        "mismatchCount": len(mismatches),
    }
    _raise_alarms(bill_date, mismatches)
    _store(bill_date, result, mismatches)
    observability.info("pay reconciliation", **result)
    return result


def stored_result(bill_date: dt.date) -> dict[str, Any] | None:
    """The stored result of reconciling `bill_date`, None when it was never reconciled (or its bill refused)."""
    try:
        item = PayReconciliation.get(bill_date.isoformat(), consistent_read=True)
    except PayReconciliation.DoesNotExist:
        return None
    return {
        "billDate": item.bill_date,
        "tradeLines": int(item.trade_lines),
        "refundLines": int(item.refund_lines),
        "matched": int(item.matched),
        "mismatches": [_mismatch_of(entry).view() for entry in item.mismatches],
        "mismatchCount": int(item.mismatch_count),
    }


# --- The bills ------------------------------------------------------------------------------

def _bills(bill_date: dt.date) -> tuple[Any, Any]:
    """(trade bill, fund flow) of the day; a bill that fails its check raises the alarm and stops the job."""
    from chalicelib.wechat import pay

    try:
        return pay.trade_bill(bill_date), pay.fund_flow_bill(bill_date)
    except pay.BillIntegrityError as exc:
        observability.alarm(REFUSED_ALARM, "a WeChat Pay bill was refused: nothing reconciled",
                            bill_date=bill_date.isoformat(), why=str(exc))
        raise


def _fund_flow_mismatch(trade: Any, flow: Any) -> list[Mismatch]:
    """The fund flow's income minus refunds against the trade bill's settled minus refunded totals."""
    billed = trade.summary.settled_fen - trade.summary.refund_fen
    moved = flow.net_trade_fen()
    return [] if billed == moved else [Mismatch(FUND_FLOW_DIFFERS, None, billed, moved)]


# --- Our side -------------------------------------------------------------------------------

def _read_orders(order_ids: Iterable[str]) -> dict[str, Order]:
    """{order id: order} of those that exist."""
    found = batch_get([(Order, order_id) for order_id in dict.fromkeys(order_ids)])
    return {order.order_id: order for order in found if order is not None}


# --- Matching -------------------------------------------------------------------------------

def _match_payments(lines: list[Any], known: dict[str, Order]) -> tuple[list[Mismatch], int]:
    mismatches, matched = [], 0
    for line in lines:
        order = known.get(line.out_trade_no)
        if order is None or order.transaction_id != line.transaction_id:
            mismatches.append(Mismatch(MISSING_HERE, line.out_trade_no, None, line.total_fen, line.transaction_id))
        elif int(order.payable) != line.total_fen:
            mismatches.append(Mismatch(AMOUNT_DIFFERS, order.order_id, int(order.payable), line.total_fen,
                                       line.transaction_id))
        else:
            matched += 1
    return mismatches, matched


def _match_refunds(lines: list[Any], known: dict[str, Order]) -> tuple[list[Mismatch], int]:
    mismatches, matched = [], 0
    for line in lines:
        order = known.get(line.out_trade_no)
        if order is None or order.refund_no != line.out_refund_no:
            mismatches.append(Mismatch(REFUND_MISSING_HERE, line.out_trade_no, None, line.refund_fen,
                                       line.transaction_id, line.out_refund_no))
        elif int(order.refund_amount or 0) != line.refund_fen:
            mismatches.append(Mismatch(REFUND_AMOUNT_DIFFERS, order.order_id, int(order.refund_amount or 0),
                                       line.refund_fen, line.transaction_id, line.out_refund_no))
        else:
            matched += 1
    return mismatches, matched


def _unbilled_payments(orders: Iterable[Order], billed: set[str], bill_date: dt.date) -> list[Mismatch]:
    """Our payments of the day on no line: a mismatch unless WeChat Pay has them on the day before or after."""
    from chalicelib.wechat import pay

    mismatches = []
    for order in orders:
        if order.order_id in billed:
            continue
        found = pay.query_order(order.order_id) or {}
        paid_there = found.get("trade_state") in PAID_AT_WECHAT and found.get("transaction_id") == order.transaction_id
        if not (paid_there and _on_neighbouring_day(found.get("success_time"), bill_date)):
            mismatches.append(Mismatch(MISSING_AT_WECHAT, order.order_id, int(order.payable), None,
                                       order.transaction_id))
    return mismatches


def _unbilled_refunds(orders: Iterable[Order], billed: set[str], bill_date: dt.date) -> list[Mismatch]:
    """Our refunds of the day on no line: a mismatch unless WeChat Pay has them on the day before or after."""
    from chalicelib.wechat import pay

    mismatches = []
    for order in orders:
        if order.refund_no is None or order.refund_no in billed:
            continue
        found = pay.query_refund(order.refund_no) or {}
        if not (found.get("status") == "SUCCESS" and _on_neighbouring_day(found.get("success_time"), bill_date)):
            mismatches.append(Mismatch(REFUND_MISSING_AT_WECHAT, order.order_id, int(order.refund_amount or 0),
                                       None, order.transaction_id, order.refund_no))
    return mismatches


def _on_neighbouring_day(success_time: Any, bill_date: dt.date) -> bool:
    if not isinstance(success_time, str):
        return False
    try:
        day = clock.shanghai_date(clock.parse_iso(success_time))
    except ValueError:
        return False
    return abs(day - bill_date) == ONE_DAY


# --- Alarms and the stored result -----------------------------------------------------------

def _raise_alarms(bill_date: dt.date, mismatches: list[Mismatch]) -> None:
    """One alarm per mismatch, except those the stored result of an earlier run already raised."""
    raised = (stored_result(bill_date) or {}).get("mismatches", [])
    for mismatch in mismatches:
        if mismatch.view() in raised:
            continue
        observability.alarm(MISMATCH_ALARM, "WeChat Pay's bill and our orders disagree",
                            bill_date=bill_date.isoformat(), kind=mismatch.kind, order_id=mismatch.order_id,
                            our_amount=mismatch.our_amount, wechat_amount=mismatch.wechat_amount,
                            transaction_id=mismatch.transaction_id, refund_no=mismatch.refund_no)


def _store(bill_date: dt.date, result: dict[str, Any], mismatches: list[Mismatch]) -> None:
    PayReconciliation(
        bill_date.isoformat(),
        trade_lines=result["tradeLines"],
        refund_lines=result["refundLines"],
        matched=result["matched"],
        mismatch_count=result["mismatchCount"],
        mismatches=[ReconciliationMismatch(
            kind=m.kind, order_id=m.order_id, our_amount=m.our_amount, wechat_amount=m.wechat_amount,
            transaction_id=m.transaction_id, refund_no=m.refund_no,
        ) for m in mismatches[:MAX_STORED_MISMATCHES]],
    ).save()


def _mismatch_of(entry: ReconciliationMismatch) -> Mismatch:
    return Mismatch(
        kind=entry.kind, order_id=entry.order_id,
        our_amount=None if entry.our_amount is None else int(entry.our_amount),
        wechat_amount=None if entry.wechat_amount is None else int(entry.wechat_amount),
        transaction_id=entry.transaction_id, refund_no=entry.refund_no,
    )
