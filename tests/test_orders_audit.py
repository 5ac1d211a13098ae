"""The nightly audit also proves that every locked coupon belongs to a live order that names it."""

from __future__ import annotations

import datetime as dt

import pytest

import app
from chalicelib import clock
from chalicelib.coupons import claims
from chalicelib.coupons.models import AVAILABLE, LOCKED, Coupon, expiry_shard
from chalicelib.orders import lifecycle
from chalicelib.orders import service as orders
from chalicelib.orders.schemas import OrderRequest
from chalicelib.usecases.audit import coupon_lock_breaches
from tests.coupon_helpers import login_member, new_campaign
from tests.order_helpers import new_sku, new_store, pickup, remote_spot, stock

pytestmark = pytest.mark.usefixtures("stack")


def audit_job() -> dict:
    from tests.test_infra_access_observed import scheduled_event

    return app.ledger_audit(scheduled_event(clock.now()), None)


def test_a_coupon_locked_by_an_order_that_is_no_longer_unpaid_is_a_breach():
    store = new_store(*remote_spot())
    sku = new_sku()
    stock(store, sku, 2)
    _, member_id, _ = login_member("auditee")
    coupon_id = claims.claim(member_id, new_campaign(threshold=0, value=100)["campaignId"])["couponId"]
    order = orders.create(member_id, OrderRequest.model_validate(pickup(store, (sku, 1), couponId=coupon_id)))
    assert coupon_lock_breaches([member_id]) == []
    before = audit_job()["couponLocks"]["breaches"]

    lifecycle.cancel(member_id, order["orderId"])
    # As if the cancellation had lost its coupon release: the lock outlives its order.
    Coupon(member_id, coupon_id).update(actions=[Coupon.status.set(LOCKED), Coupon.order_id.set(order["orderId"]),
                                                 Coupon.locked_at.set(clock.now() - dt.timedelta(hours=1)),
                                                 Coupon.locked_shard.set(expiry_shard(coupon_id))])
    try:
        assert audit_job()["couponLocks"]["breaches"] == before + 1
        assert coupon_lock_breaches([member_id]) == [
            {"memberId": member_id, "couponId": coupon_id, "orderId": order["orderId"], "orderStatus": "cancelled"},
        ]
    finally:
        Coupon(member_id, coupon_id).update(actions=[Coupon.status.set(AVAILABLE), Coupon.order_id.remove(),
                                                     Coupon.locked_shard.remove()])
    assert coupon_lock_breaches([member_id]) == []


def test_the_audit_reads_only_the_locked_coupons_and_reports_them_beside_the_ledger():
    from chalicelib import db

    with db.recording() as log:
        report = audit_job()
    # Other tests leave locks behind in the shared tables: the report counts what a recount finds.
    assert report["couponLocks"]["breaches"] == len(coupon_lock_breaches())
    assert report["examples"] == [] and report["breaches"] == 0
    coupons = Coupon.Meta.table_name
    assert not [r for r in log if r.operation == "Scan"]
    assert {r.body.get("IndexName") for r in log if r.operation == "Query" and r.body["TableName"] == coupons} \
        == {"locked"}
