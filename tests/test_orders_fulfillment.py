"""A paid order's goods half on the local stack, one test per path: couriers, pickup, express, reroutes, refunds.

Every test drives the deployed state machine through the API, the sandbox's
couriers and WeChat Pay, and ends checking what a person would: the order's
status and timeline, the stock, the coupon, the points and who is credited.
After every test the stock, coupon-lock and points invariants hold.
"""

from __future__ import annotations

import contextlib

import pytest

from chalicelib.orders import flow
from chalicelib.orders.fulfillment import DELIVERY, EXPRESS, PICKUP
from chalicelib.orders.models import Order
from tests.coupon_helpers import guide_token, login_member
from tests.conftest import eventually
from tests.fulfillment_helpers import (
    accepted_and_packed,
    advance,
    delivered_by_courier,
    dispatched,
    orders_configured,
    shipping_uploads,
    store_call,
    wait_until_parked,
)
from tests.order_helpers import (
    available_points,
    coupon_status,
    delivery,
    level,
    new_sku,
    new_store,
    order_status,
    pickup,
    remote_spot,
    shopper,
    stock,
)
from tests.test_orders_api import (  # noqa: F401 (members and invariants_hold are fixtures)
    coupon_for,
    invariants_hold,
    members,
    paid_and_waiting,
    sandbox_refunds,
)

pytestmark = pytest.mark.usefixtures("stack")

# The refund window closes at once unless a test needs it open: the execution then runs to its end.
CLOSED_AT_ONCE = {"refund_window_days": 0}


def levels(store_id: str, sku_id: str) -> tuple[int, int, int]:
    found = level(store_id, sku_id)
    return found["onHand"], found["reserved"], found["available"]


def statuses(order: dict) -> list[str]:
    return [entry["status"] for entry in order["timeline"]]


def shown(api, token: str, order_id: str) -> dict:
    answer = api.get(f"/orders/{order_id}", token)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ends(order_id: str, status: str = "SUCCEEDED") -> None:
    eventually(lambda: flow.execution_status(order_id) == status, what=f"the execution to end {status}")


@pytest.fixture
def configure():
    """`configure(**overrides)`: the orders configuration for the rest of the test (couriers are chosen as they are dispatched)."""
    with contextlib.ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(orders_configured(**overrides))


@pytest.fixture
def spot() -> tuple[float, float]:
    return remote_spot()


def store_near(spot: tuple[float, float], km_east: float) -> str:
    lat, lng = spot
    return new_store(lat, round(lng + km_east / 95.0, 5), radius_km=8)


def buyer(api, members: list[str], points: int = 0) -> tuple[str, str]:
    member_id, token = shopper(api, points)
    members.append(member_id)
    return member_id, token


def credited(order_id: str) -> tuple[str | None, str | None]:
    order = Order.get(order_id, consistent_read=True)
    return order.credited_store_id, order.credited_guide_id


# --- Delivery ---------------------------------------------------------------------------------

@pytest.mark.parametrize("courier", ["dada", "wechat"])
def test_a_delivery_order_goes_out_with_a_courier_and_completes_when_delivered(api, stack, members, spot, courier,
                                                                              configure):
    store = store_near(spot, 0.5)
    sku = new_sku()
    stock(store, sku, 3)
    member_id, token = buyer(api, members, points=300)
    coupon_id = coupon_for(member_id, value=500, threshold=0)
    configure(delivery_couriers=[courier], **CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1), couponId=coupon_id, pointsToUse=300))
    assert shown(api, token, order_id)["fulfillment"]["storeId"] == store

    packed = accepted_and_packed(api, store, order_id)
    assert packed["status"] == "ready" and "pickupCode" not in packed["fulfillment"]
    wait_until_parked(order_id, DELIVERY)
    [sent] = dispatched(stack, order_id)
    assert sent["courier"] == courier and sent["ref"] == f"{order_id}-1"
    advance(stack, order_id, "accepted")
    advance(stack, order_id, "picked_up")
    eventually(lambda: order_status(order_id) == "delivering", what="the parcel to be on its way")
    riding = shown(api, token, order_id)["fulfillment"]["courier"]
    assert riding["status"] == "picked_up" and riding["service"] == courier and riding["phone"]
    advance(stack, order_id, "delivered")

    order = shown(api, token, order_id)
    assert order["status"] == "completed"
    assert statuses(order) == ["pending_payment", "paid", "accepted", "ready", "ready", "delivering", "completed"]
    assert levels(store, sku) == (2, 0, 2)
    assert coupon_status(member_id, coupon_id) == "used"
    ends(order_id)
    assert available_points(member_id) > 0  # the order's points, posted as its (zero-day) window closed
    assert credited(order_id) == (store, None)
    [uploaded] = shipping_uploads(stack, Order.get(order_id).transaction_id)
    assert uploaded["logistics_type"] == 2


