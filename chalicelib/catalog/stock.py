"""Stock that orders reserve, release and ship, and where it can be found.

Orders add these writes to their own composed transaction, next to their
other effects, so one TransactWriteItems reserves every line or none:

    def build(txn: Transaction) -> Order:
        holds = stock.reserve_lines(txn, order_id, store_id, quantities)
        ...  # the coupon lock, the points freeze, the order itself
    transact.write(build, busy=StockBusyError)

Each line adds two items, each with the explanation of its refusal:

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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib import clock, transact
from chalicelib.catalog.errors import AlreadyReservedError, NotHeldError, OutOfStockError, StockBusyError
from chalicelib.catalog.models import COMMITTED, HELD, RELEASED, Stock, StockReservation
from chalicelib.transact import Explain, Transaction

__all__ = [
    "Hold",
    "reserve",
    "reserve_lines",
    "release",
    "commit",
    "holds_of",
    "reserve_order",
    "release_order",
    "commit_order",
    "stores_with_stock",
    "audit",
    "MAX_LINES",
]

Action = Literal["reserve", "release", "commit"]
# Each line writes two items; the rest of a transaction's budget is left to
# what an order writes with its lines: the order, a coupon lock, a points freeze.
_ROOM_FOR_THE_ORDER = 10
MAX_LINES = (transact.MAX_ITEMS - _ROOM_FOR_THE_ORDER) // 2


@dataclass(frozen=True)
class Hold:
    """One order line's claim on one location's stock, and what was done with it."""

    order_id: str
    store_id: str
    sku_id: str
    qty: int
    action: Action = "reserve"

    @property
    def line(self) -> str:
        return f"{self.store_id}#{self.sku_id}"


def _hold(order_id: str, store_id: str, sku_id: str, qty: int, action: Action) -> Hold:
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
        raise ValueError(f"qty must be a positive integer, not {qty!r}")
    return Hold(order_id, store_id, sku_id, qty, action)


def reserve(txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str) -> Hold:
    """Hold `qty` of a SKU at a location for an order, once."""
    hold = _hold(order_id, store_id, sku_id, qty, "reserve")
    now = clock.now()
    first_time = StockReservation.order_id.does_not_exist()
    txn.save(
        StockReservation(
            order_id, hold.line, store_id=store_id, sku_id=sku_id, qty=qty, status=HELD, created_at=now, updated_at=now
        ),
        first_time,
        label=f"reservation {hold.line}",
        explain=lambda old: AlreadyReservedError(),
    )
    # The invariant: what is reserved never exceeds what is on hand.
    enough_free = Stock.available >= qty
    txn.update(
        Stock(store_id, sku_id),
        [Stock.reserved.add(qty), Stock.available.add(-qty), Stock.updated_at.set(now)],
        enough_free,
        label=f"stock {hold.line}",
        explain=lambda old: OutOfStockError(store_id, sku_id),
    )
    return hold


def reserve_lines(txn: Transaction, order_id: str, store_id: str, quantities: Mapping[str, int]) -> list[Hold]:
    """Reserve every line of an order at one location, in SKU order."""
    if not quantities:
        raise ValueError("an order reserves at least one line")
    if len(quantities) > MAX_LINES:
        raise ValueError(f"at most {MAX_LINES} lines per reservation")
    return [reserve(txn, store_id, sku_id, qty, order_id) for sku_id, qty in sorted(quantities.items())]


def _not_held(old: Any) -> Exception:
    return NotHeldError()


def _settle(txn: Transaction, hold: Hold, status: str, stock_actions: list[Any], explain: Explain) -> Hold:
    now = clock.now()
    # Only a held reservation of exactly this quantity is released or shipped, and only once.
    still_held = (StockReservation.status == HELD) & (StockReservation.qty == hold.qty)
    txn.update(
        StockReservation(hold.order_id, hold.line),
        [StockReservation.status.set(status), StockReservation.updated_at.set(now)],
        still_held,
        label=f"reservation {hold.line}",
        explain=explain,
    )
    # Less reserved than the hold says happens only if the hold is gone.
    txn.update(
        Stock(hold.store_id, hold.sku_id),
        [*stock_actions, Stock.updated_at.set(now)],
        Stock.reserved >= hold.qty,
        label=f"stock {hold.line}",
        explain=explain,
    )
    return hold


def release(
    txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str, *, explain: Explain = _not_held
) -> Hold:
    """Give a held reservation back: reserved down, available up."""
    hold = _hold(order_id, store_id, sku_id, qty, "release")
    return _settle(txn, hold, RELEASED, [Stock.reserved.add(-qty), Stock.available.add(qty)], explain)


def commit(
    txn: Transaction, store_id: str, sku_id: str, qty: int, order_id: str, *, explain: Explain = _not_held
) -> Hold:
    """Ship a held reservation: on hand and reserved both down, available unchanged."""
    hold = _hold(order_id, store_id, sku_id, qty, "commit")
    return _settle(txn, hold, COMMITTED, [Stock.on_hand.add(-qty), Stock.reserved.add(-qty)], explain)


# --- Whole orders ------------------------------------------------------------------

def holds_of(order_id: str, status: str | None = HELD) -> list[Hold]:
    """The order's reservations (those in `status`; every one if None)."""
    condition = (StockReservation.status == status) if status else None
    return [
        Hold(item.order_id, item.store_id, item.sku_id, int(item.qty))
        for item in StockReservation.query(order_id, filter_condition=condition, consistent_read=True)
    ]


