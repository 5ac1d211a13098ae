"""Members: login, profile, phone binding, deletion, role grants, and what other domains ask of a member.

Members is a leaf: it knows no other domain. What spans domains (the
`/members/me` answer with its points, a profile's reward, merging a POS
member's points) is a use case (`chalicelib.usecases`), which adds this
domain's items to a transaction with the functions taking a `txn`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib import clock, db, transact
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.members.errors import (
    GuideIdInUseError,
    HeldOfflineError,
    LoginConflictError,
    MemberGoneError,
    OwnAdminRoleError,
    PhoneInUseError,
)
from chalicelib.members.lookup import identity_keys as phone_identity_keys
from chalicelib.members.login import LaunchScene, ReadAlong, SignIn, bind_guide, login, new_member_id, parse_scene
from chalicelib.members.models import HQ_SCOPE, Guide, Identity, Member, RoleGrant, created_day_key, created_day_keys
from chalicelib.members.schemas import ProfileUpdate, StaffGrant
from chalicelib.transact import Explain, Transaction
from chalicelib.wechat import client as wechat

__all__ = [
    "created_on",
    "OrderFacts",
    "order_facts",
    "TIER_NAMES",
    "PhoneInUseError",
    "HeldOfflineError",
    "LoginConflictError",
    "GuideIdInUseError",
    "MemberGoneError",
    "LaunchScene",
    "ReadAlong",
    "SignIn",
    "parse_scene",
    "login",
    "view",
    "member_key",
    "guide_key",
    "rebind_guide",
    "binding_view",
    "guide_ids",
    "bound_customers",
    "bound_customers_page",
    "live",
    "get_member",
    "update_profile",
    "profile_completed",
    "complete_profile",
    "bind_phone",
    "offline_member",
    "add_offline_member",
    "absorb_offline",
    "delete_member",
    "grant_role",
    "revoke_role",
    "staff_of",
    "phone_identity_key",
    "phone_identity_keys",
    "tier_of",
    "tiers_of",
    "set_tier",
    "openids",
    "bound_guide",
    "require_member",
    "live_member_check",
]

TIER_NAMES = {"explorer": "体验官", "pioneer": "探索者", "geek": "极客玩家", "black_gold": "黑金大使"}
PROFILE_FIELDS = ("nickname", "birthday", "gender", "city")

_live = Member.member_id.exists() & Member.deleted_at.does_not_exist() & Member.merged_into.does_not_exist()


def _gone(old: Any) -> Exception:
    return MemberGoneError()


# --- Reading ---------------------------------------------------------------------

def member_key(member_id: str) -> tuple[type[Member], str]:
    """The key of a member, for a caller's multi-table `db.batch_get`."""
    return Member, member_id


def guide_key(guide_id: str) -> tuple[type[Guide], str]:
    """The key of a guide, for a caller's multi-table `db.batch_get` (a Guide has `guide_id` and `store_id`)."""
    return Guide, guide_id


def live(member: Member | None) -> Member:
    """The member, if it is live; a deleted or merged one no longer signs in."""
    if member is None or member.deleted_at or member.merged_into:
        raise MemberGoneError()
    return member


def get_member(member_id: str) -> Member:
    """The live member behind a token."""
    try:
        return live(Member.get(member_id, consistent_read=True))
    except DoesNotExist as exc:
        raise MemberGoneError() from exc


def view(member: Member) -> dict[str, Any]:
    """The member's own part of `GET /members/me` (the use case adds its points)."""
    guide = None
    if member.guide_id and member.guide_bound_until and member.guide_bound_until > clock.now():
        guide = {"guideId": member.guide_id, "name": member.guide_name, "storeId": member.guide_store_id}
    return {
        "memberId": member.member_id,
        "nickname": member.nickname,
        "tier": member.tier,
        "tierName": TIER_NAMES.get(member.tier, member.tier),
        "phoneBound": bool(member.phone),
        "phone": member.phone,
        "birthday": member.birthday,
        "gender": member.gender,
        "city": member.city,
        "guide": guide,
        "createdAt": clock.iso(member.created_at),
    }


