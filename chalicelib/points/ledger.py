"""The ledger: every movement is one immutable transfer, written in one TransactWriteItems.

A movement writes, in a single round trip (labels as the composer names them):

    .transfer     Put     attribute_not_exists: the natural key applies it once
    .balance      Update  available >= taken, pending >= released; a credit
                          extends the line of lots (newest_lot <= its lot), a
                          spend moves `consumed` forward (models.py)
    .system       Update  the other side of the double entry (sums to zero)
    .system.<account>     a settlement's other system account (a hold's post:
                          frozen -> spent, each its own shard)
    .cap, .activity       when an earning rule is capped or counts toward tiers

Earning and spending read nothing: a credit to the newest lot (or a later
one) and a spend across any number of lots are each one write whose
conditions decide. What rewrites the line (a credit to an earlier lot, an
expiry, a reversal, a merge) plans from the balance it read and is
conditioned on the balance's version. A refused transaction answers with the
items that said no (`transact`): an existing transfer means a replay, which
answers as the first one did; a balance is what the next plan starts from.

A movement can also join a transaction another use composes (`join`), next
to other domains' items, planned again from what a refusal showed.

An unpaid order's points are a hold (a spend to `frozen`, joining the order's
transaction), posted in one write with no read (a condition check on the hold
instead), or voided / returned by a read and a write (see "Holds" below).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action

from chalicelib import clock, db, transact
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.points.config import points_config
from chalicelib.points.errors import (
    HoldMismatchError,
    InsufficientPointsError,
    LedgerBusyError,
    PendingResolvedError,
    PointsCapReachedError,
    TransferConflictError,
)
from chalicelib.points.models import (
    ACCOUNT_SHARDS,
    SYSTEM_PREFIX,
    PointsActivity,
    PointsBalance,
    PointsCap,
    PointsTransfer,
    account_shard,
    account_shards,
    day_key,
    line_attribute,
    lot_attribute,
    month_key,
    position_attribute,
)
from chalicelib.transact import Transaction, TransactionRefusedError

__all__ = [
    "ISSUED",
    "SPENT",
    "FROZEN",
    "EXPIRED",
    "CLAWBACK",
    "ADJUSTMENT",
    "MERGE",
    "MAX_POINTS",
    "AlreadyAppliedError",
    "Participant",
    "Plan",
    "Movement",
    "Receipt",
    "PreparedSpend",
    "PreparedMerge",
    "read_balance",
    "balances_due_to_expire",
    "balances_due_for_review",
    "across_shards",
    "index_soonest_lot",
    "mark_for_review",
    "remember",
    "recall",
    "forget",
    "moved_on",
    "find_transfer",
    "lots_taken",
    "system_shard",
    "default_expiry",
    "version_is",
    "join",
    "apply",
    "credit",
    "earning",
    "earn",
    "prepare_spend",
    "spend",
    "resolve_id",
    "return_id",
    "prepare_hold",
    "post_hold",
    "void_hold",
    "return_hold",
    "earn_pending",
    "post_pending",
    "void_pending",
    "expire_lot",
    "reverse",
    "clawback",
    "prepare_merge",
    "add_merge",
    "merge",
]

ISSUED, SPENT, EXPIRED, CLAWBACK, ADJUSTMENT, MERGE = "issued", "spent", "expired", "clawback", "adjustment", "merge"
# Points an unpaid order holds: spent from the member's lots, not yet spent for good.
FROZEN = "frozen"
MAX_POINTS = 100_000_000

# Another domain's items joining a movement's transaction (say, a check that the member is live).
Participant = Callable[[Transaction], Any]


class AlreadyAppliedError(Exception):
    """The transfer exists: the effect it names happened before (a replay)."""

    def __init__(self, transfer: PointsTransfer) -> None:
        super().__init__(transfer.transfer_id)
        self.transfer = transfer


def system_shard(account: str, transfer_id: str) -> str:
    """The shard of a system account a transfer books its side to (stable per transfer)."""
    shards = points_config().system_shards
    return f"{SYSTEM_PREFIX}{account}#{zlib.crc32(transfer_id.encode()) % shards:02d}"


def default_expiry(moment: dt.datetime | None = None) -> str:
    """The expiry day (Shanghai) of points earned at `moment`, by the configured policy."""
    return points_config().expiry.expires_on(clock.shanghai_date(moment)).isoformat()


# --- What this container has seen of balances ----------------------------------------
# A plan that needs the balance (a check-in's streak) starts from what this
# container last saw of it, moved on by what it wrote since; the version
# condition makes a stale one fail, and the failure answers with the current
# balance. Only the version, the amounts and the streak are kept up to date.

_KNOWN_FOR = 300.0
_KNOWN_MAX = 4096
_known: OrderedDict[str, tuple[float, PointsBalance]] = OrderedDict()
_known_lock = threading.Lock()


def remember(balance: PointsBalance) -> PointsBalance:
    with _known_lock:
        _known[balance.account_id] = (time.monotonic(), balance)
        _known.move_to_end(balance.account_id)
        while len(_known) > _KNOWN_MAX:
            _known.popitem(last=False)
    return balance


def recall(member_id: str) -> PointsBalance | None:
    with _known_lock:
        seen = _known.get(member_id)
    if seen is None or time.monotonic() - seen[0] > _KNOWN_FOR:
        return None
    return seen[1]


def moved_on(balance: PointsBalance, movement: Movement) -> PointsBalance:
    """The balance as `movement` leaves it: its version, amounts and streak (not its lots)."""
    after = PointsBalance.empty(balance.account_id)
    after.version = int(balance.version or 0) + 1
    after.available = int(balance.available or 0) + movement.delta
    after.pending = int(balance.pending or 0) + movement.pending_delta
    after.last_checkin, after.streak = balance.last_checkin, balance.streak
    return after


def _advance(movement: Movement) -> None:
    """What this container knows of a balance, moved on by a movement it just wrote."""
    known = recall(movement.member_id)
    if known is not None:
        remember(moved_on(known, movement))


def forget(member_id: str) -> None:
    with _known_lock:
        _known.pop(member_id, None)


def read_balance(member_id: str) -> PointsBalance:
    try:
        balance = PointsBalance.get(member_id, consistent_read=True)
    except DoesNotExist:
        balance = PointsBalance.empty(member_id)
    return remember(balance)


_READ_PAGE = 100  # balances read in one round trip


def _balances(account_ids: Iterable[str]) -> Iterator[list[PointsBalance]]:
    """The balances of these accounts, read consistently, a page at a time."""
    found = iter(account_ids)
    while page := list(islice(found, _READ_PAGE)):
        yield [balance for balance in db.batch_get([(PointsBalance, account) for account in page]) if balance]


def balances_due_to_expire(run_day: str, shard: str) -> Iterator[PointsBalance]:
    """The balances of one `expiry-due` shard whose soonest lot's day is before `run_day`."""
    accounts = (entry.account_id for entry in PointsBalance.by_expiry.query(shard, PointsBalance.next_expiry < run_day))
    for page in _balances(accounts):
        yield from page


