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
from tests.conftest import eventually, unique

pytestmark = pytest.mark.usefixtures("stack")

DONE = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


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


class PermanentTaskError(Exception):
    """A failure no retry mends."""


@pytest.fixture
def tasks(monkeypatch) -> dict[str, list[str]]:
    """The money tasks replaced by recorders, so these tests see the machine alone (orders are tested end to end)."""
    calls: dict[str, list[str]] = {"settle": [], "compensate": []}

    def settle(event: dict[str, Any]) -> dict[str, Any]:
        calls["settle"].append(event["orderId"])
        return {"orderId": event["orderId"], "settled": True}

    def compensate(event: dict[str, Any]) -> dict[str, Any]:
        calls["compensate"].append((event.get("error") or {}).get("Error"))
        return {"orderId": event["orderId"], "status": "refunding"}

    monkeypatch.setattr(flow, "settle_payment", settle)
    monkeypatch.setattr(flow, "compensate", compensate)
    return calls


def test_a_paid_order_settles_then_parks_at_store_acceptance_and_resumes_when_the_store_accepts(tasks):
    order_id = unique("order")
    execution_arn = flow.start(order_id)
    assert execution_arn == flow.execution_arn(order_id)

    token = eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    running = stepfunctions().describe_execution(executionArn=execution_arn)
    assert running["status"] == "RUNNING" and running["name"] == order_id
    assert json.loads(running["input"]) == {"orderId": order_id, "deadlines": {"storeAcceptanceSeconds": 1800}}

    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True, "storeId": "s-1"})

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["settlement"]["result"] == {"orderId": order_id, "settled": True}
    assert output["acceptance"] == {"accepted": True, "storeId": "s-1"}
    events = history(execution_arn)
    assert entered_states(events) == ["SettlePayment", "WaitForStoreAcceptance", "Accepted"]
    # The task's output in the history is what app.order_settle_payment answered.
    assert task_outputs(events)[0]["Payload"] == {"orderId": order_id, "settled": True}
    assert token.token and parked_token(order_id) is None
    assert tasks == {"settle": [order_id], "compensate": []}


def test_starting_the_same_order_twice_runs_one_execution(tasks):
    order_id = unique("order")
    first = flow.start(order_id)
    second = flow.start(order_id)
    assert first == second
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")
    flow.resume(order_id, flow.STORE_ACCEPTANCE, {"accepted": True})
    assert finished(first)["status"] == "SUCCEEDED"
    assert tasks["settle"] == [order_id]


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
    assert finished(execution_arn)["status"] == "SUCCEEDED"


def test_a_cancellation_sent_as_task_failure_takes_the_compensation_path(tasks):
    order_id = unique("order")
    execution_arn = flow.start(order_id)
    eventually(lambda: parked_token(order_id), what="the store-acceptance token")

    flow.fail(order_id, flow.STORE_ACCEPTANCE, "OrderCancelledError", "cancelled by the member")

    done = finished(execution_arn)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["error"]["Error"] == "OrderCancelledError"
    assert entered_states(history(execution_arn)) == [
        "SettlePayment", "WaitForStoreAcceptance", "Compensate", "Refunding",
    ]
    assert tasks["compensate"] == ["OrderCancelledError"]


def test_resuming_an_order_that_is_not_waiting_is_refused():
    with pytest.raises(OrderNotWaitingError):
        flow.resume(unique("order"), flow.STORE_ACCEPTANCE, {"accepted": True})
