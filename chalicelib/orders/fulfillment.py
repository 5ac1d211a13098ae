"""After payment: the location that takes the order, and its hand-over by courier, pickup or express.

    paid/routed --accept--> accepted --ready--> ready --picked up--> delivering --delivered--> completed
        |                                         |--pickup code----------------------------> completed
        | reject, or silent past its deadline     '--express parcel delivered, or its deadline-> completed
        '--> routed: the next store, then the warehouse by express, then a refund

Each move is one conditional write on the order, and the execution waiting
for it hears of it through its task token (`orders.flow`). A reroute is one
transaction: the order's new location, the old location's holds released and
the new one's reserved, so the order never holds stock at two locations, nor
at none while it is live.

Couriers report through callbacks that arrive twice, late and out of order.
`apply_report` moves a dispatch forward only (a status ranked at or below
the one recorded changes nothing but is logged), and only the order's
current dispatch: a report about one a re-dispatch replaced is stale.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from chalicelib import clock, observability, transact
from chalicelib.catalog import service as catalog
from chalicelib.catalog import stock
from chalicelib.catalog.errors import OutOfStockError, StockBusyError
from chalicelib.catalog.models import WAREHOUSE
from chalicelib.config import settings
from chalicelib.errors import SiyuError
from chalicelib.orders import lifecycle
from chalicelib.orders.config import orders_config
from chalicelib.orders.errors import (
    CourierGaveUpError,
    NothingToRouteToError,
    OrderCancelledError,
    OrderNotFoundError,
    OrderNotReadyError,
    OrderNotWaitingError,
    WrongPickupCodeError,
)
from chalicelib.orders.models import (
    ACCEPTED,
    COMPLETED,
    DELIVERING,
    PENDING_PAYMENT,
    READY,
    ROUTED,
    WAITING_FOR_STORE,
    CourierDispatch,
    Order,
)
from chalicelib.orders.service import delivery_candidates, description, find_order, get_order
from chalicelib.transact import Transaction

if TYPE_CHECKING:
    from chalicelib import couriers

__all__ = [
    "PACKING",
    "PICKUP",
    "DELIVERY",
    "EXPRESS",
    "reject",
    "reroute",
    "ready",
    "collect",
    "hand_over_step",
    "dispatch",
    "apply_report",
]

# The steps an execution waits at after acceptance (orders.flow parks their tokens).
PACKING, PICKUP, DELIVERY, EXPRESS = "packing", "pickup", "delivery", "express"
_HANDED_TO_COURIER = (READY, DELIVERING)




def _stores_order(order_id: str, store_id: str) -> Order:
    """The order, as the staff of `store_id` may see it: another location's order, or an unpaid one, is not found."""
    order = get_order(order_id)
    if order.store_id != store_id or order.status == PENDING_PAYMENT:
        raise OrderNotFoundError()
    return order


def _tell_execution(order_id: str, step: str, result: dict[str, Any]) -> None:
    from chalicelib.orders import flow

    try:
        flow.resume(order_id, step, result)
    except SiyuError:
        pass  # not parked yet: the waiting step sees the order's status when it parks


# --- The store's answer -----------------------------------------------------------------------

def reject(order_id: str, store_id: str) -> Order:
    """The store declines the order: its execution routes it on. Declining again answers the same."""
    from chalicelib.orders import flow

    now = clock.now()
    declined = lifecycle.move(
        order_id, [Order.declined_by.set(store_id), Order.updated_at.set(now)],
        Order.status.is_in(*WAITING_FOR_STORE) & (Order.store_id == store_id) & Order.declined_by.does_not_exist(),
    )
    if declined is None:
        declined = _stores_order(order_id, store_id)
        if declined.declined_by != store_id:
            raise OrderNotWaitingError("the order is not waiting for this store to accept it")
    try:
        flow.fail(order_id, flow.STORE_ACCEPTANCE, "StoreRejectedError", f"declined by {store_id}")
    except SiyuError:
        pass  # not parked yet: the waiting step sees the refusal when it parks
    return declined


class _NoLongerWaiting(Exception):
    pass


