"""The order's execution: starting it, its task functions, parking and resuming it.

Every paid order runs as one execution of the state machine in
infra/order.asl.json, named after the order id and started by the payment
(an unpaid order never costs a state transition). A step that waits for a person
or a partner (`AwaitStore`, `AwaitPacking`, `AwaitDelivery`, ...) hands its task
token to its task function, which parks it in `TaskToken`; the call that ends the wait
(`resume` or `fail`) reads it back and answers Step Functions.

The task functions run as Lambda functions (see app.py); the class name of an
exception they raise is the error name the state machine's Retry and Catch match,
so DynamoDB throttling or contention that outlasted a task's own retries is
raised as `ThrottledError` or `TryAgainError`, and a partner's failure (a
`CourierError`, a `WxPayError`) as `UpstreamUnavailableError`: the names the
machine retries.

An execution that ends failed, timed out or aborted (its compensation kept
failing, or someone stopped it) is announced by EventBridge;
`execution_ended` then compensates the order as its execution would have.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any

from chalicelib import clock, observability, transact
from chalicelib.config import settings
from chalicelib.errors import SiyuError, ThrottledError, UpstreamUnavailableError
from chalicelib.orders.errors import OrderCancelledError, OrderNotWaitingError, StoreRejectedError, TaskInputError

__all__ = [
    "STORE_ACCEPTANCE",
    "start",
    "execution_arn",
    "execution_status",
    "settle_payment",
    "notify_store",
    "await_step",
    "dispatch_courier",
    "reroute",
    "complete_unreported",
    "close_refund_window",
    "compensate",
    "execution_ended",
    "ENDED_UNFINISHED",
    "park",
    "resume",
    "fail",
]

STORE_ACCEPTANCE = "store_acceptance"
ENDED_UNFINISHED = ("FAILED", "TIMED_OUT", "ABORTED")
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



# --- Task functions (Lambda handlers in app.py delegate here) -----------------

Task = Callable[[dict[str, Any]], dict[str, Any]]
# The errors the machine's Retry names by their family: a subclass is raised under its family's name.
_RETRIED = (UpstreamUnavailableError, ThrottledError, transact.TryAgainError)


def _task(function: Task) -> Task:
    @functools.wraps(function)
    def task(event: dict[str, Any]) -> dict[str, Any]:
        try:
            return function(event)
        except SiyuError as exc:
            family = next((family for family in _RETRIED if isinstance(exc, family)), None)
            if family is None or type(exc) is family:
                raise
            raise family(exc.message) from exc  # a courier's CourierError is retried as UpstreamUnavailableError
        except Exception as exc:
            busy = transact.busy_error(exc)
            if busy is None:
                raise
            raise busy from exc

    return task


@_task
def settle_payment(event: dict[str, Any]) -> dict[str, Any]:
    """The coupon used and the points spend posted, now that the order is paid."""
    from chalicelib.orders import lifecycle

    return lifecycle.settle_payment(_order_id(event))


def _token(event: dict[str, Any]) -> str:
    token = event.get("taskToken")
    if not isinstance(token, str) or not token:
        raise TaskInputError("the task input has no taskToken")
    return token


@_task
def notify_store(event: dict[str, Any]) -> dict[str, Any]:
    """Park the execution until the store answers, and tell the store.

    The token is parked before the order is read: a member's cancellation or
    a store's answer moves the order first and looks for the token after,
    so one of the two always sees the other.
    """
    from chalicelib.orders.models import ACCEPTED_BY_STORE, CLOSED
    from chalicelib.orders.service import find_order

    order_id = _order_id(event)
    park(order_id, STORE_ACCEPTANCE, _token(event))
    order = find_order(order_id)
    if order is None:
        return {"orderId": order_id, "parked": STORE_ACCEPTANCE}
    if order.status in CLOSED:
        raise OrderCancelledError(order_id)
    if order.declined_by == order.store_id:
        raise StoreRejectedError(f"declined by {order.store_id}")
    if order.status in ACCEPTED_BY_STORE:
        # The store accepted (and maybe packed and handed over) before the execution got here:
        # its resume may have found nothing parked.
        _resume_parked(order_id, STORE_ACCEPTANCE, {"storeId": order.store_id})
        return {"orderId": order_id, "accepted": True}
    observability.info("order waiting for its store", order_id=order_id, store_id=order.store_id)
    return {"orderId": order_id, "parked": STORE_ACCEPTANCE}


def _resume_parked(order_id: str, step: str, result: dict[str, Any]) -> None:
    try:
        resume(order_id, step, result)
    except OrderNotWaitingError:
        pass  # the caller that moved the order found the token after all and answered it


@_task
def await_step(event: dict[str, Any]) -> dict[str, Any]:
    """Park the execution at `packing` or `pickup` until the store's call moves the order past it."""
    from chalicelib.orders.fulfillment import PACKING, PICKUP
    from chalicelib.orders.models import CLOSED, COMPLETED, DELIVERING, READY
    from chalicelib.orders.service import find_order

    order_id = _order_id(event)
    step = event.get("step")
    passed = {PACKING: (READY, DELIVERING, COMPLETED), PICKUP: (COMPLETED,)}
    if step not in passed:
        raise TaskInputError(f"no waiting step {step!r}")
    park(order_id, step, _token(event))
    order = find_order(order_id)
    if order is not None and order.status in passed[step]:
        _resume_parked(order_id, step, {"mode": order.mode} if step == PACKING else {"completed": True})
    elif order is not None and order.status in CLOSED:
        raise OrderCancelledError(order_id)
    return {"orderId": order_id, "parked": step}


