"""The jobs that visit every item of a table, each run by the segmented state machine (chalicelib.segments).

- `ledger-proof` (weekly, and on demand): every balance equals its entries,
  all accounts sum to zero, each system account mirrors its transfers.
- `stock-audit` (nightly): every stock row against what the held
  reservations hold (found by their sparse index).
- `tier-review-all` (on demand, after a tier policy change): every member's
  figures and tier as of the run's moment.
- `identity-rekey` (on demand, after a lookup-key rotation): the phone
  identities under earlier keys moved to the current key.
- `expiry-index` (on demand): every balance indexed under its soonest lot,
  for balances written before the `expiry-due` index existed.

A breach is logged as an error naming the account or the row, and counted in
its metric (`LedgerBreaches`, `InventoryBreaches`) once the run is judged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import observability
from chalicelib.catalog import stock
from chalicelib.catalog.models import Stock
from chalicelib.members import lookup
from chalicelib.members.models import Identity
from chalicelib.points import audit as ledger_audit
from chalicelib.points import ledger
from chalicelib.points.models import SYSTEM_PREFIX, PointsBalance
from chalicelib.segments import WholeTableJob
from chalicelib.usecases import tier_review

__all__ = ["JOBS", "job_named"]


def _members_only() -> Any:
    return ~PointsBalance.account_id.startswith(SYSTEM_PREFIX)


def _judge_ledger(total: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    verdict = ledger_audit.verdict(total)
    observability.count("LedgerBreaches", verdict["breaches"])
    return verdict


def _visit_stock(page: list[Stock], context: dict[str, Any]) -> dict[str, Any]:
    if "held" not in context:
        context["held"] = stock.held_now()
    breaches = stock.audit_rows(page, context["held"])
    for breach in breaches:
        observability.logger().error("inventory breach", extra={"breach": breach})
    return {"checked": len(page), "breaches": len(breaches), "examples": breaches}


def _judge_stock(total: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    orphans = stock.holds_without_rows(stock.held_now())
    for breach in orphans:
        observability.logger().error("inventory breach", extra={"breach": breach})
    breaches = int(total.get("breaches", 0)) + len(orphans)
    observability.count("InventoryBreaches", breaches)
    return {"checked": int(total.get("checked", 0)), "breaches": breaches,
            "examples": (orphans + list(total.get("examples", [])))[:10]}


def _visit_tiers(page: list[PointsBalance], context: dict[str, Any]) -> dict[str, Any]:
    counts = {"checked": 0, "upgraded": 0, "downgraded": 0}
    tier_review.review_page(page, context["moment"], counts)
    return counts


def _visit_identities(page: list[Identity], context: dict[str, Any]) -> dict[str, Any]:
    return {"checked": len(page), "moved": sum(lookup.rekey(identity) for identity in page)}


def _visit_expiry_index(page: list[PointsBalance], context: dict[str, Any]) -> dict[str, Any]:
    indexed = 0
    for balance in page:
        lots = balance.remaining_lots()
        if lots and (balance.next_expiry is None or balance.next_expiry > min(lots)):
            indexed += ledger.index_soonest_lot(balance)
    return {"checked": len(page), "indexed": indexed}


def _counts(total: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    return dict(total)


JOBS = {
    job.name: job
    for job in [
        WholeTableJob("ledger-proof", PointsBalance, lambda page, context: ledger_audit.prove_page(page),
                      _judge_ledger, segments=8, consistent=True),
        WholeTableJob("stock-audit", Stock, _visit_stock, _judge_stock, segments=4, consistent=True),
        WholeTableJob("tier-review-all", PointsBalance, _visit_tiers, _counts, segments=8, filter=_members_only),
        WholeTableJob("identity-rekey", Identity, _visit_identities, _counts, segments=4,
                      filter=lookup.under_earlier_keys),
        WholeTableJob("expiry-index", PointsBalance, _visit_expiry_index, _counts, segments=8,
                      filter=_members_only),
    ]
}


def job_named(name: str) -> WholeTableJob:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"no whole-table job {name!r}: one of {sorted(JOBS)}") from None