def reroute(order_id: str, asked_at: dt.datetime) -> dict[str, Any]:
    """Move the order's reservation to the next location that can fulfil it, in one transaction.

    The next store is the nearest untried one that delivers to the address and
    (by the stock index) holds everything, up to `routed_stores` stores; then
    the warehouse, by express. A pickup or express order has nowhere else to
    go. NothingToRouteToError when nothing is left (the execution refunds).
    An order routed since `asked_at` is not routed again (the same request, retried).
    """
    order = get_order(order_id)
    if order.status not in WAITING_FOR_STORE or _routed_since(order, asked_at):
        return _already_moved(order, asked_at)
    why = f"declined by {order.store_id}" if order.declined_by else f"{order.store_id} did not accept in time"
    tried = list(order.routed_to or [order.store_id])
    quantities: dict[str, int] = defaultdict(int)
    for line in order.lines:
        quantities[line.sku_id] += int(line.qty)
    skus = catalog.find_skus(quantities)
    launch = {sku_id: int(sku.launch_shards) for sku_id, sku in skus.items() if catalog.is_launch(sku)}
    holds = stock.holds_of(order_id)
    for location in _next_locations(order, tried, quantities, launch):
        now = clock.now()

        def build(txn: Transaction, location: str = location) -> None:
            txn.update(
                Order(order_id),
                [Order.store_id.set(location), Order.routed_to.set([*tried, location]), Order.status.set(ROUTED),
                 Order.routed_at.set(now),
                 Order.mode.set("express" if location == WAREHOUSE else order.mode), Order.declined_by.remove(),
                 lifecycle.step(ROUTED, now, f"{why}: to {location}"), Order.updated_at.set(now)],
                Order.status.is_in(*WAITING_FOR_STORE) & (Order.store_id == order.store_id)
                & (Order.routed_at.does_not_exist() | (Order.routed_at < asked_at)),
                label="order",
                explain=lambda old: _NoLongerWaiting(),
            )
            for hold in holds:
                stock.release_hold(txn, hold)
            stock.reserve_lines(txn, order_id, location, quantities, launch)

        try:
            transact.write(build, busy=StockBusyError, replan=bool(launch))
        except OutOfStockError:
            continue
        except _NoLongerWaiting:
            return _already_moved(get_order(order_id), asked_at)
        observability.info("order routed on", order_id=order_id, to=location, why=why)
        return {"storeId": location, "routed": True}
    raise NothingToRouteToError(f"{why}, and no other location can fulfil the order")


def _routed_since(order: Order, asked_at: dt.datetime) -> bool:
    return order.routed_at is not None and order.routed_at >= asked_at


def _already_moved(order: Order, asked_at: dt.datetime) -> dict[str, Any]:
    """What a reroute answers when the order moved without it: routed by this same request before it
    was retried, or accepted meanwhile (its wait resumes at once); a closed order is compensated."""
    if order.status in WAITING_FOR_STORE and _routed_since(order, asked_at):
        return {"storeId": order.store_id, "routed": True}
    if order.status in (ACCEPTED, READY, DELIVERING, COMPLETED):
        return {"storeId": order.store_id, "routed": False}
    raise OrderCancelledError(order.order_id)


def _next_locations(order: Order, tried: list[str], quantities: dict[str, int], launch: dict[str, int]) -> list[str]:
    if order.mode != "delivery" or order.address is None:
        return []
    locations = []
    stores_left = orders_config().routed_stores - len(tried)
    if stores_left > 0:
        with_stock = set(stock.stores_with_stock(quantities, launch))
        nearby = delivery_candidates(float(order.address.lat), float(order.address.lng), len(quantities))
        locations = [store_id for store_id in nearby if store_id not in tried and store_id in with_stock][:stores_left]
    if WAREHOUSE not in tried:
        locations.append(WAREHOUSE)
    return locations


# --- Packed, and handed over ------------------------------------------------------------------

def ready(order_id: str, store_id: str) -> Order:
    """The store has packed the order: a pickup order gets its code (and the member a message);
    a delivery or express order's execution dispatches the courier. Packed again answers the same."""
    order = _stores_order(order_id, store_id)
    now = clock.now()
    actions = [Order.status.set(READY), lifecycle.step(READY, now), Order.updated_at.set(now)]
    if order.mode == "pickup":
        actions.append(Order.pickup_code.set(f"{secrets.randbelow(10 ** 6):06d}"))
    packed = lifecycle.move(order_id, actions, (Order.status == ACCEPTED) & (Order.store_id == store_id))
    if packed is None:
        order = get_order(order_id)
        if order.status not in (READY, DELIVERING, COMPLETED):
            raise OrderNotWaitingError("only an order this store has accepted can be packed")
        return order
    order = packed
    if order.mode == "pickup":
        _send_pickup_code(order)
    _tell_execution(order_id, PACKING, {"mode": order.mode})
    return order


