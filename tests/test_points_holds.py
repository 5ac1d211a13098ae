"""Points an order pays with, against DynamoDB Local: frozen unpaid, posted at payment, voided, returned.

A hold is a spend to the `frozen` account inside the order's own transaction;
`<hold>#resolve` posts it (frozen -> spent) or voids it (back to its lots),
`<hold>#return` gives a posted hold back. After every test the accounts it
touched audit clean, and so does the whole ledger (the frozen account holding
exactly what the unresolved holds hold).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock, db, transact
from chalicelib.errors import NotFoundError, SiyuError
from chalicelib.points import audit, ledger, service
from chalicelib.points.errors import HoldMismatchError, InsufficientPointsError, PendingResolvedError
from chalicelib.points.models import PointsBalance, PointsCap
from chalicelib.transact import Transaction
from tests import whole_table
from tests.conftest import live_member, unique

NOW = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.timezone.utc)  # noon in Shanghai
LATER = dt.datetime(2026, 7, 10, 4, 0, tzinfo=dt.timezone.utc)  # the 2026-06-30 lot has lapsed


@pytest.fixture(autouse=True)
def at_noon(stack) -> Iterator[None]:
    with clock.frozen_at(NOW):
        yield


@pytest.fixture(autouse=True, scope="module")
def the_whole_ledger_proves_clean_after_these_tests(stack) -> Iterator[None]:
    yield
    result = whole_table.ledger_proof()
    assert result["breaches"] == 0, result["examples"]


def assert_sound(*members: str) -> None:
    result = audit.audit(members)
    assert result["breaches"] == 0, result["examples"]


def lots_of(member_id: str) -> dict[str, int]:
    return dict(ledger.read_balance(member_id).sorted_lots())


def version_of(member_id: str) -> int:
    return int(ledger.read_balance(member_id).version or 0)


def shard(account: str, by: str) -> int:
    """What one shard of a system account holds (the shard a transfer id books to)."""
    try:
        return int(PointsBalance.get(ledger.system_shard(account, by), consistent_read=True).available or 0)
    except PointsBalance.DoesNotExist:
        return 0


def hold_id(order_id: str) -> str:
    return f"order#{order_id}#points"


def with_the_orders_item(frozen: service.PreparedSpend, item_key: str) -> Callable[[Transaction], None]:
    """The order's own transaction: another domain's item next to the frozen points."""

    def build(txn: Transaction) -> None:
        txn.save(PointsCap(item_key, count=1), PointsCap.key.does_not_exist(), label="order")
        frozen.add_to(txn)

    return build


def member_with(*lots: tuple[int, str]) -> str:
    member = live_member()
    for n, (points, day) in enumerate(lots):
        ledger.earn(member, points, f"earn#{member}#{n}", "checkin", expires_on=day)
    return member


def freeze(member: str, points: int, order_id: str | None = None) -> str:
    order_id = order_id or unique("o")
    transact.write(service.freeze_for_order(member, order_id, points).add_to, replan=True)
    return order_id


def outcome(action: Callable[[], object]) -> str:
    try:
        receipt = action()
    except SiyuError as error:
        return error.code
    return "applied" if getattr(receipt, "applied", False) else "replay"


def test_a_freeze_joins_the_orders_transaction_and_takes_the_soonest_expiring_lots(stack):
    member = member_with((30, "2026-12-31"), (20, "2026-09-30"), (40, "2027-12-31"))
    order_id, item = unique("o"), unique("order-item")
    frozen = service.freeze_for_order(member, order_id, 60)
    assert frozen.item_count == 3 and frozen.points == 60 and frozen.transfer_id == hold_id(order_id)
    before = shard(ledger.FROZEN, hold_id(order_id))
    with db.recording() as log:
        transact.write(with_the_orders_item(frozen, item), replan=True)
    assert [r.operation for r in log] == ["TransactWriteItems"]
    assert len(log[0].body["TransactItems"]) == 4
    assert lots_of(member) == {"2027-12-31": 30} and service.available(member) == 30
    hold = ledger.find_transfer(member, hold_id(order_id))
    assert (hold.kind, hold.counterparty, hold.reason, hold.reference) == ("hold", "frozen", "order", order_id)
    taken = ledger.lots_taken(hold, ledger.read_balance(member))
    assert taken == {"2026-09-30": 20, "2026-12-31": 30, "2027-12-31": 10}
    assert shard(ledger.FROZEN, hold_id(order_id)) == before + 60
    assert service.entry_view(hold)["status"] == "pending" and service.entry_view(hold)["delta"] == -60
    with pytest.raises(service.AlreadyAppliedError):
        transact.write(frozen.add_to)
    assert_sound(member)


def test_a_freeze_beyond_the_balance_is_refused_as_insufficient_points_and_changes_nothing(stack):
    member = member_with((50, "2026-12-31"))
    order_id, item = unique("o"), unique("order-item")
    version = version_of(member)
    with db.recording() as log, pytest.raises(InsufficientPointsError) as refused:
        transact.write(with_the_orders_item(service.freeze_for_order(member, order_id, 51), item), replan=True)
    assert refused.value.code == "INSUFFICIENT_POINTS"
    assert [r.operation for r in log] == ["TransactWriteItems"]  # the refusal itself says the points are short
    assert service.available(member) == 50 and lots_of(member) == {"2026-12-31": 50}
    assert version_of(member) == version
    assert ledger.find_transfer(member, hold_id(order_id)) is None
    with pytest.raises(PointsCap.DoesNotExist):
        PointsCap.get(item, consistent_read=True)  # the order's own item was not written either
    assert service.void_order_spend(member, order_id) is None
    assert_sound(member)


def test_a_post_is_one_round_trip_and_a_replay_changes_nothing(stack):
    member = member_with((100, "2026-12-31"))
    order_id = freeze(member, 40)
    frozen_before = shard(ledger.FROZEN, hold_id(order_id))
    spent_before = shard(ledger.SPENT, f"{hold_id(order_id)}#resolve")
    version = version_of(member)
    with db.recording() as log:
        posted = service.post_order_spend(member, order_id, 40)
    assert [r.operation for r in log] == ["TransactWriteItems"]
    kinds = [next(iter(item)) for item in log[0].body["TransactItems"]]
    assert sorted(kinds) == ["ConditionCheck", "Put", "Update", "Update", "Update"]
    assert posted.applied and posted.kind == "post" and posted.delta == 0
    assert posted.transfer_id == f"{hold_id(order_id)}#resolve"
    assert shard(ledger.FROZEN, hold_id(order_id)) == frozen_before - 40
    assert shard(ledger.SPENT, f"{hold_id(order_id)}#resolve") == spent_before + 40
    assert version_of(member) == version + 1  # the audit counts the post among the transfers
    resolution = ledger.find_transfer(member, posted.transfer_id)
    assert (resolution.pending_id, resolution.settlement()) == (hold_id(order_id), ("frozen", "spent", 40))

    with db.recording() as log:
        again = service.post_order_spend(member, order_id, 40)
    assert [r.operation for r in log] == ["TransactWriteItems"]
    assert not again.applied and again.transfer_id == posted.transfer_id
    assert version_of(member) == version + 1 and service.available(member) == 60
    assert shard(ledger.FROZEN, hold_id(order_id)) == frozen_before - 40
    assert shard(ledger.SPENT, f"{hold_id(order_id)}#resolve") == spent_before + 40
    assert_sound(member)


def test_a_post_of_a_missing_hold_or_for_another_amount_is_refused(stack):
    member = member_with((100, "2026-12-31"))
    with pytest.raises(NotFoundError, match="no such points hold"):
        service.post_order_spend(member, unique("o"), 40)
    order_id = freeze(member, 40)
    version = version_of(member)
    with pytest.raises(HoldMismatchError):
        service.post_order_spend(member, order_id, 41)
    assert ledger.find_transfer(member, f"{hold_id(order_id)}#resolve") is None
    assert version_of(member) == version
    assert service.post_order_spend(member, order_id, 40).applied
    assert_sound(member)


def test_a_void_gives_the_points_back_to_the_very_lots_they_came_from(stack):
    member = member_with((30, "2026-12-31"), (20, "2026-09-30"), (40, "2027-12-31"))
    before = lots_of(member)
    order_id = freeze(member, 60)
    frozen_before = shard(ledger.FROZEN, hold_id(order_id))
    ledger.forget(member)
    with db.recording() as log:
        voided = service.void_order_spend(member, order_id)
    assert [r.operation for r in log] == ["BatchGetItem", "TransactWriteItems"]
    assert voided.applied and voided.kind == "void" and voided.delta == 60
    assert voided.lots == {"2026-09-30": 20, "2026-12-31": 30, "2027-12-31": 10}
    assert lots_of(member) == before and service.available(member) == 90
    assert shard(ledger.FROZEN, hold_id(order_id)) == frozen_before - 60
    resolution = ledger.find_transfer(member, voided.transfer_id)
    assert (resolution.counterparty, resolution.pending_id) == ("frozen", hold_id(order_id))
    assert service.entry_view(resolution)["status"] == "voided"

    with db.recording() as log:
        again = service.void_order_spend(member, order_id)
    assert [r.operation for r in log] == ["BatchGetItem"]
    assert not again.applied and again.delta == 60
    assert lots_of(member) == before
    assert service.void_order_spend(member, unique("o")) is None  # an order that froze no points
    assert_sound(member)


def test_a_void_finds_the_lots_after_the_line_was_laid_anew_since_the_freeze(stack):
    member = member_with((20, "2026-12-31"), (30, "2027-12-31"))
    order_id = freeze(member, 35)  # 20 from 2026-12-31, 15 from 2027-12-31
    ledger.earn(member, 5, f"late#{member}", "checkin", expires_on="2026-09-30")  # behind the newest lot
    ledger.spend(member, 10, f"s#{member}", "exchange")  # 5 from 2026-09-30, 5 from 2027-12-31
    assert lots_of(member) == {"2027-12-31": 10}
    voided = service.void_order_spend(member, order_id)
    assert voided.lots == {"2026-12-31": 20, "2027-12-31": 15}
    assert lots_of(member) == {"2026-12-31": 20, "2027-12-31": 25}
    assert service.available(member) == 45
    assert_sound(member)


def test_points_frozen_past_their_lots_end_go_to_expired_when_the_order_is_cancelled(stack):
    member = member_with((20, "2026-06-30"), (30, "2026-12-31"))
    order_id = freeze(member, 35)  # 20 from 2026-06-30, 15 from 2026-12-31
    expired_before = shard(ledger.EXPIRED, f"{hold_id(order_id)}#resolve")
    frozen_before = shard(ledger.FROZEN, hold_id(order_id))
    with clock.frozen_at(LATER):
        voided = service.void_order_spend(member, order_id)
        assert voided.delta == 15 and voided.lots == {"2026-12-31": 15}
        assert lots_of(member) == {"2026-12-31": 30}
        assert ledger.expire_lot(member, "2026-06-30", LATER) is None  # nothing came back to the lapsed lot
    assert lots_of(member) == {"2026-12-31": 30}
    resolution = ledger.find_transfer(member, voided.transfer_id)
    assert resolution.settlement() == ("frozen", "expired", 20)
    assert shard(ledger.EXPIRED, f"{hold_id(order_id)}#resolve") == expired_before + 20
    assert shard(ledger.FROZEN, hold_id(order_id)) == frozen_before - 35
    assert_sound(member)


def test_a_post_after_a_void_and_a_void_after_a_post_are_refused(stack):
    member = member_with((100, "2026-12-31"))
    cancelled, paid = freeze(member, 30), freeze(member, 40)
    service.void_order_spend(member, cancelled)
    service.post_order_spend(member, paid, 40)
    version = version_of(member)
    with pytest.raises(PendingResolvedError):
        service.post_order_spend(member, cancelled, 30)
    with pytest.raises(PendingResolvedError):
        service.void_order_spend(member, paid)
    with pytest.raises(PendingResolvedError):
        service.return_order_spend(member, cancelled)  # voided, never spent
    with pytest.raises(PendingResolvedError):
        service.return_order_spend(member, freeze(member, 10))  # unpaid: void it instead
    assert version_of(member) == version + 1  # only the last freeze
    assert service.available(member) == 50
    assert_sound(member)


def test_a_refund_after_payment_returns_the_spent_points_to_their_lots(stack):
    member = member_with((30, "2026-12-31"), (40, "2027-12-31"))
    order_id = freeze(member, 50)
    service.post_order_spend(member, order_id, 50)
    spent_before = shard(ledger.SPENT, f"{hold_id(order_id)}#resolve")
    ledger.forget(member)
    with db.recording() as log:
        returned = service.return_order_spend(member, order_id)
    assert [r.operation for r in log] == ["BatchGetItem", "TransactWriteItems"]
    assert returned.applied and returned.delta == 50 and returned.transfer_id == f"{hold_id(order_id)}#return"
    assert returned.lots == {"2026-12-31": 30, "2027-12-31": 20}
    assert lots_of(member) == {"2026-12-31": 30, "2027-12-31": 40}
    assert shard(ledger.SPENT, f"{hold_id(order_id)}#resolve") == spent_before - 50
    again = service.return_order_spend(member, order_id)
    assert not again.applied and service.available(member) == 70
    with pytest.raises(PendingResolvedError):
        service.void_order_spend(member, order_id)
    assert service.return_order_spend(member, unique("o")) is None
    assert_sound(member)


def test_a_refund_long_after_payment_sends_the_points_of_lapsed_lots_to_expired(stack):
    member = member_with((20, "2026-06-30"), (30, "2026-12-31"))
    order_id = freeze(member, 25)
    service.post_order_spend(member, order_id, 25)
    with clock.frozen_at(LATER):
        returned = service.return_order_spend(member, order_id)
    assert returned.delta == 5 and returned.lots == {"2026-12-31": 5}
    assert ledger.find_transfer(member, returned.transfer_id).settlement() == ("spent", "expired", 20)
    assert lots_of(member) == {"2026-12-31": 30}
    assert_sound(member)


def test_ten_simultaneous_posts_of_one_hold_apply_once(stack):
    member = member_with((100, "2026-12-31"))
    order_id = freeze(member, 60)
    spent_before = shard(ledger.SPENT, f"{hold_id(order_id)}#resolve")
    version = version_of(member)
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: outcome(lambda: service.post_order_spend(member, order_id, 60)), range(10)))
    assert sorted(results) == ["applied"] + ["replay"] * 9
    assert version_of(member) == version + 1
    assert shard(ledger.SPENT, f"{hold_id(order_id)}#resolve") == spent_before + 60
    assert service.available(member) == 40
    assert_sound(member)


@pytest.mark.parametrize("round_", range(2))
def test_ten_simultaneous_voids_and_posts_resolve_the_hold_exactly_one_way(stack, round_):
    member = member_with((30, "2026-12-31"), (70, "2027-12-31"))
    order_id = freeze(member, 60)

    def race(n: int) -> tuple[str, str]:
        if n % 2:
            return "post", outcome(lambda: service.post_order_spend(member, order_id, 60))
        return "void", outcome(lambda: service.void_order_spend(member, order_id))

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(race, range(10)))
    winner = ledger.find_transfer(member, f"{hold_id(order_id)}#resolve").kind
    loser = "void" if winner == "post" else "post"
    assert sorted(r for kind, r in results if kind == winner) == ["applied"] + ["replay"] * 4
    assert {r for kind, r in results if kind == loser} == {"PENDING_ALREADY_RESOLVED"}
    if winner == "post":
        assert service.available(member) == 40 and lots_of(member) == {"2027-12-31": 40}
    else:
        assert service.available(member) == 100 and lots_of(member) == {"2026-12-31": 30, "2027-12-31": 70}
    assert_sound(member)


def test_a_refund_before_the_order_points_post_voids_them(stack):
    member = live_member()
    order_id = unique("o")
    earned = service.earn_order_points(member, order_id, 12_000, "explorer")
    assert earned.pending_delta == 120
    answer = service.clawback_order_points(member, order_id)
    assert answer == {"voided": 120, "clawedBack": 0, "shortfall": 0}
    assert service.clawback_order_points(member, order_id) == answer
    balance = ledger.read_balance(member)
    assert (balance.available, balance.pending, balance.tier_spend_fen) == (0, 0, 0)
    assert service.clawback_order_points(member, unique("o")) == {"voided": 0, "clawedBack": 0, "shortfall": 0}
    assert_sound(member)


def test_a_refund_after_the_order_points_were_posted_and_spent_claws_back_what_is_left(stack, log_stream):
    member = live_member()
    order_id = unique("o")
    service.earn_order_points(member, order_id, 10_000, "explorer")  # 100 points, pending
    service.post_order_points(member, order_id)
    ledger.spend(member, 70, f"s#{member}", "exchange")
    answer = service.clawback_order_points(member, order_id)
    assert answer == {"voided": 0, "clawedBack": 30, "shortfall": 70}
    assert service.available(member) == 0  # never below zero
    clawback = ledger.find_transfer(member, f"order#{order_id}#earn#resolve#clawback")
    assert int(clawback.delta) == -30 and int(clawback.shortfall) == 70
    assert "clawed back short" in log_stream() and '"shortfall":70' in log_stream().replace(" ", "")
    assert service.clawback_order_points(member, order_id) == answer
    ledger.earn(member, 10, f"later#{member}", "checkin")
    assert service.clawback_order_points(member, order_id) == answer  # a replay takes nothing more
    assert service.available(member) == 10
    assert_sound(member)


def test_a_refund_of_posted_points_the_member_has_not_spent_claws_back_all_of_them(stack):
    member = live_member()
    order_id = unique("o")
    service.earn_order_points(member, order_id, 5_000, "explorer")
    service.post_order_points(member, order_id)
    assert service.clawback_order_points(member, order_id) == {"voided": 0, "clawedBack": 50, "shortfall": 0}
    assert service.available(member) == 0
    assert ledger.find_transfer(member, f"order#{order_id}#earn#resolve#clawback").shortfall is None
    assert_sound(member)


def test_the_audit_finds_a_frozen_account_that_disagrees_with_the_unresolved_holds(stack):
    member = member_with((100, "2026-12-31"))
    order_id = freeze(member, 40)
    frozen_shard = PointsBalance(ledger.system_shard(ledger.FROZEN, hold_id(order_id)))
    frozen_shard.update(actions=[PointsBalance.available.add(7)])
    try:
        rules_broken = {(e["account"], e["rule"]) for e in whole_table.ledger_proof()["examples"]}
        assert ("sys:frozen", "frozen_not_sum_of_unresolved_holds") in rules_broken
    finally:
        frozen_shard.update(actions=[PointsBalance.available.add(-7)])
    service.post_order_spend(member, order_id, 40)
    assert_sound(member)
