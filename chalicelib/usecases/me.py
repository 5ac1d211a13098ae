"""The member as `GET /members/me` and login show it: members' record with its points."""

from __future__ import annotations

from typing import Any

from chalicelib import db
from chalicelib.members import service as members
from chalicelib.members.models import Member
from chalicelib.points import service as points
from chalicelib.points.models import PointsBalance

__all__ = ["view", "profile", "login"]

_UNREAD: Any = object()


def view(member: Member, balance: PointsBalance | None = _UNREAD) -> dict[str, Any]:
    """The member with its points and tier progress; `balance` as read along with it (read here if not)."""
    if balance is _UNREAD:
        balance = db.batch_get([points.balance_key(member.member_id)])[0]
    return {
        **members.view(member),
        "points": points.member_points(member.member_id, balance),
        "tierProgress": points.tier_progress(member.tier, balance),
    }


def profile(member_id: str) -> dict[str, Any]:
    """`GET /members/me`: the member and its points balance, in one round trip."""
    member, balance = db.batch_get([members.member_key(member_id), points.balance_key(member_id)])
    return view(members.live(member), balance)


def login(code: str, scene: str | None = None) -> dict[str, Any]:
    """`POST /auth/login`: the member's balance is read with the member, in the same round trip."""
    signed = members.login(code, scene, read_along=lambda member_id: [points.balance_key(member_id)])
    balance = signed.along[0] if signed.along is not None else _UNREAD
    return {
        "token": signed.token,
        "expiresIn": signed.expires_in,
        "isNew": signed.is_new,
        "member": view(signed.member, balance),
    }
