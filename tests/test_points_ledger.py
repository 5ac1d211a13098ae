"""The points ledger at the service level, against DynamoDB Local."""

from __future__ import annotations

import datetime as dt

import pytest

from chalicelib import clock, db, transact
from chalicelib.points import audit, jobs, ledger, rules, service
from chalicelib.points.config import CONFIG_ENV, points_config
from chalicelib.points.errors import (
    AlreadyCheckedInError,
    InsufficientPointsError,
    PendingResolvedError,
    PointsCapReachedError,
    TransferConflictError,
)
from chalicelib.points.models import PointsBalance, lot_attribute
from chalicelib.transact import Transaction
from tests import whole_table
from tests.conftest import unique

SHANGHAI_NOON = dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.timezone.utc)


def assert_sound(*members: str) -> None:
    result = audit.audit(members)
    assert result["breaches"] == 0, result["examples"]


def lots_of(member_id: str) -> dict[str, int]:
    return dict(ledger.read_balance(member_id).sorted_lots())


def test_an_earn_is_one_round_trip_and_a_replay_changes_nothing(stack):
    member = unique("m")
    with db.recording() as log:
        first = ledger.earn(member, 100, f"order#{member}#earn", "order", expires_on="2027-12-31")
    again = ledger.earn(member, 100, f"order#{member}#earn", "order", expires_on="2027-12-31")
    assert [r.operation for r in log] == ["TransactWriteItems"]
    assert first.applied and not again.applied and again.transfer_id == first.transfer_id
    assert service.available(member) == 100 and lots_of(member) == {"2027-12-31": 100}
    assert_sound(member)


def test_a_transfer_id_reused_for_another_amount_is_refused(stack):
    member = unique("m")
    ledger.earn(member, 10, f"k#{member}", "adjust")
    with pytest.raises(TransferConflictError):
        ledger.earn(member, 11, f"k#{member}", "adjust")
    assert service.available(member) == 10


def test_spending_takes_the_soonest_expiring_lots_first_and_records_them(stack):
    member = unique("m")
    ledger.earn(member, 30, f"a#{member}", "checkin", expires_on="2027-12-31")
    ledger.earn(member, 20, f"b#{member}", "checkin", expires_on="2026-12-31")
    ledger.earn(member, 40, f"c#{member}", "checkin", expires_on="2028-12-31")
    with db.recording() as log:
        receipt = ledger.spend(member, 60, f"s#{member}", "exchange", "coupon-1")
    assert [r.operation for r in log] == ["TransactWriteItems"]
    spent = ledger.find_transfer(member, receipt.transfer_id)
    taken = ledger.lots_taken(spent, ledger.read_balance(member))
    assert taken == {"2026-12-31": 20, "2027-12-31": 30, "2028-12-31": 10}
    assert lots_of(member) == {"2028-12-31": 30}
    assert service.available(member) == 30
    assert_sound(member)


def test_a_reversal_puts_points_back_where_they_came_from(stack):
    member = unique("m")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2026-12-31")
    ledger.earn(member, 30, f"b#{member}", "checkin", expires_on="2027-12-31")
    ledger.spend(member, 35, f"s#{member}", "exchange")
    ledger.reverse(member, f"s#{member}")
    ledger.reverse(member, f"s#{member}")
    assert lots_of(member) == {"2026-12-31": 20, "2027-12-31": 30}
    assert_sound(member)


