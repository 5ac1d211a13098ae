"""Random sequences of ledger operations, repeats of the same key included: the invariants hold.

Earns go to random lots (so credits to earlier lots lay the line anew), spends
are reversed at random, lots expire out of order and members merge. Orders
freeze points (a hold), and the hold is posted, voided or, once posted,
returned, at random and repeatedly; a void or a return gives the points back
to the lots they came from, except what a lot that ended meanwhile held
(those go to `expired`).

A model (dicts of lots and pending amounts) says what each operation should do;
after every step the ledger must agree with it, and the ledger's invariants must
hold: each member's balance equals its lots and its transfers, no lot or balance
is negative, and the accounts (members and system shards) sum to zero.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chalicelib import clock, db, transact
from chalicelib.errors import NotFoundError
from chalicelib.points import audit, ledger, service
from chalicelib.points.config import points_config
from chalicelib.points.errors import (
    HoldMismatchError,
    InsufficientPointsError,
    PendingResolvedError,
    TransferConflictError,
)
from chalicelib.points.models import PointsBalance
from tests.conftest import unique

DAYS = ["2026-03-31", "2026-06-30", "2026-12-31", "2027-12-31"]
RUN_DAYS = ["2026-04-01", "2026-07-01"]
SYSTEM_ACCOUNTS = [ledger.ISSUED, ledger.SPENT, ledger.EXPIRED, ledger.ADJUSTMENT, ledger.FROZEN]
# Holds are resolved as of this moment: the lots of 2026-03-31 and 2026-06-30 have ended, the others have not.
RESOLVED_AT = dt.datetime(2026, 8, 1, 4, 0, tzinfo=dt.timezone.utc)

members = st.integers(min_value=0, max_value=2)
keys = st.integers(min_value=0, max_value=3)
order_keys = st.integers(min_value=0, max_value=1)
amounts = st.integers(min_value=1, max_value=60)
days = st.sampled_from(DAYS)


def system_shards() -> list[str]:
    return [
        f"sys:{account}#{shard:02d}"
        for account in SYSTEM_ACCOUNTS
        for shard in range(points_config().system_shards)
    ]


def read_totals(accounts: list[str]) -> tuple[dict[str, PointsBalance | None], int, int]:
    found = db.batch_get([(PointsBalance, account) for account in accounts])
    balances = dict(zip(accounts, found))
    available = sum(int(b.available or 0) for b in found if b is not None)
    pending = sum(int(b.pending or 0) for b in found if b is not None)
    return balances, available, pending


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")  # orders that froze points

    def __init__(self) -> None:
        super().__init__()
        self.members = [unique("sm") for _ in range(3)]
        self.lots: dict[str, dict[str, int]] = {m: defaultdict(int) for m in self.members}
        self.earned: dict[str, int] = {}  # earn key -> amount
        self.spent: dict[str, int] = {}  # spend key -> amount
        self.taken: dict[str, tuple[str, dict[str, int]]] = {}  # spend key -> (member, what it took per lot)
        self.reversed: set[str] = set()
        self.pending: dict[str, tuple[str, int, str]] = {}  # pending key -> (member, amount, day)
        self.resolved: dict[str, str] = {}  # pending key -> post | void
        self.expired: set[tuple[str, str, str]] = set()  # (member, day, run day)
        self.merged: set[str] = set()
        self.held: dict[str, tuple[str, int, dict[str, int]]] = {}  # order -> (member, points, lots taken)
        self.hold_state: dict[str, str] = {}  # order -> hold | post | void
        self.returned: set[str] = set()
        self.shards = system_shards()
        self.frozen_shards = [s for s in self.shards if s.startswith(f"sys:{ledger.FROZEN}#")]
        self.touched: set[str] = set()
        _, self.system_available, self.system_pending = read_totals(self.shards)
        _, self.frozen_before, _ = read_totals(self.frozen_shards)

    def total(self, member: str) -> int:
        return sum(self.lots[member].values())

    def take(self, member: str, points: int) -> dict[str, int]:
        taken: dict[str, int] = {}
        for day in sorted(self.lots[member]):
            share = min(points, self.lots[member][day])
            if share:
                taken[day] = share
                self.lots[member][day] -= share
                points -= share
        return taken

    @rule(m=members, k=keys, points=amounts, day=days)
    def earn(self, m: int, k: int, points: int, day: str) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"earn#{member}#{k}"
        if key in self.earned and self.earned[key] != points:
            with pytest.raises(TransferConflictError):
                ledger.earn(member, points, key, "checkin", expires_on=day)
            return
        receipt = ledger.earn(member, points, key, "checkin", expires_on=day)
        assert receipt.applied == (key not in self.earned)
        if key not in self.earned:
            self.earned[key] = points
            self.lots[member][day] += points

    @rule(m=members, k=keys, points=amounts)
    def spend(self, m: int, k: int, points: int) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"spend#{member}#{k}"
        if key in self.spent:
            if self.spent[key] != points:
                with pytest.raises((TransferConflictError, InsufficientPointsError)):
                    ledger.spend(member, points, key, "exchange")
                return
            assert ledger.spend(member, points, key, "exchange").applied is False
            return
        if self.total(member) < points:
            with pytest.raises(InsufficientPointsError):
                ledger.spend(member, points, key, "exchange")
            return
        assert ledger.spend(member, points, key, "exchange").applied
        self.spent[key] = points
        self.taken[key] = (member, self.take(member, points))

    @rule(m=members, k=keys)
    def reverse(self, m: int, k: int) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"spend#{member}#{k}"
        if key not in self.taken:
            with pytest.raises(NotFoundError):
                ledger.reverse(member, key)
            return
        receipt = ledger.reverse(member, key)
        assert receipt.applied == (key not in self.reversed)
        if receipt.applied:
            self.reversed.add(key)
            for day, points in self.taken[key][1].items():
                self.lots[member][day] += points

    @rule(m=members, points=amounts, day=days)
    def adjust(self, m: int, points: int, day: str) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"adjust#{unique('a')}"
        if points % 2:
            ledger.earn(member, points, key, "adjust", counterparty=ledger.ADJUSTMENT, expires_on=day)
            self.lots[member][day] += points
        elif self.total(member) >= points:
            ledger.spend(member, points, key, "adjust", counterparty=ledger.ADJUSTMENT)
            self.take(member, points)
        else:
            with pytest.raises(InsufficientPointsError):
                ledger.spend(member, points, key, "adjust", counterparty=ledger.ADJUSTMENT)

    @rule(m=members, k=keys, points=amounts, day=days)
    def hold_pending(self, m: int, k: int, points: int, day: str) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"order#{member}#{k}#earn"
        known = self.pending.get(key)
        if known is not None and known[1] != points:
            with pytest.raises(TransferConflictError):
                ledger.earn_pending(member, points, key, "order", expires_on=day)
            return
        receipt = ledger.earn_pending(member, points, key, "order", expires_on=day)
        assert receipt.applied == (known is None)
        if known is None:
            self.pending[key] = (member, points, day)

    def resolve(self, m: int, k: int, kind: str) -> None:
        member = self.members[m]
        self.touched.add(member)
        key = f"order#{member}#{k}#earn"
        act = ledger.post_pending if kind == "post" else ledger.void_pending
        if key not in self.pending:
            with pytest.raises(NotFoundError):
                act(member, key)
            return
        if self.resolved.get(key, kind) != kind:
            with pytest.raises(PendingResolvedError):
                act(member, key)
            return
        receipt = act(member, key)
        assert receipt.applied == (key not in self.resolved)
        if key not in self.resolved:
            self.resolved[key] = kind
            _, points, day = self.pending[key]
            if kind == "post":
                self.lots[member][day] += points

    @rule(m=members, k=keys)
    def post(self, m: int, k: int) -> None:
        self.resolve(m, k, "post")

    @rule(m=members, k=keys)
    def void(self, m: int, k: int) -> None:
        self.resolve(m, k, "void")

    @rule(m=members, day=days, run_day=st.sampled_from(RUN_DAYS))
    def expire(self, m: int, day: str, run_day: str) -> None:
        member = self.members[m]
        self.touched.add(member)
        moment = dt.datetime.combine(dt.date.fromisoformat(run_day), dt.time(0, 10), clock.SHANGHAI)
        receipt = ledger.expire_lot(member, day, moment)
        if self.lots[member][day] == 0:
            assert receipt is None
        elif (member, day, run_day) in self.expired:
            assert receipt is None or not receipt.applied
        else:
            assert receipt is not None and receipt.applied and receipt.delta == -self.lots[member][day]
            self.expired.add((member, day, run_day))
            self.lots[member][day] = 0

    def give_back(self, member: str, taken: dict[str, int]) -> None:
        today = clock.shanghai_date(RESOLVED_AT).isoformat()
        for day, points in taken.items():
            if day >= today:
                self.lots[member][day] += points

    @rule(
        target=holds, m=members, k=order_keys, points=amounts, day=days, top_up=st.sampled_from([True, True, False])
    )
    def freeze(self, m: int, k: int, points: int, day: str, top_up: bool):
        member = self.members[m]
        self.touched.add(member)
        order_id = f"{member}-o{k}"
        if top_up and self.total(member) < points:  # most orders are placed by members who have the points
            ledger.earn(member, points, f"adjust#{unique('t')}", "adjust", counterparty=ledger.ADJUSTMENT,
                        expires_on=day)
            self.lots[member][day] += points
        frozen = service.freeze_for_order(member, order_id, points)
        if order_id in self.held:
            with pytest.raises(service.AlreadyAppliedError):
                transact.write(frozen.add_to, replan=True)
            return multiple()
        if self.total(member) < points:
            with pytest.raises(InsufficientPointsError):
                transact.write(frozen.add_to, replan=True)
            return multiple()
        transact.write(frozen.add_to, replan=True)
        self.held[order_id] = (member, points, self.take(member, points))
        self.hold_state[order_id] = "hold"
        return order_id

    @rule(order_id=holds, wrong=st.sampled_from([False, False, False, True]))
    def post_hold(self, order_id: str, wrong: bool) -> None:
        member, points, _ = self.held[order_id]
        self.touched.add(member)
        if wrong:
            with pytest.raises(HoldMismatchError):
                service.post_order_spend(member, order_id, points + 1)
            return
        if self.hold_state[order_id] == "void":
            with pytest.raises(PendingResolvedError):
                service.post_order_spend(member, order_id, points)
            return
        receipt = service.post_order_spend(member, order_id, points)
        assert receipt.applied == (self.hold_state[order_id] == "hold")
        self.hold_state[order_id] = "post"

    @rule(order_id=holds)
    def void_hold(self, order_id: str) -> None:
        member, _, taken = self.held[order_id]
        self.touched.add(member)
        with clock.frozen_at(RESOLVED_AT):
            if self.hold_state[order_id] == "post":
                with pytest.raises(PendingResolvedError):
                    service.void_order_spend(member, order_id)
                return
            receipt = service.void_order_spend(member, order_id)
        assert receipt.applied == (self.hold_state[order_id] == "hold")
        if receipt.applied:
            self.hold_state[order_id] = "void"
            self.give_back(member, taken)

    @rule(order_id=holds)
    def return_hold(self, order_id: str) -> None:
        member, _, taken = self.held[order_id]
        self.touched.add(member)
        with clock.frozen_at(RESOLVED_AT):
            if self.hold_state[order_id] != "post":
                with pytest.raises(PendingResolvedError):
                    service.return_order_spend(member, order_id)
                return
            receipt = service.return_order_spend(member, order_id)
        assert receipt.applied == (order_id not in self.returned)
        if receipt.applied:
            self.returned.add(order_id)
            self.give_back(member, taken)

    @precondition(lambda self: len(self.merged) < 2)
    @rule(source=members, into=members)
    def merge(self, source: int, into: int) -> None:
        if source == into:
            return
        src, dst = self.members[source], self.members[into]
        self.touched |= {src, dst}
        moved = ledger.merge(src, dst)
        if src in self.merged or self.total(src) == 0:
            assert moved == 0
            return
        assert moved == self.total(src)
        self.merged.add(src)
        for day, points in self.lots[src].items():
            self.lots[dst][day] += points
        self.lots[src] = defaultdict(int)

    @invariant()
    def the_ledger_agrees_with_the_model_and_its_invariants_hold(self) -> None:
        balances, available, pending = read_totals(self.members + self.shards)
        # Accounts sum to zero: what these members hold, the system accounts gave out.
        assert available == self.system_available
        assert pending == self.system_pending
        for member in self.members:
            balance = balances[member]
            lots = dict(balance.sorted_lots()) if balance else {}
            assert lots == {day: n for day, n in self.lots[member].items() if n}
            assert (int(balance.available) if balance else 0) == self.total(member)
            held = sum(p for key, (owner, p, _) in self.pending.items() if owner == member and key not in self.resolved)
            assert (int(balance.pending) if balance else 0) == held
        for key, (member, taken) in self.taken.items():
            # Where each spend started on the line still says what it took, however the line was laid since.
            assert ledger.lots_taken(ledger.find_transfer(member, key), balances[member]) == taken
        for order_id, (member, _, taken) in self.held.items():
            hold = ledger.find_transfer(member, f"order#{order_id}#points")
            assert ledger.lots_taken(hold, balances[member]) == taken
        # The frozen account holds what the unresolved holds hold.
        _, frozen, _ = read_totals(self.frozen_shards)
        held = sum(points for order_id, (_, points, _) in self.held.items() if self.hold_state[order_id] == "hold")
        assert frozen == self.frozen_before + held
        result = audit.audit(self.touched)
        assert result["breaches"] == 0, result["examples"]
        self.touched.clear()


def test_random_ledger_histories_keep_every_invariant(stack):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
