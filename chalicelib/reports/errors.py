"""Errors of the reports."""

from __future__ import annotations

from chalicelib.errors import ConflictError

__all__ = ["DayNotOverError"]


class DayNotOverError(ConflictError):
    """A day that has not ended in Shanghai (today, or later) has no figures yet: they would still move."""

    code = "DAY_NOT_OVER"
    default_message = "this day is not over yet in Asia/Shanghai: its report is made after midnight"
