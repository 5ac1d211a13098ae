"""Request bodies and answers of the member routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from chalicelib.validation import ID_PATTERN, Day, Page, QueryModel, RequestModel, ResponseModel, Timestamp

__all__ = [
    "LoginRequest",
    "RevokeQuery",
    "ProfileUpdate",
    "PhoneRequest",
    "SubscriptionRequest",
    "StaffGrant",
    "Member",
    "LoginAnswer",
    "SubscriptionConfig",
    "SubscriptionCredits",
    "RoleGrantAnswer",
    "StaffQuery",
    "StaffPage",
]


class LoginRequest(RequestModel):
    code: str = Field(min_length=1, max_length=128)
    scene: str | None = Field(default=None, max_length=128)


class ProfileUpdate(RequestModel):
    nickname: str | None = Field(default=None, min_length=1, max_length=32)
    birthday: dt.date | None = None
    gender: Literal["male", "female", "unknown"] | None = None
    city: str | None = Field(default=None, min_length=1, max_length=32)

    @field_validator("birthday")
    @classmethod
    def _in_the_past(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not dt.date(1900, 1, 1) <= value <= dt.date.today():
            raise ValueError("must be a date in the past")
        return value


class PhoneRequest(RequestModel):
    code: str = Field(min_length=1, max_length=128)


class SubscriptionRequest(RequestModel):
    template_ids: list[str] = Field(min_length=1, max_length=10)


class StaffGrant(RequestModel):
    openid: str = Field(min_length=1, max_length=64)
    role: Literal["staff", "guide", "admin"]
    store_id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=32)
    guide_id: str | None = Field(default=None, pattern=ID_PATTERN)


class RevokeQuery(QueryModel):
    """`DELETE /admin/staff/{openid}?role=`: without a role, every role."""

    role: Literal["staff", "guide", "admin"] | None = None



# --- Answers -------------------------------------------------------------------------------


class PointsBalance(ResponseModel):
    available: int


class NextTier(ResponseModel):
    tier: str
    tier_name: str
    spend_fen: int
    activity: int
    spend_to_go_fen: int
    activity_to_go: int


class TierProgress(ResponseModel):
    """Trailing spend and activity, the tier's benefits and what the next tier still asks for."""

    spend_fen: int
    activity: int
    window_months: int
    order_multiplier_pct: int
    benefits: list[str]
    next: NextTier | None
    reviewed_at: Timestamp | None


class BoundGuide(ResponseModel):
    guide_id: str
    name: str | None
    store_id: str | None


class Member(ResponseModel):
    """`GET /members/me`."""

    member_id: str
    nickname: str | None
    tier: str = Field(description="explorer, pioneer, geek or black_gold")
    tier_name: str
    points: PointsBalance
    tier_progress: TierProgress | None = None
    phone_bound: bool
    phone: str | None = None
    birthday: Day | None = None
    gender: str | None = None
    city: str | None = None
    guide: BoundGuide | None
    created_at: Timestamp


class LoginAnswer(ResponseModel):
    token: str
    expires_in: int = Field(description="seconds the token stays valid")
    is_new: bool
    member: Member


class SubscriptionTemplates(ResponseModel):
    appointment_reminder: str
    order_status: str
    coupon_expiry: str
    points_expiry: str


class SubscriptionConfig(ResponseModel):
    """`GET /config/subscriptions`: the template ids to pass to `wx.requestSubscribeMessage`."""

    templates: SubscriptionTemplates


class SubscriptionCredits(ResponseModel):
    """Messages the member may still be sent, per template id."""

    credits: dict[str, int]


class RoleGrantAnswer(ResponseModel):
    openid: str
    roles: list[Literal["staff", "guide", "admin"]]
    name: str
    store_id: str | None
    guide_id: str | None
    granted_by: str | None = None
    granted_at: Timestamp | None = None


class StaffQuery(QueryModel):
    """`GET /admin/staff?storeId=`: without a store, HQ's own people."""

    store_id: str | None = Field(default=None, alias="storeId", pattern=ID_PATTERN)


class StaffPage(Page[RoleGrantAnswer]):
    """Who holds which roles at the store, by openid."""
