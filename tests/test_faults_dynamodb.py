"""DynamoDB refusing every write, or some at random: a request is retried or answered TRY_AGAIN, never half done.

Every write route of the matrix (tests/route_calls.py) is called by a caller
it lets in while every DynamoDB write is answered with throttling (503
`TRY_AGAIN` with `Retry-After` once the retries run out) or with a
transaction conflict (409 `TRY_AGAIN`, the contract's contention answer);
then, the faults gone, the very same request gets the answer the matrix
gives it, which shows the refused one left nothing behind (a half-made claim
or booking would answer `ALREADY_CLAIMED` or `ALREADY_BOOKED`).
"""

from __future__ import annotations

import time

import pytest

from tests import faults
from tests.route_calls import CALLERS, CALLS, expected, make_world, policy_restored, route_keys, send

pytestmark = pytest.mark.usefixtures("stack")

# The account deletion comes last: it ends the caller's session.
WRITE_ROUTES = sorted((route for route in route_keys() if not route.startswith("GET ")),
                      key=lambda route: route == "DELETE /members/me")
STORM_ANSWERS = {"throttled": 503, "throttling": 503, "conflict": 409}
# A claim says every shard was contended in its own words (API.md).
CONTENDED = {"TRY_AGAIN", "CLAIM_BUSY"}
# A refusal comes well before API Gateway gives up on the integration (29 s) and answers 504 for us.
REFUSAL_BUDGET_SECONDS = 10


@pytest.fixture
def world(api, stack):
    """A world of each test's own: the calls use up what they name (today's check-in, the account)."""
    with policy_restored():
        yield make_world(api, stack)


def _let_in(route: str) -> str:
    statuses = expected(route)
    return next(who for who in CALLERS if 200 <= statuses[who] < 300)


def test_every_write_route_is_refused_cleanly_in_a_storm_and_then_answers_as_before(world):
    wrong = []
    for number, route in enumerate(WRITE_ROUTES):
        kind = ("throttled", "conflict", "throttling")[number % 3]
        who = _let_in(route)
        call = CALLS[route](world, who)
        with faults.injected(faults.Faults(rate=1.0, kinds=(kind,))) as storm:
            started = time.monotonic()
            refused = send(world, route, who, call)
            took = time.monotonic() - started
        print(f"{route} {kind}: {refused.status_code} in {took:.2f} s, {storm.total} faults")
        wanted = STORM_ANSWERS[kind]
        body = refused.json() if refused.headers.get("Content-Type", "").startswith("application/json") else {}
        if refused.status_code != wanted or body.get("code") not in CONTENDED or storm.total == 0:
            wrong.append(f"{route} in a {kind} storm: {refused.status_code} {refused.text[:160]} "
                         f"({storm.total} faults)")
        elif wanted == 503 and refused.headers.get("Retry-After") != "1":
            wrong.append(f"{route}: 503 without Retry-After")
        elif took > REFUSAL_BUDGET_SECONDS:
            wrong.append(f"{route} in a {kind} storm: answered after {took:.1f} s")
        again = send(world, route, who, call)
        if again.status_code != expected(route)[who]:
            wrong.append(f"{route} after the {kind} storm: {again.status_code} (wanted {expected(route)[who]}) "
                         f"{again.text[:160]}")
    assert wrong == [], "\n".join(wrong)


def test_faults_at_random_points_of_every_write_path_leave_every_invariant_true(world):
    """A third of all DynamoDB requests, reads too, fail at random: answers are the matrix's or TRY_AGAIN.

    The resources each call names are made in fair weather; a call answered
    TRY_AGAIN is sent again in fair weather and must then get the matrix's
    answer. Afterwards the stock, the coupon locks and the points ledger audit clean.
    """
    from tests.order_helpers import invariant_breaches

    wrong = []
    weather = faults.Faults(rate=0.3, seed=14, operations=faults.EVERYTHING)
    with faults.injected(weather):
        for route in WRITE_ROUTES:
            who = _let_in(route)
            with weather.paused():
                call = CALLS[route](world, who)
            answered = send(world, route, who, call)
            if answered.status_code == expected(route)[who]:
                continue
            if answered.status_code in (409, 503) and answered.json().get("code") in CONTENDED:
                with weather.paused():
                    again = send(world, route, who, call)
                if again.status_code != expected(route)[who]:
                    wrong.append(f"{route} again after TRY_AGAIN: {again.status_code} {again.text[:160]}")
                continue
            wrong.append(f"{route}: {answered.status_code} {answered.text[:160]}")
    assert weather.total > 30, weather.injected
    assert wrong == [], "\n".join(wrong)
    assert invariant_breaches([world.member_a, world.member_b]) == {}
