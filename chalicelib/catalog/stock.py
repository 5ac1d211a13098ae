"""Stock that orders reserve, release and ship, and where it can be found.

Orders add these writes to their own composed transaction, next to their
other effects, so one TransactWriteItems reserves every line or none:

    def build(txn: Transaction) -> Order:
        holds = stock.reserve_lines(txn, order_id, store_id, quantities, launch={"phone-x": 8})
        ...  # the coupon lock, the points freeze, the order itself
    transact.write(build, busy=StockBusyError, replan=True)

Each line adds two items (a launch line split over several shards, one
more per extra shard), each with the explanation of its refusal:

- the reservation item `(order_id, "<storeId>#<skuId>")`, the natural
  idempotency key: `reserve` requires it absent, so a retried reservation is
  refused (`AlreadyReservedError`) instead of counted twice; `release` and
  `commit` require it `held`, so neither happens twice (`NotHeldError`);
- the stock row, with `available` (always `on_hand - reserved`) moved together
  with `reserved` and `on_hand`. DynamoDB conditions cannot subtract, so the
  invariant "reserved never exceeds on hand" is the condition
  `available >= qty` on the row itself (`OutOfStockError`; a row that does not
  exist refuses the same way).

One transaction may touch a given (store, SKU) row once: merge lines first.

Launch SKUs: a location's stock split over shard rows
-------------------------------------------------------

A launch (up to 56 times a normal day's orders, most of them at one location)
would make the one `(storeId, skuId)` row the hot item. A SKU whose
`launchShards` is N keeps each location's stock in N shard rows instead:

    inventory  (storeId,        skuId)   the base row: an ordinary SKU's only row
               (storeId#00,     skuId)   shard 0 of a launch SKU at storeId
               ...
               (storeId#<N-1>,  skuId)   shard N-1

Each shard row is a stock row like any other (its own `on_hand`, `reserved`,
`available = on_hand - reserved`, and the `available >= qty` condition), so
no row ever goes negative and the location's stock is the sum of its rows:
an order can never hold more than the location has. The shard number sits
in the hash key, so the shards are different partition keys (DynamoDB
spreads them over partitions), and the range key stays the SKU's own id, so
the `by-sku` index lists shard rows under the SKU without a second index or
any change to the table. Store ids never contain '#' (`check_id`).

An ordinary SKU is untouched: one row, one Update per line, no reads.
`chalicelib.catalog.shards` holds what follows for launch SKUs: the reads of
every row of a location, what a container saw of them, and the counts.

Reserving a launch line. The caller passes `launch` (the launch SKUs of
the order and their shard counts, from the Sku items it read: cached data
chooses). The line picks one shard at random among those this container
does not remember to be short for the quantity, and writes, without reading:
uniform random picks give each shard about 1/N of the writes. The
reservation item keeps its key `(order, "<storeId>#<skuId>")` (a shard in
the key would let a retried order pick another shard and reserve twice) and
records the rows it holds in `shards` (`"03:1"`), so release and commit
settle exactly those rows.

When the shard refuses, its explanation remembers what the refusal showed
(the shard's `available`, for `SEEN_SECONDS`; stock comes back only with a
count or a release) and returns `transact.Replan()`: `transact.write(...,
replan=True)` runs `build` again and the line picks another shard. When no
shard is left that this container does not know to be short, or this order
has already landed on a short shard once before (a new container would
otherwise try the dry shards one by one), the line reads every row of the
location (one consistent BatchGetItem) instead: if their sum is short the
answer is `OutOfStockError(store_id, sku_id)`, otherwise the read replaces
what the container remembers and the line is planned again from it. So
OUT_OF_STOCK is only ever the answer of a consistent read, and a stale
memory costs a retry, never a wrong answer.

A quantity that no single row holds but the rows hold together (the tail of
a launch) is split: the line takes what it needs from the fullest rows, one
Update each, all recorded on the one reservation item. A launch line is at
most `MAX_LAUNCH_QTY` units (the caller should refuse more; reserve_lines
raises `LaunchLimitError`), so it adds at most `1 + MAX_LAUNCH_QTY` items;
`stock_items` says how many a set of lines may add.

Counting a launch SKU (`lay_out`). A count reads every row of the location
(the base row and the 32 possible shards, one BatchGetItem), refuses a count
below their total reserved (`BelowReservedError`), and writes in one
transaction conditioned on every row as it was read: each shard of the
SKU's current layout gets what it holds reserved plus an even share of the
free stock; any other row keeps only what it holds reserved. A reservation
racing the count refuses the transaction and the count is made again.

Changing `launchShards`. A SKU that has ever been a launch SKU carries
`sharded` (never cleared), and its levels and counts always sum every row,
whatever layout a location is in. Putting such a SKU re-lays every location
the `by-sku` index lists that is not in the SKU's current layout (its total
on hand kept; one transaction each, as a count); a reservation made before
the change stays on the row it holds and settles there. The index is
eventually consistent: a location stocked an instant before the change, or
the units of an older reservation released after it, stay where they are
until that location's next count (or the next put of the SKU). Until then
they count in `stock_level` and a launch line finds them with its consistent
read; only a SKU changed back to ordinary does not sell them (an ordinary
line reads nothing).

Routing. `stores_with_stock(quantities, launch)` asks the `by-sku` index
for a launch SKU's rows with any stock and sums them per location (shard
rows carry the SKU's own id, the index's hash key). The index sees every
reservation's write, as it does for an ordinary SKU; shard rows share the
SKU's index partition key and differ in `available`, the index's range key.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib import clock, db, transact
from chalicelib.catalog import shards as rows
from chalicelib.catalog.errors import (
    AlreadyReservedError,
    LaunchLimitError,
    NotHeldError,
    OutOfStockError,
    StockBusyError,
)
from chalicelib.catalog.models import (
    COMMITTED,
    HELD,
    MAX_SHARDS,
    RELEASED,
    Stock,
    StockReservation,
    held_shard,
    held_shards,
    shard_store,
    split_store,
)
from chalicelib.catalog.shards import Row
from chalicelib.transact import Explain, Transaction, TransactionRefusedError

__all__ = [
    "Hold",
    "Row",
    "reserve",
    "reserve_lines",
    "release",
    "commit",
    "release_hold",
    "commit_hold",
    "holds_of",
    "reserve_order",
    "release_order",
    "commit_order",
    "stores_with_stock",
    "stock_items",
    "held_now",
    "audit_rows",
    "holds_without_rows",
    "MAX_LINES",
    "MAX_LAUNCH_QTY",
]

_RECHECK_PAUSE = 0.05  # before a suspect row is read again

Action = Literal["reserve", "release", "commit"]
Parts = tuple[tuple[Row, int], ...]

# Each line writes two items; the rest of a transaction's budget is left to
# what an order writes with its lines: the order, a coupon lock, a points freeze.
_ROOM_FOR_THE_ORDER = 10
MAX_LINES = (transact.MAX_ITEMS - _ROOM_FOR_THE_ORDER) // 2
# The most units of a launch SKU one order line may take (a split line writes one row per unit at worst).
MAX_LAUNCH_QTY = 5


@dataclass(frozen=True)
class Hold:
    """One order line's claim on one location's stock, and what was done with it.

    `shards` names the rows a launch line holds and how many of each; empty:
    the location's one row, all of `qty`.
    """

    order_id: str
    store_id: str
    sku_id: str
    qty: int
    action: Action = "reserve"
    shards: Parts = ()

    @property
    def line(self) -> str:
        return f"{self.store_id}#{self.sku_id}"

    @property
    def parts(self) -> Parts:
        return self.shards or ((None, self.qty),)


def _hold(order_id: str, store_id: str, sku_id: str, qty: int, action: Action, shards: Parts = ()) -> Hold:
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
        raise ValueError(f"qty must be a positive integer, not {qty!r}")
    if shards and sum(part for _, part in shards) != qty:
        raise ValueError(f"the shards of a line hold its {qty}, not {shards!r}")
    return Hold(order_id, store_id, sku_id, qty, action, shards)


def _encode(parts: Parts) -> str:
    return ",".join(f"{'base' if row is None else f'{row:02d}'}:{qty}" for row, qty in parts)


def _decode(text: str | None) -> Parts:
    if not text:
        return ()
    parts = []
    for part in text.split(","):
        row, _, qty = part.partition(":")
        parts.append((None if row == "base" else int(row), int(qty)))
    return tuple(parts)


# --- Reserving ---------------------------------------------------------------------

def _reserve_rows(txn: Transaction, hold: Hold, explain_row: Callable[[Row], Explain]) -> Hold:
    now = clock.now()
    first_time = StockReservation.order_id.does_not_exist()
    txn.save(
        StockReservation(
            hold.order_id, hold.line, store_id=hold.store_id, sku_id=hold.sku_id, qty=hold.qty,
            shards=_encode(hold.shards) if hold.shards else None, status=HELD, held_shard=held_shard(hold.order_id),
            created_at=now, updated_at=now,
        ),
        first_time,
        label=f"reservation {hold.line}",
        explain=lambda old: AlreadyReservedError(),
    )
    for row, qty in hold.parts:
        # The invariant: what is reserved never exceeds what is on hand, row by row.
        enough_free = Stock.available >= qty
        txn.update(
            Stock(shard_store(hold.store_id, row), hold.sku_id),
            [Stock.reserved.add(qty), Stock.available.add(-qty), Stock.updated_at.set(now)],
            enough_free,
            label=rows.label(hold.line, row),
            explain=explain_row(row),
        )
    return hold


def reserve(txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str) -> Hold:
    """Hold `qty` of a SKU at a location for an order, once."""
    hold = _hold(order_id, store_id, sku_id, qty, "reserve")
    return _reserve_rows(txn, hold, lambda row: lambda old: OutOfStockError(store_id, sku_id))


def reserve_lines(
    txn: Transaction,
    order_id: str,
    store_id: str,
    quantities: Mapping[str, int],
    launch: Mapping[str, int] | None = None,
) -> list[Hold]:
    """Reserve every line of an order at one location, in SKU order.

    `launch` maps the order's launch SKUs to their `launchShards` (from the
    Sku items the caller read): their lines go to a shard (see the module's
    notes), which needs `transact.write(..., replan=True)`. Other lines are
    ordinary. A short line is `OutOfStockError(store_id, sku_id)`, from its
    explanation or (a launch line) from `build` after a consistent read; a
    launch line above `MAX_LAUNCH_QTY` raises `LaunchLimitError`.
    """
    if not quantities:
        raise ValueError("an order reserves at least one line")
    if len(quantities) > MAX_LINES:
        raise ValueError(f"at most {MAX_LINES} lines per reservation")
    launch = launch or {}
    holds = []
    for sku_id, qty in sorted(quantities.items()):
        shards = launch.get(sku_id)
        if shards:
            holds.append(_reserve_launch(txn, store_id, sku_id, qty, order_id, int(shards)))
        else:
            holds.append(reserve(txn, store_id, sku_id, qty, order_id))
    return holds


def stock_items(quantities: Mapping[str, int], launch: Mapping[str, int] | None = None) -> int:
    """The most items `reserve_lines` adds to a transaction for these lines."""
    launch = launch or {}
    return sum(1 + min(qty, MAX_LAUNCH_QTY) if launch.get(sku_id) else 2 for sku_id, qty in quantities.items())


def _reserve_launch(txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str, shards: int) -> Hold:
    _hold(order_id, store_id, sku_id, qty, "reserve")
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"a launch SKU has 1 to {MAX_SHARDS} shards, not {shards!r}")
    if qty > MAX_LAUNCH_QTY:
        raise LaunchLimitError(sku_id, MAX_LAUNCH_QTY)
    line = f"{store_id}#{sku_id}"
    # Whether this order's last attempt already landed on a short row of this line.
    landed_before = _refused_line(txn.previous_refusal, line)
    plan = rows.plan(store_id, sku_id, qty, shards)
    if plan is None:
        if not rows.confirm(store_id, sku_id, qty):
            raise OutOfStockError(store_id, sku_id)
        plan = rows.plan(store_id, sku_id, qty, shards)
        if plan is None:  # the read said enough, what it remembered says not: it expired meanwhile
            raise OutOfStockError(store_id, sku_id)
    parts = tuple(sorted(plan, key=rows.row_order))
    hold = _hold(order_id, store_id, sku_id, qty, "reserve", () if parts == ((None, qty),) else parts)

    def explain_row(row: Row) -> Explain:
        def refused(old: Any) -> Exception:
            rows.remember(store_id, sku_id, {row: rows.available(old)})
            if not landed_before and rows.plan(store_id, sku_id, qty, shards) is not None:
                return transact.Replan()
            # Out of rows worth trying, or the second landing: one consistent read decides.
            return transact.Replan() if rows.confirm(store_id, sku_id, qty) else OutOfStockError(store_id, sku_id)

        return refused

    return _reserve_rows(txn, hold, explain_row)


def _refused_line(refusal: TransactionRefusedError | None, line: str) -> bool:
    if refusal is None:
        return False
    base = rows.label(line, None)
    return any(r.label == base or r.label.startswith(base + "#") for r in refusal.refusals)


# --- Releasing and shipping -------------------------------------------------------------

def _not_held(old: Any) -> Exception:
    return NotHeldError()


def _settle(
    txn: Transaction, hold: Hold, status: str, stock_actions: Callable[[int], list[Any]], explain: Explain
) -> Hold:
    now = clock.now()
    # Only a held reservation of exactly this quantity, on exactly these rows, is released or shipped, and only once.
    same_rows = (StockReservation.shards == _encode(hold.shards)) if hold.shards \
        else StockReservation.shards.does_not_exist()
    still_held = (StockReservation.status == HELD) & (StockReservation.qty == hold.qty) & same_rows
    txn.update(
        StockReservation(hold.order_id, hold.line),
        [StockReservation.status.set(status), StockReservation.held_shard.remove(), StockReservation.updated_at.set(now)],
        still_held,
        label=f"reservation {hold.line}",
        explain=explain,
    )
    for row, qty in hold.parts:
        # Less reserved than the hold says happens only if the hold is gone.
        txn.update(
            Stock(shard_store(hold.store_id, row), hold.sku_id),
            [*stock_actions(qty), Stock.updated_at.set(now)],
            Stock.reserved >= qty,
            label=rows.label(hold.line, row),
            explain=explain,
        )
    return hold


def _releasing(qty: int) -> list[Any]:
    return [Stock.reserved.add(-qty), Stock.available.add(qty)]


def _shipping(qty: int) -> list[Any]:
    return [Stock.on_hand.add(-qty), Stock.reserved.add(-qty)]


def release(
    txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str,
    *, explain: Explain = _not_held, shards: Parts = (),
) -> Hold:
    """Give a held reservation back: reserved down, available up (on each row the hold names)."""
    hold = _hold(order_id, store_id, sku_id, qty, "release", shards)
    return _settle(txn, hold, RELEASED, _releasing, explain)


def commit(
    txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str,
    *, explain: Explain = _not_held, shards: Parts = (),
) -> Hold:
    """Ship a held reservation: on hand and reserved both down, available unchanged."""
    hold = _hold(order_id, store_id, sku_id, qty, "commit", shards)
    return _settle(txn, hold, COMMITTED, _shipping, explain)


def release_hold(txn: Transaction, hold: Hold, *, explain: Explain = _not_held) -> Hold:
    """`release` of a hold as `holds_of` or `reserve_lines` answered it (its shards included)."""
    return release(txn, hold.store_id, hold.sku_id, hold.qty, hold.order_id, explain=explain, shards=hold.shards)


def commit_hold(txn: Transaction, hold: Hold, *, explain: Explain = _not_held) -> Hold:
    """`commit` of a hold as `holds_of` or `reserve_lines` answered it (its shards included)."""
    return commit(txn, hold.store_id, hold.sku_id, hold.qty, hold.order_id, explain=explain, shards=hold.shards)


# --- Whole orders ------------------------------------------------------------------

def holds_of(order_id: str, status: str | None = HELD) -> list[Hold]:
    """The order's reservations (those in `status`; every one if None)."""
    condition = (StockReservation.status == status) if status else None
    return [
        Hold(item.order_id, item.store_id, item.sku_id, int(item.qty), shards=_decode(item.shards))
        for item in StockReservation.query(order_id, filter_condition=condition, consistent_read=True)
    ]


