"""The daily report: a Shanghai day's figures, computed from that day's records through per-day indexes.

One far-away day of its own (no other test writes there) is seeded through the
domains' services with the clock frozen at each moment: members, orders paid at
several hours (one refunded), points issued, spent, expired and clawed back,
coupons claimed and redeemed, bookings made, kept and missed, and records on
the days either side that must not count. The expected figures are computed
here from the records the seeding made, never written down as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections import Counter
from typing import Any

import pytest
import requests

from chalicelib import clock, db, transact
from chalicelib.auth import STAFF, Principal
from chalicelib.config import settings
from tests.conftest import new_admin, unique
from tests.order_helpers import new_sku, new_store, pickup, remote_spot, stock
from tests.test_infra_access_observed import run_observed, scheduled_event

pytestmark = pytest.mark.usefixtures("stack")

SHANGHAI = clock.SHANGHAI
# A day no other test comes near: the report covers everything recorded on it.
DAY = dt.date(2041, 1, 1) + dt.timedelta(days=random.randrange(4 * 365))
BEFORE, AFTER = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
REPORTED_AT = dt.datetime(AFTER.year, AFTER.month, AFTER.day, 6, 0, tzinfo=SHANGHAI)
SANDBOX: list[str] = []  # the sandbox's address, once the stack is up


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=SHANGHAI)


def login(moment: dt.datetime) -> str:
    """A member who logs in for the first time at `moment`; their id."""
    from chalicelib.usecases import me

    with clock.frozen_at(moment):
        return me.login(f"dev:{unique('report')}")["member"]["memberId"]


class Seed:
    """What the seeding made, and the figures it implies."""

    def __init__(self) -> None:
        self.members_on_day = 0
        self.paid_orders: list[str] = []
        self.refunded_orders: list[str] = []
        self.issued = self.spent = self.expired = self.clawed_back = 0
        self.claimed = self.redeemed = 0
        self.booked = self.kept = self.missed = 0

    def new_member(self, moment: dt.datetime) -> str:
        member_id = login(moment)
        self.members_on_day += clock.shanghai_date(moment) == DAY
        return member_id


def _campaign(moment: dt.datetime, **overrides: Any) -> str:
    from tests.coupon_helpers import new_campaign

    with clock.frozen_at(moment):
        valid = {"validFrom": (moment - dt.timedelta(days=1)).isoformat(),
                 "validTo": (moment + dt.timedelta(days=30)).isoformat()}
        return new_campaign(**{**valid, **overrides})["campaignId"]


def _order(member_id: str, store: str, lines: list[tuple[str, int]], created: dt.datetime) -> str:
    from chalicelib.orders import service as orders
    from chalicelib.orders.schemas import OrderRequest

    with clock.frozen_at(created):
        return orders.create(member_id, OrderRequest.model_validate(pickup(store, *lines)))["orderId"]


def _pay(order_id: str, moment: dt.datetime) -> None:
    """The member pays at the sandbox (which keeps its notification), and the payment is applied at `moment`."""
    from chalicelib.orders import lifecycle
    from chalicelib.wechat import pay as wxpay

    answer = requests.post(f"{SANDBOX[0]}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": False}, timeout=30)
    assert answer.status_code == 200, answer.text
    with clock.frozen_at(moment):
        assert lifecycle.apply_payment(wxpay.query_order(order_id))


def _refund(member_id: str, order_id: str, moment: dt.datetime) -> None:
    """The member cancels before the store accepted; WeChat Pay confirms the refund at `moment`."""
    from chalicelib.orders import lifecycle
    from chalicelib.orders.service import get_order

    with clock.frozen_at(moment - dt.timedelta(minutes=5)):
        lifecycle.cancel(member_id, order_id)
        lifecycle.finish_refund(get_order(order_id))
    with clock.frozen_at(moment):
        resource = {"out_trade_no": order_id, "out_refund_no": get_order(order_id).refund_no,
                    "refund_status": "SUCCESS", "mchid": settings().wxpay_mchid}
        assert lifecycle.apply_refund(resource)


def _seed_orders(seed: Seed, store: str) -> None:
    skus = [new_sku(price=price, member_price=None) for price in (19900, 4900, 129900)]
    for sku in skus:
        stock(store, sku, 100)
    buyer = seed.new_member(at(DAY, 7))
    # Paid on the day, at several hours; one of them refunded the same evening.
    for lines, created, paid in [
        ([(skus[0], 2), (skus[1], 1)], at(DAY, 9, 1), at(DAY, 9, 3)),
        ([(skus[1], 3)], at(DAY, 9, 40), at(DAY, 9, 41)),
        ([(skus[2], 1), (skus[1], 1)], at(DAY, 14, 10), at(DAY, 14, 12)),
        ([(skus[0], 1)], at(DAY, 23, 58), at(DAY, 23, 59, 59)),
    ]:
        order_id = _order(buyer, store, lines, created)
        _pay(order_id, paid)
        seed.paid_orders.append(order_id)
    _refund(buyer, seed.paid_orders[1], at(DAY, 21))
    seed.refunded_orders.append(seed.paid_orders[1])
    # Paid just before the day, refunded on it: its refund counts, its payment does not.
    early = _order(buyer, store, [(skus[2], 1)], at(BEFORE, 23, 50))
    _pay(early, at(BEFORE, 23, 59, 59))
    _refund(buyer, early, at(DAY, 10))
    seed.refunded_orders.append(early)
    # Paid just after the day.
    _pay(_order(buyer, store, [(skus[0], 5)], at(DAY, 23, 59, 30)), at(AFTER, 0, 0, 1))


def _seed_points(seed: Seed) -> None:
    from chalicelib.coupons import claims
    from chalicelib.points import ledger
    from chalicelib.points import service as points

    saver = seed.new_member(at(DAY, 8))
    with clock.frozen_at(at(DAY, 8, 30)):
        seed.issued += points.checkin(saver)["awarded"]
        seed.issued += ledger.earn(saver, 1000, f"gift#{saver}", "adjust").delta
        points.adjust(saver, 200, "goodwill", actor="tests")  # the adjustment account, not `issued`
        ledger.earn_pending(saver, 70, f"pending#{saver}", "order")  # pending: not issued until posted
    price = 300
    exchange = _campaign(at(DAY, 8), channel="exchange", pointsPrice=price, kind="cash", value=500, threshold=0)
    with clock.frozen_at(at(DAY, 11)):
        claims.exchange(saver, exchange)
    seed.spent += price
    seed.claimed += 1

    # Points earned two days before, into a lot that ended the day before: they expire on the day.
    old = login(at(DAY - dt.timedelta(days=2), 10))
    with clock.frozen_at(at(DAY - dt.timedelta(days=2), 10)):
        ledger.earn(old, 300, f"old#{old}", "adjust", expires_on=BEFORE.isoformat())
    receipt = ledger.expire_lot(old, BEFORE.isoformat(), at(DAY, 0, 10))
    assert receipt is not None
    seed.expired -= receipt.delta

    reviewer = seed.new_member(at(DAY, 12))
    with clock.frozen_at(at(DAY, 12, 5)):
        seed.issued += ledger.earn(reviewer, 40, f"review#{reviewer}", "review").delta
        seed.clawed_back -= ledger.clawback(reviewer, f"review#{reviewer}").delta
    # Issued the day after: not the day's.
    with clock.frozen_at(at(AFTER, 0, 0, 1)):
        points.checkin(reviewer)


def _seed_coupons(seed: Seed, store: str) -> None:
    from chalicelib.coupons import claims, redemption

    campaign = _campaign(at(BEFORE, 9), kind="cash", value=1000, threshold=0, totalStock=50)
    early = login(at(BEFORE, 10))
    with clock.frozen_at(at(BEFORE, 12)):
        early_coupon = claims.claim(early, campaign)["couponId"]
    coupons = []
    for hour in (10, 11, 12):
        member_id = seed.new_member(at(DAY, hour))
        with clock.frozen_at(at(DAY, hour, 5)):
            coupons.append((member_id, claims.claim(member_id, campaign)["couponId"]))
    seed.claimed += len(coupons)
    # Two of the day's coupons and the one claimed the day before are redeemed in the store on the day.
    for member_id, coupon_id in [*coupons[:2], (early, early_coupon)]:
        with clock.frozen_at(at(DAY, 16)):
            payload = redemption.issue_code(member_id, coupon_id)["payload"]
            redemption.redeem(payload, store)
        seed.redeemed += 1


def _book(member_id: str, store: str, start: dt.datetime, moment: dt.datetime) -> str:
    from chalicelib.appointments import service as appointments
    from chalicelib.appointments.schemas import BookingRequest

    request = BookingRequest.model_validate({"storeId": store, "serviceId": "check", "start": start.isoformat()})
    with clock.frozen_at(moment):
        return appointments.book(member_id, request)["appointmentId"]


def _seed_appointments(seed: Seed, store: str) -> None:
    from chalicelib.appointments import jobs as appointment_jobs
    from chalicelib.appointments import service as appointments

    staff = Principal(member_id=unique("staff"), roles=frozenset({STAFF}), store_id=store)
    guest = login(at(BEFORE, 9))
    # Booked the day before for the day: one kept, one missed, one cancelled.
    kept = _book(guest, store, at(DAY, 10), at(BEFORE, 10))
    _book(guest, store, at(DAY, 11), at(BEFORE, 10))
    cancelled = _book(guest, store, at(DAY, 15), at(BEFORE, 10))
    appointments.cancel(guest, cancelled)
    with clock.frozen_at(at(DAY, 9, 55)):
        appointments.check_in(staff, kept)
    appointment_jobs.mark_no_shows(at(DAY, 12))
    seed.kept, seed.missed = 1, 1
    # Booked on the day for the day after; one of them is moved the same day (a move, not a booking).
    regular = seed.new_member(at(DAY, 13))
    moved = _book(regular, store, at(AFTER, 10), at(DAY, 13, 30))
    _book(regular, store, at(AFTER, 14), at(DAY, 13, 31))
    with clock.frozen_at(at(DAY, 13, 40)):
        appointments.reschedule(regular, moved, at(AFTER, 16))
    seed.booked = 2


def _seed_members(seed: Seed) -> None:
    from chalicelib.members import service as members

    login(at(BEFORE, 23, 59, 59))
    login(at(AFTER, 0, 0, 0))
    seed.new_member(at(DAY, 0, 0, 0))
    phone = f"139{random.randrange(10**8):08d}"
    transact.write(lambda txn: members.add_offline_member(txn, phone, None, at(DAY, 18)))
    seed.members_on_day += 1


@pytest.fixture(scope="module")
def seed(stack) -> Seed:
    from chalicelib.orders import flow

    made = Seed()
    SANDBOX[:] = [stack.sandbox_url]
    store = new_store(*remote_spot())
    # The orders' executions are not the point here: payments and refunds are applied as WeChat Pay reports them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flow, "start", lambda order_id: None)
        _seed_orders(made, store)
    _seed_points(made)
    _seed_coupons(made, store)
    _seed_appointments(made, store)
    _seed_members(made)
    return made


def expected(seed: Seed) -> dict[str, Any]:
    """The day's figures, from the records the seeding made."""
    from chalicelib.orders.service import get_order

    paid = [get_order(order_id) for order_id in seed.paid_orders]
    refunded = [get_order(order_id) for order_id in seed.refunded_orders]
    hours = Counter(order.paid_at.astimezone(SHANGHAI).hour for order in paid)
    skus: dict[str, dict[str, Any]] = {}
    for order in paid:
        for line in order.lines:
            sku = skus.setdefault(line.sku_id, {"skuId": line.sku_id, "title": line.title, "qty": 0, "sales": 0})
            sku["qty"] += int(line.qty)
            sku["sales"] += int(line.qty) * int(line.unit_price)
    top = sorted(skus.values(), key=lambda sku: (-sku["qty"], -sku["sales"], sku["skuId"]))[:10]
    return {
        "date": DAY.isoformat(),
        "orders": {
            "count": len(paid),
            "gmv": sum(int(order.goods) for order in paid),
            "paid": sum(int(order.payable) for order in paid),
            "perHour": [hours.get(hour, 0) for hour in range(24)],
        },
        "refunds": {"count": len(refunded), "amount": sum(int(order.refund_amount) for order in refunded)},
        "members": {"new": seed.members_on_day},
        "points": {"issued": seed.issued, "spent": seed.spent, "expired": seed.expired,
                   "clawedBack": seed.clawed_back},
        "coupons": {"claimed": seed.claimed, "redeemed": seed.redeemed,
                    "redemptionRateBp": round(seed.redeemed * 10000 / seed.claimed)},
        "appointments": {"booked": seed.booked, "kept": seed.kept, "missed": seed.missed},
        "topSkus": top,
    }


