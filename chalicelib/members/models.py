"""Members, the identities that lead to them, and the roles HQ grants."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.db import SiyuModel

__all__ = ["Member", "MembersByGuide", "Identity", "RoleGrant", "Guide"]


class MembersByGuide(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-guide"
        projection = AllProjection()

    guide_id = UnicodeAttribute(hash_key=True)
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
    version = NumberAttribute(default=0)

    by_guide = MembersByGuide()


class Identity(SiyuModel):
    """`openid:<openid>`, `unionid:<unionid>` or `phone:<keyed hash>` -> the member it belongs to."""

    class Meta:
        table = "identities"

    key = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class RoleGrant(SiyuModel):
    """Roles HQ granted to a WeChat user, applied at their next login; a revocation bumps `version`."""

    class Meta:
        table = "role-grants"

    openid = UnicodeAttribute(hash_key=True)
    # Absent once every role is revoked (DynamoDB keeps no empty set).
    roles = UnicodeSetAttribute(null=True)
    name = UnicodeAttribute()
    store_id = UnicodeAttribute(null=True)
    guide_id = UnicodeAttribute(null=True)
    granted_by = UnicodeAttribute()
    granted_at = UTCDateTimeAttribute()
    version = NumberAttribute(default=0)


class Guide(SiyuModel):
    """A shopping guide, addressed by the id in their QR codes' `g=<guideId>` scene."""

    class Meta:
        table = "guides"

    guide_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    store_id = UnicodeAttribute()
    openid = UnicodeAttribute()
