"""What a member writes for themself in a domain that does not know members: written only while they are live."""

from __future__ import annotations

from typing import Any

from chalicelib.members import service as members
from chalicelib.messaging import service as messaging
from chalicelib.points import service as points

__all__ = ["checkin", "accept_subscriptions"]


def checkin(member_id: str) -> dict[str, Any]:
    """`POST /points/checkin`."""
    return points.checkin(member_id, also=[members.live_member_check(member_id)])


def accept_subscriptions(member_id: str, template_ids: list[str]) -> dict[str, Any]:
    """`POST /members/me/subscriptions`."""
    return messaging.accept(member_id, template_ids, also=[members.live_member_check(member_id)])
