"""The daily report's query and answer, as /openapi.json publishes them. Money in fen."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, field_validator

from chalicelib.validation import EARLIEST, LATEST, Day, QueryModel, ResponseModel, Timestamp

__all__ = [
    "CSV",
    "DailyReportQuery",
    "OrderFigures",
    "RefundFigures",
    "MemberFigures",
    "PointsFigures",
    "CouponFigures",
    "AppointmentFigures",
    "TopSku",
    "DailyReport",
]

CSV = "text/csv"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_date(value: object) -> object:
    """Only `YYYY-MM-DD`: pydantic would also read a number of seconds as a date."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _plausible(value: dt.date) -> dt.date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


class DailyReportQuery(QueryModel):
    date: dt.date = Field(description="a Shanghai calendar day, YYYY-MM-DD, that is over")
    format: Literal["json", "csv"] = Field(default="json", description="`csv` answers the same figures as text/csv")

    _date = field_validator("date", mode="before")(_calendar_date)
    _date_range = field_validator("date")(_plausible)


class OrderFigures(ResponseModel):
    """Orders paid that day: how many, their goods (GMV) and what was paid, and how many per Shanghai hour."""

    count: int
    gmv: int
    paid: int
    per_hour: list[int] = Field(min_length=24, max_length=24)


class RefundFigures(ResponseModel):
    """Refunds WeChat Pay confirmed that day, whichever day their orders were paid."""

    count: int
    amount: int


class MemberFigures(ResponseModel):
    new: int


class PointsFigures(ResponseModel):
    """Points that became spendable (`issued`), were spent for good, expired or were clawed back that day,
    net of what came back the same day (a refund returns spent points)."""

    issued: int
    spent: int
    expired: int
    clawed_back: int


class CouponFigures(ResponseModel):
    """`redemptionRateBp` (核销率) is redeemed / claimed in basis points (10000 = 100 %), rounded half up;
    null when nothing was claimed."""

    claimed: int
    redeemed: int
    redemption_rate_bp: int | None


class AppointmentFigures(ResponseModel):
    """`booked`: bookings made that day; `kept` and `missed`: bookings starting that day, checked in or not."""

    booked: int
    kept: int
    missed: int


class TopSku(ResponseModel):
    sku_id: str
    title: str
    qty: int
    sales: int


class DailyReport(ResponseModel):
    """`GET /admin/reports/daily`: a Shanghai day's figures, as the daily-report job stored them."""

    date: Day
    generated_at: Timestamp
    orders: OrderFigures
    refunds: RefundFigures
    members: MemberFigures
    points: PointsFigures
    coupons: CouponFigures
    appointments: AppointmentFigures
    top_skus: list[TopSku] = Field(max_length=10)
