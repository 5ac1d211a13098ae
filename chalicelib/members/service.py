"""Members: login, profile, phone binding, deletion and role grants."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib import auth, clock, db, observability
from chalicelib.config import secret, settings
from chalicelib.errors import ConflictError, InvalidRequestError, UnauthenticatedError
from chalicelib.members.models import Guide, Identity, Member, RoleGrant
from chalicelib.members.schemas import ProfileUpdate, StaffGrant
from chalicelib.wechat import client as wechat

__all__ = [
    "TIER_NAMES",
    "PhoneInUseError",
    "login",
    "profile",
    "update_profile",
    "bind_phone",
    "delete_member",
    "grant_role",
    "get_member",
    "phone_identity_key",
    "parse_scene",
    "LaunchScene",
    "tier_of",
    "openids",
    "bound_guide",
    "require_member",
]

TIER_NAMES = {"explorer": "体验官", "pioneer": "探索者", "geek": "极客玩家", "black_gold": "黑金大使"}
PROFILE_FIELDS = ("nickname", "birthday", "gender", "city")
_SCENE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_CREATE_ATTEMPTS = 5


class PhoneInUseError(ConflictError):
    code = "PHONE_IN_USE"
    default_message = "this phone number belongs to another member"


@dataclass(frozen=True)
class LaunchScene:
    guide_id: str | None = None
    referrer_id: str | None = None


def parse_scene(scene: str | None) -> LaunchScene:
    """`g=<guideId>` and `r=<memberId>`, joined by `&`; anything else is ignored."""
    values: dict[str, str] = {}
    for part in (scene or "").split("&"):
        name, _, value = part.partition("=")
        if name in ("g", "r") and _SCENE_ID.match(value):
            values.setdefault(name, value)
    return LaunchScene(guide_id=values.get("g"), referrer_id=values.get("r"))


# --- Views ---------------------------------------------------------------------

def _points_available(member_id: str) -> int:
    """The member's spendable points, as the points ledger holds them."""
    from chalicelib.points import service as points

    return points.available(member_id)


_UNREAD: Any = object()


def view(member: Member, *, points_available: int | None = None, points_balance: Any = _UNREAD) -> dict[str, Any]:
    """The member as `GET /members/me` shows it.

    `points_balance` is the member's points balance when the caller read it
    along with the member (`points.balance_key` in a `db.batch_get`); without
    it, the balance is read here.
    """
    from chalicelib.points import service as points

    if points_balance is _UNREAD:
        points_balance = db.batch_get([points.balance_key(member.member_id)])[0]
    if points_available is None:
        points_available = points.member_points(member.member_id, points_balance)["available"]
    guide = None
    if member.guide_id and member.guide_bound_until and member.guide_bound_until > clock.now():
        guide = {"guideId": member.guide_id, "name": member.guide_name, "storeId": member.guide_store_id}
    return {
        "memberId": member.member_id,
        "nickname": member.nickname,
        "tier": member.tier,
        "tierName": TIER_NAMES.get(member.tier, member.tier),
        "points": {"available": points_available},
        "tierProgress": points.tier_progress(member.tier, points_balance),
        "phoneBound": bool(member.phone),
        "phone": member.phone,
        "birthday": member.birthday,
        "gender": member.gender,
        "city": member.city,
        "guide": guide,
        "createdAt": clock.iso(member.created_at),
    }


def get_member(member_id: str) -> Member:
    """The live member behind a token; a deleted or merged one no longer signs in."""
    try:
        member = Member.get(member_id, consistent_read=True)
    except DoesNotExist as exc:
        raise UnauthenticatedError("this member no longer exists") from exc
    if member.deleted_at or member.merged_into:
        raise UnauthenticatedError("this member no longer exists")
    return member


