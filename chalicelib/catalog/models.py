"""SKUs, stock per location and stock reservations."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "Sku",
    "SkusByListing",
    "Stock",
    "StockBySku",
    "StockReservation",
    "LISTED",
    "WAREHOUSE",
    "HELD",
    "RELEASED",
    "COMMITTED",
]

# The value of `Sku.listing` for an active SKU; inactive SKUs carry none and so stay out of the index.
LISTED = "listed"
# The central warehouse is a location like any store.
WAREHOUSE = "warehouse"
HELD, RELEASED, COMMITTED = "held", "released", "committed"


class SkusByListing(GlobalSecondaryIndex):
    """Sparse: only active SKUs, in skuId order (the public catalog, paged)."""

    class Meta:
        index_name = "by-listing"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    sku_id = UnicodeAttribute(range_key=True)


class Sku(SiyuModel):
    class Meta:
        table = "skus"

    sku_id = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute()
    price = NumberAttribute()  # fen
    member_price = NumberAttribute(null=True)  # fen
    category = UnicodeAttribute()
    image_url = UnicodeAttribute(null=True)
    active = BooleanAttribute(default=True)
    listing = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_listing = SkusByListing()


class StockBySku(GlobalSecondaryIndex):
    """Where a SKU is available, and how much: `available >= qty` is a key condition."""

    class Meta:
        index_name = "by-sku"
        projection = KeysOnlyProjection()

    sku_id = UnicodeAttribute(hash_key=True)
    available = NumberAttribute(range_key=True)


class Stock(SiyuModel):
    """One SKU at one location.

    `available` is always `on_hand - reserved`: every write moves the three
    together, so a condition on `available` (DynamoDB cannot subtract in a
    condition) guards what is really free.
    """

    class Meta:
        table = "inventory"

    store_id = UnicodeAttribute(hash_key=True)
    sku_id = UnicodeAttribute(range_key=True)
    on_hand = NumberAttribute(default=0)
    reserved = NumberAttribute(default=0)
    available = NumberAttribute(default=0)
    updated_at = UTCDateTimeAttribute(null=True)

    by_sku = StockBySku()


class StockReservation(SiyuModel):
    """What one order holds of one SKU at one location; its key is the idempotency key.

    Written with `attribute_not_exists` in the transaction that moves the stock,
    so a retried reservation of the same order line changes nothing.
    """

    class Meta:
        table = "stock-reservations"

    order_id = UnicodeAttribute(hash_key=True)
    line = UnicodeAttribute(range_key=True)  # <storeId>#<skuId>
    store_id = UnicodeAttribute()
    sku_id = UnicodeAttribute()
    qty = NumberAttribute()
    status = UnicodeAttribute()  # held, released, committed
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
