"""Request bodies of the points routes."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from chalicelib.validation import ID_PATTERN, RequestModel

__all__ = ["AdjustRequest", "ReviewAward", "OfflineMemberImport"]

MAX_POINTS = 100_000_000


class AdjustRequest(RequestModel):
    member_id: str = Field(pattern=ID_PATTERN)
    delta: int = Field(ge=-MAX_POINTS, le=MAX_POINTS)
    reason: str = Field(min_length=1, max_length=128)


class ReviewAward(RequestModel):
    member_id: str = Field(pattern=ID_PATTERN)
    review_id: str = Field(pattern=ID_PATTERN)


class OfflineMemberImport(RequestModel):
    """A member of the stores' POS, with the points it holds there."""

    phone: str = Field(pattern=r"^1\d{10}$")
    name: str | None = Field(default=None, min_length=1, max_length=32)
    points: int = Field(default=0, ge=0, le=MAX_POINTS)
    expires_at: dt.date | None = None
