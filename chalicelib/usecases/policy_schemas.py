"""Bodies and answers of `/admin/config/{section}`: a policy document is the stage's JSON format (snake_case keys)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chalicelib.validation import Page, RequestModel, ResponseModel, Timestamp

__all__ = ["PolicyUpdate", "PolicyView", "PolicyChangeView", "PolicyChangePage"]


class PolicyUpdate(RequestModel):
    version: int = Field(ge=0, description="the version this change was made from (`GET` answers it)")
    overrides: dict[str, Any] = Field(
        min_length=1, max_length=50,
        description="top-level settings of the section, as in its SIYU_<SECTION>_CONFIG",
        examples=[{"refund_window_days": 14}],
    )


class PolicyView(ResponseModel):
    section: str
    version: int = Field(description="0 until HQ first changes it")
    policy: dict[str, Any] = Field(description="every setting in effect")


class PolicyChangeView(ResponseModel):
    version: int
    changed_by: str = Field(description="the admin's member id")
    changed_at: Timestamp
    before: dict[str, Any]
    after: dict[str, Any]


class PolicyChangePage(Page[PolicyChangeView]):
    """A section's changes, newest first."""
