"""The nightly audit: the points ledger's and the inventory's invariants, each breach an alarm.

Each breach count is published as a metric (`LedgerBreaches`,
`InventoryBreaches`); the alarms of the deployed stack watch them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import clock, observability
from chalicelib.catalog import stock
from chalicelib.points import audit as ledger

__all__ = ["run"]

_SHOWN = 10  # breaches the report names; the metric and the log count them all


def run(moment: dt.datetime) -> dict[str, Any]:
    """The ledger's report, with the inventory's beside it, as of `moment`."""
    points = ledger.audit()
    inventory = stock.audit()
    for breach in inventory["breaches"]:
        observability.logger().error("inventory breach", extra={"breach": breach})
    observability.count("LedgerBreaches", points["breaches"])
    observability.count("InventoryBreaches", len(inventory["breaches"]))
    return {
        **points,
        "inventory": {
            "checked": inventory["checked"],
            "breaches": len(inventory["breaches"]),
            "examples": inventory["breaches"][:_SHOWN],
        },
        "at": clock.iso(moment),
    }
