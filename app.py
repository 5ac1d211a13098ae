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

# Logging is Powertools' (chalicelib.observability), not a second plain-text handler.
app = Chalice(app_name="siyu", configure_logs=False)
api = Api(app)

jobs = LazyModule("chalicelib.jobs")
members = LazyModule("chalicelib.members.service")
member_schemas = LazyModule("chalicelib.members.schemas")
messaging = LazyModule("chalicelib.messaging.service")
points = LazyModule("chalicelib.points.service")
points_schemas = LazyModule("chalicelib.points.schemas")
points_jobs = LazyModule("chalicelib.points.jobs")
catalog = LazyModule("chalicelib.catalog.service")
catalog_schemas = LazyModule("chalicelib.catalog.schemas")
orders_flow = LazyModule("chalicelib.orders.flow")
stores = LazyModule("chalicelib.stores.service")
store_schemas = LazyModule("chalicelib.stores.schemas")
appointments = LazyModule("chalicelib.appointments.service")
appointment_schemas = LazyModule("chalicelib.appointments.schemas")
appointment_jobs = LazyModule("chalicelib.appointments.jobs")
coupons = LazyModule("chalicelib.coupons.service")
coupon_claims = LazyModule("chalicelib.coupons.claims")
coupon_codes = LazyModule("chalicelib.coupons.redemption")
coupon_jobs = LazyModule("chalicelib.coupons.jobs")
coupon_schemas = LazyModule("chalicelib.coupons.schemas")
me = LazyModule("chalicelib.usecases.me")
onboarding = LazyModule("chalicelib.usecases.onboarding")
admin_points = LazyModule("chalicelib.usecases.admin_points")
tier_review_job = LazyModule("chalicelib.usecases.tier_review")


# --- Members and login ------------------------------------------------------

@api.post("/auth/login")
def login(call: Call) -> dict:
    body = call.body(member_schemas.LoginRequest)
    return me.login(body.code, body.scene)


@api.get("/members/me", roles=[MEMBER])
def get_me(call: Call) -> dict:
    return me.profile(call.caller.member_id)


@api.put("/members/me/profile", roles=[MEMBER])
def update_profile(call: Call) -> dict:
    return onboarding.update_profile(call.caller.member_id, call.body(member_schemas.ProfileUpdate))


@api.post("/members/me/phone", roles=[MEMBER])
def bind_phone(call: Call) -> dict:
    return onboarding.bind_phone(call.caller.member_id, call.body(member_schemas.PhoneRequest).code)


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


# --- Points -------------------------------------------------------------------

@api.get("/points", roles=[MEMBER])
def points_overview(call: Call) -> dict:
    return points.overview(call.caller.member_id)


@api.get("/points/entries", roles=[MEMBER])
def points_entries(call: Call) -> dict:
    return points.entries(call.caller.member_id, call.limit(), call.cursor())


@api.post("/points/checkin", roles=[MEMBER], idempotent=True)
def points_checkin(call: Call) -> dict:
    return points.checkin(call.caller.member_id)


@api.post("/admin/points/adjust", roles=[ADMIN], idempotent=True)
def adjust_points(call: Call) -> dict:
    body = call.body(points_schemas.AdjustRequest)
    return admin_points.adjust(body.member_id, body.delta, body.reason, actor=call.caller.member_id)


@api.post("/admin/points/reviews", roles=[ADMIN], idempotent=True)
def award_review_points(call: Call) -> dict:
    body = call.body(points_schemas.ReviewAward)
    return admin_points.approve_review(body.member_id, body.review_id, actor=call.caller.member_id)


@api.post("/admin/members/offline", roles=[ADMIN], idempotent=True, status=201)
def import_offline_member(call: Call) -> dict:
    body = call.body(points_schemas.OfflineMemberImport)
    return onboarding.import_offline_member(body, actor=call.caller.member_id)


# --- Catalog and inventory ---------------------------------------------------

@api.get("/skus")
def list_skus(call: Call) -> dict:
    return catalog.list_skus(call.limit(), call.cursor())


@api.get("/skus/{skuId}")
def get_sku(call: Call) -> dict:
    return catalog.get_sku(call.params["skuId"])


@api.put("/admin/skus/{skuId}", roles=[ADMIN])
def put_sku(call: Call) -> dict:
    sku_id = catalog.check_id("skuId", call.params["skuId"])
    return catalog.put_sku(sku_id, call.body(catalog_schemas.SkuPut))