# --- Profile ------------------------------------------------------------------------

def update_profile(member_id: str, update: ProfileUpdate) -> Member:
    """Save the given fields; the member as it is now (one write, no read)."""
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise InvalidRequestError("body", "give at least one of nickname, birthday, gender, city")
    member = Member(member_id)
    actions = [getattr(Member, name).set(str(value)) for name, value in changes.items()]
    try:
        transact.retrying(lambda: member.update(actions=actions, condition=_live))
    except UpdateError as exc:
        if transact.condition_failed(exc):
            raise MemberGoneError() from exc
        raise
    return member


def profile_completed(member: Member) -> bool:
    """Every profile field is filled in, and the completion is not recorded yet."""
    return member.profile_completed_at is None and all(getattr(member, name) for name in PROFILE_FIELDS)


def complete_profile(txn: Transaction, member_id: str, at: dt.datetime, *, explain: Explain | None = None) -> None:
    """Add to `txn` the record that the profile was completed: once, for a live member (label `member`)."""
    once = _live & Member.profile_completed_at.does_not_exist()
    txn.update(Member(member_id), [Member.profile_completed_at.set(at)], once, label="member", explain=explain)


# --- Phone ------------------------------------------------------------------------------

def phone_identity_key(phone: str) -> str:
    """The lookup key a phone's identity is written under now: a keyed hash, so the key alone reveals nothing."""
    return phone_identity_keys(phone)[0]


def _claim_phone(
    txn: Transaction, phone: str, member_id: str, condition: Condition, explain: Explain | None, at: dt.datetime
) -> None:
    """Add to `txn` the phone's identity under the current key, on `condition` there and under every
    earlier key, where what is left goes: a rotated key neither hides a holder nor leaves a second identity."""
    key, *earlier = phone_identity_keys(phone)
    txn.save(Identity(key, member_id=member_id, created_at=at), condition, label="phone", explain=explain)
    for number, old_key in enumerate(earlier):
        txn.delete(Identity(old_key), condition, label=f"phone under earlier key {number}", explain=explain)


def _move_phone(txn: Transaction, member: Member, phone: str) -> None:
    """The member's phone becomes `phone`; the identity of the one it had goes."""
    txn.update(member, [Member.phone.set(phone)], Member.deleted_at.does_not_exist(), label="member", explain=_gone)
    if member.phone and member.phone != phone:
        for number, key in enumerate(phone_identity_keys(member.phone)):
            txn.delete(Identity(key), label=f"old phone {number}")


def _held(old: Identity) -> Exception:
    holder = Member.get(old.member_id, consistent_read=True)
    return HeldOfflineError(holder.member_id) if holder.offline else PhoneInUseError()


def bind_phone(member_id: str, code: str) -> Member:
    """Bind the phone of a getPhoneNumber `code`; HeldOfflineError if a POS member holds it (merge them)."""
    member = get_member(member_id)
    phone = wechat.phone_number(code)
    free_or_mine = Identity.key.does_not_exist() | (Identity.member_id == member_id)

    def build(txn: Transaction) -> None:
        _claim_phone(txn, phone, member_id, free_or_mine, _held, clock.now())
        _move_phone(txn, member, phone)

    transact.write(build)
    member.phone = phone
    return member


def offline_member(member_id: str) -> Member:
    """The offline (POS) member still waiting for its phone to be bound online."""
    try:
        member = Member.get(member_id, consistent_read=True)
    except DoesNotExist as exc:
        raise PhoneInUseError() from exc
    if not member.offline or member.merged_into or not member.phone:
        raise PhoneInUseError()
    return member


def add_offline_member(txn: Transaction, phone: str, name: str | None, at: dt.datetime) -> str:
    """Add to `txn` a member imported from the stores' POS, with its phone identity; its id.

    A phone already known is PhoneInUseError. Each attempt draws a new id.
    """
    member_id = new_member_id()
    _claim_phone(txn, phone, member_id, Identity.key.does_not_exist(), lambda old: PhoneInUseError(), at)
    member = Member(member_id, phone=phone, nickname=name, offline=True, created_at=at,
                    created_day=created_day_key(clock.shanghai_date(at), member_id))
    txn.save(member, Member.member_id.does_not_exist(), label="member")
    return member_id


