"""Every entry point of siyu: HTTP routes, webhooks, schedules, state-machine tasks.

Each route declares its roles and the models of its body, query and answer;
the edge (`chalicelib.http`) authorises, parses and shapes the answer, and the
handler calls one service function. Domains and models load on first use
(`LazyModule`, `LazyNames`) so a cold start imports only what its handler needs.
"""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Cron

from chalicelib.auth import ADMIN, GUIDE, MEMBER, STAFF
from chalicelib.http import Api, Call, Rendered, WebhookCall
from chalicelib.lazy import LazyModule, LazyNames

# Logging is Powertools' (chalicelib.observability), not a second plain-text handler.
app = Chalice(app_name="siyu", configure_logs=False)
# Every authenticated route first asks whether the token still speaks for someone (DESIGN rule 11).
api = Api(app, admit=lambda caller, roles: access.admit(caller, roles))

access = LazyModule("chalicelib.members.access")
jobs = LazyModule("chalicelib.jobs")
openapi = LazyModule("chalicelib.openapi")
members = LazyModule("chalicelib.members.service")
messaging = LazyModule("chalicelib.messaging.service")
points = LazyModule("chalicelib.points.service")
points_jobs = LazyModule("chalicelib.points.jobs")
catalog = LazyModule("chalicelib.catalog.service")
stock_import = LazyModule("chalicelib.catalog.stock_import")
orders = LazyModule("chalicelib.orders.service")
order_lifecycle = LazyModule("chalicelib.orders.lifecycle")
order_payments = LazyModule("chalicelib.orders.payment")
order_sweeper = LazyModule("chalicelib.orders.sweeper")
pay_reconciliation_job = LazyModule("chalicelib.orders.reconciliation")
orders_flow = LazyModule("chalicelib.orders.flow")
fulfillment = LazyModule("chalicelib.orders.fulfillment")
courier_reports = LazyModule("chalicelib.orders.courier_reports")
guides = LazyModule("chalicelib.guides.service")
wechat_push = LazyModule("chalicelib.usecases.wechat_push")
stores = LazyModule("chalicelib.stores.service")
appointments = LazyModule("chalicelib.appointments.service")
appointment_jobs = LazyModule("chalicelib.appointments.jobs")
coupons = LazyModule("chalicelib.coupons.service")
coupon_claims = LazyModule("chalicelib.coupons.claims")
coupon_codes = LazyModule("chalicelib.coupons.redemption")
coupon_jobs = LazyModule("chalicelib.coupons.jobs")
me = LazyModule("chalicelib.usecases.me")
onboarding = LazyModule("chalicelib.usecases.onboarding")
admin_points = LazyModule("chalicelib.usecases.admin_points")
own_writes = LazyModule("chalicelib.usecases.own_writes")
tier_review_job = LazyModule("chalicelib.usecases.tier_review")
nightly_audit = LazyModule("chalicelib.usecases.audit")
segments = LazyModule("chalicelib.segments")
guide_customers = LazyModule("chalicelib.usecases.guide_customers")
erasure = LazyModule("chalicelib.usecases.erasure")
policy_admin = LazyModule("chalicelib.usecases.policy_admin")
daily_reports = LazyModule("chalicelib.reports.daily")

# The models of bodies, queries and answers, named for the route table and imported on first use.
contract = LazyNames("chalicelib.openapi")
member_schemas = LazyNames("chalicelib.members.schemas")
points_schemas = LazyNames("chalicelib.points.schemas")
catalog_schemas = LazyNames("chalicelib.catalog.schemas")
store_schemas = LazyNames("chalicelib.stores.schemas")
appointment_schemas = LazyNames("chalicelib.appointments.schemas")
coupon_schemas = LazyNames("chalicelib.coupons.schemas")
order_schemas = LazyNames("chalicelib.orders.schemas")
report_schemas = LazyNames("chalicelib.reports.schemas")
guide_schemas = LazyNames("chalicelib.guides.schemas")
policy_schemas = LazyNames("chalicelib.usecases.policy_schemas")