def reserve_order(
    order_id: str, store_id: str, quantities: Mapping[str, int], launch: Mapping[str, int] | None = None
) -> bool:
    """Reserve every line at one location in one write.

    True if reserved now; False if this order reserved these lines before
    (whether still held, released or shipped: an order id reserves once).
    Raises `OutOfStockError` naming a SKU that is short, and reserves nothing.
    """
    try:
        transact.write(
            lambda txn: reserve_lines(txn, order_id, store_id, quantities, launch),
            busy=StockBusyError,
            replan=bool(launch),
        )
    except AlreadyReservedError:
        return False
    return True


def _settled_meanwhile(old: Any) -> None:
    """Another run settled this line first: not an error, the order is looked at again."""
    return None


def _settle_order(order_id: str, settle: Callable[..., Hold]) -> int:
    def build(txn: Transaction) -> int:
        held = holds_of(order_id)
        for hold in held:
            settle(txn, hold, explain=_settled_meanwhile)
        return len(held)

    return transact.write(build, busy=StockBusyError, replan=True)


def release_order(order_id: str) -> int:
    """Release everything the order still holds (cancellation, compensation); the lines released."""
    return _settle_order(order_id, release_hold)


def commit_order(order_id: str) -> int:
    """Ship everything the order still holds; the lines shipped."""
    return _settle_order(order_id, commit_hold)


