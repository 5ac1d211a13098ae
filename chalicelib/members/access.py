"""Whether a signed token still speaks for someone: the member is live, and a privileged role is not revoked.

A token is checked in-process, but a deletion or a revocation must outrun it
(DESIGN rule 11), so the edge asks `admit` before every authenticated route:

- every such route: one consistent GetItem of the member (its liveness and
  openid only), so a deleted member is refused at once;
- a route only staff, guides or admins may call: the person's grants (their
  roles and version), cached per container for `GRANTS_CACHE_SECONDS`, so a
  revocation is refused within that time at one GetItem per person per
  container per period. A token carries the grants version it was issued
  under; a revocation bumps it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib.auth import MEMBER, Principal
from chalicelib.errors import ForbiddenError
from chalicelib.members.errors import MemberGoneError
from chalicelib.members.models import Member, RoleGrant

__all__ = ["GRANTS_CACHE_SECONDS", "Grants", "admit", "forget_grants"]

# At most 60 s by the contract (docs/api.md, DELETE /admin/staff).
GRANTS_CACHE_SECONDS = 30.0

_LIVENESS = [Member.member_id.attr_name, Member.openid.attr_name, Member.deleted_at.attr_name, Member.merged_into.attr_name]


@dataclass(frozen=True)
class Grants:
    roles: frozenset[str]
    version: int
    read_at: float


_grants: dict[str, Grants] = {}


def admit(caller: Principal, roles: Iterable[str]) -> None:
    """Refuse a deleted member (401) and, on a privileged route, a revoked role (403)."""
    try:
        member = Member.get(caller.member_id, consistent_read=True, attributes_to_get=_LIVENESS)
    except DoesNotExist as exc:
        raise MemberGoneError() from exc
    if member.deleted_at or member.merged_into:
        raise MemberGoneError()
    route_roles = frozenset(roles)
    if MEMBER in route_roles:
        return
    current = _current_grants(member.openid) if member.openid else Grants(frozenset(), 0, 0.0)
    if current.version != caller.grants_version or not route_roles & caller.roles & current.roles:
        raise ForbiddenError("this role was revoked: sign in again")


def forget_grants() -> None:
    """Drop this container's cached grants (what a new container starts with)."""
    _grants.clear()


def _current_grants(openid: str) -> Grants:
    now = time.monotonic()
    cached = _grants.get(openid)
    if cached is not None and now - cached.read_at < GRANTS_CACHE_SECONDS:
        return cached
    try:
        grant = RoleGrant.get(openid, consistent_read=True)
        fresh = Grants(frozenset(grant.roles or ()), int(grant.version or 0), now)
    except DoesNotExist:
        fresh = Grants(frozenset(), 0, now)
    _grants[openid] = fresh
    return fresh