@api.put("/admin/inventory/{storeId}/{skuId}", roles=[ADMIN, STAFF])
def set_inventory(call: Call) -> dict:
    store_id = catalog.check_id("storeId", call.params["storeId"])
    call.caller.require_store(store_id)
    body = call.body(catalog_schemas.InventoryPut)
    return catalog.set_on_hand(store_id, call.params["skuId"], body.on_hand)


@api.get("/admin/inventory/{storeId}/{skuId}", roles=[ADMIN, STAFF])
def get_inventory(call: Call) -> dict:
    store_id = catalog.check_id("storeId", call.params["storeId"])
    call.caller.require_store(store_id)
    return catalog.stock_level(store_id, call.params["skuId"])


# --- Stores and appointments -------------------------------------------------

@api.get("/stores")
def list_stores(call: Call) -> dict:
    return stores.nearest(call.query_as(store_schemas.StoresQuery), call.limit(), call.query.get("cursor"))


@api.get("/stores/{storeId}")
def get_store(call: Call) -> dict:
    return stores.store_view(stores.find_store(call.params["storeId"]))


@api.put("/admin/stores/{storeId}", roles=[ADMIN])
def put_store(call: Call) -> dict:
    store_id = stores.check_store_id(call.params["storeId"])
    return stores.put_store(store_id, call.body(store_schemas.StoreSpec), updated_by=call.caller.member_id)


@api.get("/stores/{storeId}/slots")
def store_slots(call: Call) -> dict:
    query = call.query_as(appointment_schemas.SlotsQuery)
    return appointments.slots(call.params["storeId"], query.service_id, query.date)


@api.post("/appointments", roles=[MEMBER], idempotent=True)
def book_appointment(call: Call) -> dict:
    return appointments.book(call.caller.member_id, call.body(appointment_schemas.BookingRequest))


@api.get("/members/me/appointments", roles=[MEMBER])
def my_appointments(call: Call) -> dict:
    query = call.query_as(appointment_schemas.MyAppointmentsQuery)
    return appointments.member_appointments(
        call.caller.member_id, query.status, call.limit(), call.query.get("cursor")
    )


@api.get("/appointments/{appointmentId}", roles=[MEMBER])
def get_appointment(call: Call) -> dict:
    return appointments.member_appointment(call.caller.member_id, call.params["appointmentId"])


@api.post("/appointments/{appointmentId}/cancel", roles=[MEMBER], idempotent=True)
def cancel_appointment(call: Call) -> dict:
    return appointments.cancel(call.caller.member_id, call.params["appointmentId"])


@api.post("/appointments/{appointmentId}/reschedule", roles=[MEMBER], idempotent=True)
def reschedule_appointment(call: Call) -> dict:
    body = call.body(appointment_schemas.RescheduleRequest)
    return appointments.reschedule(call.caller.member_id, call.params["appointmentId"], body.start)


@api.get("/store/appointments", roles=[STAFF, GUIDE, ADMIN])
def store_appointments(call: Call) -> dict:
    query = call.query_as(appointment_schemas.StoreDayQuery)
    return appointments.store_appointments(
        call.caller, query.store_id, query.date, call.limit(), call.query.get("cursor")
    )


@api.post("/store/appointments/{appointmentId}/checkin", roles=[STAFF, ADMIN], idempotent=True)
def check_in_appointment(call: Call) -> dict:
    return appointments.check_in(call.caller, call.params["appointmentId"])


# --- Coupons ----------------------------------------------------------------

@api.get("/coupons/campaigns", roles=[MEMBER])
def open_campaigns(call: Call) -> dict:
    return coupons.open_campaigns(call.caller.member_id)


@api.post("/coupons/campaigns/{campaignId}/claim", roles=[MEMBER], idempotent=True)
def claim_coupon(call: Call) -> dict:
    return coupon_claims.claim(call.caller.member_id, call.params["campaignId"])


@api.get("/members/me/coupons", roles=[MEMBER])
def my_coupons(call: Call) -> dict:
    query = call.query_as(coupon_schemas.CouponListQuery)
    return coupons.member_coupons(call.caller.member_id, query.status, call.limit(), call.query.get("cursor"))


