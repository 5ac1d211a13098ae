"""Jobs that scale: work found through sparse indexes, whole tables visited by the segmented state machine.

Counted requests show what a job reads; a segmented run stopped part-way
resumes from where it stopped with the same verdict; replays change nothing.
"""

from __future__ import annotations

import ast
import datetime as dt
import random
from pathlib import Path

import pytest

from chalicelib import clock, db, segments
from chalicelib.members.models import Member
from chalicelib.points import jobs, ledger, service
from chalicelib.points.models import PointsActivity, PointsBalance
from chalicelib.runs import JobRun
from local.segmented import run_inline, wait
from tests import whole_table
from tests.conftest import live_member, unique
from tests.test_infra_access_observed import scheduled_event
from tests.test_points_api import cron

pytestmark = pytest.mark.usefixtures("stack")

ROOT = Path(__file__).resolve().parents[1]


def balances_read(log: list[db.Request]) -> set[str]:
    """The member accounts whose balance items the requests read."""
    table = PointsBalance.Meta.table_name
    found = set()
    for request in log:
        if request.operation == "BatchGetItem":
            for key in request.body["RequestItems"].get(table, {}).get("Keys", []):
                found.add(key["account_id"]["S"])
        elif request.operation == "GetItem" and request.body["TableName"] == table:
            found.add(request.body["Key"]["account_id"]["S"])
    return found


def a_moment_of_its_own() -> dt.datetime:
    """A moment no other run used (runs are named by their moment)."""
    return dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=random.randrange(10**8))


# --- Points expiry: only the balances with a lot due -------------------------------------

def test_an_expiry_run_reads_only_the_balances_with_a_lot_due_and_a_replay_reads_none_of_them():
    today = clock.shanghai_date(clock.now())
    yesterday, later = (today - dt.timedelta(days=1)).isoformat(), (today + dt.timedelta(days=40)).isoformat()
    due, not_due, emptied = [live_member() for _ in range(3)], [live_member() for _ in range(5)], live_member()
    for member in due:
        ledger.earn(member, 30, f"old#{member}", "checkin", expires_on=yesterday)
        ledger.earn(member, 12, f"new#{member}", "checkin", expires_on=later)
    for member in not_due:
        ledger.earn(member, 50, f"new#{member}", "checkin", expires_on=later)
    # Indexed under yesterday, then spent to nothing: the index is early, the run puts it right.
    ledger.earn(emptied, 20, f"old#{emptied}", "checkin", expires_on=yesterday)
    ledger.spend(emptied, 20, f"spend#{emptied}", "exchange")

    with db.recording() as log:
        first = jobs.expire(clock.now())
    read = balances_read(log)
    assert set(due) | {emptied} <= read and not read & set(not_due)
    assert len(read) == first["checked"]  # each due balance read once, nothing else
    assert not [request for request in log if request.operation == "Scan"]
    assert first["lotsExpired"] >= 3 and first["reindexed"] >= 1
    for member in due:
        balance = PointsBalance.get(member, consistent_read=True)
        assert (balance.available, balance.next_expiry) == (12, later)
    assert PointsBalance.get(emptied, consistent_read=True).next_expiry is None

    with db.recording() as log:
        again = jobs.expire(clock.now())
    assert not balances_read(log) & ({emptied} | set(due))
    assert again["lotsExpired"] == 0
    assert [ledger.read_balance(member).available for member in due] == [12, 12, 12]


def test_a_credit_to_a_sooner_lot_indexes_the_balance_under_it():
    member = live_member()
    today = clock.shanghai_date(clock.now())
    ledger.earn(member, 10, f"far#{member}", "checkin", expires_on=(today + dt.timedelta(days=300)).isoformat())
    sooner = (today + dt.timedelta(days=5)).isoformat()
    ledger.earn(member, 10, f"near#{member}", "checkin", expires_on=sooner)  # lays the line anew
    assert PointsBalance.get(member, consistent_read=True).next_expiry == sooner


# --- Tier review: only the members whose figures moved ----------------------------------------

def review_at(moment: dt.datetime) -> dict:
    import app

    return app.tier_review(scheduled_event(moment), None)


def test_a_tier_review_touches_only_the_members_an_activity_marked_and_a_replay_touches_none():
    active, quiet = live_member(), live_member()
    ledger.earn(quiet, 10, f"adjust#{quiet}", "adjust")  # no activity: the figures do not move
    moment = clock.now()
    review_at(moment)  # whatever earlier tests marked
    service.checkin(active)
    assert PointsBalance.get(active, consistent_read=True).review_due is not None
    with db.recording() as log:
        result = review_at(moment)
    assert active in balances_read(log) and quiet not in balances_read(log)
    assert result["checked"] == len(balances_read(log))
    assert not [request for request in log if request.operation == "Scan"]
    reviewed = PointsBalance.get(active, consistent_read=True)
    assert reviewed.review_due is None and reviewed.tier_activity == 1

    with db.recording() as log:
        again = review_at(moment)
    assert active not in balances_read(log) and again["checked"] == 0


