"""The booking rules that are configuration, not code: one validated model, read once.

Each field can be set in the environment as `SIYU_APPOINTMENTS_<FIELD>` (the
reminder offsets as comma-separated minutes, e.g. `1440,120`).
"""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, Field, field_validator

__all__ = ["Policy", "policy", "reset_policy"]

_ENV_PREFIX = "SIYU_APPOINTMENTS_"


class Policy(BaseModel):
    # A slot starting sooner than this is closed for booking (the store needs notice).
    lead_minutes: int = Field(default=30, ge=0, le=7 * 24 * 60)
    # How far ahead slots open.
    horizon_days: int = Field(default=30, ge=1, le=365)
    # Cancelling or moving a booking is refused this close to its start.
    cancel_cutoff_minutes: int = Field(default=120, ge=0, le=7 * 24 * 60)
    # Staff may check a customer in this long before the start (and until the end).
    checkin_early_minutes: int = Field(default=120, ge=0, le=24 * 60)
    # This many no-shows block new bookings for `no_show_block_days`.
    no_show_limit: int = Field(default=3, ge=1, le=100)
    no_show_block_days: int = Field(default=30, ge=0, le=365)
    # The no-show job looks this many Shanghai days back for bookings left open.
    no_show_lookback_days: int = Field(default=3, ge=1, le=31)
    # Subscription reminders, in minutes before the start, largest first.
    reminder_offsets_minutes: tuple[int, ...] = (24 * 60, 120)

    @field_validator("reminder_offsets_minutes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("reminder_offsets_minutes")
    @classmethod
    def _distinct_positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(offset <= 0 for offset in value) or len(set(value)) != len(value):
            raise ValueError("reminder offsets must be distinct positive minutes")
        return tuple(sorted(value, reverse=True))


@functools.cache
def policy() -> Policy:
    values = {
        name: os.environ[_ENV_PREFIX + name.upper()]
        for name in Policy.model_fields
        if _ENV_PREFIX + name.upper() in os.environ
    }
    return Policy(**values)


def reset_policy() -> None:
    """Forget the cached policy (tests change the environment)."""
    policy.cache_clear()