@api.get("/openapi.json", response=contract.Document)
def openapi_document(call: Call) -> dict:
    """This API's contract as OpenAPI 3.1, generated from these routes and their models."""
    return openapi.document(api.routes)


# --- Members and login ------------------------------------------------------

@api.post("/auth/login", body=member_schemas.LoginRequest, response=member_schemas.LoginAnswer)
def login(call: Call) -> dict:
    """Log in with a `wx.login` code; `scene` binds a guide or records a referrer."""
    return me.login(call.body.code, call.body.scene)


@api.get("/members/me", roles=[MEMBER], response=member_schemas.Member)
def get_me(call: Call) -> dict:
    return me.profile(call.caller.member_id)


@api.put("/members/me/profile", roles=[MEMBER], body=member_schemas.ProfileUpdate, response=member_schemas.Member)
def update_profile(call: Call) -> dict:
    return onboarding.update_profile(call.caller.member_id, call.body)


@api.post("/members/me/phone", roles=[MEMBER], body=member_schemas.PhoneRequest, response=member_schemas.Member)
def bind_phone(call: Call) -> dict:
    """Bind the phone from a getPhoneNumber code; an offline member with that phone is merged in."""
    return onboarding.bind_phone(call.caller.member_id, call.body.code)


@api.delete("/members/me", roles=[MEMBER], status=204)
def delete_me(call: Call) -> None:
    """Erase the member's personal data; every token of theirs is refused from now on."""
    erasure.delete_member(call.caller.member_id)


@api.get("/config/subscriptions", response=member_schemas.SubscriptionConfig)
def subscription_templates(call: Call) -> dict:
    return {"templates": messaging.templates()}


@api.post(
    "/members/me/subscriptions",
    roles=[MEMBER],
    body=member_schemas.SubscriptionRequest,
    response=member_schemas.SubscriptionCredits,
)
def accept_subscriptions(call: Call) -> dict:
    """The subscription templates the member accepted: one message each."""
    return own_writes.accept_subscriptions(call.caller.member_id, call.body.template_ids)


@api.get("/members/me/subscriptions", roles=[MEMBER], response=member_schemas.SubscriptionCredits)
def subscription_credits(call: Call) -> dict:
    return messaging.credits(call.caller.member_id)


@api.post("/admin/staff", roles=[ADMIN], body=member_schemas.StaffGrant, response=member_schemas.RoleGrantAnswer)
def grant_role(call: Call) -> dict:
    """Grant a role; it takes effect at the person's next login."""
    return members.grant_role(call.body, granted_by=call.caller.member_id)


@api.get("/admin/staff", roles=[ADMIN], query=member_schemas.StaffQuery, response=member_schemas.StaffPage)
def list_staff(call: Call) -> dict:
    """Who holds which roles at a store (without `storeId`: at HQ)."""
    return members.staff_of(call.query.store_id, call.limit, call.cursor)


@api.delete("/admin/staff/{openid}", roles=[ADMIN], query=member_schemas.RevokeQuery, status=204)
def revoke_role(call: Call) -> None:
    """Revoke a role (every role without `role`); the person is refused on its routes within 60 seconds."""
    members.revoke_role(call.params["openid"], call.query.role, revoked_by=call.caller.member_id)


# --- Points -------------------------------------------------------------------

@api.get("/points", roles=[MEMBER], response=points_schemas.PointsOverview)
def points_overview(call: Call) -> dict:
    return points.overview(call.caller.member_id)


@api.get("/points/entries", roles=[MEMBER], response=points_schemas.PointsEntryPage)
def points_entries(call: Call) -> dict:
    return points.entries(call.caller.member_id, call.limit, call.cursor)


@api.post("/points/checkin", roles=[MEMBER], response=points_schemas.CheckinAnswer, idempotent=True)
def points_checkin(call: Call) -> dict:
    """The day's check-in (Asia/Shanghai days), with the streak's bonus."""
    return own_writes.checkin(call.caller.member_id)


