"""The ledger's invariants, proven: each day's accounts nightly (`ledger-audit`, `audit_day`),
every account weekly and on demand (the segmented `ledger-proof`, a page at a time).

For every member account:
  - available = the sum of its lots = the sum of its transfers' deltas;
  - each lot = what its transfers put in minus what they took out (a spend
    took what lies on the line from where it started);
  - the line is whole: it starts at or before `consumed` and reaches past it;
  - pending = the sum of its transfers' pending deltas;
  - version = the number of its transfers (no transfer without its balance change);
  - no balance, pending amount or lot below zero;
  - every transfer that resolves or returns a hold moves exactly the hold's points.
Over all accounts (members and the system accounts' shards) available and
pending each sum to zero, and each system account is the mirror of the member
transfers booked against it (a transfer's settlement between two system
accounts, such as a hold's post from `frozen` to `spent`, included). The
`frozen` account holds exactly the points of the holds not yet resolved (no
post or void names them).

A scan is not a snapshot: an account's difference seen while transfers are
being written is read again (balance, then the account's transfers,
consistently) before it counts as a breach. The sums over all accounts are
taken page by page while traffic runs, so the weekly proof runs at night.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chalicelib.points.ledger import FROZEN
from chalicelib.points.models import SYSTEM_PREFIX, PointsBalance, PointsTransfer, day_keys

__all__ = ["Breach", "account_breaches", "audit", "audit_day", "prove_page", "verdict"]

_RECHECKS = 3
# The day's accounts are read side by side: each is two round trips of waiting (its balance, its transfers).
_READERS = 16
_RECHECK_PAUSE = 0.05
_SHOWN = 20


@dataclass(frozen=True)
class Breach:
    account: str
    rule: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "rule": self.rule, **self.detail}


@dataclass
class _Tally:
    available: int = 0
    pending: int = 0
    count: int = 0
    lots: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    spends: dict[str, int] = field(default_factory=dict)  # spends that moved the cursor: id -> points
    holds: dict[str, int] = field(default_factory=dict)  # hold id -> points held
    resolved: set[str] = field(default_factory=set)  # what a post or void names (a hold or a pending earn)
    # What names a hold or a pending earn: (its id, transfer id, the points it took out of its counterparty).
    settling: list[tuple[str, str, int]] = field(default_factory=list)

    def add(self, transfer: PointsTransfer) -> None:
        delta = int(transfer.delta or 0)
        self.available += delta
        self.pending += int(transfer.pending_delta or 0)
        self.count += 1
        if transfer.kind == "hold":
            self.holds[transfer.transfer_id] = -delta
        if transfer.pending_id:
            if transfer.kind in ("post", "void"):
                self.resolved.add(transfer.pending_id)
            settlement = transfer.settlement()
            moved = delta + (settlement[2] if settlement and settlement[0] == transfer.counterparty else 0)
            self.settling.append((transfer.pending_id, transfer.transfer_id, moved))
        recorded = transfer.lot_amounts()
        if delta < 0 and not recorded:
            self.spends[transfer.transfer_id] = -delta
        sign = -1 if delta < 0 else 1
        for day, amount in recorded.items():
            self.lots[day] += sign * amount

    def expected_lots(self, balance: PointsBalance | None) -> tuple[dict[str, int], list[str]]:
        """Each lot as the transfers say it should be, and the spends whose start is not recorded."""
        lots = defaultdict(int, self.lots)
        unplaced = []
        for transfer_id, points in sorted(self.spends.items()):
            taken = balance.taken_by(transfer_id, points) if balance is not None else None
            if taken is None:
                unplaced.append(transfer_id)
                continue
            for day, amount in taken.items():
                lots[day] -= amount
        return {day: amount for day, amount in lots.items() if amount}, unplaced


def _compare(balance: PointsBalance | None, tally: _Tally, account: str) -> list[Breach]:
    breaches: list[Breach] = []
    available = int(balance.available or 0) if balance else 0
    pending = int(balance.pending or 0) if balance else 0
    version = int(balance.version or 0) if balance else 0
    lots = balance.remaining_lots() if balance else {}
    if available < 0:
        breaches.append(Breach(account, "negative_balance", {"available": available}))
    if pending < 0:
        breaches.append(Breach(account, "negative_pending", {"pending": pending}))
    if balance is not None:
        for day, amount in balance.lots.items():
            if amount < 0:
                breaches.append(Breach(account, "negative_lot", {"lot": day, "points": amount}))
        line_end = balance.start + sum(balance.lots.values())
        if not balance.start <= balance.cursor <= line_end:
            breaches.append(Breach(account, "consumed_off_the_line",
                                   {"origin": balance.start, "consumed": balance.cursor, "end": line_end}))
    if available != sum(lots.values()):
        breaches.append(Breach(account, "balance_not_sum_of_lots", {"available": available, "lots": sum(lots.values())}))
    if available != tally.available:
        breaches.append(Breach(account, "balance_not_sum_of_transfers", {"available": available, "transfers": tally.available}))
    if pending != tally.pending:
        breaches.append(Breach(account, "pending_not_sum_of_transfers", {"pending": pending, "transfers": tally.pending}))
    if version != tally.count:
        breaches.append(Breach(account, "transfer_without_balance_change", {"version": version, "transfers": tally.count}))
    expected_lots, unplaced = tally.expected_lots(balance)
    if unplaced:
        breaches.append(Breach(account, "spend_without_position", {"transfers": unplaced[:_SHOWN]}))
    actual_lots = {day: amount for day, amount in lots.items() if amount}
    if expected_lots != actual_lots:
        breaches.append(Breach(account, "lots_not_sum_of_transfers", {"lots": actual_lots, "transfers": expected_lots}))
    for hold_id, transfer_id, moved in tally.settling:
        if hold_id in tally.holds and moved != tally.holds[hold_id]:
            detail = {"hold": hold_id, "transfer": transfer_id, "held": tally.holds[hold_id], "moved": moved}
            breaches.append(Breach(account, "hold_settled_for_another_amount", detail))
    return breaches


def _check_account(account: str) -> list[Breach]:
    """One account, read consistently: its balance, then every transfer it has."""
    try:
        balance: PointsBalance | None = PointsBalance.get(account, consistent_read=True)
    except PointsBalance.DoesNotExist:
        balance = None
    tally = _Tally()
    for transfer in PointsTransfer.query(account, consistent_read=True):
        tally.add(transfer)
    return _compare(balance, tally, account)


def account_breaches(account: str) -> list[Breach]:
    """An account's breaches that persist across re-reads (a write in flight is not one)."""
    for attempt in range(_RECHECKS):
        breaches = _check_account(account)
        if not breaches:
            return []
        if attempt + 1 < _RECHECKS:
            time.sleep(_RECHECK_PAUSE)
    return breaches


