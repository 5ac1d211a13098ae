"""Members, the identities that lead to them, and the roles HQ grants."""

from __future__ import annotations

import datetime as dt
import zlib

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "Member",
    "MembersByGuide",
    "MembersCreatedOnDay",
    "CREATED_DAY_SHARDS",
    "created_day_key",
    "created_day_keys",
    "Identity",
    "RoleGrant",
    "GrantsByScope",
    "Guide",
    "GuidesListed",
    "HQ_SCOPE",
]

# The scope of a grant that names no store: HQ's own people.
HQ_SCOPE = "hq"

# A day's sign-ups are spread over this many index partitions: a campaign's rush of logins is not one hot key.
CREATED_DAY_SHARDS = 8


def created_day_key(day: dt.date, member_id: str) -> str:
    """The `created-day` index key of a member created on `day` (Shanghai), by the hash of its id."""
    return f"{day.isoformat()}#{zlib.crc32(member_id.encode()) % CREATED_DAY_SHARDS}"


def created_day_keys(day: dt.date) -> list[str]:
    """Every `created-day` index key of a day, for a reader of the day."""
    return [f"{day.isoformat()}#{shard}" for shard in range(CREATED_DAY_SHARDS)]


class MembersByGuide(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-guide"
        projection = AllProjection()

    guide_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class MembersCreatedOnDay(GlobalSecondaryIndex):
    """Sparse: members by the Shanghai day they were created (`<YYYY-MM-DD>#<shard>`), counted by the
    daily report. Keys only: a count needs nothing else."""

    class Meta:
        index_name = "created-day"
        projection = KeysOnlyProjection()

    created_day = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class Member(SiyuModel):
    class Meta:
        table = "members"

    member_id = UnicodeAttribute(hash_key=True)
    openid = UnicodeAttribute(null=True)
    unionid = UnicodeAttribute(null=True)
    nickname = UnicodeAttribute(null=True)
    birthday = UnicodeAttribute(null=True)  # YYYY-MM-DD
    gender = UnicodeAttribute(null=True)
    city = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    tier = UnicodeAttribute(default="explorer")
    # An offline member was imported from the stores' POS and has no WeChat identity yet.
    offline = BooleanAttribute(default=False)
    guide_id = UnicodeAttribute(null=True)
    guide_name = UnicodeAttribute(null=True)
    guide_store_id = UnicodeAttribute(null=True)
    guide_bound_until = UTCDateTimeAttribute(null=True)
    referrer_id = UnicodeAttribute(null=True)
    merged_into = UnicodeAttribute(null=True)
    profile_completed_at = UTCDateTimeAttribute(null=True)
    deleted_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    created_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `created_at`
    version = NumberAttribute(default=0)

    by_guide = MembersByGuide()
    created_on_day = MembersCreatedOnDay()


class Identity(SiyuModel):
    """`openid:<openid>`, `unionid:<unionid>` or `phone:<keyed hash>` -> the member it belongs to."""

    class Meta:
        table = "identities"

    key = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class GrantsByScope(GlobalSecondaryIndex):
    """Who holds what at a store (or at HQ): `GET /admin/staff?storeId=`."""

    class Meta:
        index_name = "by-scope"
        projection = AllProjection()

    scope = UnicodeAttribute(hash_key=True)
    openid = UnicodeAttribute(range_key=True)


class RoleGrant(SiyuModel):
    """Roles HQ granted to a WeChat user, applied at their next login; a revocation bumps `version`."""

    class Meta:
        table = "role-grants"

    openid = UnicodeAttribute(hash_key=True)
    # Absent once every role is revoked (DynamoDB keeps no empty set).
    roles = UnicodeSetAttribute(null=True)
    name = UnicodeAttribute()
    store_id = UnicodeAttribute(null=True)
    scope = UnicodeAttribute(null=True)  # the store, or HQ_SCOPE
    guide_id = UnicodeAttribute(null=True)
    granted_by = UnicodeAttribute()
    granted_at = UTCDateTimeAttribute()
    version = NumberAttribute(default=0)

    by_scope = GrantsByScope()


class GuidesListed(GlobalSecondaryIndex):
    """Every guide, for the nightly jobs that visit each guide's customers (one partition: guides are few)."""

    class Meta:
        index_name = "listed"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    guide_id = UnicodeAttribute(range_key=True)


class Guide(SiyuModel):
    """A shopping guide, addressed by the id in their QR codes' `g=<guideId>` scene."""

    class Meta:
        table = "guides"

    LISTING = "guides"

    guide_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    store_id = UnicodeAttribute()
    openid = UnicodeAttribute()
    listing = UnicodeAttribute(default=LISTING)

    listed = GuidesListed()