def test_the_months_turn_marks_the_members_whose_activity_left_the_window_once():
    member = live_member()
    at_the_time = dt.datetime(2029, 3, 10, 4, 0, tzinfo=dt.timezone.utc)
    with clock.frozen_at(at_the_time):
        for _ in range(6):  # what 探索者 asks: six orders, 9,000 yuan
            service.earn_order_points(member, unique("order"), 150_000, "explorer")
    review_at(at_the_time)
    assert Member.get(member, consistent_read=True).tier == "pioneer"
    assert PointsActivity.get(member, "2029-03", consistent_read=True).month_shard is not None

    a_year_on = dt.datetime(2030, 3, 2, 4, 0, tzinfo=dt.timezone.utc)  # 2029-03 has left the 12 months
    with db.recording() as log:
        turned = review_at(a_year_on)
    assert turned["queued"] >= 1 and turned["downgraded"] >= 1 and member in balances_read(log)
    assert Member.get(member, consistent_read=True).tier == "explorer"
    assert review_at(a_year_on)["queued"] == 0


# --- The segmented machine ------------------------------------------------------------------

def plant_breach() -> tuple[str, PointsBalance]:
    member = live_member()
    ledger.earn(member, 25, f"earn#{member}", "checkin")
    balance = PointsBalance(member)
    balance.update(actions=[PointsBalance.available.add(5)])  # points no transfer explains
    return member, balance


def named(result: dict, member: str) -> set[str]:
    return {example["rule"] for example in result["examples"] if example["account"] == member}


def test_a_segmented_proof_stopped_after_one_segment_resumes_with_the_same_verdict_and_counts_no_page_twice(stack):
    member, balance = plant_breach()
    try:
        whole = whole_table.run("ledger-proof", segments=3)
        assert "balance_not_sum_of_transfers" in named(whole, member)

        moment = a_moment_of_its_own()
        payload = segments.machine_input("ledger-proof", moment, 3, pages_per_call=1)
        event = {**{key: payload[key] for key in ("job", "runId", "moment", "totalSegments", "pagesPerCall")},
                 "segment": 0}
        stopped = segments.scan_segment(event)  # one page of segment 0, then the Lambda "dies"
        assert stopped["pages"] == 1
        segments.scan_segment(stopped)  # and again, a page further
        cursor = JobRun.get(payload["runId"], "segment#0000", consistent_read=True)
        with pytest.raises(segments.SegmentsUnfinishedError):
            segments.finish(payload)

        started = segments.start("ledger-proof", moment, 3, pages_per_call=1)  # the machine picks the run up
        resumed = wait(started["execution"])
        assert JobRun.get(payload["runId"], "segment#0000", consistent_read=True).pages >= cursor.pages
        assert {key: resumed[key] for key in ("checked", "breaches")} == {key: whole[key] for key in ("checked", "breaches")}
        assert resumed["pages"] == whole["pages"]  # every page once
        assert "balance_not_sum_of_transfers" in named(resumed, member)
    finally:
        balance.update(actions=[PointsBalance.available.add(-5)])


def test_a_replayed_run_answers_its_result_and_raises_no_alarm_again(stack, capsys):
    member, balance = plant_breach()
    try:
        now = clock.iso(a_moment_of_its_own())
        first = cron(stack, "ledger-proof", now)
        assert "balance_not_sum_of_transfers" in named(first, member)
        capsys.readouterr()
        again = cron(stack, "ledger-proof", now)
        assert again == first
        assert "points ledger breach" not in capsys.readouterr().out
    finally:
        balance.update(actions=[PointsBalance.available.add(-5)])


def test_the_whole_ledger_proves_clean_over_any_number_of_segments():
    one, four = whole_table.run("ledger-proof", segments=1), whole_table.run("ledger-proof", segments=4)
    assert one["breaches"] == four["breaches"] == 0, (one["examples"], four["examples"])
    assert one["checked"] == four["checked"] > 0


def test_a_held_reservation_without_its_stock_row_is_named():
    from chalicelib.catalog import stock
    from chalicelib.catalog.models import Stock
    from tests.order_helpers import new_sku
    from tests.order_helpers import stock as count

    store, sku, order = unique("store"), new_sku(), unique("order")
    count(store, sku, 4)
    stock.reserve_order(order, store, {sku: 3})
    row = Stock.get(store, sku, consistent_read=True)
    row.delete()
    try:
        found = [breach for breach in whole_table.stock_breaches() if breach["skuId"] == sku]
        assert found == [{"storeId": store, "skuId": sku, "problems": ["3 held without a stock row"]}]
    finally:
        row.save()
        stock.release_order(order)
    assert [breach for breach in whole_table.stock_breaches() if breach["skuId"] == sku] == []


def test_a_whole_table_job_of_a_bad_name_is_refused():
    with pytest.raises(KeyError, match="no whole-table job"):
        run_inline("drop-tables", clock.now(), 1)


# --- No scheduled function scans a whole table -------------------------------------------------

# Where chalicelib may call `scan(`: the segmented machine's task (a page of one segment at a
# time), and two small tables read whole by design (the store directory, HQ's campaign list).
ALLOWED_SCANS = {
    ("chalicelib/segments.py", "_page"),
    ("chalicelib/stores/service.py", "list_stores"),
    ("chalicelib/coupons/service.py", "admin_campaigns"),
}


def scan_calls() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "scan":
                    found.add((str(path.relative_to(ROOT)), function.name))
    return found


def test_only_the_segmented_machine_scans_a_table_that_grows_with_the_members():
    assert scan_calls() == ALLOWED_SCANS