def test_a_spend_still_says_what_it_took_after_the_line_is_laid_anew(stack):
    member = unique("m")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2027-12-31")
    ledger.earn(member, 30, f"b#{member}", "checkin", expires_on="2028-12-31")
    ledger.spend(member, 35, f"s#{member}", "exchange")
    with db.recording() as log:
        ledger.earn(member, 5, f"c#{member}", "checkin", expires_on="2026-12-31")  # behind the newest lot
    assert [r.operation for r in log] == ["TransactWriteItems", "TransactWriteItems"]
    assert lots_of(member) == {"2026-12-31": 5, "2028-12-31": 15}
    ledger.spend(member, 10, f"t#{member}", "exchange")
    assert lots_of(member) == {"2028-12-31": 10}
    balance = ledger.read_balance(member)
    assert ledger.lots_taken(ledger.find_transfer(member, f"s#{member}"), balance) == {"2027-12-31": 20, "2028-12-31": 15}
    assert ledger.lots_taken(ledger.find_transfer(member, f"t#{member}"), balance) == {"2026-12-31": 5, "2028-12-31": 5}
    ledger.reverse(member, f"s#{member}")
    assert lots_of(member) == {"2027-12-31": 20, "2028-12-31": 25}
    assert_sound(member)


def test_a_spend_beyond_the_balance_is_refused_and_changes_nothing(stack):
    member = unique("m")
    ledger.earn(member, 50, f"a#{member}", "checkin")
    with pytest.raises(InsufficientPointsError) as refused:
        ledger.spend(member, 51, f"s#{member}", "exchange")
    assert refused.value.status == 409 and refused.value.code == "INSUFFICIENT_POINTS"
    assert service.available(member) == 50
    assert_sound(member)


def test_a_replayed_spend_answers_as_the_first_even_when_the_balance_is_now_short(stack):
    member = unique("m")
    ledger.earn(member, 50, f"a#{member}", "checkin")
    first = ledger.spend(member, 40, f"s#{member}", "exchange")
    again = ledger.spend(member, 40, f"s#{member}", "exchange")
    assert first.applied and not again.applied and again.delta == -40
    assert service.available(member) == 10


def test_pending_points_are_not_spendable_until_posted(stack):
    member = unique("m")
    pending = ledger.earn_pending(member, 80, f"order#{member}#earn", "order", "o-1")
    assert pending.kind == "pending" and service.available(member) == 0
    assert service.overview(member)["pending"] == 80
    with pytest.raises(InsufficientPointsError):
        ledger.spend(member, 1, f"s#{member}", "exchange")
    posted = ledger.post_pending(member, f"order#{member}#earn")
    assert posted.delta == 80 and ledger.post_pending(member, f"order#{member}#earn").applied is False
    with pytest.raises(PendingResolvedError):
        ledger.void_pending(member, f"order#{member}#earn")
    assert service.available(member) == 80 and service.overview(member)["pending"] == 0
    assert_sound(member)


def test_voided_pending_points_never_arrive(stack):
    member = unique("m")
    ledger.earn_pending(member, 80, f"order#{member}#earn", "order", "o-1", spend_fen=8000)
    ledger.void_pending(member, f"order#{member}#earn")
    with pytest.raises(PendingResolvedError):
        ledger.post_pending(member, f"order#{member}#earn")
    balance = ledger.read_balance(member)
    assert (balance.available, balance.pending, balance.tier_spend_fen) == (0, 0, 0)
    assert_sound(member)


def test_the_expiry_job_expires_due_lots_once_and_a_replay_changes_nothing(stack):
    member = unique("m")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2025-12-31")
    ledger.earn(member, 30, f"b#{member}", "checkin", expires_on="2026-12-31")
    moment = dt.datetime(2025, 12, 31, 16, 10, tzinfo=dt.timezone.utc)  # 2026-01-01 00:10 Shanghai
    first = jobs.expire(moment)
    again = jobs.expire(moment)
    assert first["lotsExpired"] >= 1 and lots_of(member) == {"2026-12-31": 30}
    assert service.available(member) == 30
    expiries = [e for e in service.entries(member, 20)["items"] if e["reason"] == "expiry"]
    assert [e["delta"] for e in expiries] == [-20]
    # The first run indexed every balance it expired under its next lot: the replay reads none of them.
    assert again == {"checked": 0, "lotsExpired": 0, "pointsExpired": 0, "reindexed": 0}
    assert_sound(member)


