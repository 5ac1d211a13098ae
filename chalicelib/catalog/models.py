"""SKUs, stock per location and stock reservations."""

from __future__ import annotations

import zlib

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "PointsPrice",
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
    "MAX_SHARDS",
    "shard_store",
    "split_store",
]

# The value of `Sku.listing` for an active SKU; inactive SKUs carry none and so stay out of the index.
LISTED = "listed"
# The central warehouse is a location like any store.
WAREHOUSE = "warehouse"
HELD, RELEASED, COMMITTED = "held", "released", "committed"
# A launch SKU's stock at a location may be split over at most this many shard rows.
MAX_SHARDS = 32


def shard_store(store_id: str, shard: int | None) -> str:
    """The hash key of a location's stock row: `<storeId>` itself, or `<storeId>#<nn>` for shard nn."""
    return store_id if shard is None else f"{store_id}#{shard:02d}"


def split_store(row_store_id: str) -> tuple[str, int | None]:
    """`<storeId>#<nn>` -> (storeId, nn); a plain store id -> (storeId, None). Ids never hold '#'."""
    store_id, _, shard = row_store_id.partition("#")
    return store_id, (int(shard) if shard else None)


class SkusByListing(GlobalSecondaryIndex):
    """Sparse: only active SKUs, in skuId order (the public catalog, paged)."""

    class Meta:
        index_name = "by-listing"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    sku_id = UnicodeAttribute(range_key=True)


class PointsPrice(MapAttribute):
    """积分加钱购: one unit for `points` points plus `cash` fen instead of its price."""

    points = NumberAttribute()
    cash = NumberAttribute()  # fen


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
    points_price = PointsPrice(null=True)
    # A launch SKU's stock at each location is split over this many shard rows (None: one row).
    launch_shards = NumberAttribute(null=True)
    # Set once the SKU has been a launch SKU and never cleared: its stock may sit in shard rows.
    sharded = BooleanAttribute(null=True)
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
    """One SKU at one location, or one shard of a launch SKU's stock there.

    An ordinary row is keyed `(storeId, skuId)`; shard nn of a launch SKU's
    stock is keyed `(<storeId>#<nn>, skuId)` (see `chalicelib.catalog.stock`),
    so the `by-sku` index finds shard rows under the SKU's own id.
    `available` is always `on_hand - reserved`: every write moves the three
    together, so a condition on `available` (DynamoDB cannot subtract in a
    condition) guards what is really free.
    """

    class Meta:
        table = "inventory"

    store_id = UnicodeAttribute(hash_key=True)  # <storeId>, or <storeId>#<nn> for a shard row
    sku_id = UnicodeAttribute(range_key=True)
    on_hand = NumberAttribute(default=0)
    reserved = NumberAttribute(default=0)
    available = NumberAttribute(default=0)
    updated_at = UTCDateTimeAttribute(null=True)

    by_sku = StockBySku()


HELD_SHARDS = 8


def held_shard(order_id: str) -> str:
    """The `held` index partition of an order's reservations."""
    return f"{zlib.crc32(order_id.encode()) % HELD_SHARDS}"


def held_shards() -> list[str]:
    return [str(shard) for shard in range(HELD_SHARDS)]


class HeldReservations(GlobalSecondaryIndex):
    """Sparse: the reservations held now (`held_shard` is set with `held` and removed with it), so the
    stock audit reads what orders hold without reading every reservation ever made."""

    class Meta:
        index_name = "held"
        projection = IncludeProjection(["store_id", "sku_id", "qty", "shards"])

    held_shard = UnicodeAttribute(hash_key=True)
    line = UnicodeAttribute(range_key=True)


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
    # A launch SKU's line: the rows it holds, "<nn>:<qty>" (or "base:<qty>") joined by ","; absent: the one row.
    shards = UnicodeAttribute(null=True)
    status = UnicodeAttribute()  # held, released, committed
    held_shard = UnicodeAttribute(null=True)  # while held
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    held = HeldReservations()