# --- Routing and audit ---------------------------------------------------------------

def stores_with_stock(sku_quantities: Mapping[str, int], launch: Mapping[str, int] | None = None) -> list[str]:
    """Locations (stores and `warehouse`) where every SKU has at least its quantity available.

    One Query per SKU on the `by-sku` index (`available >= qty` is its key
    condition). A SKU named in `launch` is asked for every row with stock
    (`available >= 1`) and a location's rows are summed; without `launch`, a
    launch SKU's location is found where one of its rows alone holds the
    quantity (always, for one unit). The index is eventually consistent: good
    for routing, while the reservation's own condition decides.
    """
    if not sku_quantities:
        return []
    launch = launch or {}
    common: set[str] | None = None
    for sku_id, qty in sku_quantities.items():
        if qty < 1:
            raise ValueError(f"qty of {sku_id} must be positive")
        at_least = 1 if launch.get(sku_id) else qty
        totals: dict[str, int] = defaultdict(int)
        for row in Stock.by_sku.query(sku_id, Stock.available >= at_least):
            totals[split_store(row.store_id)[0]] += int(row.available)
        here = {store_id for store_id, total in totals.items() if total >= qty}
        common = here if common is None else common & here
        if not common:
            return []
    return sorted(common or ())


def held_now() -> dict[tuple[str, str], int]:
    """What the held reservations hold, by (row, SKU), found by the sparse `held` index."""
    held: dict[tuple[str, str], int] = defaultdict(int)
    for shard in held_shards():
        for reservation in StockReservation.held.query(shard):
            for row, qty in _decode(reservation.shards) or ((None, int(reservation.qty)),):
                held[(shard_store(reservation.store_id, row), reservation.sku_id)] += qty
    return held


