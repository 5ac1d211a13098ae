"""Driving an order past payment on the local stack: the store's calls, the couriers' reports, the execution's waits."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import requests

from tests.appointment_helpers import staff_token
from tests.conftest import eventually


@contextlib.contextmanager
def policy_configured(env_variable: str, **overrides: Any) -> Iterator[None]:
    """A stage's policy (`SIYU_<SECTION>_CONFIG`) with `overrides` while the block runs (read at each use)."""
    before = os.environ.get(env_variable)
    os.environ[env_variable] = json.dumps({**json.loads(before or "{}"), **overrides})
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(env_variable, None)
        else:
            os.environ[env_variable] = before


def orders_configured(**overrides: Any) -> contextlib.AbstractContextManager[None]:
    """The orders configuration with `overrides`, for the executions started meanwhile (they carry their deadlines)."""
    from chalicelib.orders.config import CONFIG_ENV

    return policy_configured(CONFIG_ENV, **overrides)


def parked_at(order_id: str, step: str) -> bool:
    """Whether the order's execution waits at `step` (its task token is parked)."""
    from chalicelib.orders.models import TaskToken

    return TaskToken.count(order_id, TaskToken.step == step, consistent_read=True) > 0


def wait_until_parked(order_id: str, step: str, timeout: float = 30) -> None:
    eventually(lambda: parked_at(order_id, step), timeout=timeout, what=f"the execution to wait at {step}")


def store_call(api: Any, store_id: str, order_id: str, action: str, **body: Any) -> requests.Response:
    """`POST /store/orders/{orderId}/{action}` as the store's clerk."""
    return api.post(f"/store/orders/{order_id}/{action}", staff_token(api, store_id), json=body or None)


def accepted_and_packed(api: Any, store_id: str, order_id: str) -> dict[str, Any]:
    """The store accepts and packs the order, as its execution waits for each; the order as packed."""
    from chalicelib.orders.fulfillment import PACKING

    accepted = store_call(api, store_id, order_id, "accept")
    assert accepted.status_code == 200, accepted.text
    wait_until_parked(order_id, PACKING)
    packed = store_call(api, store_id, order_id, "ready")
    assert packed.status_code == 200, packed.text
    return packed.json()


def dispatches(stack: Any, order_id: str) -> list[dict[str, Any]]:
    """The courier dispatches the sandbox recorded for the order, oldest first."""
    answer = requests.get(f"{stack.sandbox_url}/sandbox/couriers/dispatches", params={"orderId": order_id}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def dispatched(stack: Any, order_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The dispatches once there are `count` of them."""
    return eventually(lambda: (found := dispatches(stack, order_id)) and len(found) >= count and found,
                      what=f"{count} courier dispatch(es)")


def advance(stack: Any, order_id: str, status: str, notify: bool = True) -> dict[str, Any]:
    """The courier of the order's latest dispatch reports `status` (the sandbox sends its real callback)."""
    answer = requests.post(f"{stack.sandbox_url}/sandbox/courier/advance",
                           json={"orderId": order_id, "status": status, "notify": notify}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def replay(callback: dict[str, Any]) -> requests.Response:
    """Send a callback the sandbox sent once more, byte for byte."""
    body = callback["body"]
    return requests.post(callback["url"], params=callback.get("query") or None,
                         data=body.encode() if isinstance(body, str) else body, timeout=30)


def shipping_uploads(stack: Any, transaction_id: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.sandbox_url}/sandbox/wechat/shipping", params={"transactionId": transaction_id},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def delivered_by_courier(stack: Any, order_id: str) -> None:
    """The courier of the order's dispatch takes it, picks it up and delivers it."""
    dispatched(stack, order_id)
    for status in ("accepted", "picked_up", "delivered"):
        assert advance(stack, order_id, status)["apiStatus"] == 200


def collected(api: Any, store_id: str, order_id: str) -> dict[str, Any]:
    """A pickup order accepted, packed and collected with its code; the order as completed."""
    from chalicelib.orders.models import Order

    accepted_and_packed(api, store_id, order_id)
    code = Order.get(order_id, consistent_read=True).pickup_code
    answer = store_call(api, store_id, order_id, "pickup", pickupCode=code)
    assert answer.status_code == 200, answer.text
    return answer.json()
