"""The ledger's invariants, proven (nightly by `ledger-audit`, and by the tests).

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

A scan is not a snapshot: a difference seen while transfers are being written
is read again (balance, then the account's transfers, consistently) before it
counts as a breach.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.points.ledger import FROZEN
from chalicelib.points.models import SYSTEM_PREFIX, PointsBalance, PointsTransfer

__all__ = ["Breach", "account_breaches", "audit"]

_RECHECKS = 3
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


def _scan() -> tuple[dict[str, PointsBalance], dict[str, _Tally]]:
    balances = {balance.account_id: balance for balance in PointsBalance.scan(consistent_read=True)}
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for transfer in PointsTransfer.scan(consistent_read=True):
        tallies[transfer.account_id].add(transfer)
        if transfer.counterparty != "merge":
            tallies[f"{SYSTEM_PREFIX}{transfer.counterparty}"].available -= int(transfer.delta or 0)
        settlement = transfer.settlement()
        if settlement is not None:
            source, destination, points = settlement
            tallies[f"{SYSTEM_PREFIX}{source}"].available -= points
            tallies[f"{SYSTEM_PREFIX}{destination}"].available += points
    return balances, tallies


def _global_breaches(balances: dict[str, PointsBalance], tallies: dict[str, _Tally]) -> list[Breach]:
    """Sum over all accounts is zero; each system account mirrors the transfers booked to it;
    the frozen account holds what the unresolved holds hold."""
    breaches = []
    total = sum(int(b.available or 0) for b in balances.values())
    total_pending = sum(int(b.pending or 0) for b in balances.values())
    if total:
        breaches.append(Breach("*", "accounts_do_not_sum_to_zero", {"available": total}))
    if total_pending:
        breaches.append(Breach("*", "pending_does_not_sum_to_zero", {"pending": total_pending}))
    system: dict[str, int] = defaultdict(int)
    for account_id, balance in balances.items():
        if account_id.startswith(SYSTEM_PREFIX):
            system[f"{SYSTEM_PREFIX}{_system_account(account_id)}"] += int(balance.available or 0)
    mirrored = {name: tally.available for name, tally in tallies.items() if name.startswith(SYSTEM_PREFIX)}
    for name in sorted(set(system) | set(mirrored)):
        if system.get(name, 0) != mirrored.get(name, 0):
            breaches.append(Breach(name, "system_account_not_mirror_of_transfers",
                                   {"balance": system.get(name, 0), "transfers": mirrored.get(name, 0)}))
    frozen = f"{SYSTEM_PREFIX}{FROZEN}"
    unresolved = sum(
        points
        for account, tally in tallies.items()
        if not account.startswith(SYSTEM_PREFIX)
        for hold_id, points in tally.holds.items()
        if hold_id not in tally.resolved
    )
    if system.get(frozen, 0) != unresolved:
        breaches.append(Breach(frozen, "frozen_not_sum_of_unresolved_holds",
                               {"balance": system.get(frozen, 0), "holds": unresolved}))
    return breaches


def audit(accounts: Iterable[str] | None = None) -> dict[str, Any]:
    """`{checked, breaches, examples}`; each breach is logged as an error (an alarm).

    With `accounts`, only those member accounts are checked (no global sums).
    """
    from chalicelib.observability import logger

    breaches: list[Breach] = []
    if accounts is not None:
        members = sorted(set(accounts))
        suspects = members
    else:
        for attempt in range(_RECHECKS):
            balances, tallies = _scan()
            global_breaches = _global_breaches(balances, tallies)
            if not global_breaches:
                break
            time.sleep(_RECHECK_PAUSE)
        breaches.extend(global_breaches)
        members = sorted(
            account for account in set(balances) | set(tallies) if not account.startswith(SYSTEM_PREFIX)
        )
        suspects = [account for account in members if _compare(balances.get(account), tallies[account], account)]
    for account in suspects:
        breaches.extend(account_breaches(account))
    for breach in breaches:
        logger().error("points ledger breach", extra={"breach": breach.as_dict()})
    return {
        "checked": len(members),
        "breaches": len(breaches),
        "examples": [breach.as_dict() for breach in breaches[:_SHOWN]],
    }