def test_an_expiry_waits_for_the_end_of_the_shanghai_day(stack):
    member = unique("m")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2026-06-30")
    jobs.expire(dt.datetime(2026, 6, 30, 15, 59, tzinfo=dt.timezone.utc))  # 23:59 Shanghai
    assert service.available(member) == 20
    jobs.expire(dt.datetime(2026, 6, 30, 16, 10, tzinfo=dt.timezone.utc))  # 00:10 the next day
    assert service.available(member) == 0
    assert_sound(member)


def test_a_clawback_never_takes_the_balance_below_zero(stack):
    member = unique("m")
    ledger.earn(member, 100, f"order#{member}#earn", "order")
    ledger.spend(member, 70, f"s#{member}", "exchange")
    receipt = ledger.clawback(member, f"order#{member}#earn")
    assert receipt.delta == -30 and service.available(member) == 0
    assert ledger.clawback(member, f"order#{member}#earn").applied is False
    assert_sound(member)


def test_a_merge_moves_every_lot_by_transfers_and_happens_once(stack):
    source, target = unique("pos"), unique("m")
    ledger.earn(source, 40, f"pos#{source}#import", "pos_import", expires_on="2026-12-31")
    ledger.earn(source, 60, f"x#{source}", "adjust", expires_on="2027-12-31")
    ledger.earn(target, 5, f"c#{target}", "checkin", expires_on="2027-12-31")
    assert ledger.merge(source, target) == 100
    assert ledger.merge(source, target) == 0
    assert lots_of(source) == {} and service.available(source) == 0
    assert lots_of(target) == {"2026-12-31": 40, "2027-12-31": 65}
    assert_sound(source, target)


def with_another_domains_item(spend: service.PreparedSpend):
    from chalicelib.points.models import PointsCap

    def build(txn: Transaction) -> None:
        spend.add_to(txn)
        txn.save(PointsCap(unique("other-domain-item"), count=1), label="other")

    return build


def test_a_prepared_spend_joins_the_callers_transaction(stack):
    member = unique("m")
    ledger.earn(member, 100, f"a#{member}", "checkin")
    spend = service.prepare_spend(member, 30, f"exchange#{member}", "exchange", "campaign-1")
    assert spend.item_count == 3 and spend.points == 30
    with db.recording() as log:
        transact.write(with_another_domains_item(spend))
    assert [r.operation for r in log] == ["TransactWriteItems"]
    assert service.available(member) == 70
    too_much = service.prepare_spend(member, 71, f"exchange2#{member}", "exchange", "campaign-1")
    with db.recording() as log, pytest.raises(InsufficientPointsError):
        transact.write(with_another_domains_item(too_much))
    assert [r.operation for r in log] == ["TransactWriteItems"]  # the refusal itself says the points are short
    with pytest.raises(service.AlreadyAppliedError):
        transact.write(with_another_domains_item(spend))
    assert_sound(member)


def test_a_stale_prepared_spend_fails_its_transaction(stack):
    member = unique("m")
    ledger.earn(member, 100, f"a#{member}", "checkin")
    stale = service.prepare_spend(member, 80, f"exchange#{member}#1", "exchange", "c")
    ledger.spend(member, 50, f"s#{member}", "exchange")
    with pytest.raises(InsufficientPointsError):
        transact.write(stale.add_to)
    assert service.available(member) == 50
    assert_sound(member)


def test_checkin_keeps_a_streak_and_pays_its_bonus_once_a_day(stack):
    member = unique("m")
    start = dt.datetime(2026, 5, 1, 1, 0, tzinfo=dt.timezone.utc)
    answers = []
    for day in range(7):
        with clock.frozen_at(start + dt.timedelta(days=day)):
            answers.append(service.checkin(member))
    assert [a["streak"] for a in answers] == [1, 2, 3, 4, 5, 6, 7]
    assert [a["awarded"] for a in answers] == [5] * 6 + [25]
    assert answers[-1]["available"] == 55 == service.available(member)
    with clock.frozen_at(start + dt.timedelta(days=6, hours=10)):  # 19:00 Shanghai, the same day
        with pytest.raises(AlreadyCheckedInError):
            service.checkin(member)
    with clock.frozen_at(start + dt.timedelta(days=9)):  # a day missed: the streak starts again
        assert service.checkin(member)["streak"] == 1
    assert_sound(member)


