"""The transaction composer against DynamoDB Local: order, refusals, budgets, contention."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from chalicelib import db, transact
from chalicelib.errors import ConflictError
from chalicelib.transact import Replan, RetryPolicy, Transaction, TransactionRefusedError, TransactionTooLargeError
from tests.conftest import unique


class Counter(db.SiyuModel):
    class Meta:
        table = "test-counters"

    counter_id = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)


class OverLimitError(ConflictError):
    code = "OVER_LIMIT"


@pytest.fixture(scope="module", autouse=True)
def counters_table(stack: Any) -> Iterator[None]:
    Counter._connection = None
    Counter._get_connection()
    if not Counter.exists():
        Counter.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    yield


def add(txn: Transaction, counter: Counter, amount: int, limit: int, *, label: str, explain: Any = None) -> None:
    txn.update(counter, [Counter.value.add(amount)], Counter.value <= limit - amount, label=label, explain=explain)


def fresh(value: int = 0) -> Counter:
    counter = Counter(unique("c"), value=value)
    counter.save()
    return counter


def test_items_are_written_together_in_one_round_trip() -> None:
    first, second = fresh(), fresh()

    def build(txn: Transaction) -> str:
        add(txn, first, 1, 10, label="first")
        add(txn, second, 2, 10, label="second")
        return "done"

    with db.recording() as requests:
        assert transact.write(build) == "done"
    assert [request.operation for request in requests] == ["TransactWriteItems"]
    assert (Counter.get(first.counter_id).value, Counter.get(second.counter_id).value) == (1, 2)


def test_a_refusal_is_explained_by_the_participant_that_refused_with_its_old_item() -> None:
    roomy, full = fresh(0), fresh(9)
    seen: list[int] = []

    def explain_full(old: Counter) -> Exception:
        seen.append(old.value)
        return OverLimitError()

    def build(txn: Transaction) -> None:
        # A check added after an update: the composer's order, not pynamodb's grouping, maps the reason.
        add(txn, roomy, 1, 10, label="roomy", explain=lambda old: AssertionError("roomy did not refuse"))
        txn.condition_check(Counter, full.counter_id, condition=Counter.value <= 5, label="full", explain=explain_full)

    with pytest.raises(OverLimitError):
        transact.write(build)
    assert seen == [9]
    assert Counter.get(roomy.counter_id).value == 0


def test_an_unexplained_refusal_names_the_refused_items() -> None:
    counter = fresh(9)
    missing = Counter(unique("missing"))

    def build(txn: Transaction) -> None:
        add(txn, counter, 5, 10, label="counter")
        txn.condition_check(Counter, missing.counter_id, condition=Counter.counter_id.exists(), label="missing")

    with pytest.raises(TransactionRefusedError) as refused:
        transact.write(build)
    assert [refusal.label for refusal in refused.value.refusals] == ["counter", "missing"]
    assert refused.value.item("counter").value == 9
    assert refused.value.refused("missing") and refused.value.item("missing") is None


def test_replanning_starts_from_what_the_refusal_showed() -> None:
    counter = fresh(3)
    plans: list[int | None] = []

    def build(txn: Transaction) -> int:
        seen = txn.previous_refusal.item("counter").value if txn.previous_refusal else 0
        plans.append(seen)
        txn.update(counter, [Counter.value.set(seen + 1)], Counter.value == seen, label="counter")
        return seen + 1

    with db.recording() as requests:
        assert transact.write(build, replan=True) == 4
    assert plans == [0, 3]
    assert len(requests) == 2


def test_a_stale_plan_outranks_the_explanations_after_it() -> None:
    version, nearly_full = fresh(1), fresh(9)
    plans: list[int] = []

    def build(txn: Transaction) -> None:
        seen = txn.previous_refusal.item("version").value if txn.previous_refusal else 0
        plans.append(seen)
        txn.condition_check(Counter, version.counter_id, condition=Counter.value == seen, label="version",
                            explain=lambda old: Replan())
        # Judged by the stale plan, this refusal would say "over the limit": it is not asked.
        add(txn, nearly_full, 1, 10 if seen else 9, label="full", explain=lambda old: OverLimitError())

    with pytest.raises(TransactionRefusedError):
        transact.write(build)
    transact.write(build, replan=True)
    assert plans == [0, 0, 1]
    assert Counter.get(nearly_full.counter_id).value == 10


def test_more_than_a_hundred_items_is_refused_before_anything_is_sent() -> None:
    counters = [Counter(unique("c")) for _ in range(101)]

    def build(txn: Transaction) -> None:
        for number, counter in enumerate(counters):
            txn.save(counter, label=f"counter{number}")

    with db.recording() as requests, pytest.raises(TransactionTooLargeError):
        transact.write(build)
    assert requests == []


def test_more_than_four_megabytes_is_refused_before_anything_is_sent() -> None:
    counters = [Counter(unique("c")) for _ in range(11)]

    def build(txn: Transaction) -> None:
        for number, counter in enumerate(counters):
            counter.value = 10 ** 37  # a number attribute is small; the padding below is not
            txn.save(counter, Counter.counter_id.does_not_exist() | (Counter.counter_id == "x" * 400_000),
                     label=f"counter{number}")

    with db.recording() as requests, pytest.raises(TransactionTooLargeError):
        transact.write(build)
    assert requests == []


def test_the_same_item_twice_is_a_programming_error() -> None:
    counter = fresh()
    txn = Transaction()
    add(txn, counter, 1, 10, label="once")
    with pytest.raises(ValueError, match="twice"):
        add(txn, counter, 1, 10, label="twice")


class _Contention:
    """Cancels the next `times` TransactWriteItems with a TransactionConflict, as DynamoDB does under contention."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.sent = 0

    def __call__(self, **kwargs: Any) -> Any:
        self.sent += 1
        if self.left <= 0:
            return None
        self.left -= 1
        reasons = [{"Code": "TransactionConflict"}]
        error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}, "CancellationReasons": reasons}
        return SimpleNamespace(status_code=400, headers={}), error


@pytest.fixture
def contention() -> Iterator[Any]:
    events = db.connection().client.meta.events
    installed: list[_Contention] = []

    def install(times: int) -> _Contention:
        hook = _Contention(times)
        events.register_first("before-call.dynamodb.TransactWriteItems", hook)
        installed.append(hook)
        return hook

    yield install
    for hook in installed:
        events.unregister("before-call.dynamodb.TransactWriteItems", hook)


def test_contention_is_retried_and_the_write_lands_once(contention: Any) -> None:
    counter = fresh()
    hook = contention(3)
    transact.write(lambda txn: add(txn, counter, 1, 10, label="counter"), policy=RetryPolicy(attempts=5, base_seconds=0.001))
    assert hook.sent == 4
    assert Counter.get(counter.counter_id).value == 1


def test_contention_that_outlasts_the_budget_is_the_callers_busy_error(contention: Any) -> None:
    counter = fresh()
    hook = contention(100)
    with pytest.raises(transact.TryAgainError):
        transact.write(lambda txn: add(txn, counter, 1, 10, label="counter"), policy=RetryPolicy(attempts=4, base_seconds=0.001))
    assert hook.sent == 4
    assert Counter.get(counter.counter_id).value == 0
