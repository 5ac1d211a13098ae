"""A location's stock rows of a launch SKU: reading them all, what a container saw of them, counting them.

`chalicelib.catalog.stock` explains the layout (its module notes): the base
row `(storeId, skuId)` and the shard rows `(storeId#<nn>, skuId)`. Here:

- `read_rows`: every row that may hold a SKU's stock at a location, the base
  row and all `MAX_SHARDS` shards, in one consistent BatchGetItem;
- what this container saw of each row's `available` (a refusal or a read),
  trusted for `SEEN_SECONDS`: it chooses the shard a launch line tries
  (`plan`), never the answer (`confirm` reads);
- `lay_out`, `first_count`, `level`, `relay_sku`: the counts and levels of a
  SKU that is or was a launch SKU, summed over every row.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from chalicelib import clock, db, transact
from chalicelib.catalog.errors import BelowReservedError, StockBusyError
from chalicelib.catalog.models import MAX_SHARDS, Stock, shard_store, split_store
from chalicelib.transact import Transaction

__all__ = [
    "Row",
    "EVERY_ROW",
    "SEEN_SECONDS",
    "label",
    "row_order",
    "available",
    "read_rows",
    "known",
    "remember",
    "forget_shards",
    "plan",
    "confirm",
    "lay_out",
    "first_count",
    "level",
    "relay_sku",
]

# A location's stock row: None is the base row, n is shard n of a launch SKU.
Row = int | None
EVERY_ROW: tuple[Row, ...] = (None, *range(MAX_SHARDS))
# How long this container trusts what it saw of a shard's `available` (a refusal or a read).
SEEN_SECONDS = 10.0


def label(line: str, row: Row) -> str:
    """The label of a row's item in a transaction: `stock <storeId>#<skuId>[#<nn>]`."""
    return f"stock {line}" if row is None else f"stock {line}#{row:02d}"


def row_order(part: tuple[Row, Any]) -> int:
    return -1 if part[0] is None else part[0]


def available(row: Stock | None) -> int:
    """What a row (or a refusal's old item) has free; 0 for a row that does not exist."""
    return int(row.available) if row is not None and row.available is not None else 0


# --- What this container saw of launch shards ----------------------------------------

_lock = threading.Lock()
# (storeId, skuId) -> row -> (available seen, trusted until on the monotonic clock)
_seen: dict[tuple[str, str], dict[Row, tuple[int, float]]] = {}


def known(store_id: str, sku_id: str) -> dict[Row, int]:
    """What this container saw free on each row of the location, where it still trusts it."""
    now = time.monotonic()
    with _lock:
        rows = _seen.get((store_id, sku_id), {})
        return {row: free for row, (free, until) in rows.items() if until > now}


def remember(store_id: str, sku_id: str, rows: Mapping[Row, int]) -> None:
    """What a refusal or a read showed free on these rows."""
    until = time.monotonic() + SEEN_SECONDS
    with _lock:
        seen = _seen.setdefault((store_id, sku_id), {})
        for row, free in rows.items():
            seen[row] = (free, until)


def forget_shards(store_id: str | None = None, sku_id: str | None = None) -> None:
    """Forget what this container saw of shards (of one location's SKU, or all)."""
    with _lock:
        if store_id is None and sku_id is None:
            _seen.clear()
        else:
            _seen.pop((store_id or "", sku_id or ""), None)


def plan(store_id: str, sku_id: str, qty: int, shards: int) -> list[tuple[Row, int]] | None:
    """Where a launch line takes `qty` from: one row at random, or the fullest rows together; None: nowhere known."""
    seen = known(store_id, sku_id)
    # A shard of the layout this container has not seen may hold it; so may any row seen holding enough.
    fits = {row for row in range(shards) if row not in seen}
    fits |= {row for row, free in seen.items() if free >= qty}
    if fits:
        return [(random.choice(sorted(fits, key=lambda row: -1 if row is None else row)), qty)]
    # No row alone: the fullest rows together (a split line), if what was seen adds up.
    parts, left = [], qty
    for row, free in sorted(seen.items(), key=lambda item: -item[1]):
        if left == 0 or free <= 0:
            break
        take = min(free, left)
        parts.append((row, take))
        left -= take
    return parts if left == 0 else None


def read_rows(store_id: str, sku_id: str) -> dict[Row, Stock]:
    """Every row that may hold the SKU's stock at the location, as it is now (one consistent BatchGetItem)."""
    found = db.batch_get([(Stock, (shard_store(store_id, row), sku_id)) for row in EVERY_ROW])
    return {row: item for row, item in zip(EVERY_ROW, found) if item is not None}


def confirm(store_id: str, sku_id: str, qty: int) -> bool:
    """Read every row of the location: whether together they hold `qty` (and remember what each holds)."""
    rows = read_rows(store_id, sku_id)
    free = {row: available(rows.get(row)) for row in EVERY_ROW}
    remember(store_id, sku_id, free)
    return sum(max(value, 0) for value in free.values()) >= qty


