"""The mixed member journey under a little load (2, then 4 members at once, 10 s each), then the invariants.

Locust drives the members from a process of its own against the session's
stack over HTTP (see bench/load.py for why it may not run in this one).
"""

from __future__ import annotations

import importlib.util

import pytest

from bench.load import markdown, run_load

STEPS, SECONDS = (2, 4), 10
ROUTES = {
    "POST /auth/login",
    "GET /stores",
    "POST /coupons/campaigns/{campaignId}/claim",
    "GET /stores/{storeId}/slots",
    "POST /appointments",
    "POST /orders",
    "POST /sandbox/wxpay/pay",
    "POST /store/orders/{orderId}/accept",
    "POST /store/orders/{orderId}/ready",
    "GET /orders/{orderId}",
    "POST /store/orders/{orderId}/pickup",
}


@pytest.fixture(scope="module")
def results(stack):
    assert importlib.util.find_spec("locust"), "locust is not installed (requirements-dev.txt pins it)"
    found = run_load(stack, STEPS, SECONDS)
    print(markdown(found))
    return found


def test_every_step_walks_every_route_without_a_single_error(results):
    assert [step["users"] for step in results["steps"]] == list(STEPS)
    for step in results["steps"]:
        routes = step["routes"]
        assert set(routes) == ROUTES, step["users"]
        failed = {route: figures["statuses"] for route, figures in routes.items() if figures["errors"]}
        assert failed == {}, (step["users"], failed, step["errorExamples"], results["serverErrors"])
        assert not any(figures["serverErrors"] for figures in routes.values())
        assert all(figures["ok"] > 0 for figures in routes.values()), (step["users"], routes)
        assert step["journeys"]["finished"] > 0


def test_nothing_oversold_no_order_stuck_no_slot_overbooked_and_the_ledger_balances(results):
    checked = results["invariants"]
    for name in ("coupons", "orders", "stock", "appointments", "points"):
        assert checked[name]["holds"], (name, checked[name])
    assert checked["all"]["holds"]
    assert checked["orders"]["orders"] == results["totals"]["orders"] > 0
