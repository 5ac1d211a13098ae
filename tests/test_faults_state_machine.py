"""Lambda failing under the order's execution, at every step: every order ends completed or compensated.

The deployed state machine runs real orders through the API and the sandbox;
`failing_invocations` makes one task function's invocations for one order fail
as Lambda can: refused by the service (`Lambda.ServiceException`,
`Lambda.TooManyRequestsException`), timed out after doing its work
(`Sandbox.Timedout`), or crashed. Transient failures are retried and the order
completes, each status once in its timeline; failures no retry mends compensate
it: refunded, the stock, coupon and points back. A compensation that keeps
failing ends the execution failed, and that end compensates the order. After
every test the stock, coupon-lock and points invariants hold.
"""

from __future__ import annotations

import pytest

from chalicelib.aws import stepfunctions
from chalicelib.config import settings
from chalicelib.orders import flow
from chalicelib.orders.fulfillment import DELIVERY
from chalicelib.orders.models import Order
from local.aws import FUNCTION_CRASH, LAMBDA_SERVICE_ERROR, LAMBDA_THROTTLED
from tests.conftest import eventually
from tests.fulfillment_helpers import (
    accepted_and_packed,
    collected,
    delivered_by_courier,
    dispatches,
    orders_configured,
    parked_at,
    store_call,
    wait_until_parked,
)
from tests.order_fault_helpers import (
    COMPLETED_PICKUP,
    TRANSIENT,
    Shop,
    ended,
    failing,
    refund_reason,
    statuses,
    task_failures,
)
from tests.order_helpers import available_points, delivery, level, new_sku, new_store, order_status, stock
from tests.test_orders_api import invariants_hold, members, paid_and_waiting, pay  # noqa: F401

pytestmark = pytest.mark.usefixtures("stack")

@pytest.fixture
def shop(api, members) -> Shop:
    with orders_configured(refund_window_days=0):
        yield Shop(api, members)


def collect(shop: Shop, order_id: str) -> None:
    collected(shop.api, shop.store, order_id)


def order_store(order_id: str) -> str:
    return Order.get(order_id, consistent_read=True).store_id


# --- Transient failures are retried: the order completes -----------------------------------------

@pytest.mark.parametrize("task", ["order_settle_payment", "order_notify_store", "order_await",
                                  "order_close_refund_window"])
def test_a_task_failing_transiently_is_retried_and_the_pickup_order_completes(shop, stack, task):
    order_id = shop.placed(shop.pickup_order())
    with failing(task, order_id, list(TRANSIENT)):
        pay(stack, order_id)
        wait_until_parked(order_id, flow.STORE_ACCEPTANCE)
        collect(shop, order_id)
        shop.assert_completed(order_id)
    assert task_failures(order_id) == ["Lambda.ServiceException", "Sandbox.Timedout",
                                       "Lambda.TooManyRequestsException"]


def test_a_courier_dispatch_failing_transiently_is_retried_and_the_order_is_delivered(shop, stack):
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.delivery_order())
    with failing("order_dispatch_courier", order_id, list(TRANSIENT)):
        accepted_and_packed(shop.api, shop.store, order_id)
        wait_until_parked(order_id, DELIVERY)
        delivered_by_courier(stack, order_id)
        shop.assert_completed(order_id, ["pending_payment", "paid", "accepted", "ready", "ready", "delivering",
                                         "completed"])
    assert len(task_failures(order_id)) == 3
    # The dispatch that timed out after sending its courier was not sent twice: the retry found it.
    assert len(dispatches(stack, order_id)) == 1


def test_a_reroute_failing_transiently_is_retried_and_the_next_store_takes_the_order(shop, stack):
    lat, lng = shop.spot
    second = new_store(lat, round(lng + 2 / 95.0, 5), radius_km=8)
    stock(second, shop.sku, 2)
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.delivery_order())
    assert order_store(order_id) == shop.store
    with failing("order_reroute", order_id, list(TRANSIENT)):
        assert store_call(shop.api, shop.store, order_id, "reject").status_code == 200
        eventually(lambda: order_store(order_id) == second and parked_at(order_id, flow.STORE_ACCEPTANCE),
                   what="the next store's wait")
        accepted_and_packed(shop.api, second, order_id)
        delivered_by_courier(stack, order_id)
    ended(order_id, "SUCCEEDED")
    assert order_status(order_id) == "completed"
    assert shop.stock_levels() == (2, 0)
    assert (level(second, shop.sku)["onHand"], level(second, shop.sku)["reserved"]) == (1, 0)
    # The retried reroute (one of them after it had moved the order) moved it once.
    assert statuses(shop.api, shop.token, order_id).count("routed") == 1
    assert task_failures(order_id) == ["StoreRejectedError", "Lambda.ServiceException", "Sandbox.Timedout",
                                       "Lambda.TooManyRequestsException"]


def test_an_unreported_express_parcel_whose_completion_fails_transiently_still_completes(shop, stack):
    sku = new_sku()
    stock("warehouse", sku, 1)
    with orders_configured(express_seconds=2):
        order_id = paid_and_waiting(shop.api, stack, shop.token, delivery(*shop.spot, (sku, 1), mode="express"))
    with failing("order_complete", order_id, list(TRANSIENT)):
        accepted_and_packed(shop.api, "warehouse", order_id)
        ended(order_id, "SUCCEEDED")
    assert order_status(order_id) == "completed"
    assert statuses(shop.api, shop.token, order_id).count("completed") == 1
    assert (level("warehouse", sku)["onHand"], level("warehouse", sku)["reserved"]) == (0, 0)
    assert task_failures(order_id) == ["Lambda.ServiceException", "Sandbox.Timedout",
                                       "Lambda.TooManyRequestsException"]