def _system_account(shard_id: str) -> str:
    return shard_id[len(SYSTEM_PREFIX):].split("#", 1)[0]


def _logged(breaches: list[Breach]) -> list[Breach]:
    from chalicelib.observability import logger

    for breach in breaches:
        logger().error("points ledger breach", extra={"breach": breach.as_dict()})
    return breaches


def _report(checked: int, breaches: list[Breach], **more: Any) -> dict[str, Any]:
    return {"checked": checked, "breaches": len(breaches),
            "examples": [breach.as_dict() for breach in breaches[:_SHOWN]], **more}


def audit(accounts: Iterable[str]) -> dict[str, Any]:
    """These member accounts' invariants: `{checked, breaches, examples}`; each breach is logged (an alarm)."""
    members = sorted(set(accounts))
    breaches = _logged([breach for account in members for breach in account_breaches(account)])
    return _report(len(members), breaches)


def audit_day(day: dt.date) -> dict[str, Any]:
    """The incremental proof of a Shanghai day: its transfers, found by the `day` index.

    The merge legs of the day sum to zero (the other transfers are double
    entries by construction), and every account the day touched holds
    exactly what its transfers say (balance, lots, pending, one version per
    transfer), read consistently. The weekly proof covers every account.
    """
    touched: set[str] = set()
    transfers = merged = 0
    for key in day_keys(day):
        for transfer in PointsTransfer.on_day.query(key):
            transfers += 1
            touched.add(transfer.account_id)
            if transfer.counterparty == "merge":
                merged += int(transfer.delta or 0)
    breaches = [Breach("sys:merge", "merges_do_not_sum_to_zero", {"day": day.isoformat(), "points": merged})] \
        if merged else []
    with ThreadPoolExecutor(max_workers=_READERS) as readers:
        breaches += [breach for found in readers.map(account_breaches, sorted(touched)) for breach in found]
    return _report(len(touched), _logged(breaches), day=day.isoformat(), transfers=transfers)


