"""A whole store's shelf count from a spreadsheet: `skuId,onHand` rows, checked whole, then applied row by row.

Every row is checked before any is applied (a bad cell, a duplicate, a SKU
that does not exist: 400 naming the line, nothing changed). Each row is then
one `set_on_hand`, with its own condition that the count covers what open
orders reserved; a row it refuses is reported with its line, the others stand.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib import db, observability
from chalicelib.catalog.errors import BelowReservedError
from chalicelib.catalog.models import Sku
from chalicelib.catalog.schemas import MAX_ON_HAND
from chalicelib.catalog.service import check_id, count_shelf
from chalicelib.errors import InvalidRequestError

__all__ = ["MAX_ROWS", "HEADER", "import_on_hand"]

MAX_ROWS = 5000
HEADER = ("skuId", "onHand")
# Rows written at once: a store's whole catalogue fits a Lambda's time without a hot partition (rows differ by SKU).
_WRITERS = 8


def _rows(text: str) -> list[tuple[int, str, int]]:
    """(line, skuId, onHand) of each data row; 400 naming the first line that is not right."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))  # a spreadsheet's export may start with a BOM
    header = next(reader, None)
    if header is None or tuple(cell.strip() for cell in header) != HEADER:
        raise InvalidRequestError("csv", "line 1 must be the header skuId,onHand")
    rows, seen = [], {}
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) == MAX_ROWS:
            raise InvalidRequestError("csv", f"holds more than {MAX_ROWS} rows")
        if len(cells) != 2:
            raise InvalidRequestError("csv", f"line {line} must have two cells, skuId and onHand")
        sku_id, count = cells[0].strip(), cells[1].strip()
        try:
            check_id("skuId", sku_id)
        except InvalidRequestError as exc:
            raise InvalidRequestError("csv", f"line {line}: skuId must be 1 to 64 letters, digits, '-' or '_'") from exc
        if not count.isdigit() or int(count) > MAX_ON_HAND:
            raise InvalidRequestError("csv", f"line {line}: onHand must be a whole number from 0 to {MAX_ON_HAND}")
        if sku_id in seen:
            raise InvalidRequestError("csv", f"line {line}: {sku_id} is on line {seen[sku_id]} already")
        seen[sku_id] = line
        rows.append((line, sku_id, int(count)))
    if not rows:
        raise InvalidRequestError("csv", "holds no rows")
    return rows


def _skus(rows: list[tuple[int, str, int]]) -> list[Sku]:
    """Each row's SKU; 400 naming the first line whose SKU does not exist."""
    found = db.batch_get([(Sku, sku_id) for _, sku_id, _ in rows])
    for (line, sku_id, _), sku in zip(rows, found):
        if sku is None:
            raise InvalidRequestError("csv", f"line {line}: {sku_id} is not a SKU")
    return found


def import_on_hand(store_id: str, text: str) -> dict[str, Any]:
    """Count a location's shelf from CSV text; what was set, and each row refused with its reason."""
    check_id("storeId", store_id)
    rows = _rows(text)

    def apply(row: tuple[int, str, int], sku: Sku) -> dict[str, Any] | None:
        line, sku_id, on_hand = row
        try:
            count_shelf(store_id, sku, on_hand)
        except BelowReservedError as exc:
            return {"line": line, "skuId": sku_id, "code": exc.code, "message": exc.message}
        return None

    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        refused = [outcome for outcome in pool.map(apply, rows, _skus(rows)) if outcome is not None]
    observability.info("stock imported", store_id=store_id, rows=len(rows), refused=len(refused))
    return {"storeId": store_id, "rows": len(rows), "updated": len(rows) - len(refused), "refused": refused}
