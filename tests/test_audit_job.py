"""The audits: the nightly ledger proof of the day, the stock audit over every row; each breach named and counted."""

from __future__ import annotations

import datetime as dt
import json

from chalicelib import clock, db
from chalicelib.catalog.models import Stock
from tests import whole_table
from tests.conftest import unique
from tests.test_infra_access_observed import scheduled_event


def _metric(printed: str, name: str) -> int:
    """The value of the one EMF line that publishes `name`."""
    values = [line[name] for line in map(json.loads, filter(None, printed.splitlines())) if name in line]
    assert len(values) == 1, printed
    return int(sum(values[0]))


def test_an_inventory_breach_is_named_and_counted_for_the_alarm(stack, capsys):
    store, sku = unique("store"), unique("sku")
    row = Stock(store, sku, on_hand=5, reserved=0, available=9)  # available is not onHand - reserved
    row.save()
    capsys.readouterr()
    try:
        result = whole_table.run("stock-audit")
        printed = capsys.readouterr().out
        broken = [example for example in result["examples"] if example["skuId"] == sku]
        assert broken == [{"storeId": store, "skuId": sku, "problems": ["available is not onHand - reserved"]}]
        assert _metric(printed, "InventoryBreaches") == result["breaches"] >= 1
    finally:
        row.delete()


def test_the_nightly_audit_proves_the_days_accounts_and_names_a_breach(stack, capsys):
    import app
    from chalicelib.points import ledger
    from chalicelib.points.models import PointsBalance

    member, untouched = unique("m"), unique("m")
    ledger.earn(untouched, 10, f"old#{untouched}", "checkin", at=clock.now() - dt.timedelta(days=3))
    ledger.earn(member, 40, f"today#{member}", "checkin")
    PointsBalance(member).update(actions=[PointsBalance.available.add(5)])  # a balance its transfers do not explain
    capsys.readouterr()
    try:
        with db.recording() as log:
            result = app.ledger_audit(scheduled_event(clock.now() + dt.timedelta(days=1)), None)
        printed = capsys.readouterr().out
        named = [example for example in result["examples"] if example["account"] == member]
        assert {example["rule"] for example in named} >= {"balance_not_sum_of_transfers"}
        assert _metric(printed, "LedgerBreaches") == result["breaches"] >= 1
        read = {key for request in log for _, key in request.item_keys()} | {
            json.dumps(request.body.get("ExpressionAttributeValues", {}), sort_keys=True) for request in log}
        assert not any(untouched in key for key in read)  # an account the day did not touch is not read
        assert not [request for request in log if request.operation == "Scan"]
    finally:
        PointsBalance(member).update(actions=[PointsBalance.available.add(-5)])
