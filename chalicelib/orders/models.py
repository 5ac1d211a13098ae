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
    "CANCELLED",
    "REFUNDING",
    "REFUNDED",
    "DUE_UNPAID",
    "DUE_UNSETTLED",
    "DUE_REFUND",
    "DUE_EARNED",
    "DUE_SHARDS",
    "OrderLine",
    "Address",
    "TimelineEntry",
    "CourierDispatch",
    "Order",
    "OrdersByMember",
    "OrdersByStore",
    "OrdersDue",
    "TaskToken",
]

PENDING_PAYMENT, PAID, ROUTED = "pending_payment", "paid", "routed"
ACCEPTED, READY, DELIVERING, COMPLETED = "accepted", "ready", "delivering", "completed"
CANCELLED, REFUNDING, REFUNDED = "cancelled", "refunding", "refunded"
# Paid, and waiting for the location holding its stock to accept it.
WAITING_FOR_STORE = (PAID, ROUTED)
CLOSED = (CANCELLED, REFUNDING, REFUNDED)

# What the sweeper must look at, and from when: an order waits for at most one of these at a time.
DUE_UNPAID = "unpaid"  # its payment deadline
DUE_UNSETTLED = "unsettled"  # paid: its execution should have settled the payment by then
DUE_REFUND = "refund"  # WeChat Pay should have confirmed the refund by then
DUE_EARNED = "earned"  # completed: the refund window closes, the points it earned are posted
DUE_SHARDS = 4


class OrderLine(MapAttribute):
    sku_id = UnicodeAttribute()
    title = UnicodeAttribute()
    qty = NumberAttribute()
    unit_price = NumberAttribute()  # fen paid per unit before coupon and points deduction
    unit_points = NumberAttribute(default=0)  # points per unit of a points-price (积分加钱购) line


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
    # Credited at completion (the guides issue settles commissions from these).
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
    completed_at = UTCDateTimeAttribute(null=True)
    refund_no = UnicodeAttribute(null=True)
    refund_amount = NumberAttribute(null=True)
    refund_reason = UnicodeAttribute(null=True)
    timeline = ListAttribute(of=TimelineEntry, default=list)
    due_shard = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_member = OrdersByMember()
    by_store = OrdersByStore()
    due = OrdersDue()


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
