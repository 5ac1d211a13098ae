"""SKUs and the stock levels admins and staff set: the catalog and inventory routes.

Reservations against stock (what orders do) live in `chalicelib.catalog.stock`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock, db, transact
from chalicelib.catalog import shards as rows
from chalicelib.catalog.errors import BelowReservedError, SkuNotFoundError, StockBusyError
from chalicelib.catalog.models import LISTED, PointsPrice, Sku, Stock
from chalicelib.catalog.schemas import SkuPut
from chalicelib.errors import InvalidRequestError

__all__ = [
    "check_id",
    "put_sku",
    "get_sku",
    "find_skus",
    "list_skus",
    "sku_view",
    "sku_key",
    "stock_key",
    "is_launch",
    "available_in",
    "set_on_hand",
    "count_shelf",
    "stock_first_count",
    "stock_level",
]

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def check_id(field: str, value: str) -> str:
    """A path id (`skuId`, `storeId`) as the API allows them, or 400 naming it."""
    if not _ID.match(value or ""):
        raise InvalidRequestError(field, "must be 1 to 64 letters, digits, '-' or '_'")
    return value


# --- SKUs ----------------------------------------------------------------------

def sku_view(sku: Sku) -> dict[str, Any]:
    return {
        "skuId": sku.sku_id,
        "title": sku.title,
        "price": int(sku.price),
        "memberPrice": int(sku.member_price) if sku.member_price is not None else None,
        "category": sku.category,
        "imageUrl": sku.image_url,
        "active": bool(sku.active),
        "launchShards": int(sku.launch_shards) if sku.launch_shards is not None else None,
        "pointsPrice": (
            {"points": int(sku.points_price.points), "cash": int(sku.points_price.cash)}
            if sku.points_price is not None else None
        ),
        "updatedAt": clock.iso(sku.updated_at),
    }


def sku_key(sku_id: str) -> tuple[type[Sku], str]:
    """The key of a SKU for `db.batch_get`."""
    return Sku, sku_id


def stock_key(store_id: str, sku_id: str) -> tuple[type[Stock], tuple[str, str]]:
    """The key of a location's (ordinary) stock row for `db.batch_get`; a launch SKU's stock is in its shards."""
    return Stock, (store_id, sku_id)


def is_launch(sku: Sku) -> bool:
    """Whether the SKU's stock is split over shards (pass it to `stock.reserve_lines` in `launch`)."""
    return bool(sku.launch_shards)


def available_in(row: Stock | None) -> int:
    """What an ordinary stock row read by `stock_key` has free (0 where the location never stocked it)."""
    return int(row.available) if row is not None else 0


def put_sku(sku_id: str, body: SkuPut) -> dict[str, Any]:
    """Create or replace a SKU in one write; its creation time survives updates.

    A SKU that is or was a launch SKU then has every location the index lists
    re-laid in its (new) layout, one transaction per location that is not in
    it yet (see `chalicelib.catalog.stock`); a put that changes nothing
    about the layout writes no stock.
    """
    check_id("skuId", sku_id)
    now = clock.now()
    actions = [
        Sku.title.set(body.title),
        Sku.price.set(body.price),
        Sku.category.set(body.category),
        Sku.active.set(body.active),
        Sku.updated_at.set(now),
        Sku.created_at.set(Sku.created_at | now),
        Sku.listing.set(LISTED) if body.active else Sku.listing.remove(),
        Sku.member_price.set(body.member_price) if body.member_price is not None else Sku.member_price.remove(),
        Sku.image_url.set(body.image_url) if body.image_url is not None else Sku.image_url.remove(),
        Sku.points_price.set(PointsPrice(points=body.points_price.points, cash=body.points_price.cash))
        if body.points_price is not None else Sku.points_price.remove(),
        Sku.launch_shards.set(body.launch_shards) if body.launch_shards else Sku.launch_shards.remove(),
    ]
    if body.launch_shards:
        actions.append(Sku.sharded.set(True))  # never cleared: its stock may sit in shard rows from now on
    sku = Sku(sku_id)
    sku.update(actions=actions)
    if sku.sharded:
        rows.relay_sku(sku_id, _shards(sku))
    return sku_view(sku)


def _shards(sku: Sku) -> int | None:
    return int(sku.launch_shards) if sku.launch_shards else None


def _get(sku_id: str) -> Sku:
    check_id("skuId", sku_id)
    try:
        return Sku.get(sku_id)
    except DoesNotExist as exc:
        raise SkuNotFoundError() from exc