# --- The full proof, a page of balances at a time (the segmented `ledger-proof`) ----------

def prove_page(balances: list[PointsBalance]) -> dict[str, Any]:
    """A page of the balances table: each member account checked against its transfers, and the sums
    the verdict over all accounts needs (`combine` adds pages up; `verdict` judges the total)."""
    tally: dict[str, Any] = {"checked": 0, "available": 0, "pending": 0, "unresolved": 0,
                             "system": defaultdict(int), "mirrored": defaultdict(int), "breaches": 0, "examples": []}
    for balance in balances:
        tally["available"] += int(balance.available or 0)
        tally["pending"] += int(balance.pending or 0)
        if balance.account_id.startswith(SYSTEM_PREFIX):
            tally["system"][f"{SYSTEM_PREFIX}{_system_account(balance.account_id)}"] += int(balance.available or 0)
            continue
        tally["checked"] += 1
        account = _Tally()
        for transfer in PointsTransfer.query(balance.account_id, consistent_read=True):
            account.add(transfer)
            _mirror(transfer, tally["mirrored"])
        if _compare(balance, account, balance.account_id):
            found = _logged(account_breaches(balance.account_id))
            tally["breaches"] += len(found)
            tally["examples"] = (tally["examples"] + [breach.as_dict() for breach in found])[:_SHOWN]
        tally["unresolved"] += sum(points for hold_id, points in account.holds.items()
                                   if hold_id not in account.resolved)
    return tally


def _mirror(transfer: PointsTransfer, mirrored: dict[str, int]) -> None:
    """What the transfer booked to the system accounts, by account."""
    if transfer.counterparty != "merge":
        mirrored[f"{SYSTEM_PREFIX}{transfer.counterparty}"] -= int(transfer.delta or 0)
    settlement = transfer.settlement()
    if settlement is not None:
        source, destination, points = settlement
        mirrored[f"{SYSTEM_PREFIX}{source}"] -= points
        mirrored[f"{SYSTEM_PREFIX}{destination}"] += points


def verdict(total: dict[str, Any]) -> dict[str, Any]:
    """The proof over all accounts, from every page's tally added up; each breach logged."""
    global_breaches = []
    if total.get("available"):
        global_breaches.append(Breach("*", "accounts_do_not_sum_to_zero", {"available": total["available"]}))
    if total.get("pending"):
        global_breaches.append(Breach("*", "pending_does_not_sum_to_zero", {"pending": total["pending"]}))
    system, mirrored = total.get("system", {}), total.get("mirrored", {})
    for name in sorted(set(system) | set(mirrored)):
        if system.get(name, 0) != mirrored.get(name, 0):
            global_breaches.append(Breach(name, "system_account_not_mirror_of_transfers",
                                          {"balance": system.get(name, 0), "transfers": mirrored.get(name, 0)}))
    frozen = f"{SYSTEM_PREFIX}{FROZEN}"
    if system.get(frozen, 0) != total.get("unresolved", 0):
        global_breaches.append(Breach(frozen, "frozen_not_sum_of_unresolved_holds",
                                      {"balance": system.get(frozen, 0), "holds": total.get("unresolved", 0)}))
    _logged(global_breaches)
    examples = [breach.as_dict() for breach in global_breaches] + list(total.get("examples", []))
    return {"checked": int(total.get("checked", 0)), "breaches": len(global_breaches) + int(total.get("breaches", 0)),
            "examples": examples[:_SHOWN]}
