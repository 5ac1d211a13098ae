"""Errors of orders and their flow. A task's exception class name is the Step Functions error name."""

from __future__ import annotations

from chalicelib.errors import ConflictError, InvalidRequestError, NotFoundError

__all__ = [
    "OrderNotFoundError",
    "OutOfRangeError",
    "NothingToPayError",
    "NotCancellableError",
    "OrderNotPayableError",
    "OrdersInProgressError",
    "NotRefundableError",
    "AlreadyRefundedError",
    "RefundWindowClosedError",
    "OrderBusyError",
    "OrderNotWaitingError",
    "OrderCancelledError",
    "TaskInputError",
    "WrongPickupCodeError",
    "OrderNotReadyError",
    "StoreRejectedError",
    "NothingToRouteToError",
    "CourierCancelledError",
    "CourierGaveUpError",
    "NotificationRejected",
]


class OrderNotFoundError(NotFoundError):
    default_message = "no such order"


class OutOfRangeError(ConflictError):
    code = "OUT_OF_RANGE"
    default_message = "no store delivers to this address"


class NothingToPayError(InvalidRequestError):
    def __init__(self) -> None:
        super().__init__("pointsToUse", "must leave at least 1 fen of the order to pay")


class NotCancellableError(ConflictError):
    code = "NOT_CANCELLABLE"
    default_message = "the store has accepted this order: ask for a refund once it is completed"


class OrderNotPayableError(ConflictError):
    code = "ORDER_NOT_PAYABLE"
    default_message = "this order is not waiting for payment"


class OrdersInProgressError(ConflictError):
    code = "ORDERS_IN_PROGRESS"
    default_message = "an order of yours is still on its way: delete the account once it is completed or refunded"


class NotRefundableError(ConflictError):
    code = "NOT_REFUNDABLE"
    default_message = "only a completed order can be refunded"


class AlreadyRefundedError(ConflictError):
    code = "ALREADY_REFUNDED"
    default_message = "this order has been refunded already"


class RefundWindowClosedError(ConflictError):
    code = "REFUND_WINDOW_CLOSED"
    default_message = "the refund window of this order has closed"


class OrderBusyError(ConflictError):
    code = "TRY_AGAIN"
    default_message = "this order is being changed by another request, try again"


class OrderNotWaitingError(ConflictError):
    """The order's execution is not parked at the step a caller wants to resume."""

    code = "ORDER_NOT_WAITING"
    default_message = "the order is not waiting for this step"


class OrderCancelledError(Exception):
    """Raised into a waiting execution: the member cancelled, compensate."""


class WrongPickupCodeError(ConflictError):
    code = "WRONG_PICKUP_CODE"
    default_message = "that is not this order's pickup code"


class OrderNotReadyError(ConflictError):
    code = "ORDER_NOT_READY"
    default_message = "the order is not ready for this step"


class StoreRejectedError(Exception):
    """Raised into a waiting execution: the store declined the order, route it on."""


class NothingToRouteToError(Exception):
    """No location is left that could fulfil the order: the execution refunds it."""


class CourierCancelledError(Exception):
    """Raised into a waiting execution: the courier cancelled its dispatch, dispatch again."""


class CourierGaveUpError(Exception):
    """Every dispatch the order may have was cancelled: the execution refunds it."""


class TaskInputError(Exception):
    """The state machine handed a task an input it cannot work with (a definition bug)."""


class NotificationRejected(Exception):
    """A payment notification we refuse: WeChat Pay is told FAIL and nothing changed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