def absorb_offline(txn: Transaction, member: Member, offline: Member) -> str:
    """Add to `txn`: `offline` is merged into `member`, whose phone it becomes; the phone.

    Conditioned on both being as read: the offline member still unmerged,
    its phone identity held by no one else, the member not deleted.
    """
    phone = offline.phone
    still_offline = (Member.offline == True) & Member.merged_into.does_not_exist()  # noqa: E712
    txn.update(
        offline, [Member.merged_into.set(member.member_id), Member.phone.remove()], still_offline, label="offline"
    )
    offlines_or_free = Identity.key.does_not_exist() | (Identity.member_id == offline.member_id)
    _claim_phone(txn, phone, member.member_id, offlines_or_free, None, clock.now())
    _move_phone(txn, member, phone)
    return phone


# --- Guides -------------------------------------------------------------------------------

def rebind_guide(member_id: str, guide_id: str) -> Member:
    """HQ binds the member to `guide_id` for a new binding period, whoever held them before."""
    try:
        guide = Guide.get(guide_id, consistent_read=True)
    except DoesNotExist as exc:
        raise InvalidRequestError("guideId", "is not a guide") from exc
    member = Member(member_id)
    return bind_guide(member, guide, _live, refused=lambda: NotFoundError("no such member"))


def guide_ids() -> Iterator[str]:
    """Every guide's id, from the guides' listing index."""
    return (guide.guide_id for guide in Guide.listed.query(Guide.LISTING))


def _bound_now(at: dt.datetime) -> Condition:
    return (Member.guide_bound_until > at) & Member.deleted_at.does_not_exist() & Member.merged_into.does_not_exist()


def bound_customers(guide_id: str) -> Iterator[Member]:
    """The members bound to the guide now, newest first."""
    return Member.by_guide.query(guide_id, scan_index_forward=False, filter_condition=_bound_now(clock.now()))


def bound_customers_page(guide_id: str, limit: int, cursor: dict[str, Any] | None) -> tuple[list[Member], Any]:
    """A page of `bound_customers`, and the position after it (None on the last page)."""
    start = None
    if cursor is not None:
        after, created = cursor.get("after"), cursor.get("at")
        if not (isinstance(after, str) and isinstance(created, str)):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
        start = {"member_id": {"S": after}, "guide_id": {"S": guide_id}, "created_at": {"S": created}}
    page = Member.by_guide.query(guide_id, scan_index_forward=False, limit=limit, last_evaluated_key=start,
                                 filter_condition=_bound_now(clock.now()))
    members = list(page)
    last = page.last_evaluated_key
    return members, ({"after": last["member_id"]["S"], "at": last["created_at"]["S"]} if last else None)


def binding_view(member: Member) -> dict[str, Any]:
    return {
        "memberId": member.member_id,
        "guide": {"guideId": member.guide_id, "name": member.guide_name, "storeId": member.guide_store_id},
        "boundUntil": clock.iso(member.guide_bound_until),
    }


# --- Deletion -------------------------------------------------------------------------

def delete_member(member_id: str) -> None:
    """Erase personal data; the ledgers keep their entries under the anonymous member id."""
    member = get_member(member_id)
    identities = [f"openid:{member.openid}"] if member.openid else []
    if member.unionid:
        identities.append(f"unionid:{member.unionid}")
    if member.phone:
        identities.extend(phone_identity_keys(member.phone))
    erased = [
        Member.deleted_at.set(clock.now()),
        *(getattr(Member, name).remove() for name in ("openid", "unionid", "nickname", "birthday", "gender", "city", "phone")),
    ]

    def build(txn: Transaction) -> None:
        txn.update(member, erased, Member.deleted_at.does_not_exist(), label="member", explain=_gone)
        for number, key in enumerate(identities):
            txn.delete(Identity(key), label=f"identity {number}")

    transact.write(build)


