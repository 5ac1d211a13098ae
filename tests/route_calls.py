"""Every route of app.py, how each kind of caller calls it, and what each should be answered.

The matrix has one line per route (tests/test_authorisation_matrix.py fails
when a route is missing, so a new route cannot be forgotten) and one column
per caller: anonymous, member A (who owns the resources the paths name),
member B, a guide of store X (A's guide), staff of store X (where A's bookings
and orders are), staff of store Y, and an admin. Every logged-in caller is a
member too (API.md: `member` always), so a member route answers each of them
about their own data, and 404 about A's; an order of another store is 404 to
its staff (docs/api.md, store details). `CALLS` builds each route's request,
with a fresh resource of A's where the call consumes one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

import app
from chalicelib import clock
from tests.appointment_helpers import at, future_day, grant, store_body
from tests.conftest import eventually, new_admin, unique
from tests.coupon_helpers import campaign_body, new_campaign
from tests.order_helpers import new_sku, new_store, pickup, remote_spot, stock

CALLERS = ("anonymous", "member A", "member B", "guide", "staff X", "staff Y", "admin")

# The answer of each caller, in CALLERS' order.
MATRIX: dict[str, str] = {
    "GET /openapi.json": "200 200 200 200 200 200 200",
    "POST /auth/login": "200 200 200 200 200 200 200",
    "GET /members/me": "401 200 200 200 200 200 200",
    "PUT /members/me/profile": "401 200 200 200 200 200 200",
    "POST /members/me/phone": "401 200 200 200 200 200 200",
    # A holds the orders the other rows paid for, still on their way.
    "DELETE /members/me": "401 409 204 204 204 204 204",
    "GET /config/subscriptions": "200 200 200 200 200 200 200",
    "POST /members/me/subscriptions": "401 200 200 200 200 200 200",
    "GET /members/me/subscriptions": "401 200 200 200 200 200 200",
    "POST /admin/staff": "401 403 403 403 403 403 200",
    "GET /admin/staff": "401 403 403 403 403 403 200",
    "DELETE /admin/staff/{openid}": "401 403 403 403 403 403 204",
    "GET /points": "401 200 200 200 200 200 200",
    "GET /points/entries": "401 200 200 200 200 200 200",
    "POST /points/checkin": "401 200 200 200 200 200 200",
    "POST /admin/points/adjust": "401 403 403 403 403 403 200",
    "POST /admin/points/reviews": "401 403 403 403 403 403 200",
    "POST /admin/members/offline": "401 403 403 403 403 403 201",
    "GET /skus": "200 200 200 200 200 200 200",
    "GET /skus/{skuId}": "200 200 200 200 200 200 200",
    "PUT /admin/skus/{skuId}": "401 403 403 403 403 403 200",
    "PUT /admin/inventory/{storeId}/{skuId}": "401 403 403 403 200 403 200",
    "POST /admin/inventory/{storeId}/import": "401 403 403 403 200 403 200",
    "GET /admin/inventory/{storeId}/{skuId}": "401 403 403 403 200 403 200",
    "GET /stores": "200 200 200 200 200 200 200",
    "GET /stores/{storeId}": "200 200 200 200 200 200 200",
    "PUT /admin/stores/{storeId}": "401 403 403 403 403 403 200",
    "GET /stores/{storeId}/slots": "200 200 200 200 200 200 200",
    "POST /appointments": "401 200 200 200 200 200 200",
    "GET /members/me/appointments": "401 200 200 200 200 200 200",
    "GET /appointments/{appointmentId}": "401 200 404 404 404 404 404",
    "POST /appointments/{appointmentId}/cancel": "401 200 404 404 404 404 404",
    "POST /appointments/{appointmentId}/reschedule": "401 200 404 404 404 404 404",
    "GET /store/appointments": "401 403 403 200 200 403 200",
    "POST /store/appointments/{appointmentId}/checkin": "401 403 403 403 200 403 200",
    "GET /coupons/campaigns": "401 200 200 200 200 200 200",
    "POST /coupons/campaigns/{campaignId}/claim": "401 200 200 200 200 200 200",
    "GET /members/me/coupons": "401 200 200 200 200 200 200",
    "GET /coupons/{couponId}/code": "401 200 404 404 404 404 404",
    "POST /store/coupons/redeem": "401 403 403 403 200 200 403",
    "POST /points/exchange": "401 200 200 200 200 200 200",
    "POST /guide/customers/{memberId}/coupons": "401 403 403 200 403 403 403",
    "POST /admin/campaigns": "401 403 403 403 403 403 201",
    "GET /admin/campaigns": "401 403 403 403 403 403 200",
    "GET /admin/campaigns/{campaignId}": "401 403 403 403 403 403 200",
    "POST /admin/campaigns/{campaignId}/stop": "401 403 403 403 403 403 200",
    "POST /orders": "401 200 200 200 200 200 200",
    "GET /orders/{orderId}": "401 200 404 404 404 404 404",
    "GET /orders/{orderId}/payment": "401 200 404 404 404 404 404",
    "GET /members/me/orders": "401 200 200 200 200 200 200",
    "POST /orders/{orderId}/cancel": "401 200 404 404 404 404 404",
    "POST /orders/{orderId}/refund": "401 200 404 404 404 404 404",
    "GET /store/orders": "401 403 403 403 200 200 403",
    "POST /store/orders/{orderId}/accept": "401 403 403 403 200 404 403",
    "POST /store/orders/{orderId}/reject": "401 403 403 403 200 404 403",
    "POST /store/orders/{orderId}/ready": "401 403 403 403 200 404 403",
    "POST /store/orders/{orderId}/pickup": "401 403 403 403 200 404 403",
    "POST /guide/orders": "401 403 403 201 403 403 403",
    "GET /guide/customers": "401 403 403 200 403 403 403",
    "GET /guide/performance": "401 403 403 200 403 403 403",
    "GET /guide/statement": "401 403 403 200 403 403 403",
    "GET /admin/guides/{guideId}/statement": "401 403 403 403 403 403 200",
    "PUT /admin/members/{memberId}/guide": "401 403 403 403 403 403 200",
    "GET /admin/reports/daily": "401 403 403 403 403 403 200",
    "GET /admin/config/{section}": "401 403 403 403 403 403 200",
    "PUT /admin/config/{section}": "401 403 403 403 403 403 200",
    "GET /admin/config/{section}/changes": "401 403 403 403 403 403 200",
}

REFUSED = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
POLICY_SECTION = "orders"


def route_keys() -> list[str]:
    return [f"{route.method} {route.path}" for route in app.api.routes]


def expected(route: str) -> dict[str, int]:
    return dict(zip(CALLERS, (int(status) for status in MATRIX[route].split()), strict=True))


@dataclass
class Call:
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    at: dt.datetime | None = None  # the clock frozen here for the call (a check-in opens shortly before its start)


@dataclass
class World:
    """The callers, the two stores and what member A owns, made over HTTP as their callers make them."""

    api: Any
    stack: Any
    openids: dict[str, str]
    tokens: dict[str, str | None]
    member_a: str
    member_b: str
    guide_id: str
    store_x: str
    store_y: str
    sku: str
    inventory_sku: str
    slots: Any = field(default_factory=lambda: itertools.count())
    made: dict[str, Any] = field(default_factory=dict)

    def token(self, who: str) -> str | None:
        return self.tokens[who]

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self.made:
            self.made[name] = make()
        return self.made[name]

    # --- what member A owns, fresh for each call that consumes it -------------------------------------
    def next_start(self) -> dt.datetime:
        number = next(self.slots)
        return at(future_day(4 + number // 9), f"{10 + number % 9}:00")

    def appointment(self, start: dt.datetime | None = None) -> str:
        body = {"storeId": self.store_x, "serviceId": "repair", "start": clock.iso(start or self.next_start())}
        answer = self.api.post("/appointments", self.tokens["member A"], json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["appointmentId"]

    def coupon(self) -> str:
        campaign = self.once("campaign", lambda: new_campaign(totalStock=1000, perMemberLimit=100)["campaignId"])
        answer = self.api.post(f"/coupons/campaigns/{campaign}/claim", self.tokens["member A"])
        assert answer.status_code == 200, answer.text
        return answer.json()["couponId"]

    def coupon_code(self) -> str:
        answer = self.api.get(f"/coupons/{self.coupon()}/code", self.tokens["member A"])
        assert answer.status_code == 200, answer.text
        return answer.json()["payload"]

    def order(self) -> str:
        answer = self.api.post("/orders", self.tokens["member A"], json=pickup(self.store_x, (self.sku, 1)))
        assert answer.status_code == 200, answer.text
        return answer.json()["orderId"]

    def paid_order(self) -> str:
        """An order of A paid, its execution waiting for store X to accept it."""
        from chalicelib.orders.models import TaskToken

        order_id = self.order()
        paid = requests.post(f"{self.stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": True},
                             timeout=30)
        assert paid.status_code == 200, paid.text
        eventually(lambda: any(True for _ in TaskToken.query(order_id, consistent_read=True)),
                   what="the execution to wait for the store")
        return order_id

    def accepted_order(self) -> str:
        from chalicelib.orders.fulfillment import PACKING
        from tests.fulfillment_helpers import wait_until_parked

        order_id = self.paid_order()
        answer = self.api.post(f"/store/orders/{order_id}/accept", self.staff_of_x())
        assert answer.status_code == 200, answer.text
        wait_until_parked(order_id, PACKING)
        return order_id

    def packed_order(self) -> str:
        order_id = self.accepted_order()
        answer = self.api.post(f"/store/orders/{order_id}/ready", self.staff_of_x())
        assert answer.status_code == 200, answer.text
        return order_id

    def completed_order(self) -> str:
        from tests.fulfillment_helpers import collected

        order_id = self.paid_order()
        collected(self.api, self.store_x, order_id)
        return order_id

    def staff_of_x(self) -> str:
        return self.once("staff of X", lambda: self.api.login(grant(self.store_x)))


def make_world(api: Any, stack: Any) -> World:
    from chalicelib.points import ledger

    admin_openid, _ = new_admin(api)
    store_x, store_y = new_store(*remote_spot()), new_store(*remote_spot())
    guide_openid, guide_id = _guide(store_x)
    openids = {
        "member A": unique("member-a"),
        "member B": unique("member-b"),
        "guide": guide_openid,
        "staff X": grant(store_x),
        "staff Y": grant(store_y),
        "admin": admin_openid,
    }
    tokens: dict[str, str | None] = {"anonymous": None}
    member_ids = {}
    for who, openid in openids.items():
        scene = f"g={guide_id}" if who == "member A" else None
        answer = api.post("/auth/login", json={"code": f"dev:{openid}", **({"scene": scene} if scene else {})})
        assert answer.status_code == 200, answer.text
        tokens[who], member_ids[who] = answer.json()["token"], answer.json()["member"]["memberId"]
        ledger.earn(member_ids[who], 10_000, f"matrix#{member_ids[who]}", "adjust")
    sku, inventory_sku = new_sku(), new_sku()
    stock(store_x, sku, 500)
    return World(api, stack, openids, tokens, member_ids["member A"], member_ids["member B"], guide_id,
                 store_x, store_y, sku, inventory_sku)


def _guide(store_id: str) -> tuple[str, str]:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid, guide_id = unique("guide"), unique("g")
    members.grant_role(StaffGrant(openid=openid, role="guide", store_id=store_id, name="导购", guide_id=guide_id),
                       granted_by="tests")
    return openid, guide_id


@contextlib.contextmanager
def policy_restored() -> Iterator[None]:
    from chalicelib import policy

    try:
        yield
    finally:
        for item in policy.PolicyChange.query(POLICY_SECTION):
            item.delete()
        policy.PolicyDocument(POLICY_SECTION).delete()
        policy.forget()


def _phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def _policy_unchanged(w: World, who: str) -> Call:
    read = w.api.get(f"/admin/config/{POLICY_SECTION}", w.tokens["admin"]).json()
    days = read["policy"]["refund_window_days"]
    return Call(f"/admin/config/{POLICY_SECTION}", {"version": read["version"], "overrides": {"refund_window_days": days}})


def _check_in(w: World, who: str) -> Call:
    start = w.next_start()
    return Call(f"/store/appointments/{w.appointment(start)}/checkin", at=start - dt.timedelta(minutes=5))


def _guide_campaign(w: World) -> str:
    return w.once("guide campaign", lambda: new_campaign(channel="guide", totalStock=100)["campaignId"])


def _exchange_campaign(w: World) -> str:
    return w.once("exchange campaign", lambda: new_campaign(pointsPrice=10, totalStock=100)["campaignId"])


def _claim_campaign(w: World) -> str:
    return w.once("claim campaign", lambda: new_campaign(totalStock=100)["campaignId"])


def _templates(w: World) -> list[str]:
    return [w.api.get("/config/subscriptions").json()["templates"]["appointmentReminder"]]


def _yesterday() -> str:
    return (clock.shanghai_date(clock.now()) - dt.timedelta(days=1)).isoformat()


def _this_month() -> str:
    return clock.shanghai_date(clock.now()).strftime("%Y-%m")


# How each route is called: the same request for every caller, with a fresh resource of A's where the call uses
# one up. Each maker gets the world and the caller.
CALLS: dict[str, Callable[[World, str], Call]] = {
    "GET /openapi.json": lambda w, who: Call("/openapi.json"),
    "POST /auth/login": lambda w, who: Call("/auth/login", {"code": f"dev:{unique('newcomer')}"}),
    "GET /members/me": lambda w, who: Call("/members/me"),
    "PUT /members/me/profile": lambda w, who: Call("/members/me/profile", {"nickname": "小思"}),
    "POST /members/me/phone": lambda w, who: Call("/members/me/phone", {"code": f"phone:{_phone()}"}),
    "DELETE /members/me": lambda w, who: Call("/members/me"),
    "GET /config/subscriptions": lambda w, who: Call("/config/subscriptions"),
    "POST /members/me/subscriptions": lambda w, who: Call("/members/me/subscriptions", {"templateIds": _templates(w)}),
    "GET /members/me/subscriptions": lambda w, who: Call("/members/me/subscriptions"),
    "POST /admin/staff": lambda w, who: Call(
        "/admin/staff", {"openid": unique("hire"), "role": "staff", "storeId": w.store_x, "name": "新店员"}),
    "GET /admin/staff": lambda w, who: Call("/admin/staff"),
    "DELETE /admin/staff/{openid}": lambda w, who: Call(f"/admin/staff/{grant(w.store_y)}"),
    "GET /points": lambda w, who: Call("/points"),
    "GET /points/entries": lambda w, who: Call("/points/entries"),
    "POST /points/checkin": lambda w, who: Call("/points/checkin"),
    "POST /admin/points/adjust": lambda w, who: Call(
        "/admin/points/adjust", {"memberId": w.member_a, "delta": 5, "reason": "补偿"}),
    "POST /admin/points/reviews": lambda w, who: Call(
        "/admin/points/reviews", {"memberId": w.member_a, "reviewId": unique("review")}),
    "POST /admin/members/offline": lambda w, who: Call("/admin/members/offline", {"phone": _phone(), "points": 5}),
    "GET /skus": lambda w, who: Call("/skus"),
    "GET /skus/{skuId}": lambda w, who: Call(f"/skus/{w.sku}"),
    "PUT /admin/skus/{skuId}": lambda w, who: Call(
        f"/admin/skus/{unique('sku')}", {"title": "思语 充电器", "price": 9900, "category": "power"}),
    "PUT /admin/inventory/{storeId}/{skuId}": lambda w, who: Call(
        f"/admin/inventory/{w.store_x}/{w.inventory_sku}", {"onHand": 40}),
    "POST /admin/inventory/{storeId}/import": lambda w, who: Call(
        f"/admin/inventory/{w.store_x}/import", {"csv": f"skuId,onHand\r\n{w.inventory_sku},30\r\n"}),
    "GET /admin/inventory/{storeId}/{skuId}": lambda w, who: Call(f"/admin/inventory/{w.store_x}/{w.inventory_sku}"),
    "GET /stores": lambda w, who: Call("/stores"),
    "GET /stores/{storeId}": lambda w, who: Call(f"/stores/{w.store_x}"),
    "PUT /admin/stores/{storeId}": lambda w, who: Call(f"/admin/stores/{unique('store')}", store_body()),
    "GET /stores/{storeId}/slots": lambda w, who: Call(
        f"/stores/{w.store_x}/slots", params={"serviceId": "repair", "date": future_day().isoformat()}),
    "POST /appointments": lambda w, who: Call(
        "/appointments", {"storeId": w.store_x, "serviceId": "repair", "start": clock.iso(w.next_start())}),
    "GET /members/me/appointments": lambda w, who: Call("/members/me/appointments"),
    "GET /appointments/{appointmentId}": lambda w, who: Call(
        f"/appointments/{w.once('appointment', w.appointment)}"),
    "POST /appointments/{appointmentId}/cancel": lambda w, who: Call(f"/appointments/{w.appointment()}/cancel"),
    "POST /appointments/{appointmentId}/reschedule": lambda w, who: Call(
        f"/appointments/{w.appointment()}/reschedule", {"start": clock.iso(w.next_start())}),
    "GET /store/appointments": lambda w, who: Call(
        "/store/appointments", params={"date": future_day(4).isoformat(), "storeId": w.store_x}),
    "POST /store/appointments/{appointmentId}/checkin": _check_in,
    "GET /coupons/campaigns": lambda w, who: Call("/coupons/campaigns"),
    "POST /coupons/campaigns/{campaignId}/claim": lambda w, who: Call(f"/coupons/campaigns/{_claim_campaign(w)}/claim"),
    "GET /members/me/coupons": lambda w, who: Call("/members/me/coupons"),
    "GET /coupons/{couponId}/code": lambda w, who: Call(f"/coupons/{w.once('coupon', w.coupon)}/code"),
    "POST /store/coupons/redeem": lambda w, who: Call("/store/coupons/redeem", {"payload": w.coupon_code()}),
    "POST /points/exchange": lambda w, who: Call("/points/exchange", {"campaignId": _exchange_campaign(w)}),
    "POST /guide/customers/{memberId}/coupons": lambda w, who: Call(
        f"/guide/customers/{w.member_a}/coupons", {"campaignId": _guide_campaign(w)}),
    "POST /admin/campaigns": lambda w, who: Call("/admin/campaigns", campaign_body()),
    "GET /admin/campaigns": lambda w, who: Call("/admin/campaigns"),
    "GET /admin/campaigns/{campaignId}": lambda w, who: Call(f"/admin/campaigns/{_claim_campaign(w)}"),
    "POST /admin/campaigns/{campaignId}/stop": lambda w, who: Call(
        f"/admin/campaigns/{new_campaign()['campaignId']}/stop"),
    "POST /orders": lambda w, who: Call("/orders", pickup(w.store_x, (w.sku, 1))),
    "GET /orders/{orderId}": lambda w, who: Call(f"/orders/{w.once('order', w.order)}"),
    "GET /orders/{orderId}/payment": lambda w, who: Call(f"/orders/{w.once('order', w.order)}/payment"),
    "GET /members/me/orders": lambda w, who: Call("/members/me/orders"),
    "POST /orders/{orderId}/cancel": lambda w, who: Call(f"/orders/{w.order()}/cancel"),
    "POST /orders/{orderId}/refund": lambda w, who: Call(
        f"/orders/{w.once('completed order', w.completed_order)}/refund", {"reason": "不合适"}),
    "GET /store/orders": lambda w, who: Call("/store/orders"),
    "POST /store/orders/{orderId}/accept": lambda w, who: Call(
        f"/store/orders/{w.once('paid order', w.paid_order)}/accept"),
    "POST /store/orders/{orderId}/reject": lambda w, who: Call(
        f"/store/orders/{w.once('order to reject', w.paid_order)}/reject"),
    "POST /store/orders/{orderId}/ready": lambda w, who: Call(
        f"/store/orders/{w.once('accepted order', w.accepted_order)}/ready"),
    "POST /store/orders/{orderId}/pickup": lambda w, who: _pickup(w),
    "POST /guide/orders": lambda w, who: Call("/guide/orders", {"memberId": w.member_a, **pickup(w.store_x, (w.sku, 1))}),
    "GET /guide/customers": lambda w, who: Call("/guide/customers"),
    "GET /guide/performance": lambda w, who: Call("/guide/performance", params={"month": _this_month()}),
    "GET /guide/statement": lambda w, who: Call("/guide/statement", params={"month": _this_month()}),
    "GET /admin/guides/{guideId}/statement": lambda w, who: Call(f"/admin/guides/{w.guide_id}/statement", params={"month": _this_month()}),
    "PUT /admin/members/{memberId}/guide": lambda w, who: Call(
        f"/admin/members/{w.member_b}/guide", {"guideId": w.guide_id}),
    "GET /admin/reports/daily": lambda w, who: Call("/admin/reports/daily", params={"date": _yesterday()}),
    "GET /admin/config/{section}": lambda w, who: Call(f"/admin/config/{POLICY_SECTION}"),
    "PUT /admin/config/{section}": _policy_unchanged,
    "GET /admin/config/{section}/changes": lambda w, who: Call(f"/admin/config/{POLICY_SECTION}/changes"),
}


def _pickup(w: World) -> Call:
    from chalicelib.orders.models import Order

    order_id = w.once("packed order", w.packed_order)
    return Call(f"/store/orders/{order_id}/pickup", {"pickupCode": Order.get(order_id, consistent_read=True).pickup_code})


def answer(w: World, route: str, who: str) -> requests.Response:
    return send(w, route, who, CALLS[route](w, who))


def send(w: World, route: str, who: str, call: Call) -> requests.Response:
    method = route.split()[0]
    if call.at is None:
        return w.api.request(method, call.path, w.token(who), json=call.json, params=call.params)
    with clock.frozen_at(call.at):
        token = w.api.login(w.openids[who]) if who in w.openids else None
        return w.api.request(method, call.path, token, json=call.json, params=call.params)


def in_order(route: str) -> list[str]:
    """The refused callers first, then those let in."""
    statuses = expected(route)
    return sorted(CALLERS, key=lambda who: statuses[who] < 400)


def mismatch(route: str, who: str, answer: requests.Response) -> str | None:
    wanted = expected(route)[who]
    if answer.status_code != wanted:
        return f"{route} as {who}: {answer.status_code} (wanted {wanted}) {answer.text[:200]}"
    if wanted in REFUSED and answer.json().get("code") != REFUSED[wanted]:
        return f"{route} as {who}: code {answer.json().get('code')} (wanted {REFUSED[wanted]})"
    return None