def run_job(stack, moment: dt.datetime) -> dict[str, Any]:
    answer = requests.post(f"{stack.sandbox_url}/sandbox/cron/daily-report", json={"now": moment.isoformat()},
                           timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


@pytest.fixture(scope="module")
def report(stack, seed) -> dict[str, Any]:
    return run_job(stack, REPORTED_AT)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in report.items() if name != "generatedAt"}


# --- The figures ---------------------------------------------------------------------------------

def test_every_figure_of_the_day_is_what_its_records_say(seed, report):
    assert figures(report) == expected(seed)
    assert report["generatedAt"] == clock.iso(REPORTED_AT)


def test_the_job_reports_yesterday_in_shanghai_whatever_the_utc_day():
    from chalicelib.reports import daily

    assert daily.report_day(at(AFTER, 6)) == DAY
    assert daily.report_day(at(AFTER, 6).astimezone(dt.timezone.utc)) == DAY  # 22:00 UTC of the day itself
    assert daily.rate_bp(3, 4) == 7500 and daily.rate_bp(1, 3) == 3333 and daily.rate_bp(2, 3) == 6667
    assert daily.rate_bp(0, 0) is None


def test_a_replay_for_the_same_moment_stores_and_reports_the_same(stack, report):
    from chalicelib.reports.models import DailyReport

    before = DailyReport.get(DAY.isoformat(), consistent_read=True).figures
    assert run_job(stack, REPORTED_AT) == report
    assert DailyReport.get(DAY.isoformat(), consistent_read=True).figures == before


