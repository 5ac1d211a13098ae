"""How an order's money moves after creation: payment, closing, cancellation, refunds.

Every move is one conditional write on the order, its decision point (for
example `pending_payment -> paid` under `payable = amount`), followed by
effects that each carry their own natural key, so a retry, a duplicate
notification or the sweeper running the same move again changes nothing:

    paid          the notification's transition; the execution settles the rest
    closed        asked WeChat Pay first (a lost notification never closes a paid
                  order), closed there, then the points voided, and the order
                  cancelled with its stock and coupon given back in one write
    refunding     a cancellation before the store accepted, a failure in the
                  execution, or a refund after completion; then the goods, coupon
                  and points given back and the refund asked of WeChat Pay with
                  the order's one `out_refund_no`
    refunded      WeChat Pay's REFUND.SUCCESS (or the sweeper, asking it)

While a move's effects are unfinished the order is on the sweeper's `due`
index, which the next move's write clears.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock, db, observability, transact
from chalicelib.catalog import stock
from chalicelib.catalog.errors import StockBusyError
from chalicelib.config import settings
from chalicelib.coupons import checkout
from chalicelib.errors import SiyuError
from chalicelib.guides import service as guides
from chalicelib.orders.config import orders_config
from chalicelib.orders.errors import (
    AlreadyRefundedError,
    NotCancellableError,
    NotificationRejected,
    NotRefundableError,
    OrderBusyError,
    OrderNotFoundError,
    OrderNotWaitingError,
    OrdersInProgressError,
    RefundWindowClosedError,
)
from chalicelib.orders.models import (
    ACCEPTED,
    CANCELLED,
    CLOSED,
    COMPLETED,
    DELIVERING,
    DUE_EARNED,
    DUE_REFUND,
    DUE_UNSETTLED,
    ENDED,
    PAID,
    PENDING_PAYMENT,
    READY,
    REFUNDED,
    REFUNDING,
    WAITING_FOR_STORE,
    Order,
)
from chalicelib.orders.service import day_shard, due_shard, find_order, get_order, member_order, timeline_entry
from chalicelib.points import service as points
from chalicelib.points.errors import PendingResolvedError
from chalicelib.transact import Transaction

__all__ = [
    "move",
    "step",
    "apply_payment",
    "close_unpaid",
    "cancel",
    "accept",
    "complete",
    "close_refund_window",
    "start_refund",
    "compensate",
    "give_back",
    "erase_member_orders",
    "finish_refund",
    "refund_at_wechat",
    "apply_refund",
    "refund",
    "settle_payment",
    "complete_unreported",
]

# What the execution refunds when it cannot go on: the goods have not left the store.
_REFUNDABLE_BY_EXECUTION = (*WAITING_FOR_STORE, ACCEPTED, READY)




def step(status: str, at: dt.datetime, note: str | None = None) -> Any:
    """The update action appending `status` to the order's timeline."""
    return Order.timeline.set(Order.timeline.append([timeline_entry(status, at, note)]))


def move(order_id: str, actions: list[Any], condition: Any) -> Order | None:
    """One conditional write on the order: the order as written, None if its condition said no."""
    order = Order(order_id)
    try:
        # pynamodb's update fills `order` with every attribute of the item as written (ALL_NEW).
        transact.retrying(lambda: order.update(actions=actions, condition=condition), busy=OrderBusyError)
    except UpdateError as exc:
        if not transact.condition_failed(exc):
            raise
        return None
    return order


# --- Payment --------------------------------------------------------------------------------

def _check_transaction(transaction: dict[str, Any]) -> tuple[str, str, int]:
    current = settings()
    if transaction.get("mchid") != current.wxpay_mchid or transaction.get("appid") != current.wechat_appid:
        raise NotificationRejected("the payment is not for this merchant and app")
    if transaction.get("trade_state") != "SUCCESS":
        raise NotificationRejected("the transaction did not succeed")
    order_id, transaction_id = transaction.get("out_trade_no"), transaction.get("transaction_id")
    total = (transaction.get("amount") or {}).get("total")
    if not isinstance(order_id, str) or not isinstance(transaction_id, str) or not isinstance(total, int):
        raise NotificationRejected("the transaction lacks out_trade_no, transaction_id or amount.total")
    return order_id, transaction_id, total