# --- Counting a launch SKU's stock ---------------------------------------------------------

def _layout(shards: int | None) -> list[Row]:
    return list(range(shards)) if shards else [None]


def _targets(rows: Mapping[Row, Stock], on_hand: int, shards: int | None) -> dict[Row, int]:
    """Each row's new on hand: a layout row its reserved plus an even share of the free stock; any other its reserved."""
    targets = {row: int(item.reserved) for row, item in rows.items()}
    layout = _layout(shards)
    free = on_hand - sum(targets.values())
    share, extra = divmod(free, len(layout))
    for index, row in enumerate(layout):
        targets[row] = targets.get(row, 0) + share + (1 if index < extra else 0)
    return targets


def _laid_out(rows: Mapping[Row, Stock], shards: int | None) -> bool:
    """Every row of the layout exists and no other row holds free stock."""
    layout = set(_layout(shards))
    return layout <= set(rows) and all(
        int(item.on_hand) == int(item.reserved) for row, item in rows.items() if row not in layout
    )


def _sums(rows: Mapping[Row, Stock]) -> tuple[int, int, int]:
    on_hand = sum(int(item.on_hand) for item in rows.values())
    reserved = sum(int(item.reserved) for item in rows.values())
    return on_hand, reserved, sum(int(item.available) for item in rows.values())


def lay_out(store_id: str, sku_id: str, shards: int | None, on_hand: int | None = None) -> tuple[int, int, int] | None:
    """Count a location of a sharded SKU: `on_hand` spread over the layout of `shards`, in one transaction.

    `on_hand=None` keeps the location's total and only re-lays it when it is
    not in that layout (None then: nothing to do). Answers the location's
    (on hand, reserved, available) after the write. Raises
    `BelowReservedError` when `on_hand` is below what open orders reserved.
    """

    def build(txn: Transaction) -> tuple[int, int, int] | None:
        rows = read_rows(store_id, sku_id)
        reserved = sum(int(item.reserved) for item in rows.values())
        total = sum(int(item.on_hand) for item in rows.values()) if on_hand is None else on_hand
        if on_hand is None and _laid_out(rows, shards):
            return None
        if total < reserved:
            raise BelowReservedError(f"onHand: {total} is below the {reserved} reserved by open orders")
        now = clock.now()
        for row, target in sorted(_targets(rows, total, shards).items(), key=row_order):
            key = Stock(shard_store(store_id, row), sku_id)
            item = rows.get(row)
            held = int(item.reserved) if item is not None else 0
            name = label(f"{store_id}#{sku_id}", row)
            if item is None:
                fresh = Stock.store_id.does_not_exist()
                actions = [Stock.on_hand.set(target), Stock.reserved.set(0), Stock.available.set(target)]
                txn.update(key, [*actions, Stock.updated_at.set(now)], fresh, label=name)
                continue
            # The count holds only if no reservation, release or shipment touched the row since it was read.
            as_read = (Stock.on_hand == int(item.on_hand)) & (Stock.reserved == held)
            if target == int(item.on_hand) and int(item.available) == target - held:
                txn.condition_check(Stock, key.store_id, key.sku_id, as_read, label=name)
            else:
                actions = [Stock.on_hand.set(target), Stock.available.set(target - held)]
                txn.update(key, [*actions, Stock.updated_at.set(now)], as_read, label=name)
        return total, reserved, total - reserved

    result = transact.write(build, busy=StockBusyError, replan=True)
    forget_shards(store_id, sku_id)
    return result


def first_count(store_id: str, sku_id: str, on_hand: int, shards: int | None) -> bool:
    """A location's first count of a sharded SKU: written only where none of its rows exists yet."""
    line = f"{store_id}#{sku_id}"

    def build(txn: Transaction) -> bool:
        if read_rows(store_id, sku_id):
            return False
        now = clock.now()
        targets = _targets({}, on_hand, shards)
        absent = Stock.store_id.does_not_exist()
        for row in EVERY_ROW:
            key = Stock(shard_store(store_id, row), sku_id)
            if row in targets:
                actions = [Stock.on_hand.set(targets[row]), Stock.reserved.set(0), Stock.available.set(targets[row])]
                txn.update(key, [*actions, Stock.updated_at.set(now)], absent, label=label(line, row))
            else:
                txn.condition_check(Stock, key.store_id, sku_id, absent, label=label(line, row))
        return True

    return transact.write(build, busy=StockBusyError, replan=True)


def level(store_id: str, sku_id: str) -> tuple[int, int, int]:
    """A location's (on hand, reserved, available) of a sharded SKU: the sums over all its rows."""
    return _sums(read_rows(store_id, sku_id))


def relay_sku(sku_id: str, shards: int | None) -> int:
    """Re-lay every location the index lists that is not in the layout of `shards`; the locations re-laid."""
    locations = sorted({split_store(row.store_id)[0] for row in Stock.by_sku.query(sku_id)})
    return sum(1 for store_id in locations if lay_out(store_id, sku_id, shards) is not None)
