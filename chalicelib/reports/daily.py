"""A Shanghai day's figures: computed from the domains' own records, stored per day, answered as JSON or CSV.

Nothing here keeps a counter. Every figure is read back from the records the
domains write, through their service functions, each of which reads a sparse
per-day index (sharded, keys only where a count is all it needs), never a scan:

    orders, GMV, paid, per hour, top SKUs   orders.paid_on(day)      `paid-day`
    refunds                                 orders.refunded_on(day)  `refunded-day`
    new members                             members.created_on(day)  `created-day`
    points issued, spent, expired, ...      points.system_movements  `day` (transfers)
    coupons claimed, redeemed               coupons.claimed_on/redeemed_on
    appointments booked / kept, missed      appointments.booked_on / outcomes_on

The day's records stop changing once it is over (bookings of its last hour are
marked no-show by the job at a quarter past), so the 06:00 job's report is the
day's, and a replay for the same moment stores and answers the very same report.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, observability
from chalicelib.appointments import service as appointments
from chalicelib.coupons import service as coupons
from chalicelib.members import service as members
from chalicelib.orders import service as orders
from chalicelib.points import service as points
from chalicelib.reports.errors import DayNotOverError
from chalicelib.reports.models import DailyReport

__all__ = ["TOP_SKUS", "report_day", "compute", "run", "stored", "for_day", "as_csv", "rate_bp"]

TOP_SKUS = 10
BASIS_POINTS = 10_000


def report_day(moment: dt.datetime) -> dt.date:
    """The day a run at `moment` reports: yesterday in Shanghai."""
    return clock.shanghai_date(moment) - dt.timedelta(days=1)


def rate_bp(part: int, whole: int) -> int | None:
    """`part / whole` in basis points, rounded half up, in integers (no float ever rounds it); None for 0/0."""
    if whole <= 0:
        return None
    return (2 * part * BASIS_POINTS + whole) // (2 * whole)


# --- Computing ----------------------------------------------------------------------------

def _order_figures(paid: list[dict[str, Any]]) -> dict[str, Any]:
    per_hour = [0] * 24
    for order in paid:
        per_hour[order["paidAt"].astimezone(clock.SHANGHAI).hour] += 1
    return {
        "count": len(paid),
        "gmv": sum(order["goods"] for order in paid),
        "paid": sum(order["payable"] for order in paid),
        "perHour": per_hour,
    }


def _top_skus(paid: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SKUs sold most by quantity (then by sales, then by id, so ties always rank the same way).

    `sales` is qty x unit price, in fen before the order's coupon and points; the title is the one
    the SKU had in the day's first order of it.
    """
    skus: dict[str, dict[str, Any]] = {}
    for order in paid:
        for line in order["lines"]:
            sku = skus.setdefault(line["skuId"], {"skuId": line["skuId"], "title": line["title"], "qty": 0, "sales": 0})
            sku["qty"] += line["qty"]
            sku["sales"] += line["qty"] * line["unitPrice"]
    ranked = sorted(skus.values(), key=lambda sku: (-sku["qty"], -sku["sales"], sku["skuId"]))
    return ranked[:TOP_SKUS]


def _points_figures(day: dt.date) -> dict[str, int]:
    moved = points.system_movements(day)
    # `issued` gives points out (its balance goes down); the others take them in.
    return {
        "issued": -moved.get("issued", 0),
        "spent": moved.get("spent", 0),
        "expired": moved.get("expired", 0),
        "clawedBack": moved.get("clawback", 0),
    }


def _coupon_figures(day: dt.date) -> dict[str, Any]:
    claimed, redeemed = coupons.claimed_on(day), coupons.redeemed_on(day)
    return {"claimed": claimed, "redeemed": redeemed, "redemptionRateBp": rate_bp(redeemed, claimed)}