def balances_due_for_review(shard: str) -> Iterator[list[PointsBalance]]:
    """Pages of one `review-due` shard's balances: those whose figures moved since their last review."""
    yield from _balances(entry.account_id for entry in PointsBalance.due_for_review.query(shard))


def across_shards(work: Callable[[str], dict[str, int]]) -> dict[str, int]:
    """`work(shard)` over every shard of the due indexes side by side; its counts added up.

    A due index names its work in ACCOUNT_SHARDS partitions, so a job works
    through them at once: ten million members' due work fits one Lambda's time.
    """
    with ThreadPoolExecutor(max_workers=ACCOUNT_SHARDS) as pool:
        counts = list(pool.map(work, account_shards()))
    return {name: sum(count.get(name, 0) for count in counts) for name in counts[0]}


def index_soonest_lot(balance: PointsBalance) -> bool:
    """Index the balance under its soonest lot as read (its indexed day was early); False if it moved since."""
    lots = balance.remaining_lots()
    try:
        balance.update(_soonest_lot_is(balance.account_id, min(lots) if lots else None),
                       condition=version_is(int(balance.version or 0)))
    except UpdateError as exc:
        if transact.condition_failed(exc):
            return False
        raise
    return True


def mark_for_review(member_ids: Iterable[str]) -> int:
    """Mark these members' balances as due for a tier review; how many have a balance."""
    marked = 0
    for member_id in member_ids:
        try:
            PointsBalance(member_id).update([PointsBalance.review_due.set(account_shard(member_id))],
                                            condition=PointsBalance.account_id.exists())
        except UpdateError as exc:
            if transact.condition_failed(exc):
                continue
            raise
        marked += 1
    return marked


def find_transfer(member_id: str, transfer_id: str) -> PointsTransfer | None:
    try:
        return PointsTransfer.get(member_id, transfer_id, consistent_read=True)
    except DoesNotExist:
        return None


def lots_taken(transfer: PointsTransfer, balance: PointsBalance) -> dict[str, int]:
    """What a debit took from each lot: recorded on the transfer, or by where a spend started."""
    recorded = transfer.lot_amounts()
    if recorded or int(transfer.delta or 0) >= 0:
        return recorded
    return balance.taken_by(transfer.transfer_id, -int(transfer.delta)) or {}


def _check_points(points: int, name: str = "points") -> None:
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise InvalidRequestError(name, f"must be an integer from 1 to {MAX_POINTS}")


def _and(left: Condition | None, right: Condition) -> Condition:
    return right if left is None else left & right


def version_is(version: int) -> Condition:
    same = PointsBalance.version == version
    return same | PointsBalance.version.does_not_exist() if not version else same


@dataclass(frozen=True)
class Receipt:
    """What a transfer did; `applied` is False when it was a replay of an earlier one."""

    member_id: str
    transfer_id: str
    kind: str
    delta: int
    pending_delta: int
    lots: dict[str, int]
    reason: str
    reference: str | None
    expires_on: str | None
    created_at: dt.datetime
    applied: bool

    @classmethod
    def of(cls, transfer: PointsTransfer, applied: bool) -> Receipt:
        return cls(
            member_id=transfer.account_id,
            transfer_id=transfer.transfer_id,
            kind=transfer.kind,
            delta=int(transfer.delta),
            pending_delta=int(transfer.pending_delta or 0),
            lots=transfer.lot_amounts(),
            reason=transfer.reason,
            reference=transfer.reference,
            expires_on=transfer.expires_on,
            created_at=transfer.created_at,
            applied=applied,
        )


