"""The answers a points rule gives when it says no."""

from __future__ import annotations

from chalicelib.errors import ConflictError

__all__ = [
    "InsufficientPointsError",
    "AlreadyCheckedInError",
    "PointsCapReachedError",
    "PendingResolvedError",
    "TransferConflictError",
    "HoldMismatchError",
    "LedgerBusyError",
]


class InsufficientPointsError(ConflictError):
    code = "INSUFFICIENT_POINTS"
    default_message = "not enough points"


class AlreadyCheckedInError(ConflictError):
    code = "ALREADY_CHECKED_IN"
    default_message = "already checked in today"


class PointsCapReachedError(ConflictError):
    code = "POINTS_CAP_REACHED"
    default_message = "this earning rule's limit is reached"


class PendingResolvedError(ConflictError):
    """A pending transfer was already posted (when voiding) or voided (when posting)."""

    code = "PENDING_ALREADY_RESOLVED"
    default_message = "these pending points were already resolved"


class TransferConflictError(ConflictError):
    """A transfer id was first used for a different movement."""

    code = "TRANSFER_ID_REUSED"
    default_message = "this transfer id was used for a different movement"


class HoldMismatchError(ConflictError):
    """A points hold was asked to settle an amount other than the one it holds."""

    code = "POINTS_HOLD_MISMATCH"
    default_message = "the points hold is for another amount"


class LedgerBusyError(ConflictError):
    code = "TRY_AGAIN"
    default_message = "too many simultaneous changes to these points, try again"
