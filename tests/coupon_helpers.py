"""Shared setup for the coupon tests: campaigns, members and staff made the way callers make them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import clock
from tests.conftest import unique


def campaign_body(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /admin/campaigns` body (camelCase), valid from now for 30 days."""
    now = clock.now()
    body: dict[str, Any] = {
        "title": "满200减20",
        "kind": "cash",
        "value": 2000,
        "threshold": 20000,
        "totalStock": 100,
        "perMemberLimit": 1,
        "validFrom": (now - dt.timedelta(minutes=1)).isoformat(),
        "validTo": (now + dt.timedelta(days=30)).isoformat(),
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def new_campaign(**overrides: Any) -> dict[str, Any]:
    """Create a campaign through the service, as an admin would; its admin view."""
    from chalicelib.coupons import service
    from chalicelib.coupons.schemas import CampaignCreate

    return service.create_campaign(CampaignCreate.model_validate(campaign_body(**overrides)), created_by="tests")


def new_member(prefix: str = "member", scene: str | None = None) -> str:
    """A member logged in once (as the mini-program does); their member id."""
    return login_member(prefix, scene)[1]


def login_member(prefix: str = "member", scene: str | None = None) -> tuple[str, str, str]:
    """(openid, member id, token) of a member who has just logged in."""
    from chalicelib.usecases import me

    openid = unique(prefix)
    answer = me.login(f"dev:{openid}", scene)
    return openid, answer["member"]["memberId"], answer["token"]


def set_tier(member_id: str, tier: str) -> None:
    from chalicelib.members.models import Member

    Member(member_id).update(actions=[Member.tier.set(tier)])


def staff_token(api: Any, store_id: str) -> str:
    """The token of a new staff member of `store_id`."""
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = unique("staff")
    members.grant_role(StaffGrant(openid=openid, role="staff", store_id=store_id, name="店员"), granted_by="tests")
    return api.login(openid)


def guide_token(api: Any, store_id: str) -> tuple[str, str]:
    """(guide id, token) of a new shopping guide of `store_id`."""
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid, guide_id = unique("guide"), unique("g")
    members.grant_role(
        StaffGrant(openid=openid, role="guide", store_id=store_id, name="导购", guide_id=guide_id), granted_by="tests"
    )
    return guide_id, api.login(openid)


def open_campaigns(api: Any, token: str) -> list[dict[str, Any]]:
    """Every campaign `GET /coupons/campaigns` lists for this member, page after page."""
    return api.every_item("/coupons/campaigns", token, limit=100)