def test_a_compensation_failing_transiently_is_retried_and_the_order_refunded(shop, stack):
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, FUNCTION_CRASH), \
            failing("order_compensate", order_id, list(TRANSIENT)):
        pay(stack, order_id)
        shop.assert_compensated(order_id, stack)  # refunded by the attempt that timed out after its work
        ended(order_id, "SUCCEEDED")
    assert task_failures(order_id) == ["RuntimeError", "Lambda.ServiceException", "Sandbox.Timedout",
                                       "Lambda.TooManyRequestsException"]


# --- Failures no retry mends: the order is compensated ---------------------------------------------

@pytest.mark.parametrize("fault", [FUNCTION_CRASH, LAMBDA_SERVICE_ERROR])
def test_a_payment_that_cannot_be_settled_is_refunded_with_everything_given_back(shop, stack, fault):
    order_id = shop.placed(shop.pickup_order())
    with failing("order_settle_payment", order_id, fault):
        pay(stack, order_id)
        shop.assert_compensated(order_id, stack)
    ended(order_id, "SUCCEEDED")
    failures = task_failures(order_id)
    assert failures == ([fault] if fault == FUNCTION_CRASH else [f"Lambda.{fault}"] * 5)


def test_a_store_that_cannot_be_told_of_the_order_refunds_it(shop, stack, api):
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, FUNCTION_CRASH):
        pay(stack, order_id)
        shop.assert_compensated(order_id, stack)
    assert refund_reason(api, shop.token, order_id) == "the order could not go on (RuntimeError)"


def test_a_packing_wait_that_cannot_be_started_refunds_the_accepted_order(shop, stack):
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.pickup_order())
    with failing("order_await", order_id, FUNCTION_CRASH):
        assert store_call(shop.api, shop.store, order_id, "accept").status_code == 200
        shop.assert_compensated(order_id, stack)
    assert "accepted" in statuses(shop.api, shop.token, order_id)


def test_a_courier_that_can_never_be_dispatched_refunds_the_packed_order(shop, stack):
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.delivery_order())
    with failing("order_dispatch_courier", order_id, LAMBDA_THROTTLED):
        accepted_and_packed(shop.api, shop.store, order_id)
        shop.assert_compensated(order_id, stack)
    assert task_failures(order_id) == ["Lambda.TooManyRequestsException"] * 5
    assert dispatches(stack, order_id) == []


def test_a_compensation_that_keeps_failing_ends_the_execution_and_its_end_refunds_the_order(shop, stack):
    order_id = shop.placed(shop.pickup_order())
    with failing("order_notify_store", order_id, FUNCTION_CRASH), \
            failing("order_compensate", order_id, LAMBDA_SERVICE_ERROR):
        pay(stack, order_id)
        ended(order_id, "FAILED")
        shop.assert_compensated(order_id, stack)
    assert task_failures(order_id) == ["RuntimeError"] + ["Lambda.ServiceException"] * 7
    described = stepfunctions().describe_execution(executionArn=flow.execution_arn(order_id))
    assert described["error"] == "CompensationFailed"


def test_a_refund_window_that_cannot_close_leaves_the_completed_order_to_the_sweeper(shop, stack, api):
    from tests.test_orders_api import sweep
    from chalicelib import clock

    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.pickup_order())
    with failing("order_close_refund_window", order_id, FUNCTION_CRASH):
        collect(shop, order_id)
        ended(order_id, "FAILED")
    assert order_status(order_id) == "completed"  # its end left the completed order alone
    assert available_points(shop.member_id) == 0
    assert sweep(stack, clock.now())["points_posted"] >= 1
    assert available_points(shop.member_id) > 0
    assert statuses(api, shop.token, order_id) == COMPLETED_PICKUP


def test_the_end_of_another_machine_or_of_a_succeeded_execution_changes_nothing(shop, stack):
    import app

    [rule] = [source for source in app.app.event_sources if source.name == "order_execution_ended"]
    assert tuple(rule.event_pattern["detail"]["status"]) == flow.ENDED_UNFINISHED
    order_id = paid_and_waiting(shop.api, stack, shop.token, shop.pickup_order())
    arn = flow.execution_arn(order_id)
    detail = {"executionArn": arn, "name": order_id, "status": "FAILED",
              "stateMachineArn": arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0] + "-other"}
    assert flow.execution_ended({"detail": detail}) == {"ignored": True}
    assert flow.execution_ended({"detail": {**detail, "stateMachineArn": settings().state_machine_arn,
                                            "status": "SUCCEEDED"}}) == {"ignored": True}
    assert flow.execution_ended({"detail": "nonsense"}) == {"ignored": True}
    assert order_status(order_id) == "paid"
    collect(shop, order_id)
    shop.assert_completed(order_id)
    # An end announced twice (EventBridge delivers at least once) of a completed order changes nothing.
    assert flow.execution_ended({"detail": {**detail, "stateMachineArn": settings().state_machine_arn}})["status"] \
        == "completed"