@api.post(
    "/admin/points/adjust",
    roles=[ADMIN],
    body=points_schemas.AdjustRequest,
    response=points_schemas.MemberPointsEntry,
    idempotent=True,
)
def adjust_points(call: Call) -> dict:
    body = call.body
    return admin_points.adjust(body.member_id, body.delta, body.reason, actor=call.caller.member_id)


@api.post(
    "/admin/points/reviews",
    roles=[ADMIN],
    body=points_schemas.ReviewAward,
    response=points_schemas.MemberPointsEntry,
    idempotent=True,
)
def award_review_points(call: Call) -> dict:
    """Points for a review an admin approved, once per review."""
    return admin_points.approve_review(call.body.member_id, call.body.review_id, actor=call.caller.member_id)


@api.post(
    "/admin/members/offline",
    roles=[ADMIN],
    body=points_schemas.OfflineMemberImport,
    response=points_schemas.OfflineMember,
    idempotent=True,
    status=201,
)
def import_offline_member(call: Call) -> dict:
    """A member of the stores' POS and the points it holds there."""
    return onboarding.import_offline_member(call.body, actor=call.caller.member_id)


# --- Catalog and inventory ---------------------------------------------------

@api.get("/skus", response=catalog_schemas.SkuPage)
def list_skus(call: Call) -> dict:
    return catalog.list_skus(call.limit, call.cursor)


@api.get("/skus/{skuId}", response=catalog_schemas.Sku)
def get_sku(call: Call) -> dict:
    return catalog.get_sku(call.params["skuId"])


@api.put("/admin/skus/{skuId}", roles=[ADMIN], body=catalog_schemas.SkuPut, response=catalog_schemas.Sku)
def put_sku(call: Call) -> dict:
    """Create or replace a SKU."""
    sku_id = catalog.check_id("skuId", call.params["skuId"])
    return catalog.put_sku(sku_id, call.body)


@api.put(
    "/admin/inventory/{storeId}/{skuId}",
    roles=[ADMIN, STAFF],
    body=catalog_schemas.InventoryPut,
    response=catalog_schemas.StockLevel,
)
def set_inventory(call: Call) -> dict:
    """Set a location's stock on hand (`warehouse` is the central warehouse)."""
    store_id = catalog.check_id("storeId", call.params["storeId"])
    call.caller.require_store(store_id)
    return catalog.set_on_hand(store_id, call.params["skuId"], call.body.on_hand)


@api.post("/admin/inventory/{storeId}/import", roles=[ADMIN, STAFF], body=catalog_schemas.StockImport,
          response=catalog_schemas.StockImportAnswer)
def import_inventory(call: Call) -> dict:
    """Count a whole location's shelf from CSV (`skuId,onHand`): checked whole, then set row by row."""
    store_id = catalog.check_id("storeId", call.params["storeId"])
    call.caller.require_store(store_id)
    return stock_import.import_on_hand(store_id, call.body.csv)


@api.get("/admin/inventory/{storeId}/{skuId}", roles=[ADMIN, STAFF], response=catalog_schemas.StockLevel)
def get_inventory(call: Call) -> dict:
    store_id = catalog.check_id("storeId", call.params["storeId"])
    call.caller.require_store(store_id)
    return catalog.stock_level(store_id, call.params["skuId"])


# --- Stores and appointments -------------------------------------------------

@api.get("/stores", query=store_schemas.StoresQuery, response=store_schemas.StorePage)
def list_stores(call: Call) -> dict:
    """Stores nearest first from (lat, lng), within radiusKm if given."""
    return stores.nearest(call.query, call.limit, call.cursor)


@api.get("/stores/{storeId}", response=store_schemas.Store)
def get_store(call: Call) -> dict:
    return stores.store_view(stores.find_store(call.params["storeId"]))


@api.put("/admin/stores/{storeId}", roles=[ADMIN], body=store_schemas.StoreSpec, response=store_schemas.Store)
def put_store(call: Call) -> dict:
    """Create or replace a store, its opening hours and services."""
    store_id = stores.check_store_id(call.params["storeId"])
    return stores.put_store(store_id, call.body, updated_by=call.caller.member_id)