@api.get("/coupons/{couponId}/code", roles=[MEMBER])
def coupon_code(call: Call) -> dict:
    return coupon_codes.issue_code(call.caller.member_id, call.params["couponId"])


@api.post("/store/coupons/redeem", roles=[STAFF], idempotent=True)
def redeem_coupon(call: Call) -> dict:
    return coupon_codes.redeem(call.body(coupon_schemas.RedeemRequest).payload, call.caller.store_id)


@api.post("/points/exchange", roles=[MEMBER], idempotent=True)
def exchange_points(call: Call) -> dict:
    return coupon_claims.exchange(call.caller.member_id, call.body(coupon_schemas.CampaignRef).campaign_id)


@api.post("/guide/customers/{memberId}/coupons", roles=[GUIDE], idempotent=True)
def give_coupon(call: Call) -> dict:
    body = call.body(coupon_schemas.CampaignRef)
    return coupon_claims.give(call.caller.guide_id, call.params["memberId"], body.campaign_id)


@api.post("/admin/campaigns", roles=[ADMIN], status=201)
def create_campaign(call: Call) -> dict:
    return coupons.create_campaign(call.body(coupon_schemas.CampaignCreate), created_by=call.caller.member_id)


@api.get("/admin/campaigns", roles=[ADMIN])
def list_campaigns(call: Call) -> dict:
    return coupons.admin_campaigns(call.limit(), call.cursor())


@api.get("/admin/campaigns/{campaignId}", roles=[ADMIN])
def get_campaign(call: Call) -> dict:
    return coupons.admin_campaign(call.params["campaignId"])


@api.post("/admin/campaigns/{campaignId}/stop", roles=[ADMIN])
def stop_campaign(call: Call) -> dict:
    return coupons.stop_campaign(call.params["campaignId"], stopped_by=call.caller.member_id)


# --- Scheduled jobs ----------------------------------------------------------
# EventBridge cron runs in UTC; the comments give the Asia/Shanghai time.


@app.schedule(Cron("0/15", "*", "*", "*", "?", "*"), name="appointment-reminders")
def appointment_reminders(event: object) -> dict:
    # every 15 minutes: the 24 h and 2 h reminders that are due
    return appointment_jobs.send_reminders(jobs.moment_of(event))


@app.schedule(Cron("5/15", "*", "*", "*", "?", "*"), name="appointment-no-shows")
def appointment_no_shows(event: object) -> dict:
    # every 15 minutes: bookings not checked in by their end become no-shows
    return appointment_jobs.mark_no_shows(jobs.moment_of(event))


@app.schedule(Cron(20, 16, "*", "*", "?", "*"), name="coupon-expiry")
def coupon_expiry(event: object) -> dict:
    # daily 00:20: expire ended coupons, remind members of those ending in 3 days
    return coupon_jobs.run(jobs.moment_of(event))


@app.schedule(Cron(10, 16, "*", "*", "?", "*"), name="points-expiry")
def points_expiry(event: object) -> dict:
    # daily 00:10: expire the lots whose day has ended, one ledger transfer each
    return points_jobs.expire(jobs.moment_of(event))


@app.schedule(Cron(0, 18, "*", "*", "?", "*"), name="tier-review")
def tier_review(event: object) -> dict:
    # daily 02:00: tiers by trailing 12-month spend and activity, up and down
    return tier_review_job.review(jobs.moment_of(event))


@app.schedule(Cron(0, 19, "*", "*", "?", "*"), name="ledger-audit")
def ledger_audit(event: object) -> dict:
    # daily 03:00: prove the points ledger's invariants; each breach is logged as an error
    return points_jobs.audit(jobs.moment_of(event))


# --- Order state machine tasks ------------------------------------------------
# Invoked by the order state machine (infra/order.asl.json names each one by its
# CloudFormation resource name: order_reserve is ${OrderReserve.Arn}). An
# exception's class name is the error name the state machine's Retry and Catch see.

@app.lambda_function(name="order_reserve")
def order_reserve(event: dict, context: object) -> dict:
    return orders_flow.reserve(event)


@app.lambda_function(name="order_notify_store")
def order_notify_store(event: dict, context: object) -> dict:
    return orders_flow.notify_store(event)


@app.lambda_function(name="order_cancel")
def order_cancel(event: dict, context: object) -> dict:
    return orders_flow.cancel(event)
