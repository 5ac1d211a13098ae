"""The order's execution: starting it, its task functions, parking and resuming it.

Every paid order runs as one execution of the state machine in
infra/order.asl.json, named after the order id and started by the payment
(an unpaid order never costs a state transition). A step that waits for a person
or a partner (`WaitForStoreAcceptance`, ...) hands its task token to
`notify_store`, which parks it in `TaskToken`; the call that ends the wait
(`resume` or `fail`) reads it back and answers Step Functions.

The task functions run as Lambda functions (see app.py); the class name of an
exception they raise is the error name the state machine's Retry and Catch match.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from chalicelib import clock
from chalicelib.config import settings
from chalicelib.orders.errors import OrderCancelledError, OrderNotWaitingError, TaskInputError

__all__ = [
    "STORE_ACCEPTANCE",
    "start",
    "execution_arn",
    "execution_status",
    "settle_payment",
    "notify_store",
    "compensate",
    "park",
    "resume",
    "fail",
]

STORE_ACCEPTANCE = "store_acceptance"
# A parked token outlives any wait of the state machine; the row is then only clutter.
TOKEN_KEPT = dt.timedelta(days=30)


def _state_machine_arn() -> str:
    arn = settings().state_machine_arn
    if not arn:
        raise RuntimeError("SIYU_STATE_MACHINE_ARN is not set")
    return arn


def execution_arn(order_id: str) -> str:
    """The ARN of the order's execution (executions are named after the order id)."""
    return _state_machine_arn().replace(":stateMachine:", ":execution:", 1) + f":{order_id}"


def start(order_id: str) -> str:
    """Start the paid order's execution; starting it again changes nothing. Answers its ARN."""
    from chalicelib.aws import stepfunctions
    from chalicelib.orders.config import orders_config

    client = stepfunctions()
    try:
        answer = client.start_execution(
            stateMachineArn=_state_machine_arn(),
            name=order_id,
            input=json.dumps({"orderId": order_id, "deadlines": orders_config().deadlines()}),
        )
    except client.exceptions.ExecutionAlreadyExists:
        return execution_arn(order_id)
    return answer["executionArn"]


def execution_status(order_id: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None if the order has no execution."""
    from chalicelib.aws import stepfunctions

    client = stepfunctions()
    try:
        return client.describe_execution(executionArn=execution_arn(order_id))["status"]
    except client.exceptions.ExecutionDoesNotExist:
        return None


def _order_id(event: Any) -> str:
    order_id = event.get("orderId") if isinstance(event, dict) else None
    if not isinstance(order_id, str) or not order_id:
        raise TaskInputError("the task input has no orderId")
    return order_id


def _log(message: str, **fields: Any) -> None:
    from chalicelib.observability import logger

    logger().info(message, extra=fields)


# --- Task functions (Lambda handlers in app.py delegate here) -----------------

def settle_payment(event: dict[str, Any]) -> dict[str, Any]:
    """The coupon used and the points spend posted, now that the order is paid."""
    from chalicelib.orders import lifecycle

    return lifecycle.settle_payment(_order_id(event))


def notify_store(event: dict[str, Any]) -> dict[str, Any]:
    """Park the execution until the store answers, and tell the store.

    The token is parked before the order is read: a member's cancellation or
    a store's acceptance moves the order first and looks for the token after,
    so one of the two always sees the other.
    """
    from chalicelib.orders.models import ACCEPTED, REFUNDING
    from chalicelib.orders.service import find_order

    order_id = _order_id(event)
    step = event.get("step") or STORE_ACCEPTANCE
    token = event.get("taskToken")
    if not isinstance(token, str) or not token:
        raise TaskInputError("the task input has no taskToken")
    park(order_id, step, token)
    order = find_order(order_id)
    if order is not None and order.status == REFUNDING:
        raise OrderCancelledError(order_id)
    if order is not None and order.status == ACCEPTED:
        # The store accepted before the execution got here: its resume may have found nothing parked.
        try:
            resume(order_id, step, {"storeId": order.store_id})
        except OrderNotWaitingError:
            pass  # it found the token after all and answered it
        return {"orderId": order_id, "accepted": True}
    _log("order waiting for its store", order_id=order_id, step=step)
    return {"orderId": order_id, "parked": step}


def compensate(event: dict[str, Any]) -> dict[str, Any]:
    """Undo what the order took and refund it, after any failure past payment."""
    from chalicelib.orders import lifecycle

    order_id = _order_id(event)
    error = (event.get("error") or {}).get("Error") or "failed"
    _log("order compensated by its execution", order_id=order_id, failed_with=error)
    return lifecycle.compensate(order_id, _REASONS.get(error, f"the order could not go on ({error})"))


_REASONS = {
    "OrderCancelledError": "cancelled before the store accepted",
    "States.Timeout": "no store accepted the order in time",
}


# --- Parking and resuming ------------------------------------------------------

def park(order_id: str, step: str, token: str) -> None:
    from chalicelib.orders.models import TaskToken

    moment = clock.now()
    TaskToken(order_id, step, token=token, created_at=moment, expires_at=moment + TOKEN_KEPT).save()


def _parked(order_id: str, step: str) -> Any:
    from pynamodb.exceptions import DoesNotExist

    from chalicelib.orders.models import TaskToken

    try:
        return TaskToken.get(order_id, step, consistent_read=True)
    except DoesNotExist as exc:
        raise OrderNotWaitingError() from exc


def _forget(parked: Any) -> None:
    from pynamodb.exceptions import DeleteError

    from chalicelib.orders.models import TaskToken

    # Only the token just answered: a retried task may have parked a newer one meanwhile.
    same_token = TaskToken.token == parked.token
    try:
        parked.delete(condition=same_token)
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise


def resume(order_id: str, step: str, result: dict[str, Any]) -> None:
    """End the wait at `step`: the execution goes on with `result` as the step's output."""
    from chalicelib.aws import stepfunctions

    parked = _parked(order_id, step)
    client = stepfunctions()
    try:
        client.send_task_success(taskToken=parked.token, output=json.dumps(result, ensure_ascii=False))
    except (client.exceptions.TaskDoesNotExist, client.exceptions.TaskTimedOut, client.exceptions.InvalidToken) as exc:
        raise OrderNotWaitingError() from exc
    _forget(parked)


def fail(order_id: str, step: str, error: str, cause: str = "") -> None:
    """End the wait at `step` with `error`, which the state machine's Catch routes."""
    from chalicelib.aws import stepfunctions

    parked = _parked(order_id, step)
    client = stepfunctions()
    try:
        client.send_task_failure(taskToken=parked.token, error=error, cause=cause)
    except (client.exceptions.TaskDoesNotExist, client.exceptions.TaskTimedOut, client.exceptions.InvalidToken) as exc:
        raise OrderNotWaitingError() from exc
    _forget(parked)