def _lay_anew(balance: PointsBalance, add: dict[str, int], take: dict[str, int]) -> list[Action]:
    """Actions laying the line anew from `consumed`: what each lot holds, plus `add`, minus `take`."""
    lots = balance.remaining_lots()
    for day, amount in take.items():
        if lots.get(day, 0) < amount:
            raise InsufficientPointsError()
        lots[day] -= amount
    for day, amount in add.items():
        lots[day] = lots.get(day, 0) + amount
    lots = {day: amount for day, amount in lots.items() if amount}
    actions: list[Action] = []
    for day in sorted(set(balance.lots) | set(lots)):
        lot = Path([lot_attribute(day)])
        actions.append(lot.set(lots[day]) if day in lots else lot.remove())
    cursor = balance.cursor
    if cursor > balance.start and any(begin >= balance.start for begin in balance.positions.values()):
        # Spends recorded on the old line say what they took by it: keep it.
        for day, amount in balance.lots.items():
            actions.append(Path([line_attribute(balance.start, day)]).set(amount))
    actions.append(PointsBalance.origin.set(cursor))
    actions.append(PointsBalance.newest_lot.set(max(lots)) if lots else PointsBalance.newest_lot.remove())
    actions += _soonest_lot_is(balance.account_id, min(lots) if lots else None)
    return actions


def _soonest_lot_is(account_id: str, day: str | None) -> list[Action]:
    """Index the balance under its soonest lot's day (the expiry job's `expiry-due`), or under none."""
    if day is None:
        return [PointsBalance.next_expiry.remove()]
    return [PointsBalance.next_expiry.set(day), PointsBalance.expiry_shard.set(account_shard(account_id))]


