"""Shared setup for the order tests: a catalog, stores far from everyone else's, members with points."""

from __future__ import annotations

import random
from typing import Any

from tests.conftest import unique

PRICE, MEMBER_PRICE = 69900, 64900


def new_sku(price: int = PRICE, member_price: int | None = MEMBER_PRICE, **extra: Any) -> str:
    from chalicelib.catalog import service as catalog
    from chalicelib.catalog.schemas import SkuPut

    sku_id = unique("sku")
    body = {"title": "思语 Air 2 降噪耳机", "price": price, "memberPrice": member_price, "category": "audio", **extra}
    catalog.put_sku(sku_id, SkuPut.model_validate({k: v for k, v in body.items() if v is not None}))
    return sku_id


def stock(store_id: str, sku_id: str, on_hand: int) -> None:
    from chalicelib.catalog import service as catalog

    catalog.set_on_hand(store_id, sku_id, on_hand)


def level(store_id: str, sku_id: str) -> dict[str, int]:
    from chalicelib.catalog import service as catalog

    return catalog.stock_level(store_id, sku_id)


def remote_spot() -> tuple[float, float]:
    """A place no other test's store delivers to (stores are shared by the whole session)."""
    return round(random.uniform(20.0, 45.0), 4), round(random.uniform(80.0, 120.0), 4)


def new_store(lat: float, lng: float, radius_km: float = 5) -> str:
    from chalicelib.stores import service as stores
    from tests.appointment_helpers import make_store

    store_id = make_store(lat=lat, lng=lng, deliveryRadiusKm=radius_km)
    stores.forget_cached_stores()
    return store_id


def shopper(api: Any, points: int = 0, tier: str | None = None) -> tuple[str, str]:
    """(member id, token) of a member logged in over HTTP, holding `points`."""
    from chalicelib.points import ledger

    openid = unique("shopper")
    answer = api.post("/auth/login", json={"code": f"dev:{openid}"})
    assert answer.status_code == 200, answer.text
    member_id, token = answer.json()["member"]["memberId"], answer.json()["token"]
    if points:
        ledger.earn(member_id, points, f"gift#{member_id}", "adjust")
    if tier:
        from chalicelib.members.models import Member

        Member(member_id).update(actions=[Member.tier.set(tier)])
    return member_id, token


def pickup(store_id: str, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "items": [{"skuId": sku_id, "qty": qty} for sku_id, qty in lines],
        "fulfillment": {"mode": "pickup", "storeId": store_id},
        **extra,
    }


def delivery(lat: float, lng: float, *lines: tuple[str, int], mode: str = "delivery", **extra: Any) -> dict[str, Any]:
    address = {"name": "张三", "phone": "13800000000", "text": "上海市某路1号", "lat": lat, "lng": lng}
    return {
        "items": [{"skuId": sku_id, "qty": qty} for sku_id, qty in lines],
        "fulfillment": {"mode": mode, "address": address},
        **extra,
    }


def available_points(member_id: str) -> int:
    from chalicelib.points import service as points

    return points.available(member_id)


def coupon_status(member_id: str, coupon_id: str) -> str:
    from chalicelib.coupons import service as coupons

    return coupons.get_coupon(member_id, coupon_id).status


def order_status(order_id: str) -> str:
    from chalicelib.orders.service import get_order

    return get_order(order_id).status


def invariant_breaches(member_ids: list[str]) -> dict[str, Any]:
    """What the nightly audit would say of the stock, the coupon locks and these members' points."""
    from chalicelib.points import audit
    from tests import whole_table
    from chalicelib.usecases.audit import coupon_lock_breaches

    found: dict[str, Any] = {}
    if inventory := whole_table.stock_breaches():
        found["inventory"] = inventory
    if locks := coupon_lock_breaches(member_ids):
        found["couponLocks"] = locks
    ledger = audit.audit(accounts=member_ids) if member_ids else {"breaches": 0}
    if ledger["breaches"]:
        found["ledger"] = ledger["examples"]
    return found