def test_a_shanghai_day_is_not_a_utc_day_for_checkin(stack):
    member = unique("m")
    with clock.frozen_at(dt.datetime(2026, 5, 1, 15, 30, tzinfo=dt.timezone.utc)):  # 23:30 Shanghai
        service.checkin(member)
    with clock.frozen_at(dt.datetime(2026, 5, 1, 16, 30, tzinfo=dt.timezone.utc)):  # 00:30 the next day
        assert service.checkin(member)["streak"] == 2


def test_round_trips_of_checkin_and_adjust(stack):
    from chalicelib.usecases import admin_points, me

    member = me.login(f"dev:{unique('adj')}")["member"]["memberId"]
    with db.recording() as log:
        service.checkin(member)  # login read the balance in this container
    assert [r.operation for r in log] == ["TransactWriteItems"]
    with db.recording() as log:
        added = admin_points.adjust(member, 10, "goodwill", actor="admin-1")  # with the member check
    assert [r.operation for r in log] == ["TransactWriteItems"]
    with db.recording() as log:
        taken = admin_points.adjust(member, -12, "correction", actor="admin-1")
    assert [r.operation for r in log] == ["TransactWriteItems"]
    assert added["delta"] == 10 and taken["delta"] == -12
    assert service.available(member) == 3
    assert_sound(member)


def test_a_checkin_planned_from_a_stale_balance_is_refused_and_planned_again(stack):
    member = unique("m")
    with clock.frozen_at(SHANGHAI_NOON):
        assert service.checkin(member)["streak"] == 1
    seen_here = ledger.recall(member)
    ledger.earn(member, 40, f"a#{member}", "adjust")
    ledger.remember(seen_here)  # as if another container had written the earn
    with clock.frozen_at(SHANGHAI_NOON + dt.timedelta(days=1)), db.recording() as log:
        answer = service.checkin(member)
    # The refused write answered with the current balance: no read, one more write.
    assert [r.operation for r in log] == ["TransactWriteItems", "TransactWriteItems"]
    assert answer["streak"] == 2 and answer["available"] == service.available(member)
    assert_sound(member)


def test_a_checkin_in_a_container_that_never_saw_the_member_reads_once(stack):
    member = unique("m")
    ledger.earn(member, 40, f"a#{member}", "adjust")
    ledger.forget(member)
    with db.recording() as log:
        answer = service.checkin(member)
    assert [r.operation for r in log] == ["GetItem", "TransactWriteItems"]
    assert answer["available"] == 40 + answer["awarded"]


def test_an_adjustment_for_an_unknown_member_is_not_found_whatever_its_sign(stack):
    from chalicelib.errors import NotFoundError
    from chalicelib.usecases import admin_points

    with pytest.raises(NotFoundError):
        admin_points.adjust(unique("nobody"), 10, "goodwill", actor="admin-1")
    with pytest.raises(NotFoundError):
        admin_points.adjust(unique("nobody"), -10, "correction", actor="admin-1")


def test_profile_points_are_awarded_once(stack):
    member = unique("m")
    reward = lambda txn: service.add_profile_reward(txn, member, clock.now())  # noqa: E731
    assert transact.write(reward, replan=True) == points_config().profile.points
    with pytest.raises(service.AlreadyAppliedError):
        transact.write(reward, replan=True)
    assert service.available(member) == points_config().profile.points
    entries = service.entries(member, 10)["items"]
    assert [e["entryId"] for e in entries] == [f"profile#{member}"]


