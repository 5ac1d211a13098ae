"""Errors of the order flow. A task's exception class name is the Step Functions error name."""

from __future__ import annotations

from chalicelib.errors import ConflictError

__all__ = ["OutOfStockError", "OrderNotWaitingError", "TaskInputError"]


class OutOfStockError(ConflictError):
    code = "OUT_OF_STOCK"
    default_message = "an item of the order is out of stock"


class OrderNotWaitingError(ConflictError):
    """The order's execution is not parked at the step a caller wants to resume."""

    code = "ORDER_NOT_WAITING"
    default_message = "the order is not waiting for this step"


class TaskInputError(Exception):
    """The state machine handed a task an input it cannot work with (a definition bug)."""
