"""Creating orders and reading them.

Creation is one batched read and one TransactWriteItems:

    BatchGetItem        the SKUs, the member (tier, openid), the coupon, and for
                        delivery the stock of each candidate store (cached data
                        may choose the store; the conditions decide)
    TransactWriteItems  .member     ConditionCheck: live
                        .order      Put, attribute_not_exists
                        stock ...   per line: reservation Put + stock Update (available >= qty)
                        .coupon     Update: available and valid, now locked by this order
                        .points.*   the points frozen: a spend to the `frozen` account

A refusal changes nothing. A delivery order whose chosen store turns out to
be short (the read was stale) tries the next candidate; the prepay at WeChat
Pay comes after the write, so a launch rush of refused orders costs WeChat
nothing. An unpaid order is closed by its member or by the sweeper after its
payment deadline and never starts an execution.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections import defaultdict
from typing import Any

from chalicelib import clock, db, masking, transact
from chalicelib.catalog import service as catalog
from chalicelib.catalog import stock
from chalicelib.catalog.errors import OutOfStockError, StockBusyError
from chalicelib.coupons import checkout
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.members import service as members
from chalicelib.orders import pricing
from chalicelib.orders.config import orders_config
from chalicelib.orders.errors import OrderNotFoundError, OrderNotPayableError, OutOfRangeError
from chalicelib.orders.models import (
    DAY_SHARDS,
    DUE_SHARDS,
    DUE_UNPAID,
    PENDING_PAYMENT,
    Address,
    Order,
    OrderLine,
    TimelineEntry,
)
from chalicelib.orders.schemas import GuideOrderRequest, OrderRequest
from chalicelib.points import service as points
from chalicelib.stores import service as stores
from chalicelib.transact import Transaction

__all__ = [
    "WAREHOUSE",
    "new_order_id",
    "due_shard",
    "day_shard",
    "day_shards",
    "orders_paid_on",
    "orders_refunded_on",
    "paid_on",
    "refunded_on",
    "timeline_entry",
    "create",
    "delivery_candidates",
    "description",
    "payment_for",
    "payment_of",
    "place_for_customer",
    "find_order",
    "check_order_id",
    "get_order",
    "order_view",
    "member_order",
    "member_orders",
    "store_orders",
    "coupon_holders",
    "OrderFact",
    "member_history",
    "member_order_ids",
]

WAREHOUSE = "warehouse"
# BatchGetItem reads at most 100 keys: SKUs, the member and the coupon leave this many for stock rows.
_STOCK_KEYS = 90


def new_order_id(moment: dt.datetime) -> str:
    """Time-ordered and a valid WeChat Pay out_trade_no (6 to 32 of [A-Za-z0-9_-])."""
    return f"o{clock.shanghai_date(moment):%y%m%d}{moment:%H%M%S}{secrets.token_hex(5)}"


def due_shard(kind: str, order_id: str) -> str:
    return f"{kind}#{int(order_id[-2:], 16) % DUE_SHARDS}"


def day_shard(moment: dt.datetime, order_id: str) -> str:
    """The `paid-day`/`refunded-day` index key of an order moved at `moment`."""
    return f"{clock.shanghai_date(moment).isoformat()}#{int(order_id[-2:], 16) % DAY_SHARDS}"


def day_shards(day: dt.date) -> list[str]:
    """Every index key of a Shanghai day, for a reader of the day."""
    return [f"{day.isoformat()}#{shard}" for shard in range(DAY_SHARDS)]


def timeline_entry(status: str, at: dt.datetime, note: str | None = None) -> TimelineEntry:
    return TimelineEntry(status=status, at=at, note=note)


# --- Creation ------------------------------------------------------------------------------

class _Read:
    """What creation read in its one batch."""

    def __init__(self, member_id: str, body: OrderRequest, candidates: list[str]) -> None:
        sku_ids = list(dict.fromkeys(item.sku_id for item in body.items))
        rows = [(store_id, sku_id) for store_id in candidates for sku_id in sku_ids]
        keys: list[tuple[Any, Any]] = [members.member_key(member_id)]
        keys += [catalog.sku_key(sku_id) for sku_id in sku_ids]
        if body.coupon_id:
            keys.append(checkout.coupon_key(member_id, body.coupon_id))
        if body.guide_id:
            keys.append(members.guide_key(body.guide_id))
        keys += [catalog.stock_key(store_id, sku_id) for store_id, sku_id in rows]
        found = iter(db.batch_get(keys))
        self.member = members.live(next(found))
        self.skus = {sku_id: next(found) for sku_id in sku_ids}
        self.coupon = next(found) if body.coupon_id else None
        # A link naming no guide (or a guide no longer) promotes nobody; the order goes on.
        self.guide = next(found) if body.guide_id else None
        self.stock = dict(zip(rows, found))

    def holds_everything(self, store_id: str, quantities: dict[str, int], launch: dict[str, int]) -> bool:
        """Whether the read says the store has every line (a launch SKU's shards were not read: maybe)."""
        return all(
            sku_id in launch or catalog.available_in(self.stock.get((store_id, sku_id))) >= qty
            for sku_id, qty in quantities.items()
        )


def delivery_candidates(lat: float, lng: float, lines: int) -> list[str]:
    """The nearest active stores that deliver to the address, from this container's cache of stores."""
    nearby = sorted(
        (store for store in stores.list_stores() if store.delivers_to(lat, lng)),
        key=lambda store: store.distance_km(lat, lng),
    )
    most = max(1, min(orders_config().delivery_candidates, _STOCK_KEYS // max(lines, 1)))
    return [store.store_id for store in nearby[:most]]


def _locations(body: OrderRequest) -> list[str]:
    """Where the order may take its stock from, in the order to try them."""
    fulfillment = body.fulfillment
    if fulfillment.mode == "express":
        return [WAREHOUSE]
    if fulfillment.mode == "pickup":
        assert fulfillment.store_id is not None
        try:
            store = stores.find_store(fulfillment.store_id)
        except NotFoundError as exc:
            raise InvalidRequestError("fulfillment.storeId", "is not a store") from exc
        if not store.active:
            raise InvalidRequestError("fulfillment.storeId", "is not a store that takes orders now")
        return [store.store_id]
    assert fulfillment.address is not None
    candidates = delivery_candidates(fulfillment.address.lat, fulfillment.address.lng, len(body.items))
    if not candidates:
        raise OutOfRangeError()
    return candidates


def _items(body: OrderRequest, skus: dict[str, Any]) -> list[pricing.Item]:
    merged: dict[tuple[str, bool], int] = defaultdict(int)
    first_line: dict[str, int] = {}
    for index, item in enumerate(body.items):
        merged[(item.sku_id, item.points_price)] += item.qty
        first_line.setdefault(item.sku_id, index)
    items = []
    for (sku_id, points_price), qty in merged.items():
        sku, index = skus.get(sku_id), first_line[sku_id]
        if sku is None or not sku.active:
            raise InvalidRequestError(f"items.{index}.skuId", f"{sku_id} is not for sale")
        items.append(pricing.Item(sku, qty, points_price))
    for sku_id, qty in _quantities(items).items():
        if catalog.is_launch(skus[sku_id]) and qty > stock.MAX_LAUNCH_QTY:
            raise InvalidRequestError(f"items.{first_line[sku_id]}.qty",
                                      f"a launch allows at most {stock.MAX_LAUNCH_QTY} of {sku_id} an order")
    return items


def _coupon_discount(coupon: Any, store_id: str) -> Any:
    def discount(lines: tuple[pricing.PricedLine, ...]) -> int:
        basket = checkout.Basket(
            tuple(checkout.BasketLine(line.sku_id, line.unit_price, line.qty) for line in lines), store_id=store_id
        )
        return checkout.discount_for(coupon, basket) if coupon is not None else checkout.no_such_coupon()

    return discount


def _order_item(
    order_id: str, read: _Read, body: OrderRequest, store_id: str, quote: pricing.Quote, now: dt.datetime
) -> Order:
    member, guide, fulfillment = read.member, read.guide, body.fulfillment
    deadline = now + dt.timedelta(minutes=orders_config().payment_minutes)
    address = fulfillment.address
    return Order(
        order_id,
        member_id=member.member_id,
        openid=member.openid or "",
        status=PENDING_PAYMENT,
        lines=[
            OrderLine(sku_id=line.sku_id, title=line.title, qty=line.qty, unit_price=line.unit_price,
                      unit_points=line.unit_points, category=read.skus[line.sku_id].category)
            for line in quote.lines
        ],
        promoting_guide_id=guide.guide_id if guide else None,
        promoting_store_id=guide.store_id if guide else None,
        mode=fulfillment.mode,
        store_id=store_id,
        address=Address(**address.model_dump()) if address else None,
        coupon_id=body.coupon_id,
        points_used=quote.points_used,
        goods=quote.goods,
        discount=quote.discount,
        points_deduction=quote.points_deduction,
        delivery=quote.delivery,
        payable=quote.payable,
        pay_deadline=deadline,
        timeline=[timeline_entry(PENDING_PAYMENT, now)],
        due_shard=due_shard(DUE_UNPAID, order_id),
        due_at=deadline,
        created_at=now,
        updated_at=now,
    )


def _quantities(items: list[pricing.Item]) -> dict[str, int]:
    quantities: dict[str, int] = defaultdict(int)
    for item in items:
        quantities[item.sku.sku_id] += item.qty
    return dict(quantities)


def _not_this_guides_customer(old: Any) -> Exception:
    return NotFoundError("no such customer")


def _write(order: Order, quantities: dict[str, int], launch: dict[str, int]) -> None:
    frozen = points.freeze_for_order(order.member_id, order.order_id, int(order.points_used)) \
        if order.points_used else None

    def build(txn: Transaction) -> None:
        if order.placed_by_guide:
            # 代客下单: only for a customer bound to the placing guide, at the moment of the write.
            members.require_member(txn, order.member_id, guide_id=order.placed_by_guide,
                                   explain=_not_this_guides_customer)
        else:
            members.require_member(txn, order.member_id)
        txn.save(order, Order.order_id.does_not_exist(), label="order")
        stock.reserve_lines(txn, order.order_id, order.store_id, quantities, launch=launch)
        if order.coupon_id:
            checkout.add_lock(txn, order.member_id, order.coupon_id, order.order_id)
        if frozen is not None:
            frozen.add_to(txn)

    transact.write(build, busy=StockBusyError, replan=True)


def create(member_id: str, body: OrderRequest) -> dict[str, Any]:
    """Price, reserve, lock and freeze in one write; then ask WeChat Pay for the payment to offer."""
    order = _place(member_id, body)
    try:
        payment = payment_for(order)
    except Exception:
        _give_up(order)
        raise
    return {**_amounts_view(order), "payment": payment}


def place_for_customer(guide_id: str, body: GuideOrderRequest) -> dict[str, Any]:
    """代客下单: the guide places an order for a customer bound to them; the customer pays it
    (`payment_of`), and the guide is its promoter. Another guide's customer is not found."""
    request = OrderRequest(items=body.items, fulfillment=body.fulfillment, guide_id=guide_id)
    try:
        return _amounts_view(_place(body.member_id, request, placed_by=guide_id))
    except members.MemberGoneError as exc:
        raise _not_this_guides_customer(None) from exc


def payment_of(member_id: str, order_id: str) -> dict[str, Any]:
    """What `wx.requestPayment` takes for the member's unpaid order (one a guide placed for them, say)."""
    order = member_order(member_id, order_id)
    if order.status != PENDING_PAYMENT or order.pay_deadline <= clock.now():
        raise OrderNotPayableError()
    return {**_amounts_view(order), "payment": payment_for(order)}


def _place(member_id: str, body: OrderRequest, placed_by: str | None = None) -> Order:
    config = orders_config()
    locations = _locations(body)
    read = _Read(member_id, body, locations if body.fulfillment.mode == "delivery" else [])
    items = _items(body, read.skus)
    quantities = _quantities(items)
    launch = {item.sku.sku_id: int(item.sku.launch_shards) for item in items if catalog.is_launch(item.sku)}
    if body.fulfillment.mode == "delivery":
        likely = [store_id for store_id in locations if read.holds_everything(store_id, quantities, launch)]
        if not likely:
            raise OutOfStockError(message="no store that delivers to this address has every item")
        locations = likely
    now = clock.now()
    order_id = new_order_id(now)
    for attempt, store_id in enumerate(locations):
        quote = pricing.price(
            items, read.member.tier, body.fulfillment.mode, body.points_to_use, config,
            _coupon_discount(read.coupon, store_id) if body.coupon_id else None,
        )
        order = _order_item(order_id, read, body, store_id, quote, now)
        order.placed_by_guide = placed_by
        try:
            _write(order, quantities, launch)
            break
        except OutOfStockError:
            if attempt + 1 == len(locations):
                raise
    return order


def _give_up(order: Order) -> None:
    """No payment to offer: close the order now if WeChat Pay answers, else the sweeper will at its deadline."""
    from chalicelib.observability import logger
    from chalicelib.orders import lifecycle

    try:
        lifecycle.close_unpaid(order, "the payment could not be prepared")
    except Exception:
        logger().exception("an order without a payment is left to the sweeper", extra={"order_id": order.order_id})


def payment_for(order: Order) -> dict[str, str]:
    """What `wx.requestPayment` takes for this unpaid order (WeChat Pay answers the same prepay_id again)."""
    from chalicelib.wechat import pay

    prepay_id = pay.jsapi_prepay(
        order.order_id, description(order), int(order.payable), order.openid, order.pay_deadline
    )
    return pay.payment_params(prepay_id)


def description(order: Order) -> str:
    first = order.lines[0].title
    return first if len(order.lines) == 1 else f"{first} 等{len(order.lines)}件"


# --- Reading ------------------------------------------------------------------------------------

def find_order(order_id: str) -> Order | None:
    try:
        return Order.get(order_id, consistent_read=True)
    except Order.DoesNotExist:
        return None


def check_order_id(order_id: str) -> str:
    """An id an order could have (an out_trade_no: at most 32 characters); any other is not found."""
    if not 0 < len(order_id) <= 32:
        raise OrderNotFoundError()
    return order_id


def get_order(order_id: str) -> Order:
    found = find_order(check_order_id(order_id))
    if found is None:
        raise OrderNotFoundError()
    return found


def member_order(member_id: str, order_id: str) -> Order:
    """The member's own order; another member's is not found, as a missing one."""
    order = get_order(order_id)
    if order.member_id != member_id:
        raise OrderNotFoundError()
    return order


def _amounts_view(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.order_id,
        "status": order.status,
        "amounts": {
            "goods": int(order.goods),
            "discount": int(order.discount),
            "pointsDeduction": int(order.points_deduction),
            "delivery": int(order.delivery),
            "payable": int(order.payable),
        },
        "pointsUsed": int(order.points_used),
        "payDeadline": clock.iso(order.pay_deadline),
    }


def _courier_view(order: Order) -> dict[str, Any]:
    dispatch = order.courier
    if dispatch is None:
        return {}
    return {"courier": {
        "name": dispatch.rider_name or dispatch.courier, "phone": dispatch.rider_phone, "status": dispatch.status,
        "service": dispatch.courier, "waybillId": dispatch.waybill_id,
    }}


def order_view(order: Order, *, for_member: bool = True) -> dict[str, Any]:
    """The order as its member sees it; the store's view (`for_member=False`) leaves out the pickup code."""
    address = order.address
    return {
        **_amounts_view(order),
        "items": [
            {"skuId": line.sku_id, "title": line.title, "qty": int(line.qty),
             "unitPrice": int(line.unit_price), "unitPoints": int(line.unit_points or 0)}
            for line in order.lines
        ],
        "couponId": order.coupon_id,
        "fulfillment": {
            "mode": order.mode,
            "storeId": order.store_id,
            **({"address": {"name": address.name, "phone": masking.mask_text(address.phone), "text": address.text,
                            "lat": float(address.lat), "lng": float(address.lng)}} if address else {}),
            **({"pickupCode": order.pickup_code} if for_member and order.pickup_code else {}),
            **_courier_view(order),
        },
        "paidAt": clock.iso(order.paid_at) if order.paid_at else None,
        "completedAt": clock.iso(order.completed_at) if order.completed_at else None,
        "refund": {"amount": int(order.refund_amount), "reason": order.refund_reason or ""}
        if order.refund_amount is not None else None,
        "timeline": [
            {"status": entry.status, "at": clock.iso(entry.at), **({"note": entry.note} if entry.note else {})}
            for entry in order.timeline or []
        ],
        "createdAt": clock.iso(order.created_at),
        **({} if for_member else {"attribution": attribution_view(order)}),
    }


def attribution_view(order: Order) -> dict[str, Any]:
    return {
        "promotingGuideId": order.promoting_guide_id,
        "promotingStoreId": order.promoting_store_id,
        "placedByGuide": bool(order.placed_by_guide),
        "acquiringGuideId": order.acquiring_guide_id,
        "acquiringStoreId": order.acquiring_store_id,
        "creditedGuideId": order.credited_guide_id,
        "creditedStoreId": order.credited_store_id,
    }


def _page(index: Any, hash_name: str, hash_value: str, limit: int, cursor: dict[str, Any] | None,
          condition: Any = None, for_member: bool = True) -> dict[str, Any]:
    """A page of an index of orders, newest first; the cursor names the last order of the page before."""
    start = None
    if cursor is not None:
        after, created = cursor.get("after"), cursor.get("at")
        if not (isinstance(after, str) and isinstance(created, str)):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
        start = {"order_id": {"S": after}, hash_name: {"S": hash_value}, "created_at": {"S": created}}
    keys = list(index.query(hash_value, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start,
                            filter_condition=condition))
    more = len(keys) > limit
    page = [order for order in db.batch_get([(Order, key.order_id) for key in keys[:limit]]) if order is not None]
    last = keys[limit - 1] if more else None
    return {
        "items": [order_view(order, for_member=for_member) for order in page],
        "nextCursor": {"after": last.order_id, "at": Order.created_at.serialize(last.created_at)}
        if last is not None else None,
    }


def member_orders(member_id: str, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """The member's orders, newest first."""
    return _page(Order.by_member, "member_id", member_id, limit, cursor)


def store_orders(store_id: str, status: str | None, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """The orders whose stock the store holds (in `status`, if given), newest first; unpaid ones are not its business."""
    condition = (Order.status == status) if status else (Order.status != PENDING_PAYMENT)
    return _page(Order.by_store, "store_id", store_id, limit, cursor, condition, for_member=False)


def coupon_holders(order_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """(status, coupon id) of each of these orders that exists, in batches of 100 (the audit's)."""
    wanted = [(Order, order_id) for order_id in dict.fromkeys(order_ids)]
    return {order.order_id: (order.status, order.coupon_id) for order in db.batch_get(wanted) if order is not None}


# --- Figures ------------------------------------------------------------------------------

def _orders_on(index: Any, day: dt.date) -> list[Order]:
    """The orders a sparse per-day index (keys only) lists for a Shanghai day."""
    order_ids = sorted({key.order_id for shard in day_shards(day) for key in index.query(shard)})
    return [order for order in db.batch_get([(Order, order_id) for order_id in order_ids]) if order is not None]


def orders_paid_on(day: dt.date) -> list[Order]:
    """The orders paid on a Shanghai day (whatever happened to them since)."""
    return [order for order in _orders_on(Order.paid_on_day, day)
            if order.paid_at is not None and clock.shanghai_date(order.paid_at) == day]


def orders_refunded_on(day: dt.date) -> list[Order]:
    """The orders whose refund WeChat Pay confirmed on a Shanghai day."""
    return [order for order in _orders_on(Order.refunded_on_day, day)
            if order.refunded_at is not None and clock.shanghai_date(order.refunded_at) == day]


def paid_on(day: dt.date) -> list[dict[str, Any]]:
    """The orders paid on a Shanghai day, as plain data, by the moment they were paid.

    Each is `{orderId, paidAt, goods, payable, lines: [{skuId, title, qty, unitPrice}]}`: what the
    order was paid for, whatever happened to it since (a later refund is a figure of its own day).
    """
    paid = orders_paid_on(day)
    paid.sort(key=lambda order: (order.paid_at, order.order_id))
    return [
        {
            "orderId": order.order_id,
            "paidAt": order.paid_at,
            "goods": int(order.goods),
            "payable": int(order.payable),
            "lines": [
                {"skuId": line.sku_id, "title": line.title, "qty": int(line.qty), "unitPrice": int(line.unit_price)}
                for line in order.lines
            ],
        }
        for order in paid
    ]


def refunded_on(day: dt.date) -> list[dict[str, Any]]:
    """The refunds WeChat Pay confirmed on a Shanghai day: `{orderId, refundedAt, refundAmount}` each."""
    refunded = orders_refunded_on(day)
    refunded.sort(key=lambda order: (order.refunded_at, order.order_id))
    return [
        {"orderId": order.order_id, "refundedAt": order.refunded_at, "refundAmount": int(order.refund_amount or 0)}
        for order in refunded
    ]


@dataclasses.dataclass(frozen=True)
class OrderFact:
    """What a customer's segmentation needs of one of their orders."""

    status: str
    payable: int
    paid: bool
    mode: str
    created_at: dt.datetime
    completed_at: dt.datetime | None


def member_order_ids(member_id: str, since: dt.datetime | None = None) -> list[str]:
    """The ids of the member's orders (created since `since`), newest first."""
    condition = Order.created_at >= since if since is not None else None
    return [key.order_id for key in Order.by_member.query(member_id, condition, scan_index_forward=False)]


def member_history(member_id: str, since: dt.datetime) -> list[OrderFact]:
    """The member's orders created since `since`, newest first."""
    found = db.batch_get([(Order, order_id) for order_id in member_order_ids(member_id, since)])
    return [
        OrderFact(order.status, int(order.payable), order.paid_at is not None, order.mode, order.created_at,
                  order.completed_at)
        for order in found if order is not None
    ]