def compute(day: dt.date, generated_at: dt.datetime) -> dict[str, Any]:
    """The figures of `day` (a Shanghai day) as the records say now, stamped `generated_at`."""
    paid = orders.paid_on(day)
    refunded = orders.refunded_on(day)
    outcomes = appointments.outcomes_on(day)
    return {
        "date": day.isoformat(),
        "generatedAt": clock.iso(generated_at),
        "orders": _order_figures(paid),
        "refunds": {"count": len(refunded), "amount": sum(refund["refundAmount"] for refund in refunded)},
        "members": {"new": members.created_on(day)},
        "points": _points_figures(day),
        "coupons": _coupon_figures(day),
        "appointments": {"booked": appointments.booked_on(day), **outcomes},
        "topSkus": _top_skus(paid),
    }


# --- Storing and answering -----------------------------------------------------------------

def _store(report: dict[str, Any], generated_at: dt.datetime) -> None:
    figures = json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    DailyReport(report["date"], figures=figures, generated_at=generated_at).save()


def _logged(report: dict[str, Any]) -> dict[str, Any]:
    """What the log line carries: the figures, no member, order or SKU (titles stay in the table)."""
    return {name: value for name, value in report.items() if name != "topSkus"} | {
        "topSkuQty": [sku["qty"] for sku in report["topSkus"]],
    }


def run(moment: dt.datetime) -> dict[str, Any]:
    """The daily-report job: yesterday's figures as of `moment` (the event's time), stored and logged."""
    day = report_day(moment)
    report = compute(day, moment)
    _store(report, moment)
    observability.info("daily report", report=_logged(report))
    return report


def stored(day: dt.date) -> dict[str, Any] | None:
    """The report the job stored for `day`, if it did."""
    try:
        item = DailyReport.get(day.isoformat(), consistent_read=True)
    except DoesNotExist:
        return None
    return json.loads(item.figures)


def for_day(day: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
    """The stored report of `day`, or, for a day that is over, its figures computed now (not stored:
    the job's report is the day's). A day not over in Shanghai (today, or later) and not stored is
    DayNotOverError: its figures still move.
    """
    report = stored(day)
    if report is not None:
        return report
    now = now or clock.now()
    if day >= clock.shanghai_date(now):
        raise DayNotOverError()
    return compute(day, now)


# --- CSV --------------------------------------------------------------------------------------

def _rows(report: dict[str, Any]) -> list[list[Any]]:
    """The figures as spreadsheet rows: one `figure,value` table, then the top SKUs, then the hours."""
    orders_, refunds, points_ = report["orders"], report["refunds"], report["points"]
    coupons_, bookings = report["coupons"], report["appointments"]
    rate = coupons_["redemptionRateBp"]
    rows: list[list[Any]] = [
        ["figure", "value"],
        ["date", report["date"]],
        ["generated_at", report["generatedAt"]],
        ["orders", orders_["count"]],
        ["gmv_fen", orders_["gmv"]],
        ["paid_fen", orders_["paid"]],
        ["refunds", refunds["count"]],
        ["refunded_fen", refunds["amount"]],
        ["new_members", report["members"]["new"]],
        ["points_issued", points_["issued"]],
        ["points_spent", points_["spent"]],
        ["points_expired", points_["expired"]],
        ["points_clawed_back", points_["clawedBack"]],
        ["coupons_claimed", coupons_["claimed"]],
        ["coupons_redeemed", coupons_["redeemed"]],
        ["redemption_rate_bp", "" if rate is None else rate],
        ["appointments_booked", bookings["booked"]],
        ["appointments_kept", bookings["kept"]],
        ["appointments_missed", bookings["missed"]],
        [],
        ["rank", "sku_id", "title", "qty", "sales_fen"],
    ]
    rows += [[rank, sku["skuId"], sku["title"], sku["qty"], sku["sales"]]
             for rank, sku in enumerate(report["topSkus"], start=1)]
    rows += [[], ["hour", "orders"]]
    rows += [[f"{hour:02d}:00", count] for hour, count in enumerate(orders_["perHour"])]
    return rows


def as_csv(report: dict[str, Any]) -> str:
    """The report as CSV (RFC 4180 line ends), with a byte-order mark so spreadsheets read the titles as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(_rows(report))
    return "\ufeff" + out.getvalue()