def test_review_points_stop_at_the_daily_cap(stack):
    member = unique("m")
    # A day ahead of the real clock: a cap's TTL lies 3 days after its day, and DynamoDB
    # Local deletes expired items, which would reset a cap frozen in the past mid-test.
    noon = dt.datetime(2031, 3, 10, 4, 0, tzinfo=dt.timezone.utc)
    with clock.frozen_at(noon):
        for n in range(3):
            service.award_review(member, unique("review"))
        with pytest.raises(PointsCapReachedError):
            service.award_review(member, unique("review"))
    with clock.frozen_at(noon + dt.timedelta(days=1)):
        service.award_review(member, unique("review"))
    assert service.available(member) == 4 * points_config().review.points
    assert_sound(member)


def test_referral_points_are_paid_once_per_referred_member(stack):
    referrer, referred = unique("m"), unique("m")
    service.award_referral(referrer, referred)
    service.award_referral(referrer, referred)
    assert service.available(referrer) == points_config().referral.points


def test_order_points_follow_tier_birthday_and_member_day_multipliers():
    ordinary = dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.timezone.utc)
    member_day = dt.datetime(2026, 3, 18, 4, 0, tzinfo=dt.timezone.utc)
    assert rules.order_points(12_345, "explorer", None, ordinary) == 123
    assert rules.order_points(12_345, "geek", None, ordinary) == 185
    assert rules.order_points(12_345, "explorer", "1990-03-10", ordinary) == 246
    assert rules.order_points(12_345, "explorer", None, member_day) == 246
    assert rules.order_points(12_345, "black_gold", "1990-03-18", member_day) == 493


def test_the_configuration_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"checkin": {"points": 9}, "expiry": {"policy": "days", "days": 30}}')
    try:
        assert points_config().checkin.points == 9
        assert points_config().expiry.expires_on(dt.date(2026, 1, 1)) == dt.date(2026, 1, 31)
        assert points_config().profile.points == 100
    finally:
        monkeypatch.delenv(CONFIG_ENV)
    assert points_config().expiry.expires_on(dt.date(2026, 5, 1)) == dt.date(2027, 12, 31)


def test_the_audit_finds_a_balance_that_disagrees_with_its_transfers(stack):
    member = unique("m")
    ledger.earn(member, 10, f"a#{member}", "checkin", expires_on="2027-12-31")
    PointsBalance(member).update(actions=[PointsBalance.available.add(5)])
    try:
        result = audit.audit([member])
        rules_broken = {example["rule"] for example in result["examples"]}
        assert {"balance_not_sum_of_lots", "balance_not_sum_of_transfers"} <= rules_broken
    finally:
        PointsBalance(member).update(actions=[PointsBalance.available.add(-5)])
    assert_sound(member)


def test_the_audit_finds_a_negative_lot(stack):
    from pynamodb.expressions.operand import Path

    member = unique("m")
    ledger.earn(member, 10, f"a#{member}", "checkin", expires_on="2027-12-31")
    lot = Path(lot_attribute("2027-12-31"))
    PointsBalance(member).update(actions=[lot.add(-12), PointsBalance.available.add(-12)])
    try:
        rules_broken = {example["rule"] for example in audit.audit([member])["examples"]}
        assert {"negative_lot", "negative_balance"} <= rules_broken
    finally:
        PointsBalance(member).update(actions=[lot.add(12), PointsBalance.available.add(12)])
    assert_sound(member)


def test_the_whole_ledger_sums_to_zero_with_every_other_tests_data(stack):
    result = whole_table.ledger_proof()
    assert result["checked"] > 0
    assert result["breaches"] == 0, result["examples"]


def test_an_expiry_is_dated_by_the_jobs_moment_not_the_wall_clock(stack):
    member = unique("m")
    ledger.earn(member, 20, f"a#{member}", "checkin", expires_on="2025-06-30")
    moment = dt.datetime(2025, 6, 30, 16, 10, tzinfo=dt.timezone.utc)  # 2025-07-01 00:10 Shanghai
    jobs.expire(moment)
    expiries = [e for e in service.entries(member, 20)["items"] if e["reason"] == "expiry"]
    assert [(e["delta"], e["createdAt"]) for e in expiries] == [(-20, clock.iso(moment))]
    assert_sound(member)