def profile(member_id: str) -> dict[str, Any]:
    """The member and its points balance, in one round trip."""
    from chalicelib.points import service as points

    member, balance = db.batch_get([(Member, member_id), points.balance_key(member_id)])
    if member is None or member.deleted_at or member.merged_into:
        raise UnauthenticatedError("this member no longer exists")
    return view(member, points_balance=balance)


# --- Login ---------------------------------------------------------------------

def login(code: str, scene: str | None = None) -> dict[str, Any]:
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
    points_balance: Any = _UNREAD
    if identity is not None:
        from chalicelib.points import service as points

        member, points_balance = db.batch_get([(Member, identity.member_id), points.balance_key(identity.member_id)])
        if member is None:
            raise UnauthenticatedError("this member no longer exists")
    elif by_unionid is not None:
        member = _link_openid(by_unionid.member_id, session)
    else:
        member, is_new = _create_member(session, launch, guide)
        points_balance = None if is_new else _UNREAD
    if guide is not None and not is_new and _guide_binding_open(member):
        member = _bind_guide(member, guide)

    token, expires_in = auth.issue_token(_principal(member, grant))
    return {"token": token, "expiresIn": expires_in, "isNew": is_new, "member": view(member, points_balance=points_balance)}


def _principal(member: Member, grant: RoleGrant | None) -> auth.Principal:
    roles = {auth.MEMBER} | (set(grant.roles) if grant else set())
    return auth.Principal(
        member_id=member.member_id,
        roles=frozenset(roles),
        store_id=grant.store_id if grant else None,
        guide_id=grant.guide_id if grant else None,
    )


def _new_member_id() -> str:
    return f"m{secrets.token_hex(8)}"


def _create_member(session: wechat.Session, launch: LaunchScene, guide: Guide | None) -> tuple[Member, bool]:
    """Create the member and its openid identity in one write; the first of racing logins wins."""
    for attempt in range(_CREATE_ATTEMPTS):
        now = clock.now()
        member = Member(
            _new_member_id(),
            openid=session.openid,
            unionid=session.unionid,
            created_at=now,
            referrer_id=launch.referrer_id,
        )
        if guide is not None:
            _apply_guide(member, guide, now)
        identities = [Identity(f"openid:{session.openid}", member_id=member.member_id, created_at=now)]
        if session.unionid:
            identities.append(Identity(f"unionid:{session.unionid}", member_id=member.member_id, created_at=now))
        try:
            with db.transaction() as write:
                for identity in identities:
                    write.save(identity, condition=Identity.key.does_not_exist())
                write.save(member, condition=Member.member_id.does_not_exist())
            observability.count("MembersCreated")
            return member, True
        except TransactWriteError:
            # Another login of the same openid won (or is committing): use its member.
            try:
                winner = Identity.get(f"openid:{session.openid}", consistent_read=True)
            except DoesNotExist:
                time.sleep(0.02 * (attempt + 1))
                continue
            return Member.get(winner.member_id, consistent_read=True), False
    raise ConflictError("too many simultaneous logins, try again", code="LOGIN_CONFLICT")


def _link_openid(member_id: str, session: wechat.Session) -> Member:
    """The brand already knows this unionid (another of its apps): link this openid to it."""
    try:
        Identity(f"openid:{session.openid}", member_id=member_id, created_at=clock.now()).save(
            condition=Identity.key.does_not_exist()
        )
    except PutError:
        pass  # a concurrent login linked it first; it points to the same member
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
    now = clock.now()
    binding_open = Member.guide_id.does_not_exist() | (Member.guide_bound_until < now)
    until = now + dt.timedelta(days=settings().guide_binding_days)
    try:
        member.update(
            actions=[
                Member.guide_id.set(guide.guide_id),
                Member.guide_name.set(guide.name),
                Member.guide_store_id.set(guide.store_id),
                Member.guide_bound_until.set(until),
            ],
            condition=binding_open,
        )
    except UpdateError:
        member.refresh(consistent_read=True)
    return member


# --- Profile, phone, deletion ---------------------------------------------------

