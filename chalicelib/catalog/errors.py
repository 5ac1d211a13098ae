"""What the catalog refuses, each with its status and code."""

from __future__ import annotations

from chalicelib.errors import ConflictError, NotFoundError

__all__ = [
    "SkuNotFoundError",
    "BelowReservedError",
    "OutOfStockError",
    "AlreadyReservedError",
    "NotHeldError",
    "StockBusyError",
    "LaunchLimitError",
]


class SkuNotFoundError(NotFoundError):
    default_message = "no such SKU"


class BelowReservedError(ConflictError):
    code = "BELOW_RESERVED"
    default_message = "on hand cannot go below what open orders have reserved"


class OutOfStockError(ConflictError):
    code = "OUT_OF_STOCK"
    default_message = "not enough stock"

    def __init__(self, store_id: str | None = None, sku_id: str | None = None, message: str | None = None) -> None:
        self.store_id = store_id
        self.sku_id = sku_id
        if message is None and sku_id:
            message = f"not enough stock of {sku_id}" + (f" at {store_id}" if store_id else "")
        super().__init__(message)


class AlreadyReservedError(ConflictError):
    """The order already holds this line: a retry, not a second reservation."""

    code = "ALREADY_RESERVED"
    default_message = "this order already reserved this stock"


class NotHeldError(ConflictError):
    """Release or commit of a reservation that is not (or no longer) held."""

    code = "RESERVATION_NOT_HELD"
    default_message = "this order holds no such reservation"


class StockBusyError(ConflictError):
    """Simultaneous transactions kept colliding on the same stock rows."""

    code = "TRY_AGAIN"
    default_message = "this stock is busy with other orders, try again"


class LaunchLimitError(ConflictError):
    """More of a launch SKU in one order line than a launch allows (`stock.MAX_LAUNCH_QTY`)."""

    code = "LAUNCH_LIMIT"
    default_message = "too many of a launch SKU in one order"

    def __init__(self, sku_id: str, most: int) -> None:
        self.sku_id = sku_id
        self.most = most
        super().__init__(f"at most {most} of {sku_id} per order")
