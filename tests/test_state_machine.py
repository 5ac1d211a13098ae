"""The order state machine runs offline: moto executes infra/order.asl.json, its
Lambda tasks run app.py's handlers in this process, against DynamoDB Local."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.aws import stepfunctions
from chalicelib.errors import UpstreamUnavailableError
from chalicelib.orders import flow
from chalicelib.orders.errors import OrderNotWaitingError
from chalicelib.orders.models import TaskToken
from chalicelib.orders.config import orders_config
from chalicelib.orders.fulfillment import DELIVERY, PACKING, PICKUP
from tests.conftest import eventually, unique
from tests.fulfillment_helpers import orders_configured, parked_at

pytestmark = pytest.mark.usefixtures("stack")

DONE = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def parked_token(order_id: str) -> TaskToken | None:
    return next(iter(TaskToken.query(order_id, TaskToken.step == flow.STORE_ACCEPTANCE, consistent_read=True)), None)


def finished(execution_arn: str) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        described = stepfunctions().describe_execution(executionArn=execution_arn)
        return described if described["status"] in DONE else None

    return eventually(status, what=f"{execution_arn} to finish")


def resume_when_parked(order_id: str, step: str, result: dict[str, Any]) -> None:
    eventually(lambda: parked_at(order_id, step), what=f"the execution to wait at {step}")
    flow.resume(order_id, step, result)


def history(execution_arn: str) -> list[dict[str, Any]]:
    return stepfunctions().get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


def entered_states(events: list[dict[str, Any]]) -> list[str]:
    return [event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event]


def task_outputs(events: list[dict[str, Any]]) -> list[Any]:
    return [
        json.loads(event["taskSucceededEventDetails"]["output"])
        for event in events
        if event["type"] == "TaskSucceeded"
    ]


class PermanentTaskError(Exception):
    """A failure no retry mends."""


@pytest.fixture
def tasks(monkeypatch) -> dict[str, list[Any]]:
    """The tasks that move orders replaced by recorders, so these tests see the machine alone (orders are
    tested end to end); the waits park their tokens as deployed. Refund windows close at once."""
    calls: dict[str, list[Any]] = {"settle": [], "reroute": [], "dispatch": [], "complete": [], "close": [],
                                   "compensate": []}

    def recorder(name: str, answer: dict[str, Any]) -> Any:
        def task(event: dict[str, Any]) -> dict[str, Any]:
            calls[name].append(event["orderId"])
            return {"orderId": event["orderId"], **answer}

        return task

    def parking(name: str) -> Any:
        def task(event: dict[str, Any]) -> dict[str, Any]:
            calls[name].append(event["step"])
            flow.park(event["orderId"], event["step"], event["taskToken"])
            return {"orderId": event["orderId"], "parked": event["step"]}

        return task

    def compensate(event: dict[str, Any]) -> dict[str, Any]:
        calls["compensate"].append((event.get("error") or {}).get("Error"))
        return {"orderId": event["orderId"], "status": "refunding"}

    monkeypatch.setattr(flow, "settle_payment", recorder("settle", {"settled": True}))
    monkeypatch.setattr(flow, "reroute", parking("reroute"))
    monkeypatch.setattr(flow, "complete_unreported", recorder("complete", {"completed": True}))
    monkeypatch.setattr(flow, "close_refund_window", recorder("close", {"closed": True}))
    monkeypatch.setattr(flow, "dispatch_courier", parking("dispatch"))
    monkeypatch.setattr(flow, "compensate", compensate)
    with orders_configured(refund_window_days=0):
        yield calls


def test_a_paid_order_waits_for_its_store_its_packing_and_its_pickup_then_closes_its_refund_window(tasks):
    order_id = unique("order")
    execution_arn = flow.start(order_id)
    assert execution_arn == flow.execution_arn(order_id)

    token = eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    running = stepfunctions().describe_execution(executionArn=execution_arn)
    assert running["status"] == "RUNNING" and running["name"] == order_id
    assert json.loads(running["input"]) == {"orderId": order_id, "deadlines": orders_config().deadlines()}

    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True, "storeId": "s-1"})
    resume_when_parked(order_id, PACKING, {"mode": "pickup"})
    resume_when_parked(order_id, PICKUP, {"completed": True})

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["settlement"]["result"] == {"orderId": order_id, "settled": True}
    assert output["acceptance"] == {"accepted": True, "storeId": "s-1"}
    events = history(execution_arn)
    assert entered_states(events) == [
        "SettlePayment", "AwaitStore", "AwaitPacking", "HandOver", "AwaitPickup", "ReturnWindow", "CloseRefundWindow",
    ]
    # The task's output in the history is what app.order_settle_payment answered.
    assert task_outputs(events)[0]["Payload"] == {"orderId": order_id, "settled": True}
    assert token.token and parked_token(order_id) is None
    assert tasks["settle"] == tasks["close"] == [order_id] and tasks["compensate"] == []


def test_starting_the_same_order_twice_runs_one_execution(tasks):
    order_id = unique("order")
    first = flow.start(order_id)
    second = flow.start(order_id)
    assert first == second
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    assert tasks["settle"] == [order_id]


def test_a_rejection_or_a_silent_store_reroutes_and_waits_for_the_next_store(tasks):
    order_id = unique("order")
    with orders_configured(store_acceptance_seconds=1, refund_window_days=0):
        execution_arn = flow.start(order_id)
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    flow.fail(order_id, flow.STORE_ACCEPTANCE, "StoreRejectedError", "declined by s-1")
    eventually(lambda: len(tasks["reroute"]) >= 2, what="a rejection and a timeout, each rerouted")

    def accepted() -> bool:
        # The store's 1 s deadline may pass as it answers: the answer is refused, or taken by the wait that
        # just timed out and dropped, and the store answers the next wait.
        try:
            flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
        except OrderNotWaitingError:
            return False
        try:
            eventually(lambda: parked_at(order_id, PACKING), timeout=3.0, what="packing")
        except AssertionError:
            return False
        return True

    eventually(accepted, timeout=60.0, what="an acceptance in time")
    flow.resume(order_id, PACKING, {"mode": "delivery"})
    resume_when_parked(order_id, DELIVERY, {"completed": True})

    assert finished(execution_arn)["status"] == "SUCCEEDED"
    states = entered_states(history(execution_arn))
    assert states[:5] == ["SettlePayment", "AwaitStore", "Reroute", "RouteAgain", "Reroute"]
    assert states[-5:] == ["AwaitPacking", "HandOver", "AwaitDelivery", "ReturnWindow", "CloseRefundWindow"]
    assert tasks["compensate"] == []


def test_a_courier_cancellation_dispatches_again_and_a_dispatch_that_gives_up_is_compensated(tasks):
    order_id = unique("order")
    execution_arn = flow.start(order_id)
    resume_when_parked(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
    resume_when_parked(order_id, PACKING, {"mode": "delivery"})
    eventually(lambda: parked_at(order_id, DELIVERY), what="the first dispatch")
    flow.fail(order_id, DELIVERY, "CourierCancelledError", "dada 5")
    eventually(lambda: len(tasks["dispatch"]) == 2 and parked_at(order_id, DELIVERY), what="the second dispatch")
    flow.fail(order_id, DELIVERY, "CourierGaveUpError", "2 dispatches cancelled")

    assert finished(execution_arn)["status"] == "SUCCEEDED"
    assert entered_states(history(execution_arn))[-5:] == [
        "AwaitDelivery", "DispatchAgain", "AwaitDelivery", "Compensate", "Refunding"]
    assert tasks["compensate"] == ["CourierGaveUpError"]


def test_an_express_parcel_past_its_deadline_is_completed_and_a_pickup_past_its_deadline_compensated(tasks):
    express, collected_never = unique("order"), unique("order")
    with orders_configured(express_seconds=1, pickup_seconds=1, refund_window_days=0):
        runs = {order_id: flow.start(order_id) for order_id in (express, collected_never)}
    for order_id, mode in ((express, "express"), (collected_never, "pickup")):
        resume_when_parked(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
        resume_when_parked(order_id, PACKING, {"mode": mode})

    assert finished(runs[express])["status"] == "SUCCEEDED"
    assert entered_states(history(runs[express]))[-4:] == [
        "AwaitExpress", "CompleteUnreported", "ReturnWindow", "CloseRefundWindow"]
    assert tasks["complete"] == [express]
    assert finished(runs[collected_never])["status"] == "SUCCEEDED"
    assert entered_states(history(runs[collected_never]))[-3:] == ["AwaitPickup", "Compensate", "Refunding"]
    assert tasks["compensate"] == ["States.Timeout"]


def test_a_settlement_that_cannot_succeed_is_caught_and_compensated(tasks, monkeypatch):
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise PermanentTaskError("the coupon is gone")

    monkeypatch.setattr(flow, "settle_payment", broken)
    order_id = unique("order")
    execution_arn = flow.start(order_id)

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["error"]["Error"] == "PermanentTaskError"
    assert output["compensation"]["result"] == {"orderId": order_id, "status": "refunding"}
    events = history(execution_arn)
    assert entered_states(events) == ["SettlePayment", "Compensate", "Refunding"]
    failures = [event["taskFailedEventDetails"] for event in events if event["type"] == "TaskFailed"]
    assert [failure["error"] for failure in failures] == ["PermanentTaskError"]
    assert json.loads(failures[0]["cause"])["errorMessage"] == "the coupon is gone"
    assert tasks["compensate"] == ["PermanentTaskError"] and parked_token(order_id) is None


def test_a_transient_failure_is_retried_and_the_order_goes_on(tasks, monkeypatch):
    calls: list[str] = []
    recorded = flow.settle_payment

    def flaky(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["orderId"])
        if len(calls) == 1:
            raise UpstreamUnavailableError()
        return recorded(event)

    monkeypatch.setattr(flow, "settle_payment", flaky)
    order_id = unique("order")
    execution_arn = flow.start(order_id)

    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    assert calls == [order_id, order_id]
    failed = [e["taskFailedEventDetails"]["error"] for e in history(execution_arn) if e["type"] == "TaskFailed"]
    assert failed == ["UpstreamUnavailableError"]
    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
    eventually(lambda: parked_at(order_id, PACKING), what="the execution to go on")


def test_a_cancellation_sent_as_task_failure_takes_the_compensation_path(tasks):
    order_id = unique("order")
    execution_arn = flow.start(order_id)
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")

    flow.fail(order_id, flow.STORE_ACCEPTANCE, "OrderCancelledError", "cancelled by the member")

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["error"]["Error"] == "OrderCancelledError"
    assert entered_states(history(execution_arn)) == ["SettlePayment", "AwaitStore", "Compensate", "Refunding"]
    assert tasks["compensate"] == ["OrderCancelledError"]


def test_resuming_an_order_that_is_not_waiting_is_refused():
    with pytest.raises(OrderNotWaitingError):
        flow.resume(unique("order"), flow.STORE_ACCEPTANCE, {"accepted": True})