@api.get("/stores/{storeId}/slots", query=appointment_schemas.SlotsQuery, response=appointment_schemas.DaySlots)
def store_slots(call: Call) -> dict:
    return appointments.slots(call.params["storeId"], call.query.service_id, call.query.date)


@api.post(
    "/appointments",
    roles=[MEMBER],
    body=appointment_schemas.BookingRequest,
    response=appointment_schemas.Appointment,
    idempotent=True,
)
def book_appointment(call: Call) -> dict:
    return appointments.book(call.caller.member_id, call.body)


@api.get(
    "/members/me/appointments",
    roles=[MEMBER],
    query=appointment_schemas.MyAppointmentsQuery,
    response=appointment_schemas.AppointmentPage,
)
def my_appointments(call: Call) -> dict:
    return appointments.member_appointments(call.caller.member_id, call.query.status, call.limit, call.cursor)


@api.get("/appointments/{appointmentId}", roles=[MEMBER], response=appointment_schemas.Appointment)
def get_appointment(call: Call) -> dict:
    return appointments.member_appointment(call.caller.member_id, call.params["appointmentId"])


@api.post(
    "/appointments/{appointmentId}/cancel",
    roles=[MEMBER],
    response=appointment_schemas.Appointment,
    idempotent=True,
)
def cancel_appointment(call: Call) -> dict:
    return appointments.cancel(call.caller.member_id, call.params["appointmentId"])


@api.post(
    "/appointments/{appointmentId}/reschedule",
    roles=[MEMBER],
    body=appointment_schemas.RescheduleRequest,
    response=appointment_schemas.Appointment,
    idempotent=True,
)
def reschedule_appointment(call: Call) -> dict:
    """Move the booking: the answer is the new booking, the old one reads `rescheduled`."""
    return appointments.reschedule(call.caller.member_id, call.params["appointmentId"], call.body.start)


@api.get(
    "/store/appointments",
    roles=[STAFF, GUIDE, ADMIN],
    query=appointment_schemas.StoreDayQuery,
    response=appointment_schemas.StoreAppointmentPage,
)
def store_appointments(call: Call) -> dict:
    """A store's bookings of a day; staff and guides see their own store's."""
    query = call.query
    return appointments.store_appointments(call.caller, query.store_id, query.date, call.limit, call.cursor)


@api.post(
    "/store/appointments/{appointmentId}/checkin",
    roles=[STAFF, ADMIN],
    response=appointment_schemas.StoreAppointment,
    idempotent=True,
)
def check_in_appointment(call: Call) -> dict:
    return appointments.check_in(call.caller, call.params["appointmentId"])


# --- Coupons ----------------------------------------------------------------

@api.get("/coupons/campaigns", roles=[MEMBER], response=coupon_schemas.OpenCampaignPage)
def open_campaigns(call: Call) -> dict:
    """Campaigns open to this member now."""
    return coupons.open_campaigns(call.caller.member_id, call.limit, call.cursor)


@api.post(
    "/coupons/campaigns/{campaignId}/claim",
    roles=[MEMBER],
    response=coupon_schemas.Coupon,
    idempotent=True,
)
def claim_coupon(call: Call) -> dict:
    return coupon_claims.claim(call.caller.member_id, call.params["campaignId"])


@api.get(
    "/members/me/coupons",
    roles=[MEMBER],
    query=coupon_schemas.CouponListQuery,
    response=coupon_schemas.CouponPage,
)
def my_coupons(call: Call) -> dict:
    return coupons.member_coupons(call.caller.member_id, call.query.status, call.limit, call.cursor)


@api.get("/coupons/{couponId}/code", roles=[MEMBER], response=coupon_schemas.CouponCode)
def coupon_code(call: Call) -> dict:
    """A signed, short-lived code of the member's coupon for the store's scanner."""
    return coupon_codes.issue_code(call.caller.member_id, call.params["couponId"])