def test_a_courier_that_cancels_is_replaced_by_the_next_courier(api, stack, members, spot, configure):
    store = store_near(spot, 0.5)
    sku = new_sku()
    stock(store, sku, 2)
    _, token = buyer(api, members)
    configure(delivery_couriers=["dada", "wechat"], **CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1)))
    accepted_and_packed(api, store, order_id)
    dispatched(stack, order_id)
    advance(stack, order_id, "accepted")
    advance(stack, order_id, "cancelled")

    first, second = dispatched(stack, order_id, count=2)
    assert (first["courier"], first["ref"]) == ("dada", f"{order_id}-1")
    assert (second["courier"], second["ref"]) == ("wechat", f"{order_id}-2")
    delivered_by_courier(stack, order_id)
    order = shown(api, token, order_id)
    assert order["status"] == "completed" and order["fulfillment"]["courier"]["service"] == "wechat"
    assert levels(store, sku) == (1, 0, 1)
    ends(order_id)


def test_an_order_every_courier_cancels_is_refunded_with_the_goods_back_on_the_shelf(
    api, stack, members, spot, configure
):
    store = store_near(spot, 0.5)
    sku = new_sku()
    stock(store, sku, 2)
    member_id, token = buyer(api, members, points=200)
    configure(courier_dispatches=2)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1), pointsToUse=200))
    accepted_and_packed(api, store, order_id)
    dispatched(stack, order_id)
    advance(stack, order_id, "cancelled")
    dispatched(stack, order_id, count=2)
    advance(stack, order_id, "cancelled")

    eventually(lambda: order_status(order_id) == "refunded", what="the refund")
    order = shown(api, token, order_id)
    assert order["refund"]["reason"] == "no courier could deliver the order"
    assert len(sandbox_refunds(stack, order_id)) == 1
    assert levels(store, sku) == (2, 0, 2)
    assert available_points(member_id) == 200


# --- Pickup -----------------------------------------------------------------------------------

def test_a_pickup_order_is_collected_with_its_code_and_a_wrong_code_is_refused(
    api, stack, members, spot, configure
):
    store = store_near(spot, 0)
    sku = new_sku()
    stock(store, sku, 2)
    guide_id, _ = guide_token(api, store)
    _, member_id, token = login_member("shopper", scene=f"g={guide_id}")
    members.append(member_id)
    configure(**CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    packed = accepted_and_packed(api, store, order_id)
    assert "pickupCode" not in packed["fulfillment"]  # the clerk's view: the code is the member's to show
    code = shown(api, token, order_id)["fulfillment"]["pickupCode"]
    assert len(code) == 6 and code.isdigit()
    wait_until_parked(order_id, PICKUP)

    wrong = str((int(code) + 1) % 10 ** 6).zfill(6)
    refused = store_call(api, store, order_id, "pickup", pickupCode=wrong)
    assert refused.status_code == 409 and refused.json()["code"] == "WRONG_PICKUP_CODE"
    assert order_status(order_id) == "ready"
    other_store = store_near(spot, 30)
    assert store_call(api, other_store, order_id, "pickup", pickupCode=code).status_code == 404

    collected = store_call(api, store, order_id, "pickup", pickupCode=code)
    assert collected.status_code == 200, collected.text
    assert collected.json()["status"] == "completed"
    again = store_call(api, store, order_id, "pickup", pickupCode=code)
    assert again.status_code == 200 and statuses(again.json()).count("completed") == 1
    assert levels(store, sku) == (1, 0, 1)
    ends(order_id)
    assert credited(order_id) == (store, guide_id)
    [uploaded] = shipping_uploads(stack, Order.get(order_id).transaction_id)
    assert uploaded["logistics_type"] == 4


def test_a_pickup_order_never_collected_is_cancelled_and_refunded(api, stack, members, spot, configure):
    store = store_near(spot, 0)
    sku = new_sku()
    stock(store, sku, 2)
    member_id, token = buyer(api, members, points=100)
    coupon_id = coupon_for(member_id, value=300, threshold=0)
    configure(pickup_seconds=2)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1), couponId=coupon_id, pointsToUse=100))
    accepted_and_packed(api, store, order_id)
    code = shown(api, token, order_id)["fulfillment"]["pickupCode"]

    eventually(lambda: order_status(order_id) == "refunded", what="the pickup deadline and the refund")
    order = shown(api, token, order_id)
    assert order["refund"]["reason"] == "the order was not collected in time"
    assert levels(store, sku) == (2, 0, 2)
    assert coupon_status(member_id, coupon_id) == "available"
    assert available_points(member_id) == 100
    late = store_call(api, store, order_id, "pickup", pickupCode=code)
    assert late.status_code == 409 and late.json()["code"] == "ORDER_NOT_READY"