def _on_profile_completed(member_id: str) -> None:
    """The profile was completed for the first time: the points ledger rewards it, once."""
    from chalicelib.points import service as points

    points.award_profile(member_id)


def update_profile(member_id: str, update: ProfileUpdate) -> dict[str, Any]:
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise InvalidRequestError("body", "give at least one of nickname, birthday, gender, city")
    member = get_member(member_id)
    actions = [getattr(Member, name).set(str(value)) for name, value in changes.items()]
    member.update(actions=actions, condition=Member.deleted_at.does_not_exist())
    if all(getattr(member, name) for name in PROFILE_FIELDS) and member.profile_completed_at is None:
        try:
            member.update(
                actions=[Member.profile_completed_at.set(clock.now())],
                condition=Member.profile_completed_at.does_not_exist(),
            )
        except UpdateError:
            member.refresh(consistent_read=True)
        else:
            _on_profile_completed(member_id)
    return view(member)


def phone_identity_key(phone: str) -> str:
    """The lookup key of a phone number: a keyed hash, so the key alone reveals nothing."""
    digest = hmac.new(secret("lookup_hash_key").encode(), phone.encode(), hashlib.sha256).hexdigest()
    return f"phone:{digest[:40]}"


def _merge_offline_member(member: Member, offline_member_id: str) -> Member:
    """An offline (POS) member holds this phone: the two become one, in one transaction.

    The offline member's points move by ledger transfers (history is never
    rewritten); it is marked `merged_into` this member, and the phone identity
    moves over. A change to either side meanwhile fails a condition: read again.
    """
    from chalicelib.points import service as points

    for attempt in range(_CREATE_ATTEMPTS):
        offline = Member.get(offline_member_id, consistent_read=True)
        if not offline.offline or offline.merged_into or not offline.phone:
            raise PhoneInUseError()
        phone = offline.phone
        key = phone_identity_key(phone)
        moving = points.prepare_merge(offline_member_id, member.member_id)
        still_offline = (Member.offline == True) & Member.merged_into.does_not_exist()  # noqa: E712
        try:
            with db.transaction() as write:
                moving.add_to(write)
                write.update(
                    offline,
                    actions=[Member.merged_into.set(member.member_id), Member.phone.remove()],
                    condition=still_offline,
                )
                write.update(
                    Identity(key),
                    actions=[Identity.member_id.set(member.member_id)],
                    condition=Identity.member_id == offline_member_id,
                )
                write.update(member, actions=[Member.phone.set(phone)], condition=Member.deleted_at.does_not_exist())
                if member.phone and member.phone != phone:
                    write.delete(Identity(phone_identity_key(member.phone)))
        except TransactWriteError:
            time.sleep(0.02 * (attempt + 1))
            continue
        member.phone = phone
        return member
    raise ConflictError("the member changed while merging, try again", code="MERGE_CONFLICT")


def bind_phone(member_id: str, code: str) -> dict[str, Any]:
    member = get_member(member_id)
    phone = wechat.phone_number(code)
    key = phone_identity_key(phone)
    free_or_mine = Identity.key.does_not_exist() | (Identity.member_id == member_id)
    try:
        with db.transaction() as write:
            write.save(Identity(key, member_id=member_id, created_at=clock.now()), condition=free_or_mine)
            write.update(member, actions=[Member.phone.set(phone)], condition=Member.deleted_at.does_not_exist())
            if member.phone and member.phone != phone:
                write.delete(Identity(phone_identity_key(member.phone)))
    except TransactWriteError as exc:
        holder = Identity.get(key, consistent_read=True)
        other = Member.get(holder.member_id, consistent_read=True)
        if other.offline:
            return view(_merge_offline_member(member, other.member_id))
        raise PhoneInUseError() from exc
    member.phone = phone
    return view(member)


