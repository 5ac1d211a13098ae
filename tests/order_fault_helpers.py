"""Real orders meeting failures: Lambda's under the order state machine (`failing`), and what a person checks after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from chalicelib.aws import stepfunctions
from chalicelib.config import settings
from chalicelib.orders import flow
from local.aws import FUNCTION_TIMEOUT, LAMBDA_SERVICE_ERROR, LAMBDA_THROTTLED, failing_invocations
from tests.conftest import eventually
from tests.order_helpers import available_points, coupon_status, delivery, level, new_sku, new_store, order_status
from tests.order_helpers import pickup, remote_spot, shopper, stock
from tests.test_orders_api import coupon_for, sandbox_refunds

# One of each transient failure, then the invocation runs: within every task's Retry (4 attempts).
TRANSIENT = [LAMBDA_SERVICE_ERROR, FUNCTION_TIMEOUT, LAMBDA_THROTTLED]
COMPLETED_PICKUP = ["pending_payment", "paid", "accepted", "ready", "completed"]
REFUNDED = ["refunding", "refunded"]


def function(name: str) -> str:
    return f"siyu-{settings().stage}-{name}"


@contextlib.contextmanager
def failing(name: str, order_id: str, faults: list[str] | str) -> Iterator[None]:
    """`name`'s invocations (app.py's function name) for the order fail as `faults` says, while the block runs."""
    with failing_invocations(function(name), order_id, faults):
        yield


def history(order_id: str) -> list[dict[str, Any]]:
    return stepfunctions().get_execution_history(executionArn=flow.execution_arn(order_id), maxResults=1000)["events"]


def task_failures(order_id: str) -> list[str]:
    return [event["taskFailedEventDetails"]["error"] for event in history(order_id) if event["type"] == "TaskFailed"]


def ended(order_id: str, status: str) -> None:
    eventually(lambda: flow.execution_status(order_id) == status, timeout=90,
               what=f"the execution to end {status}")


def statuses(api: Any, token: str, order_id: str) -> list[str]:
    answer = api.get(f"/orders/{order_id}", token)
    assert answer.status_code == 200, answer.text
    return [entry["status"] for entry in answer.json()["timeline"]]


def refund_reason(api: Any, token: str, order_id: str) -> str:
    return api.get(f"/orders/{order_id}", token).json()["refund"]["reason"]


class Shop:
    """One store holding one SKU, and a member with points and a coupon to spend on it."""

    def __init__(self, api: Any, members: list[str]) -> None:
        self.api = api
        self.spot = remote_spot()
        self.store = new_store(*self.spot, radius_km=8)
        self.sku = new_sku()
        stock(self.store, self.sku, 2)
        self.member_id, self.token = shopper(api, points=300)
        members.append(self.member_id)
        self.coupon_id = coupon_for(self.member_id, value=500, threshold=0)

    def placed(self, body: dict[str, Any]) -> str:
        answer = self.api.post("/orders", self.token, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["orderId"]

    def pickup_order(self) -> dict[str, Any]:
        return pickup(self.store, (self.sku, 1), couponId=self.coupon_id, pointsToUse=300)

    def delivery_order(self) -> dict[str, Any]:
        return delivery(*self.spot, (self.sku, 1), couponId=self.coupon_id, pointsToUse=300)

    def stock_levels(self) -> tuple[int, int]:
        found = level(self.store, self.sku)
        return found["onHand"], found["reserved"]

    def assert_completed(self, order_id: str, timeline: list[str] = COMPLETED_PICKUP) -> None:
        ended(order_id, "SUCCEEDED")
        assert order_status(order_id) == "completed"
        assert statuses(self.api, self.token, order_id) == timeline
        assert self.stock_levels() == (1, 0)
        assert coupon_status(self.member_id, self.coupon_id) == "used"
        assert available_points(self.member_id) > 0  # the order's own points, posted once its window closed

    def assert_compensated(self, order_id: str, stack: Any) -> None:
        eventually(lambda: order_status(order_id) == "refunded", timeout=90, what="the refund")
        timeline = statuses(self.api, self.token, order_id)
        assert timeline[:2] == ["pending_payment", "paid"] and timeline[-2:] == REFUNDED
        assert timeline.count("refunding") == timeline.count("refunded") == 1
        assert len(sandbox_refunds(stack, order_id)) == 1
        assert self.stock_levels() == (2, 0)
        assert coupon_status(self.member_id, self.coupon_id) == "available"
        assert available_points(self.member_id) == 300
