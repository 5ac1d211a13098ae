"""The order state machine runs offline: moto executes infra/order.asl.json, its
Lambda tasks run app.py's handlers in this process, against DynamoDB Local."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.aws import stepfunctions
from chalicelib.errors import UpstreamUnavailableError
from chalicelib.orders import flow
from chalicelib.orders.errors import OrderNotWaitingError, OutOfStockError
from chalicelib.orders.models import TaskToken
from tests.conftest import unique

pytestmark = pytest.mark.usefixtures("stack")

DONE = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def parked_token(order_id: str) -> TaskToken | None:
    return next(iter(TaskToken.query(order_id, TaskToken.step == flow.STORE_ACCEPTANCE, consistent_read=True)), None)


def finished(execution_arn: str) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        described = stepfunctions().describe_execution(executionArn=execution_arn)
        return described if described["status"] in DONE else None

    return eventually(status, what=f"{execution_arn} to finish")


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


def test_an_order_parks_at_store_acceptance_and_resumes_when_the_store_accepts():
    order_id = unique("order")
    execution_arn = flow.start(order_id, {"storeId": "s-1"})
    assert execution_arn == flow.execution_arn(order_id)

    token = eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    running = stepfunctions().describe_execution(executionArn=execution_arn)
    assert running["status"] == "RUNNING" and running["name"] == order_id

    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True, "storeId": "s-1"})

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["reservation"]["result"] == {"orderId": order_id, "reserved": True}
    assert output["acceptance"] == {"accepted": True, "storeId": "s-1"}
    events = history(execution_arn)
    assert entered_states(events) == ["Reserve", "WaitForStoreAcceptance", "Accepted"]
    # The Reserve task's output in the history is what app.order_reserve answered.
    assert task_outputs(events)[0]["Payload"] == {"orderId": order_id, "reserved": True}
    assert token.token and parked_token(order_id) is None


def test_starting_the_same_order_twice_runs_one_execution():
    order_id = unique("order")
    first = flow.start(order_id, {})
    second = flow.start(order_id, {})
    assert first == second
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
    assert finished(first)["status"] == "SUCCEEDED"


def test_an_out_of_stock_reservation_is_caught_and_the_order_cancelled(monkeypatch):
    def out_of_stock(event: dict[str, Any]) -> dict[str, Any]:
        raise OutOfStockError("sku-1 is out of stock")

    monkeypatch.setattr(flow, "reserve", out_of_stock)
    order_id = unique("order")
    execution_arn = flow.start(order_id, {})

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["error"]["Error"] == "OutOfStockError"
    assert output["cancellation"]["result"] == {"orderId": order_id, "cancelled": True, "reason": "OutOfStockError"}
    events = history(execution_arn)
    assert entered_states(events) == ["Reserve", "CancelOrder", "Cancelled"]
    failures = [event["taskFailedEventDetails"] for event in events if event["type"] == "TaskFailed"]
    assert [failure["error"] for failure in failures] == ["OutOfStockError"]
    assert json.loads(failures[0]["cause"])["errorMessage"] == "sku-1 is out of stock"
    assert parked_token(order_id) is None


def test_a_transient_failure_is_retried_and_the_order_goes_on(monkeypatch):
    calls: list[str] = []
    real_reserve = flow.reserve

    def flaky(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["orderId"])
        if len(calls) == 1:
            raise UpstreamUnavailableError()
        return real_reserve(event)

    monkeypatch.setattr(flow, "reserve", flaky)
    order_id = unique("order")
    execution_arn = flow.start(order_id, {})

    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    assert calls == [order_id, order_id]
    failed = [e["taskFailedEventDetails"]["error"] for e in history(execution_arn) if e["type"] == "TaskFailed"]
    assert failed == ["UpstreamUnavailableError"]
    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
    assert finished(execution_arn)["status"] == "SUCCEEDED"


def test_a_store_rejection_sent_as_task_failure_takes_the_cancel_path():
    order_id = unique("order")
    execution_arn = flow.start(order_id, {})
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")

    flow.fail(order_id, flow.STORE_ACCEPTANCE, "StoreRejectedError", "no stock on the shelf")

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["error"]["Error"] == "StoreRejectedError"
    assert entered_states(history(execution_arn)) == ["Reserve", "WaitForStoreAcceptance", "CancelOrder", "Cancelled"]


def test_resuming_an_order_that_is_not_waiting_is_refused():
    with pytest.raises(OrderNotWaitingError):
        flow.resume(unique("order"), flow.STORE_ACCEPTANCE, {"accepted": True})
