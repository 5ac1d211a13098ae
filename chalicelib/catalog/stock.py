"""Stock that orders reserve, release and ship, and where it can be found.

Orders put these writes into their own `db.transaction()`, next to their other
effects, so one TransactWriteItems reserves every line or none:

    with db.transaction() as write:
        holds = [stock.reserve(write, store_id, sku_id, qty, order_id) for sku_id, qty in lines]
        ...  # the order's own writes

Each call adds two writes:

- the reservation item `(order_id, "<storeId>#<skuId>")`, the natural
  idempotency key: `reserve` requires it absent, so a retried reservation is
  refused instead of counted twice; `release` and `commit` require it `held`,
  so neither happens twice;
- the stock row, with `available` (always `on_hand - reserved`) moved together
  with `reserved` and `on_hand`. DynamoDB conditions cannot subtract, so the
  invariant "reserved never exceeds on hand" is the condition
  `available >= qty` on the row itself.

A cancelled transaction is explained by `failure(error, holds)`. One
transaction may touch a given (store, SKU) row once: merge lines first.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, db
from chalicelib.catalog.errors import AlreadyReservedError, NotHeldError, OutOfStockError, StockBusyError
from chalicelib.catalog.models import COMMITTED, HELD, RELEASED, Stock, StockReservation
from chalicelib.errors import SiyuError

__all__ = [
    "Hold",
    "reserve",
    "release",
    "commit",
    "failure",
    "holds_of",
    "reserve_order",
    "release_order",
    "commit_order",
    "stores_with_stock",
    "audit",
    "MAX_LINES",
]

Action = Literal["reserve", "release", "commit"]
# TransactWriteItems takes 100 items; each line writes two.
MAX_LINES = 50
# Transactions that touch the same rows at once are cancelled (TransactionConflict) and retried.
_ATTEMPTS = 8


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


def reserve(write: TransactWrite, store_id: str, sku_id: str, qty: int, order_id: str) -> Hold:
    """Hold `qty` of a SKU at a location for an order, once."""
    hold = _hold(order_id, store_id, sku_id, qty, "reserve")
    now = clock.now()
    first_time = StockReservation.order_id.does_not_exist()
    write.save(
        StockReservation(
            order_id, hold.line, store_id=store_id, sku_id=sku_id, qty=qty, status=HELD, created_at=now, updated_at=now
        ),
        condition=first_time,
        return_values="ALL_OLD",
    )
    # The invariant: what is reserved never exceeds what is on hand.
    enough_free = Stock.available >= qty
    write.update(
        Stock(store_id, sku_id),
        actions=[Stock.reserved.add(qty), Stock.available.add(-qty), Stock.updated_at.set(now)],
        condition=enough_free,
        return_values="ALL_OLD",
    )
    return hold


def _settle(write: TransactWrite, hold: Hold, status: str, stock_actions: list[Any]) -> Hold:
    now = clock.now()
    # Only a held reservation of exactly this quantity is released or shipped, and only once.
    still_held = (StockReservation.status == HELD) & (StockReservation.qty == hold.qty)
    write.update(
        StockReservation(hold.order_id, hold.line),
        actions=[StockReservation.status.set(status), StockReservation.updated_at.set(now)],
        condition=still_held,
        return_values="ALL_OLD",
    )
    write.update(
        Stock(hold.store_id, hold.sku_id),
        actions=[*stock_actions, Stock.updated_at.set(now)],
        condition=Stock.reserved >= hold.qty,
        return_values="ALL_OLD",
    )
    return hold


def release(write: TransactWrite, store_id: str, sku_id: str, qty: int, order_id: str) -> Hold:
    """Give a held reservation back: reserved down, available up."""
    hold = _hold(order_id, store_id, sku_id, qty, "release")
    return _settle(write, hold, RELEASED, [Stock.reserved.add(-qty), Stock.available.add(qty)])


def commit(write: TransactWrite, store_id: str, sku_id: str, qty: int, order_id: str) -> Hold:
    """Ship a held reservation: on hand and reserved both down, available unchanged."""
    hold = _hold(order_id, store_id, sku_id, qty, "commit")
    return _settle(write, hold, COMMITTED, [Stock.on_hand.add(-qty), Stock.reserved.add(-qty)])


# --- Explaining a cancelled transaction ---------------------------------------------

def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def failure(error: TransactWriteError, holds: Iterable[Hold]) -> SiyuError | None:
    """Which of these holds cancelled the transaction, as the error to raise; None if none did.

    A retried reservation (`AlreadyReservedError`) wins over a shortage, so a
    retry reads as a retry. The failing items come back whole (`ALL_OLD`); a
    reservation or stock row that does not exist at all is found by reading.
    """
    holds = list(holds)
    reasons = error.cancellation_reasons or []
    failed = [reason for reason in reasons if reason and reason.code == "ConditionalCheckFailed"]
    if not failed or not holds:
        return None
    found: list[SiyuError] = []
    unexplained = False
    for reason in failed:
        item = reason.raw_item
        if not item:
            unexplained = True
            continue
        for hold in holds:
            if _string(item, "order_id") == hold.order_id and _string(item, "line") == hold.line:
                found.append(AlreadyReservedError() if hold.action == "reserve" else NotHeldError())
            elif (
                "available" in item
                and _string(item, "store_id") == hold.store_id
                and _string(item, "sku_id") == hold.sku_id
            ):
                # Settling finds less reserved than the hold says only if the hold is gone.
                short = hold.action == "reserve"
                found.append(OutOfStockError(hold.store_id, hold.sku_id) if short else NotHeldError())
    if unexplained:
        found.extend(_missing(holds))
    for kind in (AlreadyReservedError, OutOfStockError, NotHeldError):
        for error_found in found:
            if isinstance(error_found, kind):
                return error_found
    return None


def _missing(holds: list[Hold]) -> list[SiyuError]:
    """Rows a condition found absent: no stock row to reserve from, no reservation to settle."""
    keys: list[tuple[type[db.SiyuModel], Any]] = []
    for hold in holds:
        if hold.action == "reserve":
            keys.append((Stock, (hold.store_id, hold.sku_id)))
        else:
            keys.append((StockReservation, (hold.order_id, hold.line)))
    errors: list[SiyuError] = []
    for hold, row in zip(holds, db.batch_get(keys)):
        if row is None:
            short = hold.action == "reserve"
            errors.append(OutOfStockError(hold.store_id, hold.sku_id) if short else NotHeldError())
    return errors


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
    if not quantities:
        raise ValueError("an order reserves at least one line")
    if len(quantities) > MAX_LINES:
        raise ValueError(f"at most {MAX_LINES} lines per reservation")
    for attempt in range(_ATTEMPTS):
        holds: list[Hold] = []
        try:
            with db.transaction() as write:
                for sku_id, qty in sorted(quantities.items()):
                    holds.append(reserve(write, store_id, sku_id, qty, order_id))
        except TransactWriteError as exc:
            explained = failure(exc, holds)
            if isinstance(explained, AlreadyReservedError):
                return False
            if explained is not None:
                raise explained from exc
            if _collided(exc):
                _back_off(attempt)
                continue
            raise
        return True
    raise StockBusyError()


def _collided(error: TransactWriteError) -> bool:
    return "TransactionConflict" in db.cancellation_codes(error)


def _back_off(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.01 * 2**attempt))


def _settle_order(order_id: str, settle: Any) -> int:
    for attempt in range(_ATTEMPTS):
        held = holds_of(order_id)
        if not held:
            return 0
        done: list[Hold] = []
        try:
            with db.transaction() as write:
                for hold in held:
                    done.append(settle(write, hold.store_id, hold.sku_id, hold.qty, order_id))
        except TransactWriteError as exc:
            if isinstance(failure(exc, done), NotHeldError) or _collided(exc):
                # Settled meanwhile by another run, or colliding with one: look again.
                _back_off(attempt)
                continue
            raise
        return len(done)
    raise StockBusyError()


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