def _send_pickup_code(order: Order) -> None:
    from chalicelib.messaging import service as messaging

    try:
        messaging.send_once(
            f"order#{order.order_id}#pickup", order.member_id, order.openid, messaging.templates()["orderStatus"],
            {"character_string1": order.order_id, "phrase2": "待取货", "thing3": f"取货码 {order.pickup_code}"},
            page=f"pages/orders/detail?id={order.order_id}",
        )
    except Exception:  # the code is on the order page either way
        observability.logger().exception("pickup code message not sent", extra={"order_id": order.order_id})


def collect(order_id: str, store_id: str, pickup_code: str) -> Order:
    """The member collects a pickup order with its code: the order completes. Collected again answers the same."""
    from chalicelib.wechat import shipping

    order = _stores_order(order_id, store_id)
    if order.mode != "pickup":
        raise OrderNotReadyError("this order is not for pickup")
    right_code_and_ready = (Order.status == READY) & (Order.store_id == store_id) & (Order.pickup_code == pickup_code)
    if not lifecycle.complete(order, right_code_and_ready):
        current = get_order(order_id)
        if current.status == COMPLETED and current.pickup_code == pickup_code:
            return current
        if current.status != READY:
            raise OrderNotReadyError("the order is not waiting to be collected")
        raise WrongPickupCodeError()
    _tell_execution(order_id, PICKUP, {"completed": True})
    _upload_shipping(order, shipping.PICKUP)
    return get_order(order_id)


def _upload_shipping(order: Order, logistics_type: int, tracking_no: str | None = None) -> None:
    """WeChat settles a mini-program order's money only once its shipping is uploaded; a failure raises an alarm."""
    from chalicelib.wechat import shipping

    try:
        shipping.upload_shipping_info(
            order.transaction_id or "", order.openid, logistics_type, description(order), tracking_no=tracking_no,
            express_company=settings().express_delivery_id if logistics_type == shipping.EXPRESS else None,
        )
    except Exception:
        observability.alarm("ShippingInfoNotUploaded", "shipping information not uploaded to WeChat",
                            order_id=order.order_id)


# --- Couriers ---------------------------------------------------------------------------------

def hand_over_step(order: Order) -> str:
    return EXPRESS if order.mode == "express" else DELIVERY


def dispatch(order_id: str) -> dict[str, Any]:
    """The packed order's courier: its current dispatch if it is live, else the next one.

    Replay-safe: a dispatch is recorded on the order before the courier is
    called, under its own `ref`, and a live one is asked about before it is
    sent again. CourierGaveUpError once every dispatch allowed was cancelled.
    """
    from chalicelib import couriers

    order = get_order(order_id)
    if order.status == COMPLETED:
        return {"completed": True}
    if order.status not in _HANDED_TO_COURIER:
        raise OrderCancelledError(order_id)
    current = order.courier
    if current is not None and current.status != couriers.CANCELLED:
        adapter = couriers.courier(current.courier)
        if current.waybill_id is None and adapter.query(current.ref) is None:
            _record_waybill(order, current, adapter.dispatch(_parcel(order, current.ref)))
        return {"ref": current.ref}
    attempt = int(current.attempt) + 1 if current is not None else 1
    if attempt > orders_config().courier_dispatches:
        raise CourierGaveUpError(f"{attempt - 1} dispatches cancelled")
    name = "express" if order.mode == "express" else orders_config().courier_for(attempt)
    now = clock.now()
    fresh = CourierDispatch(courier=name, ref=f"{order_id}-{attempt}", attempt=attempt, status="dispatched",
                            status_at=now)
    previous = (Order.courier.attempt == attempt - 1) if current is not None else Order.courier.does_not_exist()
    if not lifecycle.move(order_id, [Order.courier.set(fresh), lifecycle.step(order.status, now, f"{name} dispatched"),
                                     Order.updated_at.set(now)],
                          Order.status.is_in(*_HANDED_TO_COURIER) & previous):
        return dispatch(order_id)  # another run of this step recorded it first
    _record_waybill(order, fresh, couriers.courier(name).dispatch(_parcel(order, fresh.ref)))
    return {"ref": fresh.ref}