# --- Roles ------------------------------------------------------------------------------

def _grant_of(openid: str) -> RoleGrant | None:
    try:
        return RoleGrant.get(openid, consistent_read=True)
    except DoesNotExist:
        return None


def grant_role(grant: StaffGrant, granted_by: str) -> dict[str, Any]:
    """Grant a role (applied at the person's next login). A guide keeps one guide id, whoever grants at once."""
    if grant.role in ("staff", "guide") and not grant.store_id:
        raise InvalidRequestError("storeId", f"is required for the {grant.role} role")
    new_guide_id = f"g{secrets.token_hex(6)}"

    def build(txn: Transaction) -> None:
        refusal = txn.previous_refusal
        # The guide id is chosen from what was read: the write holds only if it is still so.
        current = refusal.item("grant") if refusal is not None else _grant_of(grant.openid)
        earlier = current.guide_id if current is not None else None
        actions = [
            RoleGrant.roles.add({grant.role}),
            RoleGrant.name.set(grant.name),
            RoleGrant.granted_by.set(granted_by),
            RoleGrant.granted_at.set(clock.now()),
        ]
        if grant.store_id:
            actions += [RoleGrant.store_id.set(grant.store_id), RoleGrant.scope.set(grant.store_id)]
        else:
            actions.append(RoleGrant.scope.set(RoleGrant.scope | HQ_SCOPE))
        if grant.role != "guide":
            txn.update(RoleGrant(grant.openid), actions, label="grant")
            return
        guide_id = grant.guide_id or earlier or new_guide_id
        guide_id_as_read = RoleGrant.guide_id == earlier if earlier else RoleGrant.guide_id.does_not_exist()
        txn.update(RoleGrant(grant.openid), [*actions, RoleGrant.guide_id.set(guide_id)], guide_id_as_read, label="grant")
        free_or_theirs = Guide.guide_id.does_not_exist() | (Guide.openid == grant.openid)
        guide = Guide(guide_id, name=grant.name, store_id=grant.store_id, openid=grant.openid)
        txn.save(guide, free_or_theirs, label="guide", explain=lambda old: GuideIdInUseError())

    transact.write(build, replan=True)
    return _grant_view(RoleGrant.get(grant.openid, consistent_read=True))


def _grant_view(record: RoleGrant) -> dict[str, Any]:
    return {
        "openid": record.openid,
        "roles": sorted(record.roles or ()),
        "name": record.name,
        "storeId": record.store_id,
        "guideId": record.guide_id,
        "grantedBy": record.granted_by,
        "grantedAt": clock.iso(record.granted_at),
    }