# --- Express ----------------------------------------------------------------------------------

def test_an_express_order_ships_from_the_warehouse_with_a_tracking_number(api, stack, members, spot, configure):
    sku = new_sku()
    stock("warehouse", sku, 2)
    _, token = buyer(api, members)
    configure(**CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1), mode="express"))
    accepted_and_packed(api, "warehouse", order_id)
    wait_until_parked(order_id, EXPRESS)
    tracking = eventually(lambda: (shown(api, token, order_id)["fulfillment"].get("courier") or {}).get("waybillId"),
                          what="the tracking number")
    assert shown(api, token, order_id)["fulfillment"]["courier"]["service"] == "express"
    [uploaded] = shipping_uploads(stack, Order.get(order_id).transaction_id)
    assert uploaded["logistics_type"] == 1 and uploaded["shipping_list"][0]["tracking_no"] == tracking

    advance(stack, order_id, "delivered")
    assert order_status(order_id) == "completed"
    assert levels("warehouse", sku) == (1, 0, 1)
    ends(order_id)


def test_an_express_parcel_nobody_reports_completes_at_its_deadline(api, stack, members, spot, configure):
    sku = new_sku()
    stock("warehouse", sku, 1)
    member_id, token = buyer(api, members)
    configure(express_seconds=2, **CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1), mode="express"))
    accepted_and_packed(api, "warehouse", order_id)
    eventually(lambda: order_status(order_id) == "completed", what="the express deadline")
    ends(order_id)
    assert levels("warehouse", sku) == (0, 0, 0)
    assert available_points(member_id) > 0


# --- Routing ----------------------------------------------------------------------------------

def test_a_store_that_rejects_passes_the_reservation_to_the_next_store_in_one_move(
    api, stack, members, spot, configure
):
    nearest, next_nearest = store_near(spot, 0.2), store_near(spot, 2)
    sku = new_sku()
    for store in (nearest, next_nearest):
        stock(store, sku, 2)
    _, token = buyer(api, members)
    configure(**CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1)))
    assert levels(nearest, sku) == (2, 1, 1)

    rejected = store_call(api, nearest, order_id, "reject")
    assert rejected.status_code == 200, rejected.text
    eventually(lambda: shown(api, token, order_id)["fulfillment"]["storeId"] == next_nearest, what="the reroute")
    order = shown(api, token, order_id)
    assert order["status"] == "routed"
    assert order["timeline"][-1]["note"] == f"declined by {nearest}: to {next_nearest}"
    assert levels(nearest, sku) == (2, 0, 2) and levels(next_nearest, sku) == (2, 1, 1)
    assert store_call(api, nearest, order_id, "accept").status_code == 404  # no longer that store's order

    accepted_and_packed(api, next_nearest, order_id)
    delivered_by_courier(stack, order_id)
    assert order_status(order_id) == "completed"
    assert levels(nearest, sku) == (2, 0, 2) and levels(next_nearest, sku) == (1, 0, 1)
    ends(order_id)
    assert credited(order_id) == (next_nearest, None)


def test_a_reroute_retried_by_the_execution_moves_the_order_once(api, stack, members, spot):
    from chalicelib import clock
    from chalicelib.orders import fulfillment

    stores = [store_near(spot, 0.2), store_near(spot, 2), store_near(spot, 4)]
    sku = new_sku()
    for store in stores:
        stock(store, sku, 1)
    _, token = buyer(api, members)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1)))
    asked_at = clock.now()
    assert store_call(api, stores[0], order_id, "reject").status_code == 200
    eventually(lambda: Order.get(order_id, consistent_read=True).store_id == stores[1], what="the reroute")

    fulfillment.reroute(order_id, asked_at)  # the same invocation again, as a Lambda retry would run it
    assert Order.get(order_id, consistent_read=True).store_id == stores[1]
    assert [levels(store, sku) for store in stores] == [(1, 0, 1), (1, 1, 0), (1, 0, 1)]


