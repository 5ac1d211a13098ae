"""The ledger: every movement is one immutable transfer, written in one TransactWriteItems.

A movement writes, in a single round trip:

    transfer      Put     attribute_not_exists: the natural key applies it once
    balance       Update  available >= taken, each lot taken >= its share (or = it,
                          when the lot is drained and removed), pending >= released
    system shard  Update  the other side of the double entry (sums to zero)
    cap, activity Update  when an earning rule is capped or counts toward tiers

A spend reads the balance first to plan which lots to take (soonest expiry
first). The read decides nothing: the conditions above make a stale plan fail,
and the spend re-plans a bounded number of times. A cancelled transaction
whose transfer already exists was a replay: it answers as the first one did.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib import clock, db
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.points.config import points_config
from chalicelib.points.errors import (
    InsufficientPointsError,
    LedgerBusyError,
    PendingResolvedError,
    PointsCapReachedError,
    TransferConflictError,
)
from chalicelib.points.models import (
    SYSTEM_PREFIX,
    PointsActivity,
    PointsBalance,
    PointsCap,
    PointsTransfer,
    lot_attribute,
)

__all__ = [
    "ISSUED",
    "SPENT",
    "EXPIRED",
    "CLAWBACK",
    "ADJUSTMENT",
    "MERGE",
    "Movement",
    "Receipt",
    "PreparedSpend",
    "PreparedMerge",
    "read_balance",
    "find_transfer",
    "system_shard",
    "default_expiry",
    "apply",
    "earn",
    "prepare_spend",
    "spend",
    "earn_pending",
    "post_pending",
    "void_pending",
    "expire_lot",
    "reverse",
    "clawback",
    "prepare_merge",
    "merge",
]

ISSUED, SPENT, EXPIRED, CLAWBACK, ADJUSTMENT, MERGE = "issued", "spent", "expired", "clawback", "adjustment", "merge"
MAX_POINTS = 100_000_000
ATTEMPTS = 10
_BUSY_CODES = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_BUSY_ERRORS = {
    "TransactionConflictException",
    "TransactionInProgressException",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
}


def system_shard(account: str, transfer_id: str) -> str:
    """The shard of a system account a transfer books its side to (stable per transfer)."""
    shards = points_config().system_shards
    return f"{SYSTEM_PREFIX}{account}#{zlib.crc32(transfer_id.encode()) % shards:02d}"


def default_expiry(moment: dt.datetime | None = None) -> str:
    """The expiry day (Shanghai) of points earned at `moment`, by the configured policy."""
    return points_config().expiry.expires_on(clock.shanghai_date(moment)).isoformat()


def read_balance(member_id: str) -> PointsBalance:
    try:
        return PointsBalance.get(member_id, consistent_read=True)
    except DoesNotExist:
        return PointsBalance.empty(member_id)


def find_transfer(member_id: str, transfer_id: str) -> PointsTransfer | None:
    try:
        return PointsTransfer.get(member_id, transfer_id, consistent_read=True)
    except DoesNotExist:
        return None


def _check_points(points: int, name: str = "points") -> None:
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise InvalidRequestError(name, f"must be an integer from 1 to {MAX_POINTS}")


def _and(left: Condition | None, right: Condition) -> Condition:
    return right if left is None else left & right


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


@dataclass
class Movement:
    """One transfer and everything it changes, added to a transaction with its conditions."""

    member_id: str
    transfer_id: str
    counterparty: str
    reason: str
    reference: str | None = None
    kind: str = "posted"
    delta: int = 0
    pending_delta: int = 0
    add_lots: dict[str, int] = field(default_factory=dict)
    # (expiry day, points, drains): a drained lot must hold exactly its share and is removed.
    take_lots: list[tuple[str, int, bool]] = field(default_factory=list)
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
    # Items of another domain that must hold for this transfer (say, a member check).
    also: list[Callable[[TransactWrite], None]] = field(default_factory=list)

    def transfer(self) -> PointsTransfer:
        lots = {**self.add_lots, **{day: amount for day, amount, _ in self.take_lots}}
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
            actor=self.actor,
            created_at=self.created_at,
        )

    def _books_system(self) -> bool:
        return self.book_system and bool(self.delta or self.pending_delta)

    @property
    def item_count(self) -> int:
        own = 2 + int(self._books_system()) + int(self.cap is not None) + int(self.activity is not None)
        return own + len(self.also)

    def add_to(self, write: TransactWrite) -> None:
        # The transfer's id is the effect's natural key: a replay finds it and changes nothing.
        transfer_is_new = PointsTransfer.transfer_id.does_not_exist()
        write.save(self.transfer(), condition=transfer_is_new)

        actions: list[Action] = [PointsBalance.version.add(1), *self.balance_actions]
        condition = self.balance_condition
        if self.delta:
            actions.append(PointsBalance.available.add(self.delta))
        if self.delta < 0:
            never_below_zero = PointsBalance.available >= -self.delta
            condition = _and(condition, never_below_zero)
        if self.pending_delta:
            actions.append(PointsBalance.pending.add(self.pending_delta))
        if self.pending_delta < 0:
            pending_still_held = PointsBalance.pending >= -self.pending_delta
            condition = _and(condition, pending_still_held)
        for day, amount in self.add_lots.items():
            actions.append(Path(lot_attribute(day)).add(amount))
        for day, amount, drains in self.take_lots:
            lot = Path(lot_attribute(day))
            if drains:
                # The plan empties this lot: it must hold exactly what the plan saw.
                actions.append(lot.remove())
                condition = _and(condition, lot == amount)
            else:
                lot_never_below_zero = lot >= amount
                actions.append(lot.add(-amount))
                condition = _and(condition, lot_never_below_zero)
        write.update(PointsBalance(self.member_id), actions=actions, condition=condition)

        if self._books_system():
            other_side: list[Action] = []
            if self.delta:
                other_side.append(PointsBalance.available.add(-self.delta))
            if self.pending_delta:
                other_side.append(PointsBalance.pending.add(-self.pending_delta))
            write.update(PointsBalance(system_shard(self.counterparty, self.transfer_id)), actions=other_side)

        if self.cap is not None:
            key, allowed = self.cap
            under_cap = PointsCap.count.does_not_exist() | (PointsCap.count < allowed)
            expires = self.created_at + dt.timedelta(days=3)
            write.update(PointsCap(key), actions=[PointsCap.count.add(1), PointsCap.expires.set(expires)],
                         condition=under_cap)

        if self.activity is not None:
            month, spend_fen, count = self.activity
            tally: list[Action] = []
            if spend_fen:
                tally.append(PointsActivity.spend_fen.add(spend_fen))
            if count:
                tally.append(PointsActivity.actions.add(count))
            write.update(PointsActivity(self.member_id, month), actions=tally)

        for add in self.also:
            add(write)

    def receipt(self) -> Receipt:
        return Receipt.of(self.transfer(), applied=True)


# --- Committing ------------------------------------------------------------------

def _commit(add_items: Callable[[TransactWrite], None]) -> str:
    """'ok', 'condition' (a condition said no) or 'busy' (a concurrent transaction; retry)."""
    try:
        with db.transaction() as write:
            add_items(write)
        return "ok"
    except TransactWriteError as exc:
        codes = set(db.cancellation_codes(exc))
        if "ConditionalCheckFailed" in codes:
            return "condition"
        if codes & _BUSY_CODES or exc.cause_response_code in _BUSY_ERRORS:
            return "busy"
        raise


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0.002, 0.01 * 2 ** min(attempt, 5)))


def _replayed(existing: PointsTransfer, wanted: Movement, strict: bool) -> Receipt:
    """An existing transfer answers a retry; one made for another movement is a conflict.

    `strict`: the caller chose the amount, so a retry must ask for the same one.
    """
    if existing.kind != wanted.kind:
        raise TransferConflictError()
    if strict and (int(existing.delta) != wanted.delta or int(existing.pending_delta or 0) != wanted.pending_delta):
        raise TransferConflictError()
    return Receipt.of(existing, applied=False)


def apply(
    plan: Callable[[], Movement],
    *,
    on_condition: Callable[[Movement], None] | None = None,
    strict: bool = True,
) -> Receipt:
    """Plan and write a movement; replan after a failed condition, retry when busy.

    `plan` may read (and raise, e.g. InsufficientPointsError); `on_condition` is
    told when a condition failed on a movement whose transfer does not exist
    (say, a cap reached) and raises if that is the answer.
    """
    for attempt in range(ATTEMPTS):
        movement = plan()
        outcome = _commit(movement.add_to)
        if outcome == "ok":
            return movement.receipt()
        if outcome == "condition":
            existing = find_transfer(movement.member_id, movement.transfer_id)
            if existing is not None:
                return _replayed(existing, movement, strict)
            if on_condition is not None:
                on_condition(movement)
        backoff(attempt)
    raise LedgerBusyError()


# --- Earning ----------------------------------------------------------------------

def earn(
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
    also: list[Callable[[TransactWrite], None]] | None = None,
    refusal: Callable[[], Exception] | None = None,
) -> Receipt:
    """Credit points to the lot of their expiry day: one round trip, no read.

    `also` adds another domain's conditions to the same transaction; `refusal`
    is raised when one of them (not a cap) said no.
    """
    _check_points(points)
    created_at = clock.now()
    lot = expires_on or default_expiry(created_at)

    def plan() -> Movement:
        return Movement(
            member_id, transfer_id, counterparty, reason, reference,
            delta=points, add_lots={lot: points}, expires_on=lot, created_at=created_at,
            cap=cap, activity=activity, actor=actor, balance_actions=list(balance_actions or []),
            activity_month=activity[0] if activity else None, also=list(also or []),
        )

    def capped(movement: Movement) -> None:
        if refusal is not None:
            # Told apart by reading: a cap is the other condition that can fail.
            if movement.cap is None or _cap_open(movement.cap):
                raise refusal()
        if movement.cap is not None:
            raise PointsCapReachedError()

    return apply(plan, on_condition=capped)


def _cap_open(cap: tuple[str, int]) -> bool:
    key, allowed = cap
    try:
        return int(PointsCap.get(key, consistent_read=True).count or 0) < allowed
    except DoesNotExist:
        return True


# --- Spending ---------------------------------------------------------------------

def plan_lots(balance: PointsBalance, points: int) -> list[tuple[str, int, bool]]:
    """The lots a spend of `points` takes, soonest expiry first."""
    if int(balance.available or 0) < points:
        raise InsufficientPointsError()
    takes: list[tuple[str, int, bool]] = []
    needed = points
    for day, amount in balance.sorted_lots():
        if needed == 0:
            break
        take = min(amount, needed)
        takes.append((day, take, take == amount))
        needed -= take
    if needed:
        raise InsufficientPointsError()
    return takes


@dataclass
class PreparedSpend:
    """A planned spend, to be written inside a transaction the caller opens.

        spend = points.prepare_spend(member_id, 300, f"exchange#{claim_id}", "exchange", campaign_id)
        with db.transaction() as write:
            spend.add_to(write)
            ...  # the caller's own items

    If the transaction is cancelled, `explain()` says whether the points were
    the reason (raising InsufficientPointsError) or the spend already happened
    (returning its receipt); None means: prepare again and retry.
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
    def lots(self) -> list[tuple[str, int]]:
        return [(day, amount) for day, amount, _ in self.movement.take_lots]

    @property
    def item_count(self) -> int:
        return self.movement.item_count

    def add_to(self, write: TransactWrite) -> None:
        self.movement.add_to(write)

    def receipt(self) -> Receipt:
        return self.movement.receipt()

    def explain(self) -> Receipt | None:
        existing = find_transfer(self.member_id, self.transfer_id)
        if existing is not None:
            return Receipt.of(existing, applied=False)
        plan_lots(read_balance(self.member_id), self.points)
        return None