@api.post(
    "/store/coupons/redeem",
    roles=[STAFF],
    body=coupon_schemas.RedeemRequest,
    response=coupon_schemas.Coupon,
    idempotent=True,
)
def redeem_coupon(call: Call) -> dict:
    """Redeem a scanned coupon code at the staff member's own store."""
    return coupon_codes.redeem(call.body.payload, call.caller.store_id)


@api.post(
    "/points/exchange",
    roles=[MEMBER],
    body=coupon_schemas.CampaignRef,
    response=coupon_schemas.Coupon,
    idempotent=True,
)
def exchange_points(call: Call) -> dict:
    """Spend points on a coupon of a points-exchange campaign, in one step."""
    return coupon_claims.exchange(call.caller.member_id, call.body.campaign_id)


@api.post(
    "/guide/customers/{memberId}/coupons",
    roles=[GUIDE],
    body=coupon_schemas.CampaignRef,
    response=coupon_schemas.Coupon,
    idempotent=True,
)
def give_coupon(call: Call) -> dict:
    """A guide gives a coupon of a guide campaign to a customer bound to them."""
    return coupon_claims.give(call.caller.guide_id, call.params["memberId"], call.body.campaign_id)


@api.post(
    "/admin/campaigns",
    roles=[ADMIN],
    body=coupon_schemas.CampaignCreate,
    response=coupon_schemas.AdminCampaign,
    status=201,
)
def create_campaign(call: Call) -> dict:
    return coupons.create_campaign(call.body, created_by=call.caller.member_id)


@api.get("/admin/campaigns", roles=[ADMIN], response=coupon_schemas.AdminCampaignPage)
def list_campaigns(call: Call) -> dict:
    return coupons.admin_campaigns(call.limit, call.cursor)


@api.get("/admin/campaigns/{campaignId}", roles=[ADMIN], response=coupon_schemas.AdminCampaign)
def get_campaign(call: Call) -> dict:
    return coupons.admin_campaign(call.params["campaignId"])


@api.post("/admin/campaigns/{campaignId}/stop", roles=[ADMIN], response=coupon_schemas.AdminCampaign)
def stop_campaign(call: Call) -> dict:
    """No more claims; coupons already held stay valid."""
    return coupons.stop_campaign(call.params["campaignId"], stopped_by=call.caller.member_id)


# --- Orders -------------------------------------------------------------------

@api.post(
    "/orders",
    roles=[MEMBER],
    body=order_schemas.OrderRequest,
    response=order_schemas.OrderCreated,
    idempotent=True,
)
def create_order(call: Call) -> dict:
    """Reserve the stock, lock the coupon and freeze the points in one write; answer what wx.requestPayment takes."""
    return orders.create(call.caller.member_id, call.body)


@api.get("/orders/{orderId}", roles=[MEMBER], response=order_schemas.OrderView)
def get_order(call: Call) -> dict:
    return orders.order_view(orders.member_order(call.caller.member_id, call.params["orderId"]))


@api.get("/orders/{orderId}/payment", roles=[MEMBER], response=order_schemas.OrderCreated)
def order_payment(call: Call) -> dict:
    """What wx.requestPayment takes for the member's unpaid order, such as one their guide placed for them."""
    return orders.payment_of(call.caller.member_id, orders.check_order_id(call.params["orderId"]))


@api.get("/members/me/orders", roles=[MEMBER], response=order_schemas.OrderPage)
def my_orders(call: Call) -> dict:
    return orders.member_orders(call.caller.member_id, call.limit, call.cursor)


@api.post("/orders/{orderId}/cancel", roles=[MEMBER], response=order_schemas.OrderView, idempotent=True)
def cancel_order(call: Call) -> dict:
    """Before payment always; after payment until the store accepts it, with a full refund."""
    return orders.order_view(order_lifecycle.cancel(call.caller.member_id, call.params["orderId"]))


@api.post(
    "/orders/{orderId}/refund",
    roles=[MEMBER],
    body=order_schemas.RefundRequest,
    response=order_schemas.OrderView,
    idempotent=True,
)
def refund_order(call: Call) -> dict:
    """After completion, within the refund window: the paid amount back, earned points clawed back."""
    order = order_lifecycle.refund(call.caller.member_id, call.params["orderId"], call.body.reason)
    return orders.order_view(order)