def apply_payment(transaction: dict[str, Any]) -> bool:
    """A successful WeChat Pay transaction moves its order to `paid`, once, and starts its execution.

    True if this call applied it; False if it had been applied before. Raises
    NotificationRejected (and changes nothing) when it does not match the order.
    """
    from chalicelib.orders import flow

    order_id, transaction_id, total = _check_transaction(transaction)
    now = clock.now()
    unpaid_and_same_amount = (Order.status == PENDING_PAYMENT) & (Order.payable == total)
    applied = move(order_id, [
        Order.status.set(PAID),
        Order.transaction_id.set(transaction_id),
        Order.paid_at.set(now),
        Order.paid_day.set(day_shard(now, order_id)),
        step(PAID, now),
        Order.due_shard.set(due_shard(DUE_UNSETTLED, order_id)),
        Order.due_at.set(now + dt.timedelta(seconds=orders_config().settle_grace_seconds)),
        Order.updated_at.set(now),
    ], unpaid_and_same_amount) is not None
    if not applied:
        order = find_order(order_id)
        if order is None:
            raise NotificationRejected("no such order")
        if order.transaction_id != transaction_id:
            _refused_payment(order, transaction_id, total)
            return False
    flow.start(order_id)
    if applied:
        observability.info("order paid", order_id=order_id, amount=total)
    return applied


def _refused_payment(order: Order, transaction_id: str, total: int) -> None:
    if order.status == PENDING_PAYMENT:
        observability.alarm("PaymentAmountMismatch", "payment amount does not match the order",
               order_id=order.order_id, paid=total, payable=int(order.payable))
        raise NotificationRejected("the amount does not match the order")
    if order.status == CANCELLED and order.transaction_id is None:
        # WeChat Pay refuses to take money for a closed order; should it have, the money goes back.
        observability.alarm("PaidAfterClose", "payment for a closed order: refunding it", order_id=order.order_id)
        now = clock.now()
        move(order.order_id, [
            Order.transaction_id.set(transaction_id), Order.refund_no.set(_refund_no(order.order_id)),
            Order.refund_amount.set(total), Order.refund_reason.set("订单已关闭"),
            step(CANCELLED, now, "paid after it was closed: refunded"), Order.updated_at.set(now),
        ], (Order.status == CANCELLED) & Order.transaction_id.does_not_exist())
        refund_at_wechat(get_order(order.order_id))
        return
    observability.alarm("SecondPayment", "a second transaction for a paid order", order_id=order.order_id)
    raise NotificationRejected("the order was paid by another transaction")


def settle_payment(order_id: str) -> dict[str, Any]:
    """The execution's first step: the coupon used and the points spend posted (one write each)."""
    order = get_order(order_id)
    if order.coupon_id:
        checkout.use(order.member_id, order.coupon_id, order_id)
    if order.points_used:
        try:
            points.post_order_spend(order.member_id, order_id, int(order.points_used))
        except PendingResolvedError:
            observability.info("order points were voided before the payment settled", order_id=order_id)
    move(order_id, [Order.due_shard.remove(), Order.due_at.remove()],
          Order.due_shard == due_shard(DUE_UNSETTLED, order_id))
    return {"orderId": order_id, "settled": True}


# --- Closing an unpaid order -----------------------------------------------------------------

def _paid_at_wechat(order_id: str) -> dict[str, Any] | None:
    """WeChat Pay's transaction if the member paid after all; otherwise the order is closed there."""
    from chalicelib.wechat import pay

    found = pay.query_order(order_id)
    if found is None or found.get("trade_state") in ("CLOSED", "REVOKED", "PAYERROR"):
        return None
    if found.get("trade_state") == "SUCCESS":
        return found
    try:
        pay.close_order(order_id)
    except pay.WxPayRefusedError as exc:
        if exc.code != "ORDERPAID":
            raise
        return pay.query_order(order_id)
    return None


def close_unpaid(order: Order, reason: str) -> Order:
    """Close an unpaid order: stock released, coupon unlocked, frozen points voided.

    WeChat Pay is asked first and the payment closed there, so the order can
    no longer be paid; if it was paid after all, the payment is applied instead.
    """
    paid = _paid_at_wechat(order.order_id)
    if paid is not None:
        apply_payment(paid)
        return get_order(order.order_id)
    if order.points_used:
        points.void_order_spend(order.member_id, order.order_id)
    holds = stock.holds_of(order.order_id)
    now = clock.now()

    def build(txn: Transaction) -> None:
        txn.update(
            Order(order.order_id),
            [Order.status.set(CANCELLED), step(CANCELLED, now, reason), Order.due_shard.remove(),
             Order.due_at.remove(), Order.updated_at.set(now)],
            Order.status == PENDING_PAYMENT,
            label="order",
            explain=lambda old: _AlreadyClosed(),
        )
        for hold in holds:
            stock.release_hold(txn, hold)
        if order.coupon_id:
            checkout.add_release(txn, order.member_id, order.coupon_id, order.order_id)

    try:
        transact.write(build, busy=StockBusyError)
    except _AlreadyClosed:
        pass
    observability.info("order closed", order_id=order.order_id, reason=reason)
    return get_order(order.order_id)