def _spend_movement(
    balance: PointsBalance,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str | None,
    counterparty: str,
    actor: str | None,
) -> Movement:
    return Movement(
        balance.account_id, transfer_id, counterparty, reason, reference,
        delta=-points, take_lots=plan_lots(balance, points), actor=actor,
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
) -> PreparedSpend:
    """Plan a spend (one GetItem); InsufficientPointsError when the balance is short."""
    _check_points(points)
    return PreparedSpend(
        _spend_movement(read_balance(member_id), points, transfer_id, reason, reference, counterparty, actor)
    )


def spend(
    member_id: str,
    points: int,
    transfer_id: str,
    reason: str,
    reference: str | None = None,
    *,
    counterparty: str = SPENT,
    actor: str | None = None,
) -> Receipt:
    """Take points from the soonest-expiring lots: one GetItem, one TransactWriteItems."""
    _check_points(points)

    def plan() -> Movement:
        balance = read_balance(member_id)
        try:
            return _spend_movement(balance, points, transfer_id, reason, reference, counterparty, actor)
        except InsufficientPointsError:
            # A replay of a spend that already took these points answers as it did then.
            existing = find_transfer(member_id, transfer_id)
            if existing is None:
                raise
            raise _Replay(existing) from None

    try:
        return apply(plan)
    except _Replay as replay:
        if int(replay.transfer.delta) != -points:
            raise TransferConflictError() from None
        return Receipt.of(replay.transfer, applied=False)