# --- The endpoint --------------------------------------------------------------------------------

def test_the_endpoint_answers_the_stored_report(api, admin_token, report):
    answer = api.get("/admin/reports/daily", admin_token, params={"date": DAY.isoformat()})
    assert answer.status_code == 200, answer.text
    assert answer.json() == report


def test_the_csv_has_the_same_figures(api, admin_token, report):
    answer = api.get("/admin/reports/daily", admin_token, params={"date": DAY.isoformat(), "format": "csv"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    blank = [index for index, row in enumerate(rows) if not row]
    scalars = dict(rows[1:blank[0]])
    orders, points, coupons, bookings = report["orders"], report["points"], report["coupons"], report["appointments"]
    assert scalars == {
        "date": report["date"], "generated_at": report["generatedAt"],
        "orders": str(orders["count"]), "gmv_fen": str(orders["gmv"]), "paid_fen": str(orders["paid"]),
        "refunds": str(report["refunds"]["count"]), "refunded_fen": str(report["refunds"]["amount"]),
        "new_members": str(report["members"]["new"]),
        "points_issued": str(points["issued"]), "points_spent": str(points["spent"]),
        "points_expired": str(points["expired"]), "points_clawed_back": str(points["clawedBack"]),
        "coupons_claimed": str(coupons["claimed"]), "coupons_redeemed": str(coupons["redeemed"]),
        "redemption_rate_bp": str(coupons["redemptionRateBp"]),
        "appointments_booked": str(bookings["booked"]), "appointments_kept": str(bookings["kept"]),
        "appointments_missed": str(bookings["missed"]),
    }
    skus = rows[blank[0] + 2:blank[1]]
    assert skus == [[str(rank), sku["skuId"], sku["title"], str(sku["qty"]), str(sku["sales"])]
                    for rank, sku in enumerate(report["topSkus"], start=1)]
    hours = rows[blank[1] + 2:]
    assert [int(count) for _, count in hours] == orders["perHour"]


def _admin_at(api, moment: dt.datetime) -> str:
    with clock.frozen_at(moment):
        return new_admin(api)[1]


def test_a_day_that_is_over_but_not_stored_is_computed_on_demand_and_not_stored(api):
    from chalicelib.reports import daily

    quiet = DAY + dt.timedelta(days=3)
    now = at(quiet + dt.timedelta(days=2), 9)
    token = _admin_at(api, now)
    with clock.frozen_at(now):
        answer = api.get("/admin/reports/daily", token, params={"date": quiet.isoformat()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["date"] == quiet.isoformat() and body["generatedAt"] == clock.iso(now)
    assert body["orders"] == {"count": 0, "gmv": 0, "paid": 0, "perHour": [0] * 24}
    assert body["coupons"]["redemptionRateBp"] is None and body["topSkus"] == []
    assert daily.stored(quiet) is None


def test_a_day_not_over_yet_is_409_day_not_over(api):
    now = at(DAY + dt.timedelta(days=9), 15)
    token = _admin_at(api, now)
    with clock.frozen_at(now):
        for day in (now.date(), now.date() + dt.timedelta(days=1)):
            answer = api.get("/admin/reports/daily", token, params={"date": day.isoformat()})
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "DAY_NOT_OVER"


def test_only_admins_read_reports(api, member):
    _, token = member
    answer = api.get("/admin/reports/daily", token, params={"date": "2024-01-01"})
    assert answer.status_code == 403 and answer.json()["code"] == "FORBIDDEN"
    assert api.get("/admin/reports/daily", params={"date": "2024-01-01"}).status_code == 401


@pytest.mark.parametrize("params", [
    {}, {"date": "2041-02-30"}, {"date": "20410101"}, {"date": "1700000000"}, {"date": "1999-12-31"},
    {"date": "2041-01-01T00:00:00"},
])
def test_a_bad_date_is_400_naming_date(api, admin_token, params):
    answer = api.get("/admin/reports/daily", admin_token, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "INVALID_REQUEST" and "date" in answer.json()["message"]


def test_a_bad_format_is_400_naming_format(api, admin_token):
    answer = api.get("/admin/reports/daily", admin_token, params={"date": "2024-01-01", "format": "xlsx"})
    assert answer.status_code == 400 and "format" in answer.json()["message"]


# --- How it reads ---------------------------------------------------------------------------------

def test_the_job_reads_through_indexes_and_scans_nothing_but_the_store_directory(seed, report):
    import app

    prefix = settings().table_prefix
    with db.recording() as requests_made:
        result = run_observed("daily-report", lambda: app.daily_report_job(scheduled_event(REPORTED_AT), None))
    assert result == report
    scans = {request.body["TableName"].removeprefix(prefix) for request in requests_made if request.operation == "Scan"}
    assert scans <= {"stores"}
    queries = [request.body for request in requests_made if request.operation == "Query"]
    assert queries and all("IndexName" in query for query in queries)
    counted = {query["IndexName"] for query in queries if query.get("Select") == "COUNT"}
    assert counted == {"created-day", "claimed-day", "redeemed-day", "booked-day"}
    assert {query["IndexName"] for query in queries} >= {"paid-day", "refunded-day", "day", "by-store-day"}
    batches = [request.body for request in requests_made if request.operation == "BatchGetItem"]
    assert all(len(keys["Keys"]) <= 100 for batch in batches for keys in batch["RequestItems"].values())
    assert {request.operation for request in requests_made} <= {"Query", "BatchGetItem", "Scan", "PutItem"}