class _AlreadyClosed(Exception):
    pass


# --- Cancellation, acceptance, completion ----------------------------------------------------

def cancel(member_id: str, order_id: str) -> Order:
    """The member cancels: an unpaid order is closed; a paid one no store took yet is refunded in full."""
    from chalicelib.orders import flow

    order = member_order(member_id, order_id)
    if order.status == PENDING_PAYMENT:
        order = close_unpaid(order, "cancelled by the member")  # paid after all: refunded below
    if order.status in CLOSED:
        return order
    if order.status not in WAITING_FOR_STORE:
        raise NotCancellableError()
    if not start_refund(order, "cancelled before the store accepted", Order.status.is_in(*WAITING_FOR_STORE)):
        current = get_order(order_id)
        if current.status in CLOSED:
            return current
        raise NotCancellableError()
    try:
        flow.fail(order_id, flow.STORE_ACCEPTANCE, "OrderCancelledError", "cancelled by the member")
    except SiyuError:
        pass  # not parked yet: the waiting step sees `refunding` when it parks
    return get_order(order_id)


def accept(order_id: str, store_id: str) -> Order:
    """The store takes the order; from then on the member asks for a refund instead of cancelling.

    The write's condition decides; a refusal is explained from the order
    afterwards: another store's order, or an unpaid one, is not found.
    """
    from chalicelib.orders import flow

    now = clock.now()
    waiting_for_this_store = (Order.status.is_in(*WAITING_FOR_STORE) & (Order.store_id == store_id)
                              & Order.declined_by.does_not_exist())
    accepted = move(order_id, [Order.status.set(ACCEPTED), step(ACCEPTED, now, store_id), Order.updated_at.set(now)],
                    waiting_for_this_store)
    if accepted is None:
        accepted = get_order(order_id)
        if accepted.store_id != store_id or accepted.status == PENDING_PAYMENT:
            raise OrderNotFoundError()
        if accepted.status != ACCEPTED:
            raise OrderNotWaitingError("the order is not waiting for this store to accept it")
        # Accepted before, but the execution may not have heard it: tell it again.
    try:
        flow.resume(order_id, flow.STORE_ACCEPTANCE, {"storeId": store_id})
    except SiyuError:
        pass  # not parked yet: the waiting step sees `accepted` when it parks
    return accepted


def complete(order: Order, condition: Any = None, actions: list[Any] | None = None) -> bool:
    """The member has the goods: one write (under `condition`, by default a store holding the order,
    with `actions` besides) records who the order is credited to; then the stock leaves the shelf,
    the order's points are earned (pending), the credited guide's commission is pending and a
    referrer is rewarded, each once.

    True if this call completed it. The order is then due when its refund
    window closes: the execution's Wait (or the sweeper) posts the points and settles the commission.
    """
    now = clock.now()
    facts = _member_facts(order.member_id, now)
    window_end = now + dt.timedelta(days=orders_config().refund_window_days)
    attribution = guides.attribute(
        order.store_id, (facts.guide_id, facts.guide_store_id), (order.promoting_guide_id, order.promoting_store_id),
    )
    credit = [Order.credited_store_id.set(attribution.credited_store_id)]
    if attribution.credited_guide_id:
        credit.append(Order.credited_guide_id.set(attribution.credited_guide_id))
    if facts.guide_id:
        credit += [Order.acquiring_guide_id.set(facts.guide_id), Order.acquiring_store_id.set(facts.guide_store_id)]
    completed = move(order.order_id, [
        Order.status.set(COMPLETED), Order.completed_at.set(now), step(COMPLETED, now), *credit,
        Order.due_shard.set(due_shard(DUE_EARNED, order.order_id)), Order.due_at.set(window_end),
        Order.updated_at.set(now), *(actions or []),
    ], condition if condition is not None else Order.status.is_in(ACCEPTED, READY, DELIVERING))
    if completed is None:
        return False
    _earn(completed, facts.tier)
    if facts.referrer_id:
        points.award_referral(facts.referrer_id, order.member_id)
    observability.info("order completed", order_id=order.order_id, store_id=order.store_id,
                       guide_id=attribution.credited_guide_id)
    return True