class _Replay(Exception):
    def __init__(self, transfer: PointsTransfer) -> None:
        super().__init__(transfer.transfer_id)
        self.transfer = transfer


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

    def plan() -> Movement:
        return Movement(
            member_id, transfer_id, ISSUED, reason, reference, kind="pending", pending_delta=points,
            expires_on=expires_on or default_expiry(created_at), created_at=created_at,
            spend_fen=spend_fen, activity_month=month if spend_fen else None, activity=activity,
            balance_actions=tier_actions,
        )

    return apply(plan)


def _resolution(member_id: str, pending_id: str, kind: str) -> Receipt:
    pending = find_transfer(member_id, pending_id)
    if pending is None or pending.kind != "pending":
        raise NotFoundError("no such pending points")
    amount = int(pending.pending_delta)
    resolve_id = f"{pending_id}#resolve"

    def plan() -> Movement:
        movement = Movement(
            member_id, resolve_id, pending.counterparty, pending.reason, pending.reference,
            kind=kind, pending_delta=-amount, pending_id=pending_id, expires_on=pending.expires_on,
        )
        if kind == "post":
            movement.delta = amount
            movement.add_lots = {pending.expires_on or default_expiry(): amount}
        elif pending.spend_fen:
            movement.spend_fen = -int(pending.spend_fen)
            movement.activity_month = pending.activity_month
            movement.activity = (pending.activity_month or _month(pending.created_at), -int(pending.spend_fen), -1)
            movement.balance_actions = [
                PointsBalance.tier_spend_fen.add(-int(pending.spend_fen)),
                PointsBalance.tier_activity.add(-1),
            ]
        return movement

    try:
        return apply(plan, strict=False)
    except TransferConflictError as exc:
        raise PendingResolvedError() from exc


