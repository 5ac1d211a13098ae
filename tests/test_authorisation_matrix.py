"""Every route, called by every kind of caller, answers exactly what the matrix says.

Per route the refusals are called first and then the callers allowed in: an
allowed call succeeding afterwards shows the refusals changed nothing.
"""

from __future__ import annotations

import pytest

from tests.route_calls import CALLERS, CALLS, MATRIX, answer, in_order, make_world, mismatch, policy_restored, route_keys

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def world(api, stack):
    with policy_restored():
        yield make_world(api, stack)


def test_the_matrix_and_the_calls_name_every_route_and_nothing_else():
    routes = route_keys()
    assert len(routes) == len(set(routes))
    assert set(MATRIX) == set(routes), f"routes the matrix misses: {sorted(set(routes) - set(MATRIX))}; " \
                                       f"lines of no route: {sorted(set(MATRIX) - set(routes))}"
    assert set(CALLS) == set(routes)
    for route in routes:
        assert len(MATRIX[route].split()) == len(CALLERS), route


def test_every_route_answers_every_caller_as_the_matrix_says(world):
    # The account deletions come last: they end the callers' sessions.
    routes = sorted(route_keys(), key=lambda route: route == "DELETE /members/me")
    mismatches = []
    for route in routes:
        for who in in_order(route):
            found = mismatch(route, who, answer(world, route, who))
            if found:
                mismatches.append(found)
    assert mismatches == [], "\n".join(mismatches)