@dataclass
class Movement:
    """One transfer and everything it changes, added to a transaction with its conditions.

    A credit extends the line (`add_lots`); a spend (`spends`) moves the
    cursor; with `lay_anew` (the balance as read), the line is laid anew
    instead, `take_lots` taken out of it, on condition nothing moved since.
    With `settles`, points also move between two system accounts (each side
    its own shard item), recorded on the transfer for the audit.
    Its items are labelled `<label>.transfer`, `<label>.balance`, and so on.
    """

    member_id: str
    transfer_id: str
    counterparty: str
    reason: str
    reference: str | None = None
    kind: str = "posted"
    delta: int = 0
    pending_delta: int = 0
    add_lots: dict[str, int] = field(default_factory=dict)
    take_lots: dict[str, int] = field(default_factory=dict)
    spends: bool = False
    lay_anew: PointsBalance | None = None
    expect_version: int | None = None
    expires_on: str | None = None
    pending_id: str | None = None
    spend_fen: int | None = None
    activity_month: str | None = None
    actor: str | None = None
    created_at: dt.datetime = field(default_factory=clock.now)
    balance_condition: Condition | None = None
    balance_actions: list[Action] = field(default_factory=list)
    cap: tuple[str, int] | None = None  # (cap key, times allowed)
    activity: tuple[str, int, int] | None = None  # (month, spend fen, actions)
    book_system: bool = True
    # Points moved between two system accounts in the same write: (from, to, points).
    settles: tuple[str, str, int] | None = None
    # The transfer whose shard the counterparty's side (and a settlement's source) is booked to:
    # a hold's resolution books back to the shard the hold booked, so no shard goes below zero.
    book_as: str | None = None
    shortfall: int | None = None
    # What a refused balance means, when it can mean only one thing (a spend: too few points).
    explain_balance: transact.Explain | None = None
    # A merge plans again on a replay (it then finds nothing left to move) instead of answering it.
    explain_replay: bool = True
    also: list[Participant] = field(default_factory=list)
    label: str = "points"

    def transfer(self) -> PointsTransfer:
        lots = {**self.add_lots, **self.take_lots}
        return PointsTransfer(
            self.member_id,
            self.transfer_id,
            counterparty=self.counterparty,
            kind=self.kind,
            delta=self.delta,
            pending_delta=self.pending_delta,
            lots=lots or None,
            reason=self.reason,
            reference=self.reference,
            expires_on=self.expires_on,
            pending_id=self.pending_id,
            spend_fen=self.spend_fen,
            activity_month=self.activity_month,
            settled=self.settles[2] if self.settles else None,
            settled_from=self.settles[0] if self.settles else None,
            settled_to=self.settles[1] if self.settles else None,
            shortfall=self.shortfall,
            actor=self.actor,
            created_at=self.created_at,
            created_day=day_key(clock.shanghai_date(self.created_at), self.member_id, self.transfer_id),
        )

    def _books_system(self) -> bool:
        return self.book_system and bool(self.delta or self.pending_delta)

    def _system_sides(self) -> dict[str, tuple[str, int, int]]:
        """Shard id -> (its account, available, pending) this movement adds to it; nothing that adds nothing."""
        sides: dict[str, tuple[str, int, int]] = {}

        def book(account: str, by: str, available: int, pending: int = 0) -> None:
            shard = system_shard(account, by)
            _, had_available, had_pending = sides.get(shard, (account, 0, 0))
            sides[shard] = (account, had_available + available, had_pending + pending)

        if self._books_system():
            book(self.counterparty, self.book_as or self.transfer_id, -self.delta, -self.pending_delta)
        if self.settles is not None:
            source, destination, points = self.settles
            book(source, self.book_as or self.transfer_id, -points)
            book(destination, self.transfer_id, points)
        return {shard: side for shard, side in sides.items() if side[1] or side[2]}

    @property
    def item_count(self) -> int:
        own = 2 + len(self._system_sides()) + int(self.cap is not None) + int(self.activity is not None)
        return own + len(self.also)

    def _line(self) -> tuple[list[Action], Condition | None]:
        if self.lay_anew is not None:
            return _lay_anew(self.lay_anew, self.add_lots, self.take_lots), version_is(int(self.lay_anew.version or 0))
        actions: list[Action] = []
        condition: Condition | None = None
        if self.add_lots:
            days = sorted(self.add_lots)
            actions += [Path([lot_attribute(day)]).add(self.add_lots[day]) for day in days]
            # Only the newest lot (or a later one) extends the line without moving what lies behind.
            condition = PointsBalance.newest_lot.does_not_exist() | (PointsBalance.newest_lot <= days[0])
            actions.append(PointsBalance.newest_lot.set(days[-1]))
            # No lot on the line is later than this one: a soonest day already indexed stays (early at worst).
            actions.append(PointsBalance.next_expiry.set(PointsBalance.next_expiry | days[0]))
            actions.append(PointsBalance.expiry_shard.set(account_shard(self.member_id)))
        if self.spends:
            actions.append(Path([position_attribute(self.transfer_id)]).set(PointsBalance.consumed | 0))
            actions.append(PointsBalance.consumed.add(-self.delta))
        return actions, condition

    def add_to(self, txn: Transaction) -> None:
        # Another domain's checks first: their refusal (no such member) outranks what the ledger would say.
        for add in self.also:
            add(txn)
        # The transfer's id is the effect's natural key: a replay finds it and changes nothing.
        transfer_is_new = PointsTransfer.transfer_id.does_not_exist()
        txn.save(self.transfer(), transfer_is_new, label=f"{self.label}.transfer",
                 explain=_replay if self.explain_replay else None)

        line_actions, line_condition = self._line()
        actions: list[Action] = [PointsBalance.version.add(1), *self.balance_actions, *line_actions]
        if self.activity is not None:
            # The trailing figures moved: the member awaits a tier review.
            actions.append(PointsBalance.review_due.set(account_shard(self.member_id)))
        condition = self.balance_condition
        if line_condition is not None:
            condition = _and(condition, line_condition)
        if self.expect_version is not None and self.lay_anew is None:
            condition = _and(condition, version_is(self.expect_version))
        if self.delta:
            actions.append(PointsBalance.available.add(self.delta))
        if self.delta < 0:
            condition = _and(condition, PointsBalance.available >= -self.delta)
        if self.pending_delta:
            actions.append(PointsBalance.pending.add(self.pending_delta))
        if self.pending_delta < 0:
            condition = _and(condition, PointsBalance.pending >= -self.pending_delta)
        txn.update(PointsBalance(self.member_id), actions, condition,
                   label=f"{self.label}.balance", explain=self.explain_balance)

        # The other side of the double entry (and of a settlement between system accounts).
        for number, (shard, (account, available, pending)) in enumerate(self._system_sides().items()):
            other_side: list[Action] = []
            if available:
                other_side.append(PointsBalance.available.add(available))
            if pending:
                other_side.append(PointsBalance.pending.add(pending))
            txn.update(PointsBalance(shard), other_side,
                       label=f"{self.label}.system" if number == 0 else f"{self.label}.system.{account}")

        if self.cap is not None:
            key, allowed = self.cap
            under_cap = PointsCap.count.does_not_exist() | (PointsCap.count < allowed)
            expires = self.created_at + dt.timedelta(days=3)
            txn.update(PointsCap(key), [PointsCap.count.add(1), PointsCap.expires.set(expires)], under_cap,
                       label=f"{self.label}.cap", explain=lambda old: PointsCapReachedError())

        if self.activity is not None:
            month, spend_fen, count = self.activity
            tally: list[Action] = []
            if spend_fen:
                tally.append(PointsActivity.spend_fen.add(spend_fen))
            if count:
                tally.append(PointsActivity.actions.add(count))
            tally.append(PointsActivity.month_shard.set(month_key(month, self.member_id)))
            txn.update(PointsActivity(self.member_id, month), tally, label=f"{self.label}.activity")

    def receipt(self) -> Receipt:
        return Receipt.of(self.transfer(), applied=True)


def _replay(existing: PointsTransfer) -> Exception:
    return AlreadyAppliedError(existing)


def _short_of(points: int) -> transact.Explain:
    """A spend's refused balance: too few points (a balance that did not exist had none)."""
    return lambda old: InsufficientPointsError() if int(getattr(old, "available", 0) or 0) < points else None


# --- Committing ------------------------------------------------------------------

Plan = Callable[[PointsBalance | None], Movement]


def _seen(refusal: TransactionRefusedError | None, label: str, member_id: str) -> PointsBalance | None:
    """The balance a refused attempt answered with (None before any refusal, or if it was not refused)."""
    if refusal is None or not refusal.refused(f"{label}.balance"):
        return None
    balance = refusal.item(f"{label}.balance")
    return remember(balance) if balance is not None else PointsBalance.empty(member_id)