def post_pending(member_id: str, pending_id: str) -> Receipt:
    """The pending points become a lot (e.g. the order's return window closed)."""
    return _resolution(member_id, pending_id, "post")


def void_pending(member_id: str, pending_id: str) -> Receipt:
    """The pending points are released unposted (e.g. the order was refunded)."""
    return _resolution(member_id, pending_id, "void")


# --- Expiry, reversal, clawback ------------------------------------------------------

def expire_lot(member_id: str, expires_on: str, run_day: str, held: int | None = None) -> Receipt | None:
    """Expire what is left of one lot; the key `expire#<lot>@<run day>` makes a replay a no-op.

    `held` is what the caller saw in the lot (the job's scan); a stale figure
    fails the lot's condition and the lot is read again.
    """
    transfer_id = f"expire#{expires_on}@{run_day}"
    seen = [held]

    def plan() -> Movement:
        held = seen.pop() if seen and seen[0] is not None else read_balance(member_id).lots.get(expires_on, 0)
        seen.clear()
        if held <= 0:
            raise _NothingDue()
        return Movement(
            member_id, transfer_id, EXPIRED, "expiry", expires_on,
            delta=-held, take_lots=[(expires_on, held, True)],
        )

    try:
        return apply(plan, strict=False)
    except (_NothingDue, TransferConflictError):
        return None


