"""Request bodies and answers of the coupon routes; cross-field rules name the field they break."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal, get_args

from pydantic import Field

from chalicelib.clock import SHANGHAI
from chalicelib.errors import InvalidRequestError
from chalicelib.validation import (
    ID_PATTERN,
    Page,
    PlausibleMoment,
    QueryModel,
    RequestModel,
    ResponseModel,
    Timestamp,
)

__all__ = [
    "CampaignCreate",
    "CampaignRef",
    "RedeemRequest",
    "CouponListQuery",
    "OpenCampaignPage",
    "AdminCampaign",
    "AdminCampaignPage",
    "Coupon",
    "CouponPage",
    "CouponCode",
    "TIERS",
    "MAX_SHARDS",
    "default_shard_count",
]

MAX_SHARDS = 64
MAX_STOCK = 10_000_000
FEN_LIMIT = 100_000_000  # ¥1,000,000
_ID = re.compile(ID_PATTERN)
CouponKind = Literal["cash", "discount", "service"]
Channel = Literal["public", "guide", "exchange"]
CouponStatus = Literal["available", "locked", "used", "expired"]
Tier = Literal["explorer", "pioneer", "geek", "black_gold"]
TIERS = get_args(Tier)


def default_shard_count(total_stock: int) -> int:
    """One shard per 100 coupons, at most 16: small campaigns stay on few items."""
    return max(1, min(16, total_stock // 100))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


class CampaignCreate(RequestModel):
    title: str = Field(min_length=1, max_length=64)
    kind: CouponKind
    value: int = Field(ge=0, le=FEN_LIMIT)
    threshold: int = Field(default=0, ge=0, le=FEN_LIMIT)
    max_off: int | None = Field(default=None, gt=0, le=FEN_LIMIT)
    total_stock: int = Field(gt=0, le=MAX_STOCK)
    per_member_limit: int = Field(gt=0, le=100)
    shard_count: int | None = Field(default=None, gt=0, le=MAX_SHARDS)
    valid_from: PlausibleMoment
    valid_to: PlausibleMoment
    claim_from: PlausibleMoment | None = None
    claim_to: PlausibleMoment | None = None
    tiers: list[Tier] | None = Field(default=None, min_length=1)
    store_ids: list[str] | None = Field(default=None, min_length=1, max_length=200)
    sku_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    points_price: int | None = Field(default=None, gt=0, le=10_000_000)
    channel: Channel | None = None

    def checked(self, now: dt.datetime) -> CampaignCreate:
        """The body with defaults filled in; raises naming the first field that breaks a rule."""
        valid_from, valid_to = _aware(self.valid_from), _aware(self.valid_to)
        claim_from = _aware(self.claim_from) if self.claim_from else min(now, valid_from)
        claim_to = _aware(self.claim_to) if self.claim_to else valid_to
        if valid_to <= valid_from:
            raise InvalidRequestError("validTo", "must be after validFrom")
        if valid_to <= now:
            raise InvalidRequestError("validTo", "must be in the future")
        if claim_to <= claim_from:
            raise InvalidRequestError("claimTo", "must be after claimFrom")
        if claim_to > valid_to:
            raise InvalidRequestError("claimTo", "must not be after validTo")
        if self.kind == "cash":
            if self.value <= 0:
                raise InvalidRequestError("value", "must be more than 0 fen for a cash coupon")
            if self.threshold and self.threshold < self.value:
                raise InvalidRequestError("threshold", "must be 0 or at least value")
            if self.max_off is not None:
                raise InvalidRequestError("maxOff", "applies only to discount coupons")
        elif self.kind == "discount":
            if not 1 <= self.value <= 99:
                raise InvalidRequestError("value", "must be the percentage paid, from 1 to 99")
        elif self.max_off is not None:
            raise InvalidRequestError("maxOff", "applies only to discount coupons")
        for field, ids in (("storeIds", self.store_ids), ("skuIds", self.sku_ids)):
            for index, item in enumerate(ids or []):
                if not _ID.match(item):
                    raise InvalidRequestError(f"{field}.{index}", "must be 1 to 64 letters, digits, _ or -")
        channel = self.channel or ("exchange" if self.points_price else "public")
        if channel == "exchange" and not self.points_price:
            raise InvalidRequestError("pointsPrice", "is required for an exchange campaign")
        if channel != "exchange" and self.points_price:
            raise InvalidRequestError("channel", "must be exchange when pointsPrice is set")
        shard_count = self.shard_count or default_shard_count(self.total_stock)
        if shard_count > self.total_stock:
            raise InvalidRequestError("shardCount", "must not exceed totalStock")
        return self.model_copy(update={
            "valid_from": valid_from,
            "valid_to": valid_to,
            "claim_from": claim_from,
            "claim_to": claim_to,
            "channel": channel,
            "shard_count": shard_count,
        })


class CampaignRef(RequestModel):
    campaign_id: str = Field(pattern=ID_PATTERN)


class RedeemRequest(RequestModel):
    payload: str = Field(min_length=1, max_length=512)


class CouponListQuery(QueryModel):
    status: CouponStatus | None = None


# --- Answers -------------------------------------------------------------------------------


class Campaign(ResponseModel):
    """What a campaign offers; money in fen, a discount's `value` is the percentage paid."""

    campaign_id: str
    title: str
    kind: CouponKind
    value: int
    threshold: int
    max_off: int | None
    valid_from: Timestamp
    valid_to: Timestamp
    claim_from: Timestamp
    claim_to: Timestamp
    per_member_limit: int
    tiers: list[str] | None
    store_ids: list[str] | None
    sku_ids: list[str] | None
    points_price: int | None
    channel: Channel


class OpenCampaign(Campaign):
    """A campaign open to this member now: the stock left and how many this member holds."""

    remaining: int
    claimed: int


class OpenCampaignPage(Page[OpenCampaign]):
    """`GET /coupons/campaigns`, by campaignId."""


class AdminCampaign(Campaign):
    """A campaign with its stock; `remaining` and `given` are read where one campaign is asked for."""

    total_stock: int
    shard_count: int
    status: Literal["active", "stopped", "ended"]
    created_at: Timestamp
    stopped_at: Timestamp | None
    remaining: int | None = None
    given: int | None = None


class AdminCampaignPage(Page[AdminCampaign]):
    """`GET /admin/campaigns`: every campaign, active or not."""


class Coupon(ResponseModel):
    """A member's coupon; a locked one names the order holding it, a used one where and when it was used."""

    coupon_id: str
    campaign_id: str
    title: str
    kind: CouponKind
    value: int
    threshold: int
    max_off: int | None
    valid_from: Timestamp
    valid_to: Timestamp
    store_ids: list[str] | None
    sku_ids: list[str] | None
    status: CouponStatus
    source: str | None
    created_at: Timestamp
    order_id: str | None = None
    used_at: Timestamp | None = None
    store_id: str | None = None


class CouponPage(Page[Coupon]):
    """`GET /members/me/coupons`, newest first."""


class CouponCode(ResponseModel):
    """What the store's scanner reads: signed, valid until `expiresAt`."""

    coupon_id: str
    payload: str
    expires_at: Timestamp
