"""Becoming a full member: the profile and its reward, the phone and the POS member it brings along.

Each step that touches members and points is one transaction of both
domains' items: the profile's completion and its reward are written
together or not at all, so a retry after any failure pays exactly once.
"""

from __future__ import annotations

from typing import Any

from chalicelib import clock, transact
from chalicelib.errors import ConflictError
from chalicelib.members import service as members
from chalicelib.members.models import Member
from chalicelib.members.schemas import ProfileUpdate
from chalicelib.points import service as points
from chalicelib.points.schemas import OfflineMemberImport
from chalicelib.transact import Transaction
from chalicelib.usecases.me import view

__all__ = ["MergeConflictError", "update_profile", "bind_phone", "import_offline_member"]


class MergeConflictError(ConflictError):
    code = "MERGE_CONFLICT"
    default_message = "the member changed while merging, try again"


class _CompletedAlready(Exception):
    """Another request recorded the completion (and paid for it) first."""


def update_profile(member_id: str, update: ProfileUpdate) -> dict[str, Any]:
    """`PUT /members/me/profile`: the first time every field is filled in, the reward is paid, once."""
    member = members.update_profile(member_id, update)
    if members.profile_completed(member):
        now = clock.now()

        def build(txn: Transaction) -> None:
            members.complete_profile(txn, member_id, now, explain=lambda old: _CompletedAlready())
            points.add_profile_reward(txn, member_id, now)

        try:
            transact.write(build, replan=True)
        except (_CompletedAlready, points.AlreadyAppliedError):
            pass
        member.profile_completed_at = now
    return view(member)


def bind_phone(member_id: str, code: str) -> dict[str, Any]:
    """`POST /members/me/phone`: a phone an offline (POS) member holds brings that member along."""
    try:
        member = members.bind_phone(member_id, code)
    except members.HeldOfflineError as held:
        member = _merge_offline(members.get_member(member_id), held.offline_member_id)
    return view(member)


def _merge_offline(member: Member, offline_id: str) -> Member:
    """The offline member's points move by ledger transfers (history is never rewritten), it is
    marked merged into `member`, and its phone moves over: one transaction, planned again from
    fresh reads when either side changed meanwhile."""

    def build(txn: Transaction) -> str:
        offline = members.offline_member(offline_id)
        points.add_merge(txn, offline_id, member.member_id)
        return members.absorb_offline(txn, member, offline)

    member.phone = transact.write(build, busy=MergeConflictError, replan=True)
    return member


def import_offline_member(request: OfflineMemberImport, actor: str) -> dict[str, Any]:
    """`POST /admin/members/offline`: the member, its phone identity and its points exist together or not at all."""
    now = clock.now()

    def build(txn: Transaction) -> tuple[str, str]:
        member_id = members.add_offline_member(txn, request.phone, request.name, now)
        return member_id, points.add_pos_import(txn, member_id, request.points, request.expires_at, actor, now)

    member_id, expires_on = transact.write(build, replan=True)
    return {"memberId": member_id, "offline": True, "points": request.points, "expiresOn": expires_on}
