"""Points an admin moves: adjustments and approved reviews, only ever for a live member."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import NotFoundError
from chalicelib.members import service as members
from chalicelib.points import service as points

__all__ = ["adjust", "approve_review"]


def _member_is_live(member_id: str) -> list[points.Participant]:
    """The member check that joins the points' transaction: no points moved for a member that is not there."""
    return [members.live_member_check(member_id, explain=lambda old: NotFoundError("no such member"))]


def adjust(member_id: str, delta: int, reason: str, actor: str) -> dict[str, Any]:
    """`POST /admin/points/adjust`."""
    return points.adjust(member_id, delta, reason, actor, also=_member_is_live(member_id))


def approve_review(member_id: str, review_id: str, actor: str) -> dict[str, Any]:
    """`POST /admin/points/reviews`."""
    return points.approve_review(member_id, review_id, actor, also=_member_is_live(member_id))