def join(txn: Transaction, member_id: str, plan: Plan, *, label: str = "points") -> Movement:
    """Add a planned movement to `txn`, planned from the balance a refusal of it showed, if one did.

    The caller composes the transaction (`transact.write(..., replan=True)`);
    an existing transfer is answered by raising AlreadyAppliedError from it.
    """
    movement = plan(_seen(txn.previous_refusal, label, member_id))
    movement.label = label
    movement.add_to(txn)
    return movement


def _replayed(existing: PointsTransfer, wanted: Movement, strict: bool) -> Receipt:
    """An existing transfer answers a retry; one made for another movement is a conflict.

    `strict`: the caller chose the amount, so a retry must ask for the same one.
    """
    if existing.kind != wanted.kind:
        raise TransferConflictError()
    if strict and (int(existing.delta) != wanted.delta or int(existing.pending_delta or 0) != wanted.pending_delta):
        raise TransferConflictError()
    return Receipt.of(existing, applied=False)


def apply(member_id: str, plan: Plan, *, strict: bool = True) -> Receipt:
    """Write a planned movement; plan again from what a refusal answered, retry when busy.

    `plan` is given the balance a refused attempt answered with (None at
    first) and may raise (e.g. InsufficientPointsError) to give the answer.
    """
    planned: list[Movement] = []

    def build(txn: Transaction) -> Movement:
        planned.append(join(txn, member_id, plan))
        return planned[-1]

    try:
        movement = transact.write(build, busy=LedgerBusyError, replan=True)
    except AlreadyAppliedError as replay:
        return _replayed(replay.transfer, planned[-1], strict)
    _advance(movement)
    return movement.receipt()


# --- Earning ----------------------------------------------------------------------

def credit(
    seen: PointsBalance | None, member_id: str, transfer_id: str, counterparty: str, reason: str,
    reference: str | None, lots: dict[str, int], **details: Any,
) -> Movement:
    """A movement crediting `lots`: extending the line, or laying it anew if a refusal showed it must."""
    movement = Movement(member_id, transfer_id, counterparty, reason, reference, add_lots=lots, **details)
    newest = seen.newest_lot if seen is not None else None
    if newest is not None and lots and min(lots) < newest:
        movement.lay_anew = seen
    return movement


def earning(
    member_id: str,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str | None = None,
    *,
    counterparty: str = ISSUED,
    expires_on: str | None = None,
    cap: tuple[str, int] | None = None,
    activity: tuple[str, int, int] | None = None,
    balance_actions: list[Action] | None = None,
    actor: str | None = None,
    also: list[Participant] | None = None,
    at: dt.datetime | None = None,
) -> Plan:
    """The plan of a credit to the lot of the points' expiry day (by default, as earned `at`).

    `also` adds another domain's items to the same transaction; each explains its own refusal.
    """
    _check_points(points)
    created_at = at or clock.now()
    lot = expires_on or default_expiry(created_at)

    def plan(seen: PointsBalance | None) -> Movement:
        return credit(
            seen, member_id, transfer_id, counterparty, reason, reference, {lot: points},
            delta=points, expires_on=lot, created_at=created_at,
            cap=cap, activity=activity, actor=actor, balance_actions=list(balance_actions or []),
            activity_month=activity[0] if activity else None, also=list(also or []),
        )

    return plan


def earn(member_id: str, points: int, transfer_id: str, reason: str, reference: str | None = None,
         **details: Any) -> Receipt:
    """Credit points (`earning` says how): one round trip, no read."""
    return apply(member_id, earning(member_id, points, transfer_id, reason, reference, **details))


# --- Spending ---------------------------------------------------------------------

@dataclass
class PreparedSpend:
    """A spend to be written inside a transaction the caller composes; it reads nothing.

        spend = points.prepare_spend(member_id, 300, f"exchange#{claim_id}", "exchange", campaign_id)
        transact.write(lambda txn: (spend.add_to(txn), ...))  # the caller's own items

    A refusal of its balance is explained as InsufficientPointsError; an
    existing transfer raises AlreadyAppliedError.
    """

    movement: Movement

    @property
    def member_id(self) -> str:
        return self.movement.member_id

    @property
    def transfer_id(self) -> str:
        return self.movement.transfer_id

    @property
    def points(self) -> int:
        return -self.movement.delta

    @property
    def item_count(self) -> int:
        return self.movement.item_count

    def add_to(self, txn: Transaction) -> None:
        self.movement.add_to(txn)

    def receipt(self) -> Receipt:
        return self.movement.receipt()


def _spend_movement(
    member_id: str, points: int, transfer_id: str, reason: str, reference: str | None,
    counterparty: str, actor: str | None, kind: str = "posted",
) -> Movement:
    return Movement(
        member_id, transfer_id, counterparty, reason, reference, kind=kind, delta=-points, spends=True, actor=actor,
    )


def prepare_spend(
    member_id: str,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str,
    *,
    counterparty: str = SPENT,
    actor: str | None = None,
    kind: str = "posted",
) -> PreparedSpend:
    _check_points(points)
    movement = _spend_movement(member_id, points, transfer_id, reason, reference, counterparty, actor, kind)
    movement.explain_balance = _short_of(points)
    return PreparedSpend(movement)