def reserve_order(order_id: str, store_id: str, quantities: Mapping[str, int]) -> bool:
    """Reserve every line at one location in one write.

    True if reserved now; False if this order reserved these lines before
    (whether still held, released or shipped: an order id reserves once).
    Raises `OutOfStockError` naming a SKU that is short, and reserves nothing.
    """
    try:
        transact.write(lambda txn: reserve_lines(txn, order_id, store_id, quantities), busy=StockBusyError)
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
            settle(txn, hold.store_id, hold.sku_id, hold.qty, order_id, explain=_settled_meanwhile)
        return len(held)

    return transact.write(build, busy=StockBusyError, replan=True)


def release_order(order_id: str) -> int:
    """Release everything the order still holds (cancellation, compensation); the lines released."""
    return _settle_order(order_id, release)


def commit_order(order_id: str) -> int:
    """Ship everything the order still holds; the lines shipped."""
    return _settle_order(order_id, commit)


# --- Routing and audit ---------------------------------------------------------------

def stores_with_stock(sku_quantities: Mapping[str, int]) -> list[str]:
    """Locations (stores and `warehouse`) where every SKU has at least its quantity available.

    One Query per SKU on the `by-sku` index (`available >= qty` is its key
    condition). The index is eventually consistent: good for routing, while the
    reservation's own condition decides.
    """
    if not sku_quantities:
        return []
    common: set[str] | None = None
    for sku_id, qty in sku_quantities.items():
        if qty < 1:
            raise ValueError(f"qty of {sku_id} must be positive")
        here = {row.store_id for row in Stock.by_sku.query(sku_id, Stock.available >= qty)}
        common = here if common is None else common & here
        if not common:
            return []
    return sorted(common or ())


def audit() -> dict[str, Any]:
    """Check every stock row: available = on hand - reserved, none negative, reserved = held reservations."""
    held: dict[tuple[str, str], int] = defaultdict(int)
    for reservation in StockReservation.scan(StockReservation.status == HELD, consistent_read=True):
        held[(reservation.store_id, reservation.sku_id)] += int(reservation.qty)
    checked, breaches = 0, []
    for row in Stock.scan(consistent_read=True):
        checked += 1
        on_hand, reserved, available = int(row.on_hand), int(row.reserved), int(row.available)
        problems = []
        if available != on_hand - reserved:
            problems.append("available is not onHand - reserved")
        if min(on_hand, reserved, available) < 0:
            problems.append("a negative level")
        if reserved != held.pop((row.store_id, row.sku_id), 0):
            problems.append("reserved differs from the held reservations")
        if problems:
            breaches.append({"storeId": row.store_id, "skuId": row.sku_id, "problems": problems})
    for (store_id, sku_id), qty in held.items():
        breaches.append({"storeId": store_id, "skuId": sku_id, "problems": [f"{qty} held without a stock row"]})
    return {"checked": checked, "breaches": breaches}