def staff_of(store_id: str | None, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """Who holds a role at the store (at HQ without one), by openid; a person whose every role
    was revoked is left out."""
    start = None
    if cursor is not None:
        after = cursor.get("after")
        if not isinstance(after, str):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
        start = {"openid": {"S": after}, "scope": {"S": store_id or HQ_SCOPE}}
    page = RoleGrant.by_scope.query(store_id or HQ_SCOPE, limit=limit, last_evaluated_key=start,
                                    filter_condition=RoleGrant.roles.exists())
    items = [_grant_view(record) for record in page]
    last = page.last_evaluated_key
    return {"items": items, "nextCursor": {"after": last["openid"]["S"]} if last else None}


def revoke_role(openid: str, role: str | None, revoked_by: str) -> None:
    """Take a role away (every role without one); the person's tokens lose it within the grants cache period.

    The grants version goes up when a role goes, so every privileged claim of
    a token issued before is refused (`access.admit`): the person signs in
    again for the roles they keep. Revoking a role not held changes nothing.
    A person never granted anything is NotFoundError. An admin (member
    `revoked_by`) does not take their own admin role: another admin does.
    """
    if role in (None, "admin") and get_member(revoked_by).openid == openid:
        raise OwnAdminRoleError()
    if role:
        taken, held = RoleGrant.roles.delete({role}), RoleGrant.roles.contains(role)
    else:
        taken, held = RoleGrant.roles.remove(), RoleGrant.roles.exists()
    grant = RoleGrant(openid)
    try:
        transact.retrying(lambda: grant.update(actions=[taken, RoleGrant.version.add(1)], condition=held))
    except UpdateError as exc:
        if not transact.condition_failed(exc):
            raise
        if _grant_of(openid) is None:
            raise NotFoundError("no such staff member") from exc


# --- What other domains ask of a member --------------------------------------------

def _members(member_ids: Iterable[str]) -> Iterator[Member]:
    """The members that exist among `member_ids`, read 100 to a round trip."""
    found = db.batch_get([(Member, member_id) for member_id in sorted(set(member_ids))])
    yield from (member for member in found if member is not None)


def tier_of(member_id: str) -> str:
    """The member's tier (`explorer` for a member not found)."""
    try:
        return Member.get(member_id, attributes_to_get=["tier"]).tier or "explorer"
    except DoesNotExist:
        return "explorer"


@dataclass(frozen=True)
class OrderFacts:
    """What an order's completion needs of its member: the tier its points earn at, who is credited."""

    tier: str
    guide_id: str | None  # the guide the member is bound to at that moment
    guide_store_id: str | None
    referrer_id: str | None


def order_facts(member_id: str, at: dt.datetime) -> OrderFacts:
    try:
        member = Member.get(member_id, attributes_to_get=[
            "tier", "guide_id", "guide_store_id", "guide_bound_until", "referrer_id",
        ])
    except DoesNotExist:
        return OrderFacts("explorer", None, None, None)
    bound = member.guide_bound_until is not None and member.guide_bound_until > at and bool(member.guide_id)
    return OrderFacts(member.tier or "explorer", member.guide_id if bound else None,
                      member.guide_store_id if bound else None, member.referrer_id)


def tiers_of(member_ids: Iterable[str]) -> dict[str, str]:
    """The tier of each member that exists among `member_ids`."""
    return {member.member_id: member.tier for member in _members(member_ids)}


def set_tier(txn: Transaction, member_id: str, tier: str, *, was: str, label: str = "member") -> None:
    """Add to `txn` the member's new tier, on condition it is still `was` (as the caller read it)."""
    as_read = Member.tier == was
    if was == Member.tier.default:
        as_read |= Member.tier.does_not_exist()
    txn.update(Member(member_id), [Member.tier.set(tier)], Member.member_id.exists() & as_read, label=label)


def openids(member_ids: list[str]) -> dict[str, str]:
    """The openid of each live member that has one (deleted members have none)."""
    return {
        member.member_id: member.openid
        for member in _members(member_ids)
        if member.openid and not member.deleted_at and not member.merged_into
    }


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
    txn: Transaction,
    member_id: str,
    *,
    tiers: Any = None,
    guide_id: str | None = None,
    label: str = "member",
    explain: Explain = _gone,
) -> None:
    """Add to `txn` one check that the member is live and, if given, holds one of
    `tiers` and is bound to `guide_id` now. The check is one item of the
    transaction, so the other domain's write happens only if the member qualifies.
    A refusal is MemberGoneError (401) unless `explain` says otherwise.
    """
    condition = _live
    if tiers:
        condition &= Member.tier.is_in(*sorted(tiers))
    if guide_id:
        condition &= (Member.guide_id == guide_id) & (Member.guide_bound_until > clock.now())
    txn.condition_check(Member, member_id, condition=condition, label=label, explain=explain)


def live_member_check(member_id: str, *, explain: Explain = _gone) -> Callable[[Transaction], None]:
    """`require_member` as a participant for a domain that does not know members."""

    def add(txn: Transaction) -> None:
        require_member(txn, member_id, explain=explain)

    return add


# --- Figures ------------------------------------------------------------------------------

def created_on(day: dt.date) -> int:
    """How many members were created on a Shanghai day (WeChat sign-ups and POS imports alike).

    Counted on the sparse `created-day` index, shard by shard (Select=COUNT), never by a scan.
    """
    return sum(Member.created_on_day.count(key) for key in created_day_keys(day))