@_task
def dispatch_courier(event: dict[str, Any]) -> dict[str, Any]:
    """Park the execution until the order's courier delivers it, after dispatching one (see fulfillment.dispatch)."""
    from chalicelib.orders import fulfillment

    order_id = _order_id(event)
    step = event.get("step")
    if step not in (fulfillment.DELIVERY, fulfillment.EXPRESS):
        raise TaskInputError(f"no courier step {step!r}")
    park(order_id, step, _token(event))
    sent = fulfillment.dispatch(order_id)
    if sent.get("completed"):
        _resume_parked(order_id, step, {"completed": True})
    return {"orderId": order_id, "parked": step, **sent}


@_task
def reroute(event: dict[str, Any]) -> dict[str, Any]:
    """Route the order on, then wait for its new store as `notify_store` does.

    `enteredAt` (when the execution entered this state) keeps a retried
    invocation from routing the order a second time.
    """
    from chalicelib.orders import fulfillment

    entered_at = event.get("enteredAt")
    if not isinstance(entered_at, str):
        raise TaskInputError("the task input has no enteredAt")
    fulfillment.reroute(_order_id(event), clock.parse_iso(entered_at))
    return notify_store(event)


@_task
def complete_unreported(event: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.orders import lifecycle

    return lifecycle.complete_unreported(_order_id(event))


@_task
def close_refund_window(event: dict[str, Any]) -> dict[str, Any]:
    """The return window has passed: the points the order earned are posted (a refund voided them)."""
    from chalicelib.orders import lifecycle
    from chalicelib.orders.service import get_order

    order_id = _order_id(event)
    return {"orderId": order_id, "closed": lifecycle.close_refund_window(get_order(order_id))}


@_task
def compensate(event: dict[str, Any]) -> dict[str, Any]:
    """Undo what the order took and refund it, after any failure past payment."""
    from chalicelib.orders import lifecycle
    from chalicelib.orders.service import get_order

    order_id = _order_id(event)
    error = (event.get("error") or {}).get("Error") or "failed"
    observability.info("order compensated by its execution", order_id=order_id, failed_with=error)
    return lifecycle.compensate(order_id, _reason(error, get_order(order_id)))


def execution_ended(event: dict[str, Any]) -> dict[str, Any]:
    """EventBridge's "Step Functions Execution Status Change" for an execution that did not succeed:
    the order it left in flight is compensated (refunded, everything given back); one that is
    completed, closed or never paid is left as it is."""
    from chalicelib.orders import lifecycle
    from chalicelib.orders.models import ENDED, PENDING_PAYMENT
    from chalicelib.orders.service import find_order

    detail = event.get("detail") if isinstance(event, dict) else None
    if (not isinstance(detail, dict) or detail.get("stateMachineArn") != _state_machine_arn()
            or detail.get("status") not in ENDED_UNFINISHED):
        return {"ignored": True}
    order = find_order(str(detail.get("name") or ""))
    if order is None or order.status in (PENDING_PAYMENT, *ENDED):
        return {"orderId": detail.get("name"), "status": order.status if order else None}
    observability.info("order compensated after its execution ended", order_id=order.order_id,
                       execution_status=detail["status"])
    return lifecycle.compensate(order.order_id, f"the order could not go on (its execution {detail['status'].lower()})")


def _reason(error: str, order: Any) -> str:
    """Why the execution refunds, as the member reads it on the order."""
    from chalicelib.orders.models import ACCEPTED, WAITING_FOR_STORE

    if error == "States.Timeout":
        if order.status in WAITING_FOR_STORE:
            return "no store accepted the order in time"
        if order.status == ACCEPTED:
            return "the store did not pack the order in time"
        return "the order was not collected in time" if order.mode == "pickup" else "the order was not delivered in time"
    return _REASONS.get(error, f"the order could not go on ({error})")


_REASONS = {
    "OrderCancelledError": "cancelled before the store accepted",
    "NothingToRouteToError": "no store could fulfil the order",
    "CourierGaveUpError": "no courier could deliver the order",
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