def delete_member(member_id: str) -> None:
    """Erase personal data; the ledgers keep their entries under the anonymous member id."""
    member = get_member(member_id)
    identities = [f"openid:{member.openid}"] if member.openid else []
    if member.unionid:
        identities.append(f"unionid:{member.unionid}")
    if member.phone:
        identities.append(phone_identity_key(member.phone))
    with db.transaction() as write:
        write.update(
            member,
            actions=[
                Member.deleted_at.set(clock.now()),
                Member.openid.remove(),
                Member.unionid.remove(),
                Member.nickname.remove(),
                Member.birthday.remove(),
                Member.gender.remove(),
                Member.city.remove(),
                Member.phone.remove(),
            ],
            condition=Member.deleted_at.does_not_exist(),
        )
        for key in identities:
            write.delete(Identity(key))


# --- Roles ------------------------------------------------------------------------

def grant_role(grant: StaffGrant, granted_by: str) -> dict[str, Any]:
    if grant.role in ("staff", "guide") and not grant.store_id:
        raise InvalidRequestError("storeId", f"is required for the {grant.role} role")
    guide_id = None
    if grant.role == "guide":
        try:
            earlier = RoleGrant.get(grant.openid, consistent_read=True).guide_id
        except DoesNotExist:
            earlier = None
        guide_id = grant.guide_id or earlier or f"g{secrets.token_hex(6)}"
    actions = [
        RoleGrant.roles.add({grant.role}),
        RoleGrant.name.set(grant.name),
        RoleGrant.granted_by.set(granted_by),
        RoleGrant.granted_at.set(clock.now()),
    ]
    if grant.store_id:
        actions.append(RoleGrant.store_id.set(grant.store_id))
    if guide_id:
        actions.append(RoleGrant.guide_id.set(guide_id))
    with db.transaction() as write:
        write.update(RoleGrant(grant.openid), actions=actions)
        if guide_id:
            write.save(Guide(guide_id, name=grant.name, store_id=grant.store_id, openid=grant.openid))
    record = RoleGrant.get(grant.openid, consistent_read=True)
    return {
        "openid": record.openid,
        "roles": sorted(record.roles),
        "name": record.name,
        "storeId": record.store_id,
        "guideId": record.guide_id,
    }


# --- What other domains ask of a member --------------------------------------------

def tier_of(member_id: str) -> str:
    """The member's tier (`explorer` for a member not found)."""
    try:
        return Member.get(member_id, attributes_to_get=["tier"]).tier or "explorer"
    except DoesNotExist:
        return "explorer"


def openids(member_ids: list[str]) -> dict[str, str]:
    """The openid of each live member that has one (deleted members have none)."""
    found: dict[str, str] = {}
    unique_ids = sorted(set(member_ids))
    for start in range(0, len(unique_ids), 100):
        for member in db.batch_get([(Member, member_id) for member_id in unique_ids[start:start + 100]]):
            if member is not None and member.openid and not member.deleted_at and not member.merged_into:
                found[member.member_id] = member.openid
    return found


def bound_guide(member_id: str) -> str | None:
    """The guide the member is bound to now, if any."""
    try:
        member = Member.get(member_id, consistent_read=True)
    except DoesNotExist:
        return None
    if member.deleted_at or not member.guide_id or not member.guide_bound_until:
        return None
    return member.guide_id if member.guide_bound_until > clock.now() else None


def require_member(
    write: Any,
    member_id: str,
    *,
    tiers: Any = None,
    guide_id: str | None = None,
) -> None:
    """Add to the transaction `write` one check that the member is live and, if given,
    holds one of `tiers` and is bound to `guide_id` now. The check is one item of the
    transaction, so the other domain's write happens only if the member qualifies.
    """
    condition = Member.member_id.exists() & Member.deleted_at.does_not_exist() & Member.merged_into.does_not_exist()
    if tiers:
        condition &= Member.tier.is_in(*sorted(tiers))
    if guide_id:
        condition &= (Member.guide_id == guide_id) & (Member.guide_bound_until > clock.now())
    write.condition_check(Member, member_id, condition=condition)