@api.get("/store/orders", roles=[STAFF], query=order_schemas.StoreOrdersQuery, response=order_schemas.StoreOrderPage)
def store_orders(call: Call) -> dict:
    """The staff member's store's orders (of one status, if asked), newest first."""
    return orders.store_orders(call.caller.own_store(), call.query.status, call.limit, call.cursor)


@api.post("/store/orders/{orderId}/accept", roles=[STAFF], response=order_schemas.OrderView, idempotent=True)
def accept_order(call: Call) -> dict:
    """The store takes a paid order routed to it; from then on the member asks for a refund instead of cancelling."""
    order = order_lifecycle.accept(orders.check_order_id(call.params["orderId"]), call.caller.own_store())
    return orders.order_view(order, for_member=False)


@api.post("/store/orders/{orderId}/reject", roles=[STAFF], response=order_schemas.OrderView, idempotent=True)
def reject_order(call: Call) -> dict:
    """The store declines an order routed to it: it goes to the next store, the warehouse, or back to the member's money."""
    order = fulfillment.reject(orders.check_order_id(call.params["orderId"]), call.caller.own_store())
    return orders.order_view(order, for_member=False)


@api.post("/store/orders/{orderId}/ready", roles=[STAFF], response=order_schemas.OrderView, idempotent=True)
def order_ready(call: Call) -> dict:
    """Packed: a delivery or express order gets its courier; a pickup order's member gets the pickup code."""
    order = fulfillment.ready(orders.check_order_id(call.params["orderId"]), call.caller.own_store())
    return orders.order_view(order, for_member=False)


@api.post("/store/orders/{orderId}/pickup", roles=[STAFF], body=order_schemas.PickupRequest,
          response=order_schemas.OrderView, idempotent=True)
def hand_over_order(call: Call) -> dict:
    """The member collects a pickup order with its code: the order is completed."""
    order = fulfillment.collect(orders.check_order_id(call.params["orderId"]), call.caller.own_store(),
                                call.body.pickup_code)
    return orders.order_view(order, for_member=False)


# --- Guides and HQ ---------------------------------------------------------------

@api.post("/guide/orders", roles=[GUIDE], body=order_schemas.GuideOrderRequest,
          response=order_schemas.GuidePlacedOrder, status=201, idempotent=True)
def place_order_for_customer(call: Call) -> dict:
    """代客下单: an order for a customer bound to this guide, which the customer pays in the mini-program."""
    return orders.place_for_customer(call.caller.guide_id, call.body)


@api.get("/guide/customers", roles=[GUIDE], response=guide_schemas.CustomerPage)
def my_customers(call: Call) -> dict:
    """The customers bound to this guide now, newest first, with tier, points, last order, last visit and tags."""
    return guide_customers.customers(call.caller.guide_id, call.limit, call.cursor)


@api.get("/guide/performance", roles=[GUIDE], query=guide_schemas.MonthQuery, response=guide_schemas.Performance)
def guide_performance(call: Call) -> dict:
    """The month's orders, sales, customers and commission credited to this guide."""
    return guides.performance(call.caller.guide_id, call.query.month)


def _statement(guide_id: str, query: Any) -> dict | Rendered:
    statement = guides.statement(guide_id, query.month)
    return Rendered("text/csv", guides.statement_csv(statement)) if query.format == "csv" else statement


@api.get("/guide/statement", roles=[GUIDE], query=guide_schemas.StatementQuery, response=guide_schemas.Statement,
         also=["text/csv"])
def guide_statement(call: Call) -> dict | Rendered:
    """The guide's monthly statement: each credited order with its commission and status (`?format=csv`)."""
    return _statement(call.caller.guide_id, call.query)


@api.get("/admin/guides/{guideId}/statement", roles=[ADMIN], query=guide_schemas.StatementQuery,
         response=guide_schemas.Statement, also=["text/csv"])