def test_a_store_silent_past_its_deadline_loses_the_order_to_the_next_store(api, stack, members, spot, configure):
    nearest, next_nearest = store_near(spot, 0.2), store_near(spot, 2)
    sku = new_sku()
    for store in (nearest, next_nearest):
        stock(store, sku, 1)
    _, token = buyer(api, members)
    configure(store_acceptance_seconds=2)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1)))
    eventually(lambda: shown(api, token, order_id)["fulfillment"]["storeId"] == next_nearest, what="the reroute")
    assert shown(api, token, order_id)["timeline"][-1]["note"] == f"{nearest} did not accept in time: to {next_nearest}"
    assert levels(nearest, sku) == (1, 0, 1) and levels(next_nearest, sku) == (1, 1, 0)
    accepted = store_call(api, next_nearest, order_id, "accept")
    assert accepted.status_code == 200, accepted.text


def test_when_every_store_refuses_the_warehouse_sends_it_by_express(api, stack, members, spot, configure):
    first, second = store_near(spot, 0.2), store_near(spot, 2)
    sku = new_sku()
    for location in (first, second, "warehouse"):
        stock(location, sku, 1)
    _, token = buyer(api, members)
    configure(routed_stores=2, **CLOSED_AT_ONCE)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1)))
    assert store_call(api, first, order_id, "reject").status_code == 200
    eventually(lambda: Order.get(order_id, consistent_read=True).store_id == second, what="the second store")
    wait_until_parked(order_id, flow.STORE_ACCEPTANCE)
    assert store_call(api, second, order_id, "reject").status_code == 200
    eventually(lambda: Order.get(order_id, consistent_read=True).store_id == "warehouse", what="the warehouse")

    order = shown(api, token, order_id)
    assert order["fulfillment"]["mode"] == "express"
    assert [e.get("note") for e in order["timeline"] if e["status"] == "routed"] == [
        f"declined by {first}: to {second}", f"declined by {second}: to warehouse"]
    assert levels(first, sku) == (1, 0, 1) and levels(second, sku) == (1, 0, 1) and levels("warehouse", sku) == (1, 1, 0)
    accepted_and_packed(api, "warehouse", order_id)
    dispatched(stack, order_id)
    advance(stack, order_id, "delivered")
    assert order_status(order_id) == "completed"
    assert levels("warehouse", sku) == (0, 0, 0)
    ends(order_id)


def test_an_order_nobody_can_take_is_refunded(api, stack, members, spot):
    store = store_near(spot, 0)
    sku = new_sku()
    stock(store, sku, 1)
    member_id, token = buyer(api, members, points=100)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1), pointsToUse=100))
    assert store_call(api, store, order_id, "reject").status_code == 200
    eventually(lambda: order_status(order_id) == "refunded", what="the refund")
    assert shown(api, token, order_id)["refund"]["reason"] == "no store could fulfil the order"
    assert levels(store, sku) == (1, 0, 1)
    assert available_points(member_id) == 100
    assert store_call(api, store, order_id, "accept").json()["code"] == "ORDER_NOT_WAITING"


# --- After completion -------------------------------------------------------------------------

def test_a_delivered_order_refunded_within_its_window_claws_back_its_points(api, stack, members, spot):
    store = store_near(spot, 0.5)
    sku = new_sku()
    stock(store, sku, 2)
    member_id, token = buyer(api, members, points=200)
    order_id = paid_and_waiting(api, stack, token, delivery(*spot, (sku, 1), pointsToUse=200))
    accepted_and_packed(api, store, order_id)
    delivered_by_courier(stack, order_id)
    assert order_status(order_id) == "completed"
    assert flow.execution_status(order_id) == "RUNNING"  # in its return window
    assert available_points(member_id) == 0

    refunded = api.post(f"/orders/{order_id}/refund", token, json={"reason": "不想要了"})
    assert refunded.status_code == 200, refunded.text
    eventually(lambda: order_status(order_id) == "refunded", what="the refund")
    assert available_points(member_id) == 200  # the points it spent are back; the ones it earned never arrive
    assert levels(store, sku) == (1, 0, 1)  # sold: the goods come back through the store, not the stock count
    assert len(sandbox_refunds(stack, order_id)) == 1
