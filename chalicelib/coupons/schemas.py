"""Request bodies of the coupon routes; cross-field rules name the field they break."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field

from chalicelib.clock import SHANGHAI
from chalicelib.errors import InvalidRequestError
from chalicelib.validation import ID_PATTERN, RequestModel

__all__ = [
    "CampaignCreate",
    "CampaignRef",
    "RedeemRequest",
    "CouponListQuery",
    "TIERS",
    "MAX_SHARDS",
    "default_shard_count",
]

TIERS = ("explorer", "pioneer", "geek", "black_gold")
MAX_SHARDS = 64
MAX_STOCK = 10_000_000
FEN_LIMIT = 100_000_000  # ¥1,000,000
_ID = re.compile(ID_PATTERN)


def default_shard_count(total_stock: int) -> int:
    """One shard per 100 coupons, at most 16: small campaigns stay on few items."""
    return max(1, min(16, total_stock // 100))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


class CampaignCreate(RequestModel):
    title: str = Field(min_length=1, max_length=64)
    kind: Literal["cash", "discount", "service"]
    value: int = Field(ge=0, le=FEN_LIMIT)
    threshold: int = Field(default=0, ge=0, le=FEN_LIMIT)
    max_off: int | None = Field(default=None, gt=0, le=FEN_LIMIT)
    total_stock: int = Field(gt=0, le=MAX_STOCK)
    per_member_limit: int = Field(gt=0, le=100)
    shard_count: int | None = Field(default=None, gt=0, le=MAX_SHARDS)
    valid_from: dt.datetime
    valid_to: dt.datetime
    claim_from: dt.datetime | None = None
    claim_to: dt.datetime | None = None
    tiers: list[Literal["explorer", "pioneer", "geek", "black_gold"]] | None = Field(default=None, min_length=1)
    store_ids: list[str] | None = Field(default=None, min_length=1, max_length=200)
    sku_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    points_price: int | None = Field(default=None, gt=0, le=10_000_000)
    channel: Literal["public", "guide", "exchange"] | None = None

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


class CouponListQuery(RequestModel):
    status: Literal["available", "locked", "used", "expired"] | None = None