def _row_problems(row: Stock, held: int) -> list[str]:
    on_hand, reserved, available = int(row.on_hand), int(row.reserved), int(row.available)
    problems = []
    if available != on_hand - reserved:
        problems.append("available is not onHand - reserved")
    if min(on_hand, reserved, available) < 0:
        problems.append("a negative level")
    if reserved != held:
        problems.append("reserved differs from the held reservations")
    return problems


def audit_rows(found: list[Stock], held: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """The breaches of these stock rows: available = on hand - reserved, none negative, reserved =
    what the held reservations hold. A suspect is read again (the row consistently, the holds
    afresh: the index lags) before it counts. A shard row is checked on its own."""
    suspects = [row for row in found if _row_problems(row, held.get((row.store_id, row.sku_id), 0))]
    if not suspects:
        return []
    time.sleep(_RECHECK_PAUSE)
    held_again = held_now()
    breaches = []
    for row in db.batch_get([(Stock, (row.store_id, row.sku_id)) for row in suspects]):
        problems = _row_problems(row, held_again.get((row.store_id, row.sku_id), 0)) if row is not None else []
        if problems:
            breaches.append({**_where(row.store_id, row.sku_id), "problems": problems})
    return breaches


def holds_without_rows(held: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Held quantities on stock rows that do not exist."""
    keys = sorted(held)
    rows = db.batch_get([(Stock, key) for key in keys])
    return [{**_where(*key), "problems": [f"{held[key]} held without a stock row"]}
            for key, row in zip(keys, rows) if row is None]


def _where(row_store: str, sku_id: str) -> dict[str, Any]:
    store_id, shard = split_store(row_store)
    return {"storeId": store_id, "skuId": sku_id, **({"shard": shard} if shard is not None else {})}
