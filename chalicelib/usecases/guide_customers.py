"""A guide's customers: the workbench list, and the nightly RFM segmentation behind its tags.

The segments follow the operations plan, with its thresholds in
`GuidesConfig`: 高净值 = at least three paid orders with an average order value
in the top 20% of the guide's buying customers; 潜在转化 = an unpaid order
that closed, or a received coupon not yet used, in the last 30 days; 普通 = the
rest. The job visits each guide's customers through the by-guide index and
overwrites each customer's segment with figures computed from their orders,
coupons and visits, so a replay for the same moment writes the same.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from chalicelib import clock, db, observability
from chalicelib.appointments import service as appointments
from chalicelib.coupons import service as coupons
from chalicelib.guides.config import guides_config
from chalicelib.guides import service as guides
from chalicelib.guides.schemas import SEGMENTS
from chalicelib.members import service as members
from chalicelib.orders import service as orders
from chalicelib.orders.models import CANCELLED, REFUNDED, REFUNDING
from chalicelib.points import service as points

__all__ = ["customers", "segment_all", "Figures", "tags_of"]

HIGH_VALUE, POTENTIAL, ORDINARY = SEGMENTS


@dataclass(frozen=True)
class Figures:
    member_id: str
    paid_orders: int
    average_order_value: int  # fen
    last_order_at: dt.datetime | None
    last_visit_at: dt.datetime | None
    recently_interested: bool  # an unpaid order closed, or a coupon received and unused, lately


def _figures(member_id: str, now: dt.datetime) -> Figures:
    config = guides_config()
    recent = now - dt.timedelta(days=config.recent_days)
    history = orders.member_history(member_id, now - dt.timedelta(days=config.lookback_days))
    kept = [order for order in history if order.paid and order.status not in (CANCELLED, REFUNDING, REFUNDED)]
    unpaid_closed = any(not order.paid and order.status == CANCELLED and order.created_at >= recent
                        for order in history)
    collected = [order.completed_at for order in history if order.mode == "pickup" and order.completed_at]
    visits = [moment for moment in (appointments.last_visit(member_id), *collected) if moment is not None]
    return Figures(
        member_id=member_id,
        paid_orders=len(kept),
        average_order_value=sum(order.payable for order in kept) // len(kept) if kept else 0,
        last_order_at=max((order.created_at for order in history if order.paid), default=None),
        last_visit_at=max(visits, default=None),
        recently_interested=unpaid_closed or coupons.unused_since(member_id, recent) > 0,
    )


def tags_of(book: list[Figures]) -> dict[str, list[str]]:
    """The tags of every customer of one guide's book, from their figures."""
    config = guides_config()
    buyers = sorted((figures.average_order_value for figures in book if figures.paid_orders), reverse=True)
    top = math.ceil(len(buyers) * config.high_value_top_percent / 100)
    threshold = buyers[top - 1] if top else None
    tags: dict[str, list[str]] = {}
    for figures in book:
        found = []
        if (threshold is not None and figures.paid_orders >= config.high_value_orders
                and figures.average_order_value >= threshold):
            found.append(HIGH_VALUE)
        if figures.recently_interested:
            found.append(POTENTIAL)
        tags[figures.member_id] = found or [ORDINARY]
    return tags


def _segment_guide(guide_id: str, now: dt.datetime) -> dict[str, int]:
    book = [_figures(member.member_id, now) for member in members.bound_customers(guide_id)]
    tags = tags_of(book)
    guides.save_segments(guide_id, clock.shanghai_date(now), [
        guides.Segment(figures.member_id, tags[figures.member_id], figures.paid_orders,
                       figures.average_order_value, figures.last_order_at, figures.last_visit_at)
        for figures in book
    ])
    counted = {name: 0 for name in SEGMENTS}
    for found in tags.values():
        for name in found:
            counted[name] += 1
    return {"customers": len(book), **counted}


def segment_all(now: dt.datetime) -> dict[str, Any]:
    """The nightly job: every guide's customers segmented as of `now`; the counts of what it found."""
    totals = {"guides": 0, "customers": 0, **{name: 0 for name in SEGMENTS}}
    for guide_id in members.guide_ids():
        found = _segment_guide(guide_id, now)
        totals["guides"] += 1
        for name, count in found.items():
            totals[name] += count
    observability.info("customers segmented", **totals)
    return totals


def customers(guide_id: str, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """`GET /guide/customers`: a page of the guide's bound customers with tier, points, last order,
    last visit and tags; segments and balances are read in one round trip."""
    page, position = members.bound_customers_page(guide_id, limit, cursor)
    keys: list[tuple[Any, Any]] = []
    for member in page:
        keys += [guides.segment_key(guide_id, member.member_id), points.balance_key(member.member_id)]
    found = db.batch_get(keys) if keys else []
    items = []
    for index, member in enumerate(page):
        segment, balance = found[2 * index], found[2 * index + 1]
        items.append({
            "memberId": member.member_id,
            "nickname": member.nickname,
            "tier": member.tier,
            "points": points.member_points(member.member_id, balance)["available"],
            "boundUntil": clock.iso(member.guide_bound_until),
            "lastOrderAt": clock.iso(segment.last_order_at) if segment and segment.last_order_at else None,
            "lastVisitAt": clock.iso(segment.last_visit_at) if segment and segment.last_visit_at else None,
            "paidOrders": int(segment.paid_orders) if segment else 0,
            "averageOrderValue": int(segment.average_order_value) if segment else 0,
            "tags": list(segment.tags) if segment else [ORDINARY],
        })
    return {"items": items, "nextCursor": position}
