"""The jobs and the order tasks, run through their app.py handlers against DynamoDB Local,
touch no table in a way their declaration in infra/access.py does not grant.

Least privilege fails by refusing: a job that writes a table its role does not
name stops with AccessDenied in AWS, and only there. Each test here records
every DynamoDB request a handler makes on a path that does real work and
checks it against the declaration.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

import app
from chalicelib import clock, db
from chalicelib.appointments import service as appointments
from chalicelib.appointments.schemas import BookingRequest
from chalicelib.config import settings
from chalicelib.coupons import claims
from chalicelib.db import all_models
from chalicelib.messaging import service as messaging
from chalicelib.points import ledger
from infra import access
from tests.appointment_helpers import at, login, make_store
from tests.conftest import unique
from tests.coupon_helpers import login_member, new_campaign

pytestmark = pytest.mark.usefixtures("stack")

_OPERATIONS = {
    "GetItem": access.READ,
    "BatchGetItem": access.READ,
    "Query": access.READ,
    "Scan": access.SCAN,
    "PutItem": access.WRITE,
    "UpdateItem": access.WRITE,
    "DeleteItem": access.DELETE,
}
_TRANSACT_ACTIONS = {
    "ConditionCheck": access.READ,
    "Put": access.WRITE,
    "Update": access.WRITE,
    "Delete": access.DELETE,
}


def verbs_used(requests: list[db.Request]) -> dict[str, access.Verb]:
    """{table (without the stage's prefix): the verbs the requests needed on it}."""
    prefix = settings().table_prefix
    used: dict[str, access.Verb] = defaultdict(lambda: access.Verb(0))
    for request in requests:
        body = request.body
        if request.operation == "TransactWriteItems":
            for item in body["TransactItems"]:
                for kind, action in item.items():
                    used[action["TableName"].removeprefix(prefix)] |= _TRANSACT_ACTIONS[kind]
        elif request.operation == "BatchGetItem":
            for table in body["RequestItems"]:
                used[table.removeprefix(prefix)] |= access.READ
        else:
            used[body["TableName"].removeprefix(prefix)] |= _OPERATIONS[request.operation]
    return dict(used)


def run_observed(function: str, call: Callable[[], Any]) -> Any:
    """Run `call`, then check what it did against `function`'s declaration."""
    with db.recording() as requests:
        result = call()
    used = verbs_used(requests)
    assert used, f"{function} touched no table: the scenario does not exercise it"
    granted = {grant.table: grant.verbs for grant in access.table_grants(access.ACCESS[function], all_models())}
    beyond = {table: verbs & ~granted.get(table, access.Verb(0)) for table, verbs in used.items()}
    assert {table: verbs for table, verbs in beyond.items() if verbs} == {}, f"{function} needs more than it declares"
    return result


def scheduled_event(moment: dt.datetime) -> dict[str, Any]:
    return {
        "version": "0", "id": unique("event"), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "111122223333", "region": "us-east-1", "time": clock.iso(moment), "resources": [], "detail": {},
    }


# Days of their own, so no other test's bookings are in these runs.
REMINDED_DAY = dt.date(2032, 5, 20)


def test_the_appointment_jobs_stay_within_their_declarations(api):
    openid, _, member_id = login(api)
    messaging.accept(member_id, [settings().template_appointment_reminder] * 2)
    start = at(REMINDED_DAY, "15:00")
    with clock.frozen_at(start - dt.timedelta(days=3)):
        appointments.book(member_id, BookingRequest(store_id=make_store(), service_id="repair", start=start))

    reminded = start - dt.timedelta(hours=24)
    with clock.frozen_at(reminded):
        sent = run_observed(
            "appointment-reminders", lambda: app.appointment_reminders(scheduled_event(reminded), None),
        )
    assert sent["sent"] == 1

    after = start + dt.timedelta(hours=3)
    with clock.frozen_at(after):
        marked = run_observed("appointment-no-shows", lambda: app.appointment_no_shows(scheduled_event(after), None))
    assert marked["noShows"] >= 1


def test_the_coupon_job_stays_within_its_declaration():
    now = clock.now()
    later = now + dt.timedelta(hours=2)
    reminded_day = clock.shanghai_date(later) + dt.timedelta(days=3)
    ending = dt.datetime.combine(reminded_day, dt.time(12), tzinfo=clock.SHANGHAI)
    in_an_hour = (now + dt.timedelta(hours=1)).isoformat()
    ended = new_campaign(validTo=in_an_hour, claimTo=in_an_hour)
    _, member_id, _ = login_member()
    claims.claim(member_id, ended["campaignId"])
    claims.claim(member_id, new_campaign(validTo=ending.isoformat())["campaignId"])
    messaging.accept(member_id, [settings().template_coupon_expiry])

    with clock.frozen_at(later):
        result = run_observed("coupon-expiry", lambda: app.coupon_expiry(scheduled_event(later), None))
    assert result["expired"] >= 1 and result["remindersSent"] >= 1 and result["campaignsEnded"] >= 1


def test_the_points_jobs_stay_within_their_declarations():
    member = unique("points-member")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2025-12-31")
    ledger.earn(member, 30, f"b#{member}", "checkin", expires_on="2026-12-31")
    moment = dt.datetime(2026, 1, 1, 0, 10, tzinfo=clock.SHANGHAI)

    with clock.frozen_at(moment):
        expired = run_observed("points-expiry", lambda: app.points_expiry(scheduled_event(moment), None))
        run_observed("tier-review", lambda: app.tier_review(scheduled_event(moment), None))
        run_observed("ledger-audit", lambda: app.ledger_audit(scheduled_event(moment), None))
    assert expired["lotsExpired"] >= 1


@pytest.mark.parametrize("job", ["ledger-proof", "stock-audit", "tier-review-all", "identity-rekey", "expiry-index"])
def test_the_whole_table_tasks_stay_within_their_declarations(job):
    from chalicelib import segments
    from tests.order_helpers import new_sku, stock

    stock(unique("store"), new_sku(), 3)
    ledger.earn(unique("points-member"), 20, unique("earn"), "checkin")
    payload = segments.machine_input(job, clock.now(), 2, run=unique(job))
    for segment in payload["segments"]:
        event = {**payload, "segment": segment}
        while not (event := run_observed("segment_scan", lambda: app.segment_scan(event, _Context())))["done"]:
            pass
    run_observed("segment_finish", lambda: app.segment_finish(payload, None))


class _Context:
    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def test_the_order_tasks_and_the_sweeper_stay_within_their_declarations(api, stack, monkeypatch):
    import requests

    from chalicelib.orders import flow
    from tests.order_helpers import new_sku, new_store, pickup, remote_spot, shopper, stock

    store = new_store(*remote_spot())
    sku = new_sku()
    stock(store, sku, 3)
    member_id, token = shopper(api, points=100)
    order = api.post("/orders", token, json=pickup(store, (sku, 1), pointsToUse=100)).json()
    order_id = order["orderId"]
    paid = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": False},
                         timeout=30)
    assert paid.status_code == 200
    # The execution's own tasks are observed one by one below, not inside the sweeper's run.
    monkeypatch.setattr(flow, "start", lambda order_id: None)
    after_deadline = clock.parse_iso(order["payDeadline"]) + dt.timedelta(minutes=1)

    swept = run_observed("order-sweeper", lambda: app.order_sweeper_job(scheduled_event(after_deadline), None))
    assert swept["checked"] >= 1
    run_observed("order_settle_payment", lambda: app.order_settle_payment({"orderId": order_id}, None))
    waiting = {"orderId": order_id, "step": "store_acceptance", "taskToken": unique("token")}
    run_observed("order_notify_store", lambda: app.order_notify_store(waiting, None))
    timed_out = {"orderId": order_id, "error": {"Error": "States.Timeout"}}
    compensated = run_observed("order_compensate", lambda: app.order_compensate(timed_out, None))
    assert compensated["status"] in ("refunding", "refunded")