def _commission(order: Order) -> Any:
    """The completed order's pending commission, once (from what its completion recorded)."""
    sales = int(order.payable) - int(order.delivery)
    lines = [guides.CommissionLine(line.category, int(line.unit_price) * int(line.qty)) for line in order.lines]
    attribution = guides.Attribution(
        fulfilling_store_id=order.store_id,
        acquiring_guide_id=order.acquiring_guide_id, acquiring_store_id=order.acquiring_store_id,
        promoting_guide_id=order.promoting_guide_id, promoting_store_id=order.promoting_store_id,
        credited_guide_id=order.credited_guide_id, credited_store_id=order.credited_store_id,
    )
    return guides.record(order.order_id, order.member_id, attribution, lines, sales, order.completed_at)


def complete_unreported(order_id: str) -> dict[str, Any]:
    """An express parcel's deadline passed with no delivered report: it counts as delivered."""
    order = get_order(order_id)
    if complete(order, Order.status.is_in(READY, DELIVERING)):
        return {"orderId": order_id, "completed": True}
    return {"orderId": order_id, "completed": get_order(order_id).status == COMPLETED}


def _earn(order: Order, tier: str) -> Any:
    """The completed order's stock shipped, its commission pending and its points earned, pending; each once."""
    stock.commit_order(order.order_id)
    _commission(order)
    return points.earn_order_points(order.member_id, order.order_id, int(order.payable), tier)


def close_refund_window(order: Order) -> bool:
    """The refund window of a completed order closed: the points it earned are posted, once."""
    if order.status != COMPLETED:
        return False
    # Completion ships the stock, then earns the points: once they are earned, both were done.
    earned = points.order_points_earned(order.member_id, order.order_id) \
        or _earn(order, _member_facts(order.member_id, clock.now()).tier) is not None
    if earned:
        points.post_order_points(order.member_id, order.order_id)
    if order.credited_guide_id:
        guides.settle(order.credited_guide_id, order.completed_at, order.order_id)
    return move(order.order_id, [Order.due_shard.remove(), Order.due_at.remove()],
                Order.due_shard == due_shard(DUE_EARNED, order.order_id)) is not None


def _member_facts(member_id: str, at: dt.datetime) -> Any:
    from chalicelib.members import service as members

    return members.order_facts(member_id, at)


# --- Refunds ------------------------------------------------------------------------------------

def _refund_no(order_id: str) -> str:
    return f"{order_id}-r"


def start_refund(order: Order, reason: str, condition: Any) -> bool:
    """The decision to refund (`refunding`, under `condition`); then the goods, coupon and points go back."""
    now = clock.now()
    return move(order.order_id, [
        Order.status.set(REFUNDING),
        Order.refund_no.set(_refund_no(order.order_id)),
        Order.refund_amount.set(int(order.payable)),
        Order.refund_reason.set(reason),
        step(REFUNDING, now, reason),
        Order.due_shard.set(due_shard(DUE_REFUND, order.order_id)),
        Order.due_at.set(now + dt.timedelta(seconds=orders_config().refund_grace_seconds)),
        Order.updated_at.set(now),
    ], condition) is not None


def compensate(order_id: str, reason: str) -> dict[str, Any]:
    """The execution cannot go on (or the member cancelled): refund in full and give everything back.

    Only an order whose goods are still at the store is refunded here: one a
    courier has picked up (or a completed one) raises an alarm instead, for a
    person to look at.
    """
    order = get_order(order_id)
    if order.status in _REFUNDABLE_BY_EXECUTION:
        start_refund(order, reason, Order.status == order.status)
        order = get_order(order_id)
    if order.status not in CLOSED:
        observability.alarm("CompensationRefused", "an order a store holds was not refunded by its execution",
               order_id=order_id, status=order.status, reason=reason)
        return {"orderId": order_id, "status": order.status}
    if order.status == REFUNDING:
        finish_refund(order)
    return {"orderId": order_id, "status": get_order(order_id).status}