class _NothingDue(Exception):
    pass


def reverse(member_id: str, transfer_id: str, reason: str = "refund") -> Receipt:
    """Undo a spend: its points go back to the very lots they came from."""
    original = find_transfer(member_id, transfer_id)
    if original is None or int(original.delta) >= 0 or original.kind != "posted":
        raise NotFoundError("no such spend")

    def plan() -> Movement:
        return Movement(
            member_id, f"{transfer_id}#reverse", original.counterparty, reason, transfer_id,
            delta=-int(original.delta), add_lots=original.lot_amounts(),
        )

    return apply(plan, strict=False)


def clawback(member_id: str, transfer_id: str, reason: str = "refund") -> Receipt:
    """Take back points an earn gave, as far as the balance allows (never below zero)."""
    original = find_transfer(member_id, transfer_id)
    if original is None or int(original.delta) <= 0:
        raise NotFoundError("no such earn")

    def plan() -> Movement:
        balance = read_balance(member_id)
        amount = min(int(original.delta), int(balance.available or 0))
        movement = Movement(member_id, f"{transfer_id}#clawback", CLAWBACK, reason, transfer_id)
        if amount:
            movement.delta = -amount
            movement.take_lots = plan_lots(balance, amount)
        else:
            movement.balance_condition = (PointsBalance.available == 0) | PointsBalance.available.does_not_exist()
        return movement

    return apply(plan, strict=False)


# --- Merging two members' points ------------------------------------------------------

@dataclass
class PreparedMerge:
    """Everything `source` holds moves to `target` by two transfers through the merge account.

    The source's balance must be exactly as read (its version), so nothing it
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

    def add_to(self, write: TransactWrite) -> None:
        for movement in self.movements:
            movement.add_to(write)


def prepare_merge(source_id: str, target_id: str) -> PreparedMerge:
    if source_id == target_id:
        raise InvalidRequestError("memberId", "cannot merge a member into itself")
    if find_transfer(source_id, f"merge#{source_id}#out") is not None:
        return PreparedMerge([], source_id, target_id, 0)
    balance = read_balance(source_id)
    lots = dict(balance.sorted_lots())
    points = sum(lots.values())
    if not points:
        return PreparedMerge([], source_id, target_id, 0)
    version = int(balance.version or 0)
    now = clock.now()
    out = Movement(
        source_id, f"merge#{source_id}#out", MERGE, "merge", target_id,
        delta=-points, take_lots=[(day, amount, True) for day, amount in lots.items()],
        balance_condition=PointsBalance.version == version, book_system=False, created_at=now,
    )
    into = Movement(
        target_id, f"merge#{source_id}#in", MERGE, "merge", source_id,
        delta=points, add_lots=lots, book_system=False, created_at=now,
    )
    return PreparedMerge([out, into], source_id, target_id, points)


def merge(source_id: str, target_id: str) -> int:
    """Move all of `source`'s points to `target`; the points moved (0 on a replay)."""
    for attempt in range(ATTEMPTS):
        prepared = prepare_merge(source_id, target_id)
        if not prepared.movements:
            return 0
        outcome = _commit(prepared.add_to)
        if outcome == "ok":
            return prepared.points
        backoff(attempt)
    raise LedgerBusyError()