def _record_waybill(order: Order, current: CourierDispatch, waybill: couriers.Waybill) -> None:
    from chalicelib.wechat import shipping

    lifecycle.move(order.order_id, [Order.courier.waybill_id.set(waybill.waybill_id)], Order.courier.ref == current.ref)
    if int(current.attempt) == 1:  # the goods leave the store once, whatever the re-dispatches
        if current.courier == "express":
            _upload_shipping(order, shipping.EXPRESS, tracking_no=waybill.waybill_id)
        else:
            _upload_shipping(order, shipping.SAME_CITY)


def _parcel(order: Order, ref: str) -> couriers.Parcel:
    from chalicelib import couriers
    from chalicelib.stores import service as stores

    if order.store_id == WAREHOUSE:
        warehouse = orders_config().warehouse
        sender = couriers.Place(warehouse.name, warehouse.phone, warehouse.address, warehouse.lat, warehouse.lng)
    else:
        store = stores.find_store(order.store_id)
        sender = couriers.Place(store.name, store.phone or "", store.address, store.lat, store.lng)
    address = order.address
    if address is None:
        raise OrderNotReadyError("the order has no address to deliver to")
    receiver = couriers.Place(address.name, address.phone, address.text, float(address.lat), float(address.lng))
    return couriers.Parcel(ref=ref, order_id=order.order_id, shop_no=order.store_id, sender=sender, receiver=receiver,
                           value_fen=int(order.goods), description=description(order), openid=order.openid)


def apply_report(report: couriers.Report) -> str:
    """A courier's (verified or confirmed) word on a dispatch: `applied`, `late` or `stale`; each status once, forward only."""
    from chalicelib import couriers
    from chalicelib.orders import flow

    order_id = report.ref.split("-", 1)[0]
    order = find_order(order_id)
    current = order.courier if order is not None else None
    if order is None or current is None or current.ref != report.ref or current.courier != report.courier:
        observability.info("courier report about no current dispatch", ref=report.ref, courier=report.courier, status=report.status)
        return "stale"
    now = clock.now()
    this_dispatch = Order.courier.ref == report.ref
    rider = [Order.courier.rider_name.set(report.rider_name), Order.courier.rider_phone.set(report.rider_phone)] \
        if report.rider_name else []
    courier_moves = [Order.courier.status.set(report.status), Order.courier.status_at.set(report.at), *rider]
    step = hand_over_step(order)
    if report.status == couriers.CANCELLED:
        still_out = this_dispatch & Order.courier.status.is_in(*couriers.FORWARD[:-1])
        if not lifecycle.move(order_id, [*courier_moves, Order.status.set(READY),
                                         lifecycle.step(READY, now, f"{report.courier} cancelled"),
                                         Order.updated_at.set(now)],
                              still_out & Order.status.is_in(*_HANDED_TO_COURIER)):
            return _late(report, current)
        try:
            flow.fail(order_id, step, "CourierCancelledError", f"{report.courier} {report.code}")
        except SiyuError:
            pass  # the dispatch step, when it runs, sees the cancelled dispatch and sends the next
        return "applied"
    earlier = couriers.FORWARD[:couriers.rank(report.status)]
    if not earlier:
        return _late(report, current)
    moving_forward = this_dispatch & Order.courier.status.is_in(*earlier)
    if report.status == "delivered":
        if not lifecycle.complete(order, moving_forward & Order.status.is_in(*_HANDED_TO_COURIER), courier_moves):
            return _late(report, current)
        _tell_execution(order_id, step, {"completed": True})
        return "applied"
    actions = [*courier_moves, Order.updated_at.set(now)]
    if report.status == "picked_up":
        actions += [Order.status.set(DELIVERING), lifecycle.step(DELIVERING, now, report.courier)]
    if not lifecycle.move(order_id, actions, moving_forward & Order.status.is_in(*_HANDED_TO_COURIER)):
        return _late(report, current)
    return "applied"


def _late(report: couriers.Report, current: CourierDispatch) -> str:
    observability.info("courier report late or repeated: recorded, not applied", ref=report.ref, courier=report.courier,
         status=report.status, code=report.code, at=clock.iso(report.at), current=current.status)
    observability.count("CourierReportLate")
    return "late"
