"""Queries and answers of the guide workbench and of HQ's guide routes (money in integer fen)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.validation import ID_PATTERN, Page, QueryModel, RequestModel, ResponseModel, Timestamp

__all__ = [
    "MonthQuery",
    "StatementQuery",
    "RebindRequest",
    "Binding",
    "Performance",
    "StatementLine",
    "Statement",
    "Customer",
    "CustomerPage",
    "SEGMENTS",
]

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
# The nightly RFM segments, as the brand's operations plan names them.
SEGMENTS = ("高净值", "潜在转化", "普通")


class MonthQuery(QueryModel):
    month: str = Field(pattern=MONTH_PATTERN, description="YYYY-MM, a Shanghai calendar month")


class StatementQuery(MonthQuery):
    format: Literal["json", "csv"] = "json"


class RebindRequest(RequestModel):
    guide_id: str = Field(pattern=ID_PATTERN)


class BoundGuide(ResponseModel):
    guide_id: str
    name: str
    store_id: str


class Binding(ResponseModel):
    member_id: str
    guide: BoundGuide
    bound_until: Timestamp


class Performance(ResponseModel):
    """What the guide is credited with in the month: refunded orders are left out of every figure."""

    guide_id: str
    month: str
    orders: int
    sales: int = Field(description="fen the customers paid for the goods")
    customers: int = Field(description="distinct customers among those orders")
    commission: int = Field(description="fen, pending and settled")
    commission_pending: int
    commission_settled: int
    voided: int = Field(description="orders whose commission a refund voided")


class StatementLine(ResponseModel):
    order_id: str
    completed_at: Timestamp
    status: Literal["pending", "settled", "voided"]
    sales: int
    commission: int
    store_id: str | None
    acquiring_guide_id: str | None
    promoting_guide_id: str | None
    fulfilling_store_id: str


class Statement(Performance):
    lines: list[StatementLine]


class Customer(ResponseModel):
    member_id: str
    nickname: str | None
    tier: str
    points: int = Field(description="available points")
    bound_until: Timestamp
    last_order_at: Timestamp | None
    last_visit_at: Timestamp | None
    paid_orders: int
    average_order_value: int = Field(description="fen")
    tags: list[str] = Field(description="高净值, 潜在转化 or 普通, as of the last nightly segmentation")


class CustomerPage(Page[Customer]):
    """`GET /guide/customers`: the customers bound to the guide now, newest first."""
