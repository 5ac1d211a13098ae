"""Request bodies and answers of the points routes."""

from __future__ import annotations

from pydantic import Field

from chalicelib.validation import ID_PATTERN, Day, Page, PlausibleDate, RequestModel, ResponseModel, Timestamp

__all__ = [
    "AdjustRequest",
    "ReviewAward",
    "OfflineMemberImport",
    "PointsOverview",
    "PointsEntry",
    "PointsEntryPage",
    "MemberPointsEntry",
    "CheckinAnswer",
    "OfflineMember",
]

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
    expires_at: PlausibleDate | None = None


# --- Answers -------------------------------------------------------------------------------


class ExpiringPoints(ResponseModel):
    points: int
    expires_at: Timestamp


class PointsOverview(ResponseModel):
    """`GET /points`: the lots expiring within the window come soonest first."""

    available: int
    pending: int
    expiring: list[ExpiringPoints]


class PointsEntry(ResponseModel):
    """One transfer on the member's account; `delta` is negative for a spend."""

    entry_id: str
    delta: int
    reason: str
    reference: str | None
    status: str = Field(description="posted, pending or voided")
    created_at: Timestamp
    pending_delta: int | None = None
    expires_at: Timestamp | None = None


class PointsEntryPage(Page[PointsEntry]):
    """`GET /points/entries`, newest first."""


class MemberPointsEntry(PointsEntry):
    """An admin's adjustment or award, with whose account it moved."""

    member_id: str


class CheckinAnswer(ResponseModel):
    awarded: int
    streak: int
    available: int


class OfflineMember(ResponseModel):
    member_id: str
    offline: bool
    points: int
    expires_on: Day
