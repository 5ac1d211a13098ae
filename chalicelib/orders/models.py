"""Orders, and what the order flow keeps between a parked execution and the call that resumes it."""

from __future__ import annotations

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "PENDING_PAYMENT",
    "PAID",
    "ROUTED",
    "ACCEPTED",
    "READY",
    "DELIVERING",
    "COMPLETED",
    "WAITING_FOR_STORE",
    "CLOSED",
    "ENDED",
    "ACCEPTED_BY_STORE",
    "CANCELLED",
    "REFUNDING",
    "REFUNDED",
    "DUE_UNPAID",
    "DUE_UNSETTLED",
    "DUE_REFUND",
    "DUE_EARNED",
    "DUE_SHARDS",
    "DAY_SHARDS",
    "OrderLine",
    "Address",
    "TimelineEntry",
    "CourierDispatch",
    "Order",
    "OrdersByMember",
    "OrdersByStore",
    "OrdersDue",
    "OrdersPaidOnDay",
    "OrdersRefundedOnDay",
    "TaskToken",
    "ReconciliationMismatch",
    "PayReconciliation",
]

PENDING_PAYMENT, PAID, ROUTED = "pending_payment", "paid", "routed"
ACCEPTED, READY, DELIVERING, COMPLETED = "accepted", "ready", "delivering", "completed"
CANCELLED, REFUNDING, REFUNDED = "cancelled", "refunding", "refunded"
# Paid, and waiting for the location holding its stock to accept it.
WAITING_FOR_STORE = (PAID, ROUTED)
CLOSED = (CANCELLED, REFUNDING, REFUNDED)
# Nothing more happens to it.
ENDED = (COMPLETED, CANCELLED, REFUNDED)
# Its store has accepted it (and may have packed it and handed it over since).
ACCEPTED_BY_STORE = (ACCEPTED, READY, DELIVERING, COMPLETED)

# What the sweeper must look at, and from when: an order waits for at most one of these at a time.
DUE_UNPAID = "unpaid"  # its payment deadline
DUE_UNSETTLED = "unsettled"  # paid: its execution should have settled the payment by then
DUE_REFUND = "refund"  # WeChat Pay should have confirmed the refund by then
DUE_EARNED = "earned"  # completed: the refund window closes, the points it earned are posted
DUE_SHARDS = 4
# A day's payments (and refunds) are spread over this many index partitions: a launch day's rush is not one hot key.
DAY_SHARDS = 8


class OrderLine(MapAttribute):
    sku_id = UnicodeAttribute()
    title = UnicodeAttribute()
    qty = NumberAttribute()
    unit_price = NumberAttribute()  # fen paid per unit before coupon and points deduction
    unit_points = NumberAttribute(default=0)  # points per unit of a points-price (积分加钱购) line
    category = UnicodeAttribute(null=True)  # the SKU's, for the guide's commission rate


class Address(MapAttribute):
    name = UnicodeAttribute()
    phone = UnicodeAttribute()
    text = UnicodeAttribute()
    lat = NumberAttribute()
    lng = NumberAttribute()


class TimelineEntry(MapAttribute):
    status = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    note = UnicodeAttribute(null=True)


class CourierDispatch(MapAttribute):
    """The order's current courier dispatch; a re-dispatch replaces it (a new `ref`)."""

    courier = UnicodeAttribute()  # dada, wechat, express
    ref = UnicodeAttribute()  # our id of this dispatch at the courier: `<orderId>-<attempt>` (express: the order id)
    attempt = NumberAttribute()
    waybill_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()  # chalicelib.couriers: dispatched, accepted, picked_up, delivered, cancelled
    status_at = UTCDateTimeAttribute()  # the courier's time of `status`
    rider_name = UnicodeAttribute(null=True)
    rider_phone = UnicodeAttribute(null=True)


class OrdersByMember(GlobalSecondaryIndex):
    """A member's orders, newest first.

    Keys only: an order is updated at every move, and an index projecting
    its attributes would be written at each of them; the page is read back
    in one BatchGetItem instead.
    """

    class Meta:
        index_name = "by-member"
        projection = KeysOnlyProjection()

    member_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class OrdersByStore(GlobalSecondaryIndex):
    """The orders a location holds the stock of, newest first: the store's order list.

    Keys and the status (which the list filters on), for the reason of `OrdersByMember`.
    """

    class Meta:
        index_name = "by-store"
        projection = IncludeProjection(["status"])

    store_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)
    status = UnicodeAttribute()


