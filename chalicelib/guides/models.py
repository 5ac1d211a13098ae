"""Commissions earned by guides, and the nightly segments of their customers."""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.db import SiyuModel

__all__ = ["PENDING", "SETTLED", "VOIDED", "Commission", "CustomerSegment"]

PENDING, SETTLED, VOIDED = "pending", "settled", "voided"


class Commission(SiyuModel):
    """One completed order's commission for its credited guide, under `<YYYY-MM>#<orderId>` of its
    completion month: pending until the refund window closes, then settled, or voided by a refund.

    The attribution is kept beside it (ECShopX's split): the guide the customer is bound to and
    their store (acquiring), the guide whose link or hands placed the order and their store
    (promoting), and the store that fulfilled it.
    """

    class Meta:
        table = "guide-commissions"

    guide_id = UnicodeAttribute(hash_key=True)
    month_order = UnicodeAttribute(range_key=True)
    order_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    status = UnicodeAttribute()
    sales = NumberAttribute()  # fen the customer paid for the goods (delivery excluded)
    amount = NumberAttribute()  # fen of commission
    store_id = UnicodeAttribute(null=True)  # the credited guide's store
    acquiring_guide_id = UnicodeAttribute(null=True)
    acquiring_store_id = UnicodeAttribute(null=True)
    promoting_guide_id = UnicodeAttribute(null=True)
    promoting_store_id = UnicodeAttribute(null=True)
    fulfilling_store_id = UnicodeAttribute()
    completed_at = UTCDateTimeAttribute()
    settled_at = UTCDateTimeAttribute(null=True)
    voided_at = UTCDateTimeAttribute(null=True)


class CustomerSegment(SiyuModel):
    """A bound customer's figures and tags as of the last nightly segmentation."""

    class Meta:
        table = "guide-customer-segments"

    guide_id = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute(range_key=True)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    paid_orders = NumberAttribute(default=0)
    average_order_value = NumberAttribute(default=0)  # fen
    last_order_at = UTCDateTimeAttribute(null=True)
    last_visit_at = UTCDateTimeAttribute(null=True)
    computed_for = UnicodeAttribute()  # the Shanghai day the figures are as of
