"""Idempotency-Key: first answer returned again, a different body refused, one run under races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import idempotency
from chalicelib.errors import ConflictError, IdempotencyKeyReusedError, InvalidRequestError
from tests.conftest import unique


def test_the_same_key_and_body_answer_the_first_answer_and_run_once(stack):
    runs = []
    scope, key = unique("scope"), unique("key")

    def action():
        runs.append(1)
        return {"n": len(runs)}

    first = idempotency.run_once(scope, key, {"a": 1}, action)
    again = idempotency.run_once(scope, key, {"a": 1}, action)
    assert first == again == {"n": 1}
    assert len(runs) == 1


def test_the_same_key_with_another_body_is_refused(stack):
    scope, key = unique("scope"), unique("key")
    idempotency.run_once(scope, key, {"a": 1}, lambda: {"ok": True})
    with pytest.raises(IdempotencyKeyReusedError):
        idempotency.run_once(scope, key, {"a": 2}, lambda: {"ok": True})


def test_a_failed_request_is_not_remembered(stack):
    scope, key = unique("scope"), unique("key")

    def failing():
        raise ConflictError("no", code="NOPE")

    with pytest.raises(ConflictError):
        idempotency.run_once(scope, key, {}, failing)
    assert idempotency.run_once(scope, key, {}, lambda: {"ok": True}) == {"ok": True}


def test_keys_are_scoped_per_caller(stack):
    key = unique("key")
    assert idempotency.run_once("member-a", key, {}, lambda: {"who": "a"}) == {"who": "a"}
    assert idempotency.run_once("member-b", key, {}, lambda: {"who": "b"}) == {"who": "b"}


def test_simultaneous_requests_with_one_key_run_the_action_once(stack):
    scope, key = unique("scope"), unique("key")
    runs, gate = [], threading.Barrier(8)

    def action():
        runs.append(1)
        return {"ok": True}

    def attempt(_):
        gate.wait()
        try:
            return idempotency.run_once(scope, key, {}, action)
        except ConflictError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert len(runs) == 1
    assert all(answer in ({"ok": True}, "REQUEST_IN_PROGRESS") for answer in answers)


def test_a_key_that_is_too_long_is_a_bad_request(stack):
    with pytest.raises(InvalidRequestError):
        idempotency.run_once("s", "k" * 500, {}, lambda: {})
