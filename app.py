"""Every entry point of siyu: HTTP routes, webhooks, schedules, state-machine tasks.

Each handler parses, authorises, calls one service function and shapes the
answer. Domains load on first use (`LazyModule`) so a cold start imports only
what its handler needs.
"""

from __future__ import annotations

from chalice import Chalice, Cron

from chalicelib.auth import ADMIN, GUIDE, MEMBER, STAFF
from chalicelib.http import Api, Call
from chalicelib.lazy import LazyModule

app = Chalice(app_name="siyu")
api = Api(app)

jobs = LazyModule("chalicelib.jobs")
members = LazyModule("chalicelib.members.service")
member_schemas = LazyModule("chalicelib.members.schemas")
messaging = LazyModule("chalicelib.messaging.service")
orders_flow = LazyModule("chalicelib.orders.flow")


# --- Members and login ------------------------------------------------------

@api.post("/auth/login")
def login(call: Call) -> dict:
    body = call.body(member_schemas.LoginRequest)
    return members.login(body.code, body.scene)


@api.get("/members/me", roles=[MEMBER])
def get_me(call: Call) -> dict:
    return members.profile(call.caller.member_id)


@api.put("/members/me/profile", roles=[MEMBER])
def update_profile(call: Call) -> dict:
    return members.update_profile(call.caller.member_id, call.body(member_schemas.ProfileUpdate))


@api.post("/members/me/phone", roles=[MEMBER])
def bind_phone(call: Call) -> dict:
    return members.bind_phone(call.caller.member_id, call.body(member_schemas.PhoneRequest).code)


@api.delete("/members/me", roles=[MEMBER])
def delete_me(call: Call) -> None:
    members.delete_member(call.caller.member_id)


@api.get("/config/subscriptions")
def subscription_templates(call: Call) -> dict:
    return {"templates": messaging.templates()}


@api.post("/members/me/subscriptions", roles=[MEMBER])
def accept_subscriptions(call: Call) -> dict:
    body = call.body(member_schemas.SubscriptionRequest)
    return messaging.accept(call.caller.member_id, body.template_ids)


@api.get("/members/me/subscriptions", roles=[MEMBER])
def subscription_credits(call: Call) -> dict:
    return messaging.credits(call.caller.member_id)


@api.post("/admin/staff", roles=[ADMIN])
def grant_role(call: Call) -> dict:
    return members.grant_role(call.body(member_schemas.StaffGrant), granted_by=call.caller.member_id)


# --- Scheduled jobs ----------------------------------------------------------
# EventBridge cron runs in UTC; the comments give the Asia/Shanghai time.


# --- Order state machine tasks ------------------------------------------------
