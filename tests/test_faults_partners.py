"""WeChat Pay and the couriers failing under a paid order: the order still ends completed or compensated.

The sandbox plays the outage (local/outages.py): a 5xx in the partner's own
shape, or an answer so slow the client gives up after the partner did the
work. Every order here is driven through the API and the deployed state
machine, and ends checked as a person would: its status and timeline, the
riders sent, the refunds made, the stock, coupon and points. After every test
the stock, coupon-lock and points invariants hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from chalicelib import clock
from chalicelib.orders.config import orders_config
from chalicelib.orders.fulfillment import DELIVERY
from tests.conftest import eventually
from tests.fulfillment_helpers import accepted_and_packed, delivered_by_courier, dispatches, orders_configured, parked_at
from tests.order_helpers import available_points, coupon_status, order_status
from tests.order_fault_helpers import Shop, ended, failing, statuses, task_failures
from tests.test_orders_api import (  # noqa: F401 (members and invariants_hold are fixtures)
    invariants_hold,
    members,
    paid_and_waiting,
    pay,
    sandbox_refunds,
    sweep,
)

pytestmark = pytest.mark.usefixtures("stack")

DELIVERED = ["pending_payment", "paid", "accepted", "ready", "ready", "delivering", "completed"]


@pytest.fixture
def outage(stack):
    """`outage(service, kind, times=None, path="")`: the sandbox fails that way until the test ends."""

    def begin(service: str, kind: str, times: int | None = None, path: str = "") -> None:
        body: dict[str, Any] = {"service": service, "kind": kind, "path": path}
        if times is not None:
            body["times"] = times
        answer = requests.post(f"{stack.sandbox_url}/sandbox/outage", json=body, timeout=10)
        assert answer.status_code == 200, answer.text

    yield begin
    end_outages(stack)


def end_outages(stack) -> None:
    assert requests.delete(f"{stack.sandbox_url}/sandbox/outage", timeout=10).status_code == 200


@pytest.fixture
def shop(api, members) -> Shop:
    with orders_configured(refund_window_days=0, delivery_couriers=["dada"]):
        yield Shop(api, members)


def packed_delivery(shop: Shop, stack) -> str:
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.delivery_order())
    accepted_and_packed(shop.api, shop.store, order_id)
    return order_id


# --- Couriers ----------------------------------------------------------------------------------

def test_a_courier_api_answering_5xx_is_asked_again_and_the_order_delivered(shop, stack, outage):
    outage("dada", "unavailable", times=2, path="/api/order/addOrder")
    order_id = packed_delivery(shop, stack)
    delivered_by_courier(stack, order_id)
    shop.assert_completed(order_id, DELIVERED)
    assert task_failures(order_id) == ["UpstreamUnavailableError"] * 2
    assert len(dispatches(stack, order_id)) == 1


def test_a_courier_api_too_slow_to_answer_sends_one_rider_not_two(shop, stack, outage):
    outage("dada", "slow", times=1, path="/api/order/addOrder")
    order_id = packed_delivery(shop, stack)
    # The dispatch that timed out is retried, asks Dada about its ref, and finds the rider it sent.
    eventually(lambda: task_failures(order_id) == ["UpstreamUnavailableError"] and parked_at(order_id, DELIVERY),
               timeout=60, what="the retried dispatch")
    delivered_by_courier(stack, order_id)
    shop.assert_completed(order_id, DELIVERED)
    [sent] = dispatches(stack, order_id)
    assert sent["ref"] == f"{order_id}-1"


def test_a_courier_api_down_for_good_refunds_the_packed_order(shop, stack, outage):
    outage("dada", "unavailable")
    order_id = packed_delivery(shop, stack)
    shop.assert_compensated(order_id, stack)
    assert task_failures(order_id) == ["UpstreamUnavailableError"] * 5
    assert dispatches(stack, order_id) == []


# --- WeChat Pay -----------------------------------------------------------------------------------

def test_refunds_answering_5xx_are_asked_again_and_refund_once(shop, stack, outage):
    outage("wxpay", "unavailable", times=3, path="/v3/refund/")  # three of Compensate's seven attempts
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, "RuntimeError"):
        pay(stack, order_id)
        shop.assert_compensated(order_id, stack)
    assert len(sandbox_refunds(stack, order_id)) == 1


def test_a_refund_whose_answer_is_lost_is_asked_again_under_the_same_number(shop, stack, outage):
    outage("wxpay", "slow", times=1, path="/v3/refund/")
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, "RuntimeError"):
        pay(stack, order_id)
        shop.assert_compensated(order_id, stack)
    refunds = sandbox_refunds(stack, order_id)
    assert len(refunds) == 1 and refunds[0]["amount"]["refund"] == refunds[0]["amount"]["total"]


def test_refunds_down_past_every_retry_are_finished_by_the_sweeper_when_wechat_pay_is_back(shop, stack, outage, api):
    outage("wxpay", "unavailable", path="/v3/refund/")
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, "RuntimeError"):
        pay(stack, order_id)
        ended(order_id, "FAILED")  # Compensate gave up; its end compensated again, and failed too
    assert order_status(order_id) == "refunding"
    assert shop.stock_levels() == (2, 0)  # everything given back before the money
    assert sandbox_refunds(stack, order_id) == []

    end_outages(stack)
    later = clock.now() + dt.timedelta(seconds=orders_config().refund_grace_seconds + 1)
    assert sweep(stack, later)["refund_requested"] >= 1
    shop.assert_compensated(order_id, stack)
    assert statuses(api, shop.token, order_id)[-2:] == ["refunding", "refunded"]


@pytest.mark.parametrize("kind", ["unavailable", "slow"])
def test_an_order_whose_payment_wechat_pay_cannot_offer_is_refused_and_takes_nothing(shop, stack, outage, kind):
    outage("wxpay", kind, path="/v3/pay/transactions/jsapi")
    answer = shop.api.post("/orders", shop.token, json=shop.pickup_order())
    assert answer.status_code == 503 and answer.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert shop.stock_levels() == (2, 0)
    assert coupon_status(shop.member_id, shop.coupon_id) == "available"
    assert available_points(shop.member_id) == 300

    end_outages(stack)
    order_id = shop.placed(shop.pickup_order())  # the member tries again once WeChat Pay answers
    assert order_status(order_id) == "pending_payment" and shop.stock_levels() == (2, 1)