def give_back(order: Order) -> None:
    """Undo what a refunded order took, each step once: before completion the stock, coupon and points
    exactly; after it the points it spent, and the points it earned clawed back."""
    if order.completed_at is None:
        stock.release_order(order.order_id)
        if order.coupon_id and not checkout.restore(order.member_id, order.coupon_id, order.order_id):
            checkout.release(order.member_id, order.coupon_id, order.order_id)
    else:
        points.clawback_order_points(order.member_id, order.order_id)
        if order.credited_guide_id:
            guides.void(order.credited_guide_id, order.completed_at, order.order_id)
    if order.points_used:
        try:
            points.return_order_spend(order.member_id, order.order_id)
        except PendingResolvedError:
            points.void_order_spend(order.member_id, order.order_id)


def finish_refund(order: Order) -> None:
    """What follows the decision to refund, each step once: everything given back, the money asked of WeChat Pay."""
    give_back(order)
    refund_at_wechat(order)


def refund_at_wechat(order: Order) -> None:
    """Ask WeChat Pay for the order's one refund (its natural `out_refund_no`); all refunds are full."""
    from chalicelib.wechat import pay

    if order.refund_no is None or order.refund_amount is None:
        raise OrderNotFoundError("the order has no refund")
    amount = int(order.refund_amount)
    answer = pay.refund(order.order_id, order.refund_no, amount, amount, order.refund_reason or "退款")
    if answer.get("status") == "SUCCESS":
        apply_refund({"out_trade_no": order.order_id, "out_refund_no": order.refund_no, "refund_status": "SUCCESS"})


def apply_refund(resource: dict[str, Any]) -> bool:
    """WeChat Pay's word on a refund: SUCCESS makes the order `refunded`, once; anything else raises an alarm."""
    order_id, refund_no = resource.get("out_trade_no"), resource.get("out_refund_no")
    status = resource.get("refund_status")
    if not isinstance(order_id, str) or not isinstance(refund_no, str):
        raise NotificationRejected("the refund lacks out_trade_no or out_refund_no")
    order = find_order(order_id)
    if order is None or order.refund_no != refund_no:
        raise NotificationRejected("no such refund")
    now = clock.now()
    if status != "SUCCESS":
        observability.alarm("RefundNotSucceeded", "a refund did not succeed", order_id=order_id, refund_status=status)
        return move(order_id, [step(REFUNDING, now, f"refund {status}"), Order.updated_at.set(now)],
                    Order.status == REFUNDING) is not None
    return move(order_id, [
        Order.status.set(REFUNDED), step(REFUNDED, now), Order.due_shard.remove(), Order.due_at.remove(),
        Order.refunded_at.set(now), Order.refunded_day.set(day_shard(now, order_id)), Order.updated_at.set(now),
    ], (Order.status == REFUNDING) & (Order.refund_no == refund_no)) is not None


def refund(member_id: str, order_id: str, reason: str) -> Order:
    """After completion, within the window: the paid amount back, earned points clawed back, spent ones returned."""
    order = member_order(member_id, order_id)
    window_opened_since = clock.now() - dt.timedelta(days=orders_config().refund_window_days)
    completed_within_window = (Order.status == COMPLETED) & (Order.completed_at >= window_opened_since)
    if not start_refund(order, reason, completed_within_window):
        raise _why_not_refundable(get_order(order_id))
    order = get_order(order_id)
    finish_refund(order)
    return get_order(order_id)


def _why_not_refundable(order: Order) -> Exception:
    if order.status in (REFUNDING, REFUNDED):
        return AlreadyRefundedError()
    if order.status != COMPLETED:
        return NotRefundableError()
    return RefundWindowClosedError()


# --- Erasure ------------------------------------------------------------------------------------


def erase_member_orders(member_id: str) -> int:
    """The member deletes their account: unpaid orders are closed and every order forgets the
    address and the WeChat identity; the amounts, lines and timeline stay, under the member id.

    Refused (OrdersInProgressError, nothing changed) while a paid order is still being fulfilled or
    refunded. Each order's write is conditioned on its having ended, so one paid meanwhile is refused
    too. The count of orders erased.
    """
    from chalicelib.orders.service import member_order_ids

    found = db.batch_get([(Order, order_id) for order_id in member_order_ids(member_id)])
    orders = [order for order in found if order is not None]
    if any(order.status not in (*ENDED, PENDING_PAYMENT) for order in orders):
        raise OrdersInProgressError()
    for order in orders:
        if order.status == PENDING_PAYMENT and cancel(member_id, order.order_id).status not in ENDED:
            raise OrdersInProgressError()  # paid at the last moment: it is being refunded
    for order in orders:
        if move(order.order_id, [Order.address.remove(), Order.openid.set("")], Order.status.is_in(*ENDED)) is None:
            raise OrdersInProgressError()
    return len(orders)
