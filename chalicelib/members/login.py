"""Login: the WeChat session, the member it belongs to (created on first login), the guide a scene binds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from chalicelib import auth, clock, db, observability, transact
from chalicelib.config import settings
from chalicelib.members.errors import LoginConflictError, MemberGoneError
from chalicelib.members.models import Guide, Identity, Member, RoleGrant, created_day_key
from chalicelib.transact import Transaction
from chalicelib.wechat import client as wechat

__all__ = ["LaunchScene", "SignIn", "ReadAlong", "parse_scene", "login", "new_member_id", "bind_guide"]

_SCENE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

# The keys of items a caller wants read with the member, in the same round trip.
ReadAlong = Callable[[str], list[tuple[type[db.SiyuModel], Any]]]


@dataclasses.dataclass(frozen=True)
class LaunchScene:
    guide_id: str | None = None
    referrer_id: str | None = None


@dataclasses.dataclass(frozen=True)
class SignIn:
    """A login: the member, its token, and the items read along with the member (None: not read)."""

    member: Member
    is_new: bool
    token: str
    expires_in: int
    along: list[Any] | None


def parse_scene(scene: str | None) -> LaunchScene:
    """`g=<guideId>` and `r=<memberId>`, joined by `&`; anything else is ignored."""
    values: dict[str, str] = {}
    for part in (scene or "").split("&"):
        name, _, value = part.partition("=")
        if name in ("g", "r") and _SCENE_ID.match(value):
            values.setdefault(name, value)
    return LaunchScene(guide_id=values.get("g"), referrer_id=values.get("r"))


def new_member_id() -> str:
    return f"m{secrets.token_hex(8)}"


def login(code: str, scene: str | None = None, *, read_along: ReadAlong = lambda member_id: []) -> SignIn:
    """Sign in with a `wx.login` code: two reads for a known member, one write for a new one."""
    session = wechat.code_to_session(code)
    launch = parse_scene(scene)
    lookups: list[tuple[type[db.SiyuModel], Any]] = [
        (Identity, f"openid:{session.openid}"),
        (RoleGrant, session.openid),
    ]
    if session.unionid:
        lookups.append((Identity, f"unionid:{session.unionid}"))
    if launch.guide_id:
        lookups.append((Guide, launch.guide_id))
    found = db.batch_get(lookups)
    identity, grant = found[0], found[1]
    by_unionid = found[2] if session.unionid else None
    guide = found[-1] if launch.guide_id else None

    is_new = False
    along: list[Any] | None = None
    if identity is not None:
        member, *along = db.batch_get([(Member, identity.member_id), *read_along(identity.member_id)])
        if member is None:
            raise MemberGoneError()
    elif by_unionid is not None:
        member = _link_openid(by_unionid.member_id, session)
    else:
        member, is_new = _create_member(session, launch, guide)
        along = [None for _ in read_along(member.member_id)] if is_new else None
    if guide is not None and not is_new and _guide_binding_open(member):
        member = _bind_guide(member, guide)

    token, expires_in = auth.issue_token(_principal(member, grant))
    return SignIn(member, is_new, token, expires_in, along)


def _principal(member: Member, grant: RoleGrant | None) -> auth.Principal:
    if grant is None:
        return auth.Principal(member_id=member.member_id)
    return auth.Principal(
        member_id=member.member_id,
        roles=frozenset({auth.MEMBER, *(grant.roles or ())}),
        store_id=grant.store_id,
        guide_id=grant.guide_id,
        grants_version=int(grant.version or 0),
    )


class _Known(Exception):
    """The login's identity exists already: `member_id` is the member it leads to."""

    def __init__(self, member_id: str, *, by_unionid: bool = False) -> None:
        super().__init__(member_id)
        self.member_id = member_id
        self.by_unionid = by_unionid


def _create_member(session: wechat.Session, launch: LaunchScene, guide: Guide | None) -> tuple[Member, bool]:
    """Create the member and its identities in one write; the first of racing logins wins."""

    def build(txn: Transaction) -> Member:
        now = clock.now()
        member_id = new_member_id()
        member = Member(
            member_id, openid=session.openid, unionid=session.unionid, created_at=now,
            created_day=created_day_key(clock.shanghai_date(now), member_id), referrer_id=launch.referrer_id,
        )
        if guide is not None:
            _apply_guide(member, guide, now)
        txn.save(
            Identity(f"openid:{session.openid}", member_id=member.member_id, created_at=now),
            Identity.key.does_not_exist(), label="openid", explain=lambda old: _Known(old.member_id),
        )
        if session.unionid:
            txn.save(
                Identity(f"unionid:{session.unionid}", member_id=member.member_id, created_at=now),
                Identity.key.does_not_exist(), label="unionid",
                explain=lambda old: _Known(old.member_id, by_unionid=True),
            )
        # A new id is drawn for every attempt, so a collision is planned again.
        txn.save(member, Member.member_id.does_not_exist(), label="member")
        return member

    try:
        member = transact.write(build, busy=LoginConflictError, replan=True)
    except _Known as known:
        # Another login of the same person won: use its member.
        if known.by_unionid:
            return _link_openid(known.member_id, session), False
        return Member.get(known.member_id, consistent_read=True), False
    observability.count("MembersCreated")
    return member, True


def _link_openid(member_id: str, session: wechat.Session) -> Member:
    """The brand already knows this unionid (another of its apps): link this openid to it."""
    identity = Identity(f"openid:{session.openid}", member_id=member_id, created_at=clock.now())
    try:
        transact.retrying(lambda: identity.save(condition=Identity.key.does_not_exist()))
    except PutError as exc:
        if not transact.condition_failed(exc):
            raise  # (a refusal: a concurrent login linked it first, to the same member)
    return Member.get(member_id, consistent_read=True)


def _guide_binding_open(member: Member) -> bool:
    return not member.guide_id or member.guide_bound_until is None or member.guide_bound_until <= clock.now()


def _apply_guide(member: Member, guide: Guide, now: dt.datetime) -> None:
    member.guide_id = guide.guide_id
    member.guide_name = guide.name
    member.guide_store_id = guide.store_id
    member.guide_bound_until = now + dt.timedelta(days=settings().guide_binding_days)


def _bind_guide(member: Member, guide: Guide) -> Member:
    """First binding wins: the condition refuses while another binding is still valid."""
    binding_open = Member.guide_id.does_not_exist() | (Member.guide_bound_until < clock.now())
    return bind_guide(member, guide, binding_open)


def bind_guide(
    member: Member, guide: Guide, condition: Any, refused: Callable[[], Exception] | None = None
) -> Member:
    """Bind `member` to `guide` for a binding period, on `condition`. Refused, the member is read
    back as it is (or `refused()` raised)."""
    until = clock.now() + dt.timedelta(days=settings().guide_binding_days)
    actions = [
        Member.guide_id.set(guide.guide_id),
        Member.guide_name.set(guide.name),
        Member.guide_store_id.set(guide.store_id),
        Member.guide_bound_until.set(until),
    ]
    try:
        transact.retrying(lambda: member.update(actions=actions, condition=condition))
    except UpdateError as exc:
        if not transact.condition_failed(exc):
            raise
        if refused is not None:
            raise refused() from exc
        member.refresh(consistent_read=True)
        return member
    observability.info("guide bound", member_id=member.member_id, guide_id=guide.guide_id)
    return member
