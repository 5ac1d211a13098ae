"""Simultaneous spends and check-ins against DynamoDB Local: the conditions hold the line."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from chalicelib.errors import SiyuError
from chalicelib.points import audit, ledger, service
from tests.conftest import unique


def outcome(action) -> str:
    try:
        action()
    except SiyuError as error:
        return error.code
    return "ok"


def test_twelve_simultaneous_spends_of_30_against_100_leave_exactly_10(stack):
    member = unique("m")
    ledger.earn(member, 40, f"a#{member}", "checkin", expires_on="2026-12-31")
    ledger.earn(member, 60, f"b#{member}", "checkin", expires_on="2027-12-31")
    spend = lambda n: outcome(lambda: ledger.spend(member, 30, f"s#{member}#{n}", "exchange"))  # noqa: E731
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(spend, range(12)))
    assert sorted(results) == ["INSUFFICIENT_POINTS"] * 9 + ["ok"] * 3
    assert service.available(member) == 10
    assert dict(ledger.read_balance(member).sorted_lots()) == {"2027-12-31": 10}
    assert audit.audit([member])["breaches"] == 0


def test_ten_simultaneous_checkins_award_once(stack):
    member = unique("m")
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: outcome(lambda: service.checkin(member)), range(10)))
    assert sorted(results) == ["ALREADY_CHECKED_IN"] * 9 + ["ok"]
    assert len(service.entries(member, 20)["items"]) == 1
    assert service.available(member) == 5
    assert audit.audit([member])["breaches"] == 0


def test_ten_simultaneous_checkins_over_http_award_once(api, member):
    _, token = member
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: api.post("/points/checkin", token), range(10)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 9
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"ALREADY_CHECKED_IN"}
    assert api.get("/points", token).json()["available"] == 5


def test_spends_and_earns_racing_keep_every_point(stack):
    member = unique("m")
    ledger.earn(member, 100, f"seed#{member}", "checkin", expires_on="2026-12-31")

    def work(n: int) -> str:
        if n % 2:
            return outcome(lambda: ledger.earn(member, 10, f"e#{member}#{n}", "review", expires_on="2027-12-31"))
        return outcome(lambda: ledger.spend(member, 15, f"s#{member}#{n}", "exchange"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(16)))
    earned = 10 * sum(1 for n in range(16) if n % 2 and results[n] == "ok")
    spent = 15 * sum(1 for n in range(16) if not n % 2 and results[n] == "ok")
    assert service.available(member) == 100 + earned - spent
    assert audit.audit([member])["breaches"] == 0
