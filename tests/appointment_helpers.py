"""Stores, moments and members for the store and appointment tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import clock
from tests.conftest import unique

SHANGHAI = clock.SHANGHAI
EVERY_DAY = {day: [{"open": "10:00", "close": "20:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SERVICES = [
    {"serviceId": "film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": 2},
    {"serviceId": "repair", "name": "维修检测", "durationMinutes": 60, "capacity": 1},
    {"serviceId": "check", "name": "设备检测", "durationMinutes": 30, "capacity": 3},
]
# A Monday far enough ahead that real time never reaches it: service tests freeze the clock here.
MONDAY = dt.date(2031, 6, 2)


def at(day: dt.date, hhmm: str) -> dt.datetime:
    hours, minutes = hhmm.split(":")
    return dt.datetime(day.year, day.month, day.day, int(hours), int(minutes), tzinfo=SHANGHAI)


def store_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "思语服务中心 测试店",
        "address": "上海市静安区南京西路1266号",
        "lat": 31.2286,
        "lng": 121.4530,
        "openHours": EVERY_DAY,
        "services": SERVICES,
        "deliveryRadiusKm": 5,
    }
    body.update(overrides)
    return body


def make_store(**overrides: Any) -> str:
    """A fresh store written through the service, as the admin route does."""
    from chalicelib.stores import service as stores
    from chalicelib.stores.schemas import StoreSpec

    store_id = unique("store")
    stores.put_store(store_id, StoreSpec.model_validate(store_body(**overrides)), updated_by="tests")
    return store_id


def future_day(days: int = 3) -> dt.date:
    """A Shanghai day a few days after the real now (for HTTP tests on the running clock)."""
    return clock.shanghai_date(dt.datetime.now(dt.timezone.utc)) + dt.timedelta(days=days)


def login(api: Any, openid: str | None = None) -> tuple[str, str, str]:
    """(openid, token, memberId) of a member logged in over HTTP."""
    openid = openid or unique("member")
    answer = api.post("/auth/login", json={"code": f"dev:{openid}"})
    assert answer.status_code == 200, answer.text
    return openid, answer.json()["token"], answer.json()["member"]["memberId"]


def grant(store_id: str, role: str = "staff") -> str:
    """The openid of a new staff member (or guide) of that store."""
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = unique(role)
    request = StaffGrant(openid=openid, role=role, store_id=store_id, name=f"{role} {store_id}")
    members.grant_role(request, granted_by="tests")
    return openid


def staff_token(api: Any, store_id: str, role: str = "staff") -> str:
    return api.login(grant(store_id, role))