def admin_guide_statement(call: Call) -> dict | Rendered:
    return _statement(call.params["guideId"], call.query)


@api.put("/admin/members/{memberId}/guide", roles=[ADMIN], body=guide_schemas.RebindRequest,
         response=guide_schemas.Binding)
def rebind_guide(call: Call) -> dict:
    """HQ binds the member to another guide, for a new binding period."""
    return members.binding_view(members.rebind_guide(call.params["memberId"], call.body.guide_id))


# --- Reports ------------------------------------------------------------------

@api.get("/admin/reports/daily", roles=[ADMIN], query=report_schemas.DailyReportQuery,
         response=report_schemas.DailyReport, also=["text/csv"])
def daily_report(call: Call) -> dict | Rendered:
    """A Shanghai day's figures: the report the daily-report job stored, or computed now if it stored none.

    `?format=csv` answers the same figures as `text/csv; charset=utf-8`. A day that is not over in
    Shanghai (today or later) and has no stored report: 409 `DAY_NOT_OVER` (the day exists, its
    figures are still moving).
    """
    report = daily_reports.for_day(call.query.date)
    return Rendered("text/csv", daily_reports.as_csv(report)) if call.query.format == "csv" else report


@api.get("/admin/config/{section}", roles=[ADMIN], response=policy_schemas.PolicyView)
def get_policy(call: Call) -> dict:
    """The policy in effect for `points` (tiers, earning rules, expiry), `orders` (windows, timeouts) or `guides`."""
    return policy_admin.current(call.params["section"])


@api.put("/admin/config/{section}", roles=[ADMIN], body=policy_schemas.PolicyUpdate, response=policy_schemas.PolicyView)
def change_policy(call: Call) -> dict:
    """Change some settings of a section, from the version read (409 POLICY_CHANGED if another admin was first);
    containers apply it within a minute."""
    return policy_admin.change(call.params["section"], call.body.overrides, call.body.version, call.caller.member_id)


@api.get("/admin/config/{section}/changes", roles=[ADMIN], response=policy_schemas.PolicyChangePage)
def policy_changes(call: Call) -> dict:
    """Who changed the section, when, and the policy before and after, newest first."""
    return policy_admin.changes(call.params["section"], call.limit, call.cursor)


@api.webhook("/webhooks/wechatpay")
def wechatpay_notification(call: WebhookCall) -> tuple:
    """WeChat Pay's APIv3 payment and refund notifications: verified, decrypted, applied once."""
    return order_payments.on_notification(call.headers, call.body)


@api.webhook("/webhooks/courier/{courier}")
def courier_callback(call: WebhookCall) -> tuple:
    """A courier's status callback: a hint, confirmed with the courier's own status query, applied once and forward only."""
    return courier_reports.on_courier_callback(call.params["courier"], call.body)


@api.webhook("/webhooks/wechat", method="GET")
def wechat_push_verification(call: WebhookCall) -> tuple:
    """WeChat checks that the message push URL is ours."""
    return wechat_push.verification(call.query)


@api.webhook("/webhooks/wechat")
def wechat_push_event(call: WebhookCall) -> tuple:
    """WeChat message push: signed, encrypted events (instant-delivery and express waybill updates)."""
    return wechat_push.on_event(call.query, call.body)


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
    # daily 00:10: expire the lots whose day has ended (the balances the expiry-due index names), one transfer each
    return points_jobs.expire(jobs.moment_of(event))


@app.schedule(Cron(0, 18, "*", "*", "?", "*"), name="tier-review")
def tier_review(event: object) -> dict:
    # daily 02:00: tiers of the members whose trailing 12-month figures moved, up and down
    return tier_review_job.review(jobs.moment_of(event))


@app.schedule(Cron(0, 20, "*", "*", "?", "*"), name="customer-segments")
def customer_segments(event: object) -> dict:
    # daily 04:00: every guide's customers tagged 高净值, 潜在转化 or 普通 for the workbench
    return guide_customers.segment_all(jobs.moment_of(event))