def get_sku(sku_id: str) -> dict[str, Any]:
    """A SKU, active or not (an old order still shows what it bought)."""
    return sku_view(_get(sku_id))


def find_skus(sku_ids: Iterable[str]) -> dict[str, Sku]:
    """The SKUs that exist among `sku_ids`, by id, in one round trip (orders price with these)."""
    wanted = list(dict.fromkeys(sku_ids))
    found = db.batch_get([(Sku, sku_id) for sku_id in wanted]) if wanted else []
    return {sku.sku_id: sku for sku in found if sku is not None}


def list_skus(limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """Active SKUs in skuId order; the cursor names the last SKU of the page before."""
    after = (cursor or {}).get("after")
    if cursor is not None and not (isinstance(after, str) and _ID.match(after)):
        raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    start = {"listing": {"S": LISTED}, "sku_id": {"S": after}} if after else None
    # One more than asked tells whether another page exists without an empty last page.
    page = list(Sku.by_listing.query(LISTED, limit=limit + 1, last_evaluated_key=start))
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [sku_view(sku) for sku in page],
        "nextCursor": {"after": page[-1].sku_id} if more else None,
    }


# --- Stock levels ----------------------------------------------------------------

def _level(store_id: str, sku_id: str, stock: Stock | tuple[int, int, int] | None) -> dict[str, Any]:
    """The answer for a row, or for a launch SKU's (on hand, reserved, available) summed over its rows."""
    if isinstance(stock, tuple):
        on_hand, reserved, available = stock
    else:
        on_hand = int(stock.on_hand) if stock else 0
        reserved = int(stock.reserved) if stock else 0
        available = int(stock.available) if stock else 0
    return {"storeId": store_id, "skuId": sku_id, "onHand": on_hand, "reserved": reserved, "available": available}


def set_on_hand(store_id: str, sku_id: str, on_hand: int) -> dict[str, Any]:
    """Count the shelf: on hand becomes `on_hand`, never below what orders reserved.

    `available` moves with it (`on_hand - reserved`) in the same UpdateItem, so a
    reservation racing this write sees either the old or the new level, whole.
    """
    check_id("storeId", store_id)
    return count_shelf(store_id, _get(sku_id), on_hand)


def count_shelf(store_id: str, sku: Sku, on_hand: int) -> dict[str, Any]:
    """`set_on_hand` for a SKU the caller has read."""
    sku_id = sku.sku_id
    if sku.sharded:
        # A launch SKU: spread over its shards, in one transaction conditioned on every row it read.
        return _level(store_id, sku_id, rows.lay_out(store_id, sku_id, _shards(sku), on_hand))
    reserved_or_zero = Stock.reserved | 0
    # The invariant: reserved <= on_hand, i.e. available never negative.
    covers_reserved = Stock.reserved.does_not_exist() | (Stock.reserved <= on_hand)
    stock = Stock(store_id, sku_id)
    actions = [
        Stock.on_hand.set(on_hand),
        Stock.reserved.set(reserved_or_zero),
        Stock.available.set(on_hand - reserved_or_zero),
        Stock.updated_at.set(clock.now()),
    ]
    try:
        transact.retrying(lambda: stock.update(actions=actions, condition=covers_reserved), busy=StockBusyError)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        reserved = int(Stock.get(store_id, sku_id, consistent_read=True).reserved)
        raise BelowReservedError(f"onHand: {on_hand} is below the {reserved} reserved by open orders") from exc
    return _level(store_id, sku_id, stock)


def stock_first_count(store_id: str, sku_id: str, on_hand: int) -> bool:
    """A location's first count of a SKU: written only where it has no stock row yet."""
    check_id("storeId", store_id)
    sku = _get(sku_id)
    if sku.sharded:
        return rows.first_count(store_id, sku_id, on_hand, _shards(sku))
    now = clock.now()
    first = Stock(store_id, sku_id, on_hand=on_hand, reserved=0, available=on_hand, updated_at=now)
    try:
        transact.retrying(lambda: first.save(condition=Stock.store_id.does_not_exist()), busy=StockBusyError)
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


def stock_level(store_id: str, sku_id: str) -> dict[str, Any]:
    """`{storeId, skuId, onHand, reserved, available}`; a SKU never stocked here has zeros."""
    check_id("storeId", store_id)
    check_id("skuId", sku_id)
    found = db.batch_get([(Stock, (store_id, sku_id)), (Sku, sku_id)])
    stock, sku = found
    if sku is None:
        raise SkuNotFoundError()
    if sku.sharded:
        return _level(store_id, sku_id, rows.level(store_id, sku_id))
    return _level(store_id, sku_id, stock)