def spend(
    member_id: str,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str | None = None,
    *,
    counterparty: str = SPENT,
    actor: str | None = None,
    also: list[Participant] | None = None,
) -> Receipt:
    """Take points, soonest-expiring lots first, however many that crosses: one write, no read.

    `also` adds another domain's items to the same transaction, as for `earning`.
    """
    _check_points(points)

    def plan(seen: PointsBalance | None) -> Movement:
        movement = _spend_movement(member_id, points, transfer_id, reason, reference, counterparty, actor)
        movement.explain_balance = _short_of(points)
        movement.also = list(also or [])
        return movement

    return apply(member_id, plan)


# --- Pending (two-phase) -----------------------------------------------------------

def _month(moment: dt.datetime) -> str:
    return clock.shanghai_date(moment).strftime("%Y-%m")


def earn_pending(
    member_id: str,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str | None = None,
    *,
    expires_on: str | None = None,
    spend_fen: int | None = None,
) -> Receipt:
    """Points held pending (not spendable) until posted or voided; one round trip.

    `spend_fen` (an order's paid amount) counts toward tiers from now, and is
    taken back if the pending points are voided.
    """
    _check_points(points)
    created_at = clock.now()
    month = _month(created_at)
    activity = (month, spend_fen, 1) if spend_fen else None
    tier_actions = (
        [PointsBalance.tier_spend_fen.add(spend_fen), PointsBalance.tier_activity.add(1)] if spend_fen else []
    )

    def plan(seen: PointsBalance | None) -> Movement:
        return Movement(
            member_id, transfer_id, ISSUED, reason, reference, kind="pending", pending_delta=points,
            expires_on=expires_on or default_expiry(created_at), created_at=created_at,
            spend_fen=spend_fen, activity_month=month if spend_fen else None, activity=activity,
            balance_actions=tier_actions,
        )

    return apply(member_id, plan)


def _resolution(member_id: str, pending_id: str, kind: str) -> Receipt:
    pending = find_transfer(member_id, pending_id)
    if pending is None or pending.kind != "pending":
        raise NotFoundError("no such pending points")
    amount = int(pending.pending_delta)
    resolve_id = f"{pending_id}#resolve"
    lot = pending.expires_on or default_expiry()

    def plan(seen: PointsBalance | None) -> Movement:
        details: dict[str, Any] = dict(
            kind=kind, pending_delta=-amount, pending_id=pending_id, expires_on=pending.expires_on,
        )
        if kind == "post":
            return credit(seen, member_id, resolve_id, pending.counterparty, pending.reason, pending.reference,
                          {lot: amount}, delta=amount, **details)
        movement = Movement(member_id, resolve_id, pending.counterparty, pending.reason, pending.reference, **details)
        if pending.spend_fen:
            movement.spend_fen = -int(pending.spend_fen)
            movement.activity_month = pending.activity_month
            movement.activity = (pending.activity_month or _month(pending.created_at), -int(pending.spend_fen), -1)
            movement.balance_actions = [
                PointsBalance.tier_spend_fen.add(-int(pending.spend_fen)),
                PointsBalance.tier_activity.add(-1),
            ]
        return movement

    try:
        return apply(member_id, plan, strict=False)
    except TransferConflictError as exc:
        raise PendingResolvedError() from exc


def post_pending(member_id: str, pending_id: str) -> Receipt:
    """The pending points become a lot (e.g. the order's return window closed)."""
    return _resolution(member_id, pending_id, "post")


def void_pending(member_id: str, pending_id: str) -> Receipt:
    """The pending points are released unposted (e.g. the order was refunded)."""
    return _resolution(member_id, pending_id, "void")


# --- Holds: a spend frozen until it is posted, voided or returned ----------------------
# A hold (`<hold>`, kind `hold`) is a spend to the `frozen` account: it moves
# `consumed` like any spend, so its start on the line says which lots it took.
# It is resolved once, by `<hold>#resolve`: a post settles the points from
# `frozen` to `spent` (the member's points are gone already: delta 0); a void
# gives them back to their lots. A posted hold can be returned
# (`<hold>#return`), from `spent` back to its lots.
#
# Lapsed lots: what a void or a return gives back to a lot whose day ended
# before today (Shanghai) goes to the `expired` account instead, in the same
# write (the transfer's settlement): as if the points had never been held,
# when the expiry job would have taken them. Nothing expired is ever
# spendable again, and nothing held lives longer than its lot.


def resolve_id(hold_id: str) -> str:
    """The transfer that resolves a hold, post or void: one of them, once."""
    return f"{hold_id}#resolve"


def return_id(hold_id: str) -> str:
    """The transfer that gives a posted hold's points back."""
    return f"{hold_id}#return"


def prepare_hold(member_id: str, points: int, hold_id: str, reason: str, reference: str) -> PreparedSpend:
    """A hold of `points` for the caller's transaction (soonest-expiring lots first); it reads nothing.

    As `prepare_spend`: a short balance explains as InsufficientPointsError, an
    existing hold raises AlreadyAppliedError.
    """
    return prepare_spend(member_id, points, hold_id, reason, reference, counterparty=FROZEN, kind="hold")


