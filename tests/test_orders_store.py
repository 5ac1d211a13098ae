"""The store's side of an order over HTTP on the local stack: its order list, accepting, and its deadline.

After every test the stock, coupon-lock and points invariants hold.
"""

from __future__ import annotations

import pytest

from chalicelib.orders.config import CONFIG_ENV
from chalicelib.orders.fulfillment import PACKING
from tests.appointment_helpers import staff_token
from tests.conftest import eventually
from tests.fulfillment_helpers import wait_until_parked
from tests.order_helpers import (
    available_points,
    coupon_status,
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


@pytest.fixture
def store() -> str:
    return new_store(*remote_spot())


def buyer(api, members: list[str]) -> str:
    member_id, token = shopper(api)
    members.append(member_id)
    return token


def waiting_for(api, stack, members: list[str], store: str) -> tuple[str, str, str]:
    """(buyer's token, SKU, order id) of a paid pickup order of one unit, waiting for the store (3 in stock)."""
    sku = new_sku()
    stock(store, sku, 3)
    token = buyer(api, members)
    return token, sku, paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))


def levels(store_id: str, sku_id: str) -> tuple[int, int, int]:
    found = level(store_id, sku_id)
    return found["onHand"], found["reserved"], found["available"]


def statuses(answer) -> list[str]:
    return [entry["status"] for entry in answer.json()["timeline"]]


def test_the_stores_staff_accept_a_paid_order_and_its_execution_goes_on(api, stack, members, store):
    _, sku, order_id = waiting_for(api, stack, members, store)
    clerk = staff_token(api, store)

    accepted = api.post(f"/store/orders/{order_id}/accept", clerk)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert statuses(accepted) == ["pending_payment", "paid", "accepted"]
    wait_until_parked(order_id, PACKING)  # the execution went on: it waits for the packing

    again = api.post(f"/store/orders/{order_id}/accept", clerk)
    assert again.status_code == 200 and statuses(again) == ["pending_payment", "paid", "accepted"]
    assert levels(store, sku) == (3, 1, 2)


def test_staff_of_another_store_neither_see_nor_accept_the_order(api, stack, members, store):
    _, _, order_id = waiting_for(api, stack, members, store)
    elsewhere = staff_token(api, new_store(*remote_spot()))

    refused = api.post(f"/store/orders/{order_id}/accept", elsewhere)
    assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"
    assert api.get("/store/orders", elsewhere).json()["items"] == []
    assert order_status(order_id) == "paid"


@pytest.mark.parametrize("order_id", ["o" * 33, "no-such-order"])
def test_an_order_id_no_order_has_is_not_found(api, store, order_id):
    refused = api.post(f"/store/orders/{order_id}/accept", staff_token(api, store))
    assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"


def test_a_member_cannot_accept_an_order(api, stack, members, store):
    token, _, order_id = waiting_for(api, stack, members, store)

    refused = api.post(f"/store/orders/{order_id}/accept", token)
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert order_status(order_id) == "paid"


def test_an_unpaid_order_is_not_the_stores_business(api, members, store):
    sku = new_sku()
    stock(store, sku, 3)
    order_id = api.post("/orders", buyer(api, members), json=pickup(store, (sku, 1))).json()["orderId"]
    clerk = staff_token(api, store)

    assert api.get("/store/orders", clerk).json()["items"] == []
    refused = api.post(f"/store/orders/{order_id}/accept", clerk)
    assert refused.status_code == 404
    assert order_status(order_id) == "pending_payment"


def test_a_cancelled_order_cannot_be_accepted(api, stack, members, store):
    token, sku, order_id = waiting_for(api, stack, members, store)
    assert api.post(f"/orders/{order_id}/cancel", token).status_code == 200

    refused = api.post(f"/store/orders/{order_id}/accept", staff_token(api, store))
    assert refused.status_code == 409 and refused.json()["code"] == "ORDER_NOT_WAITING"
    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")
    assert level(store, sku)["reserved"] == 0


def test_the_stores_orders_are_listed_newest_first_by_status_page_by_page(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 10)
    token = buyer(api, members)
    paid = [paid_and_waiting(api, stack, token, pickup(store, (sku, 1))) for _ in range(3)]
    clerk = staff_token(api, store)
    api.post(f"/store/orders/{paid[0]}/accept", clerk)

    seen, cursor = [], None
    while True:
        page = api.get("/store/orders", clerk, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [order["orderId"] for order in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(paid))
    waiting = api.get("/store/orders", clerk, params={"status": "paid"}).json()["items"]
    assert [order["orderId"] for order in waiting] == [paid[2], paid[1]]
    accepted = api.get("/store/orders", clerk, params={"status": "accepted"}).json()["items"]
    assert [order["orderId"] for order in accepted] == [paid[0]]

    bad = api.get("/store/orders", clerk, params={"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()["message"]


@pytest.fixture
def quick_store_deadline(monkeypatch):
    """Stores get 2 seconds to accept (the configuration's deadline, carried by each new execution)."""
    monkeypatch.setenv(CONFIG_ENV, '{"store_acceptance_seconds": 2}')
    yield
    monkeypatch.delenv(CONFIG_ENV)


def test_an_order_no_store_accepts_by_its_deadline_is_refunded_with_everything_given_back(
    api, stack, members, store, quick_store_deadline
):
    sku = new_sku()
    stock(store, sku, 3)
    member_id, token = shopper(api, 300)
    members.append(member_id)
    coupon_id = coupon_for(member_id, value=500, threshold=0)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1), couponId=coupon_id, pointsToUse=300))

    eventually(lambda: order_status(order_id) == "refunded", what="the deadline to pass and the refund to land",
               timeout=30)
    shown = api.get(f"/orders/{order_id}", token)
    assert statuses(shown) == ["pending_payment", "paid", "refunding", "refunded"]
    assert shown.json()["refund"]["reason"] == "no store could fulfil the order"  # a pickup has no other store
    assert [r["amount"]["refund"] for r in sandbox_refunds(stack, order_id)] == [shown.json()["amounts"]["payable"]]
    assert levels(store, sku) == (3, 0, 3)
    assert coupon_status(member_id, coupon_id) == "available"
    assert available_points(member_id) == 300

    late = api.post(f"/store/orders/{order_id}/accept", staff_token(api, store))
    assert late.status_code == 409 and order_status(order_id) == "refunded"