class OrdersDue(GlobalSecondaryIndex):
    """Sparse: only orders something is due for (`<kind>#<shard>`), by when; what the sweeper reads."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class OrdersPaidOnDay(GlobalSecondaryIndex):
    """Sparse: the orders paid on a Shanghai day (`<YYYY-MM-DD>#<shard>`), by when: what the daily
    report and the payment reconciliation read. Keys only, for the reason of `OrdersByMember`."""

    class Meta:
        index_name = "paid-day"
        projection = KeysOnlyProjection()

    paid_day = UnicodeAttribute(hash_key=True)
    paid_at = UTCDateTimeAttribute(range_key=True)


class OrdersRefundedOnDay(GlobalSecondaryIndex):
    """Sparse: the orders whose refund WeChat Pay confirmed on a Shanghai day, as `OrdersPaidOnDay`."""

    class Meta:
        index_name = "refunded-day"
        projection = KeysOnlyProjection()

    refunded_day = UnicodeAttribute(hash_key=True)
    refunded_at = UTCDateTimeAttribute(range_key=True)


class Order(SiyuModel):
    """One order: what was bought, where it is fulfilled, what it costs, and every status it passed.

    Amounts are integer fen: `payable = goods - discount - points_deduction + delivery`.
    `points_used` is every point the order froze (its deduction plus its points-price lines).
    """

    class Meta:
        table = "orders"

    order_id = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute()
    openid = UnicodeAttribute()
    status = UnicodeAttribute()
    lines = ListAttribute(of=OrderLine)
    mode = UnicodeAttribute()  # delivery, pickup, express
    store_id = UnicodeAttribute()  # the location holding the stock (`warehouse` for express)
    # Every location the order was routed to, the current one last: a reroute never returns to one.
    routed_to = ListAttribute(of=UnicodeAttribute, null=True)
    routed_at = UTCDateTimeAttribute(null=True)  # when the last reroute moved it
    declined_by = UnicodeAttribute(null=True)  # the current location, once it declined the order
    pickup_code = UnicodeAttribute(null=True)
    courier = CourierDispatch(null=True)
    # The guide whose shared link the order came from, or who placed it for the member (代客下单).
    promoting_guide_id = UnicodeAttribute(null=True)
    promoting_store_id = UnicodeAttribute(null=True)
    placed_by_guide = UnicodeAttribute(null=True)
    # Recorded at completion (chalicelib.guides): the member's bound guide then, and who is credited.
    acquiring_guide_id = UnicodeAttribute(null=True)
    acquiring_store_id = UnicodeAttribute(null=True)
    credited_store_id = UnicodeAttribute(null=True)
    credited_guide_id = UnicodeAttribute(null=True)
    address = Address(null=True)
    coupon_id = UnicodeAttribute(null=True)
    points_used = NumberAttribute(default=0)
    goods = NumberAttribute()
    discount = NumberAttribute(default=0)
    points_deduction = NumberAttribute(default=0)
    delivery = NumberAttribute(default=0)
    payable = NumberAttribute()
    pay_deadline = UTCDateTimeAttribute()
    transaction_id = UnicodeAttribute(null=True)
    paid_at = UTCDateTimeAttribute(null=True)
    paid_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `paid_at`
    completed_at = UTCDateTimeAttribute(null=True)
    refund_no = UnicodeAttribute(null=True)
    refund_amount = NumberAttribute(null=True)
    refund_reason = UnicodeAttribute(null=True)
    refunded_at = UTCDateTimeAttribute(null=True)  # when WeChat Pay confirmed the refund
    refunded_day = UnicodeAttribute(null=True)
    timeline = ListAttribute(of=TimelineEntry, default=list)
    due_shard = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_member = OrdersByMember()
    by_store = OrdersByStore()
    due = OrdersDue()
    paid_on_day = OrdersPaidOnDay()
    refunded_on_day = OrdersRefundedOnDay()


class TaskToken(SiyuModel):
    """The task token of an order's execution waiting at `step` (`store_acceptance`, ...).

    A retried waiting task gets a new token and overwrites the row: the newest
    token is the only one Step Functions still accepts.
    """

    class Meta:
        table = "order-task-tokens"

    order_id = UnicodeAttribute(hash_key=True)
    step = UnicodeAttribute(range_key=True)
    token = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    # Only tidies up rows of executions that ended without being resumed.
    expires_at = TTLAttribute(null=True)


class ReconciliationMismatch(MapAttribute):
    """One disagreement between WeChat Pay's bill and our orders (see `chalicelib.orders.reconciliation`)."""

    kind = UnicodeAttribute()
    order_id = UnicodeAttribute(null=True)
    our_amount = NumberAttribute(null=True)  # fen
    wechat_amount = NumberAttribute(null=True)  # fen
    transaction_id = UnicodeAttribute(null=True)
    refund_no = UnicodeAttribute(null=True)


class PayReconciliation(SiyuModel):
    """The outcome of reconciling one Shanghai day's WeChat Pay bills, by bill date.

    A replay writes the same item again: its content depends only on the bills
    and the orders, never on when the job ran.
    """

    class Meta:
        table = "pay-reconciliations"

    bill_date = UnicodeAttribute(hash_key=True)  # YYYY-MM-DD
    trade_lines = NumberAttribute()
    refund_lines = NumberAttribute()
    matched = NumberAttribute()
    mismatch_count = NumberAttribute()
    # At most `reconciliation.MAX_STORED_MISMATCHES` of them, so a bad day still fits one item; the count is exact.
    mismatches = ListAttribute(of=ReconciliationMismatch, default=list)