def _hold_is(member_id: str, hold_id: str, points: int) -> Participant:
    """A check, in the write, that the hold exists and is for `points` (holds never change)."""

    def explain(old: PointsTransfer | None) -> Exception:
        if old is None or old.kind != "hold":
            return NotFoundError("no such points hold")
        return HoldMismatchError(f"the points hold is for {-int(old.delta)} points, not {points}")

    def add(txn: Transaction) -> None:
        exists = PointsTransfer.transfer_id.exists() & (PointsTransfer.kind == "hold")
        txn.condition_check(PointsTransfer, member_id, hold_id, exists & (PointsTransfer.delta == -points),
                            label="points.hold", explain=explain)

    return add


def post_hold(member_id: str, hold_id: str, points: int, reason: str, reference: str | None = None) -> Receipt:
    """The held points are spent for good: one write, no read (the caller knows `points`).

    It writes `<hold>#resolve` (kind `post`, delta 0), moves `points` from
    `frozen` to `spent` and counts a transfer on the balance, on condition the
    hold exists for exactly `points` (else NotFoundError or HoldMismatchError).
    A replay answers `applied=False`; a hold voided already raises PendingResolvedError.
    """
    _check_points(points)
    created_at = clock.now()

    def plan(seen: PointsBalance | None) -> Movement:
        return Movement(
            member_id, resolve_id(hold_id), FROZEN, reason, reference, kind="post", pending_id=hold_id,
            settles=(FROZEN, SPENT, points), book_as=hold_id, created_at=created_at,
            also=[_hold_is(member_id, hold_id, points)],
        )

    try:
        return apply(member_id, plan, strict=False)
    except TransferConflictError as exc:
        raise PendingResolvedError() from exc


def _hold_state(
    member_id: str, hold_id: str
) -> tuple[PointsBalance, PointsTransfer | None, PointsTransfer | None, PointsTransfer | None]:
    """The balance, the hold, its resolution and its return: one round trip, read consistently."""
    balance, hold, resolution, returned = db.batch_get([
        (PointsBalance, member_id),
        (PointsTransfer, (member_id, hold_id)),
        (PointsTransfer, (member_id, resolve_id(hold_id))),
        (PointsTransfer, (member_id, return_id(hold_id))),
    ])
    if hold is not None and hold.kind != "hold":
        raise NotFoundError("no such points hold")
    return remember(balance or PointsBalance.empty(member_id)), hold, resolution, returned


def _give_back(
    member_id: str, hold: PointsTransfer, balance: PointsBalance, transfer_id: str, *,
    kind: str, counterparty: str, book_as: str, reason: str,
) -> Receipt:
    """Credit a hold's points back to the lots it took (those lapsed since: to `expired`)."""
    points = -int(hold.delta)
    created_at = clock.now()
    today = clock.shanghai_date(created_at).isoformat()

    def plan(seen: PointsBalance | None) -> Movement:
        current = seen or balance
        lots = lots_taken(hold, current)
        if sum(lots.values()) != points:
            raise RuntimeError(f"the lots hold {hold.transfer_id} took are not recorded")
        live = {day: amount for day, amount in lots.items() if day >= today}
        lapsed = points - sum(live.values())
        return credit(
            current, member_id, transfer_id, counterparty, reason, hold.reference, live,
            kind=kind, delta=points - lapsed, pending_id=hold.transfer_id, book_as=book_as,
            settles=(counterparty, EXPIRED, lapsed) if lapsed else None, created_at=created_at,
        )

    return apply(member_id, plan, strict=False)


def void_hold(member_id: str, hold_id: str) -> Receipt | None:
    """The held points go back to the very lots they came from (lapsed lots: to `expired`).

    Two round trips: one read (balance, hold, resolution) and one write,
    `<hold>#resolve` (kind `void`), conditioned like `reverse`. None if there
    is no such hold; a replay answers `applied=False`; a hold posted already
    raises PendingResolvedError, also when a post wins a race with this void.
    """
    balance, hold, resolution, _ = _hold_state(member_id, hold_id)
    if hold is None:
        return None
    if resolution is not None:
        if resolution.kind != "void":
            raise PendingResolvedError("these held points were spent already: return them instead")
        return Receipt.of(resolution, applied=False)
    try:
        return _give_back(member_id, hold, balance, resolve_id(hold_id), kind="void", counterparty=FROZEN,
                          book_as=hold_id, reason=hold.reason)
    except TransferConflictError as exc:
        raise PendingResolvedError("these held points were spent already: return them instead") from exc


def return_hold(member_id: str, hold_id: str, reason: str = "refund") -> Receipt | None:
    """A posted hold's points come back from `spent` to their lots (lapsed lots: to `expired`).

    `<hold>#return`, two round trips as `void_hold`. None if there is no such
    hold; a replay answers `applied=False`; a hold never posted (unresolved or
    voided) raises PendingResolvedError: it is voided instead.
    """
    balance, hold, resolution, returned = _hold_state(member_id, hold_id)
    if hold is None:
        return None
    if returned is not None:
        return Receipt.of(returned, applied=False)
    if resolution is None or resolution.kind != "post":
        raise PendingResolvedError("these held points were never spent: void the hold instead")
    return _give_back(member_id, hold, balance, return_id(hold_id), kind="posted", counterparty=SPENT,
                      book_as=resolve_id(hold_id), reason=reason)


# --- Expiry, reversal, clawback ------------------------------------------------------

