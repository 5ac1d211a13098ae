"""Request bodies of the member routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from chalicelib.validation import ID_PATTERN, RequestModel

__all__ = ["LoginRequest", "ProfileUpdate", "PhoneRequest", "SubscriptionRequest", "StaffGrant"]


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