@app.schedule(Cron("0/5", "*", "*", "*", "?", "*"), name="order-sweeper")
def order_sweeper_job(event: object) -> dict:
    # every 5 minutes: unpaid orders past their deadline, payments no execution settled, unconfirmed refunds
    return order_sweeper.sweep(jobs.moment_of(event))


@app.schedule(Cron(0, 19, "*", "*", "?", "*"), name="ledger-audit")
def ledger_audit(event: object) -> dict:
    # daily 03:00: yesterday's transfers and the accounts they touched proven, and the coupon locks; each breach an alarm
    return nightly_audit.run(jobs.moment_of(event))


@app.schedule(Cron(30, 19, "?", "*", "SAT", "*"), name="ledger-proof")
def ledger_proof(event: object) -> dict:
    # Sundays 03:30: the whole ledger proven on the segmented state machine (every balance against its entries)
    return segments.start("ledger-proof", jobs.moment_of(event))


@app.schedule(Cron(30, 19, "*", "*", "?", "*"), name="stock-audit")
def stock_audit(event: object) -> dict:
    # daily 03:30: every stock row against the held reservations, on the segmented state machine
    return segments.start("stock-audit", jobs.moment_of(event))


@app.schedule(Cron(30, 2, "*", "*", "?", "*"), name="pay-reconciliation")
def pay_reconciliation(event: object) -> dict:
    # daily 10:30: yesterday's WeChat Pay bills against our orders and refunds; each mismatch raises an alarm
    return pay_reconciliation_job.reconcile(jobs.moment_of(event))


@app.schedule(Cron(0, 22, "*", "*", "?", "*"), name="daily-report")
def daily_report_job(event: object) -> dict:
    # daily 06:00: yesterday's figures, computed from the day's records, stored and logged
    return daily_reports.run(jobs.moment_of(event))


# --- Order state machine tasks ------------------------------------------------
# Invoked by the order state machine (infra/order.asl.json names each one by its
# CloudFormation resource name: order_settle_payment is ${OrderSettlePayment.Arn}).
# An exception's class name is the error name the state machine's Retry and Catch see.

@app.lambda_function(name="order_settle_payment")
def order_settle_payment(event: dict, context: object) -> dict:
    return orders_flow.settle_payment(event)


@app.lambda_function(name="order_notify_store")
def order_notify_store(event: dict, context: object) -> dict:
    return orders_flow.notify_store(event)


@app.lambda_function(name="order_reroute")
def order_reroute(event: dict, context: object) -> dict:
    return orders_flow.reroute(event)


@app.lambda_function(name="order_await")
def order_await(event: dict, context: object) -> dict:
    return orders_flow.await_step(event)


@app.lambda_function(name="order_dispatch_courier")
def order_dispatch_courier(event: dict, context: object) -> dict:
    return orders_flow.dispatch_courier(event)


@app.lambda_function(name="order_complete")
def order_complete(event: dict, context: object) -> dict:
    return orders_flow.complete_unreported(event)


@app.lambda_function(name="order_close_refund_window")
def order_close_refund_window(event: dict, context: object) -> dict:
    return orders_flow.close_refund_window(event)


@app.lambda_function(name="order_compensate")
def order_compensate(event: dict, context: object) -> dict:
    return orders_flow.compensate(event)


@app.on_cw_event(
    {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"]},  # orders.flow.ENDED_UNFINISHED
    },
    name="order_execution_ended",
)
def order_execution_ended(event: Any) -> dict:
    # an order execution failed, timed out or was stopped: the order is compensated
    return orders_flow.execution_ended(event.to_dict())


# --- Whole-table job tasks ------------------------------------------------------
# Invoked by the segmented state machine (infra/segmented.asl.json), for the jobs
# of chalicelib/usecases/whole_table_jobs.py.

@app.lambda_function(name="segment_scan")
def segment_scan(event: dict, context: Any) -> dict:
    return segments.scan_segment(event, context.get_remaining_time_in_millis)


@app.lambda_function(name="segment_finish")
def segment_finish(event: dict, context: object) -> dict:
    return segments.finish(event)
