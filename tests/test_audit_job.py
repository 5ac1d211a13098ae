"""The nightly audit job: ledger and inventory invariants, each breach counted as a metric."""

from __future__ import annotations

import json

from chalicelib import clock
from chalicelib.catalog.models import Stock
from tests.conftest import unique
from tests.test_infra_access_observed import scheduled_event


def _metric(printed: str, name: str) -> int:
    """The value of the one EMF line that publishes `name`."""
    values = [line[name] for line in map(json.loads, filter(None, printed.splitlines())) if name in line]
    assert len(values) == 1, printed
    return int(sum(values[0]))


def test_an_inventory_breach_is_reported_and_counted_for_the_alarm(stack, capsys):
    import app

    store, sku = unique("store"), unique("sku")
    row = Stock(store, sku, on_hand=5, reserved=0, available=9)  # available is not onHand - reserved
    row.save()
    capsys.readouterr()
    try:
        result = app.ledger_audit(scheduled_event(clock.now()), None)
        printed = capsys.readouterr().out
        broken = [example for example in result["inventory"]["examples"] if example["skuId"] == sku]
        assert broken and broken[0]["storeId"] == store
        assert _metric(printed, "InventoryBreaches") == result["inventory"]["breaches"] >= 1
        assert _metric(printed, "LedgerBreaches") == result["breaches"]
    finally:
        row.delete()