def expire_lot(
    member_id: str, expires_on: str, moment: dt.datetime, balance: PointsBalance | None = None
) -> Receipt | None:
    """Expire what is left of one lot as of `moment`; the key `expire#<lot>@<run day>` makes a replay a no-op.

    `balance` is what the caller read (the job's scan); if it is stale, the
    refused write answers with the current one and the lot is planned again.
    """
    transfer_id = f"expire#{expires_on}@{clock.shanghai_date(moment).isoformat()}"

    def plan(seen: PointsBalance | None) -> Movement:
        current = seen or balance or read_balance(member_id)
        held = current.remaining_lots().get(expires_on, 0)
        if held <= 0:
            raise _NothingDue()
        return Movement(
            member_id, transfer_id, EXPIRED, "expiry", expires_on,
            delta=-held, take_lots={expires_on: held}, lay_anew=current, created_at=moment,
        )

    try:
        return apply(member_id, plan, strict=False)
    except (_NothingDue, TransferConflictError):
        return None


class _NothingDue(Exception):
    pass


def reverse(member_id: str, transfer_id: str, reason: str = "refund") -> Receipt:
    """Undo a spend: its points go back to the very lots they came from."""
    original = find_transfer(member_id, transfer_id)
    if original is None or int(original.delta) >= 0 or original.kind != "posted":
        raise NotFoundError("no such spend")

    def plan(seen: PointsBalance | None) -> Movement:
        current = seen or read_balance(member_id)
        lots = lots_taken(original, current)
        if sum(lots.values()) != -int(original.delta):
            raise RuntimeError(f"the lots spend {transfer_id} took are not recorded")
        return credit(
            current, member_id, f"{transfer_id}#reverse", original.counterparty, reason, transfer_id, lots,
            delta=-int(original.delta),
        )

    return apply(member_id, plan, strict=False)


def clawback(member_id: str, transfer_id: str, reason: str = "refund") -> Receipt:
    """Take back points an earn gave, as far as the balance allows (never below zero).

    What it could not take back (spent already) is the clawback transfer's `shortfall`.
    """
    original = find_transfer(member_id, transfer_id)
    if original is None or int(original.delta) <= 0:
        raise NotFoundError("no such earn")
    clawback_id = f"{transfer_id}#clawback"

    def plan(seen: PointsBalance | None) -> Movement:
        amount = min(int(original.delta), int((seen or read_balance(member_id)).available or 0))
        shortfall = int(original.delta) - amount or None
        if amount:
            movement = _spend_movement(member_id, amount, clawback_id, reason, transfer_id, CLAWBACK, None)
            movement.shortfall = shortfall
            return movement
        nothing_left = (PointsBalance.available == 0) | PointsBalance.available.does_not_exist()
        return Movement(member_id, clawback_id, CLAWBACK, reason, transfer_id, balance_condition=nothing_left,
                        shortfall=shortfall)

    return apply(member_id, plan, strict=False)


# --- Merging two members' points ------------------------------------------------------

@dataclass
class PreparedMerge:
    """Everything `source` holds moves to `target` by two transfers through the merge account.

    Both balances must be exactly as read (their versions), so nothing either
    earns or spends meanwhile is left behind. The merge account's two legs
    cancel out within the transaction, so it keeps no balance.
    """

    movements: list[Movement]
    source_id: str
    target_id: str
    points: int

    @property
    def item_count(self) -> int:
        return sum(movement.item_count for movement in self.movements)

    def add_to(self, txn: Transaction) -> None:
        for movement in self.movements:
            movement.add_to(txn)


def prepare_merge(source_id: str, target_id: str) -> PreparedMerge:
    """Read both balances and plan the merge (nothing to move if it happened already)."""
    if source_id == target_id:
        raise InvalidRequestError("memberId", "cannot merge a member into itself")
    if find_transfer(source_id, f"merge#{source_id}#out") is not None:
        return PreparedMerge([], source_id, target_id, 0)
    source, target = db.batch_get([(PointsBalance, source_id), (PointsBalance, target_id)])
    source = source or PointsBalance.empty(source_id)
    lots = source.remaining_lots()
    points = sum(lots.values())
    if not points:
        return PreparedMerge([], source_id, target_id, 0)
    now = clock.now()
    # A refusal plans the whole merge again from fresh reads; a replay then finds the merge done.
    out = Movement(
        source_id, f"merge#{source_id}#out", MERGE, "merge", target_id,
        delta=-points, take_lots=lots, lay_anew=source, book_system=False, created_at=now,
        explain_replay=False, label="merge.out",
    )
    into = Movement(
        target_id, f"merge#{source_id}#in", MERGE, "merge", source_id,
        delta=points, add_lots=lots, lay_anew=target or PointsBalance.empty(target_id),
        book_system=False, created_at=now, explain_replay=False, label="merge.in",
    )
    return PreparedMerge([out, into], source_id, target_id, points)


def add_merge(txn: Transaction, source_id: str, target_id: str) -> int:
    """Add to `txn` the transfers moving all of `source`'s points to `target`, as read now; the points moved."""
    prepared = prepare_merge(source_id, target_id)
    prepared.add_to(txn)
    return prepared.points


def merge(source_id: str, target_id: str) -> int:
    """Move all of `source`'s points to `target`; the points moved (0 on a replay)."""
    return transact.write(lambda txn: add_merge(txn, source_id, target_id), busy=LedgerBusyError, replan=True)
