"""The one way to write several items at once: a composed TransactWriteItems.

Each participant adds its items with a label and, where its condition can say
no, a function that explains the refusal:

    def build(txn: Transaction) -> Booking:
        txn.update(seat, [Seat.taken.add(1)], Seat.taken < Seat.capacity,
                   label="seat", explain=lambda old: SlotFullError())
        txn.save(booking, Booking.booking_id.does_not_exist(), label="booking")
        return booking

    booking = transact.write(build, busy=TryAgainError)

The composer sends the items in the order they were added and asks DynamoDB
for the old item of every item whose condition failed (`ALL_OLD`), so a
refusal is mapped back to its label by the composer's own order, never by
pynamodb's. Explanations are asked in that order; the first one that returns
an error decides the answer. A refusal nobody explains raises
`TransactionRefusedError` with every refused item, or, with `replan=True`, runs
`build` again with that refusal in `txn.previous_refusal` (a plan made from a
stale view is made again from what the refusal showed). An explanation that
returns `Replan()` says its refusal shows the plan itself was stale: the
explanations after it are not asked.

Contention (`TransactionConflict`) and throttling are retried under one
bounded, jittered policy; when it runs out the caller's `busy` error is raised
(409), or `ThrottledError` (503) when DynamoDB was refusing for capacity.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from chalicelib import db
from chalicelib.errors import SiyuError, ThrottledError

__all__ = [
    "MAX_ITEMS",
    "MAX_BYTES",
    "RetryPolicy",
    "RETRY",
    "Explain",
    "Refusal",
    "Replan",
    "Transaction",
    "TransactionRefusedError",
    "TransactionTooLargeError",
    "TryAgainError",
    "write",
    "retrying",
    "condition_failed",
    "busy_error",
    "THROTTLED_ERRORS",
]

T = TypeVar("T")

MAX_ITEMS = 100
MAX_BYTES = 4 * 1024 * 1024

_ALL_OLD = "ALL_OLD"
# Cancellation reasons and error codes that mean "someone else was writing": try again.
# Throttling says DynamoDB is short of capacity rather than that another writer got there first:
# when it outlasts the retries the answer is 503, not the caller's 409.
_THROTTLED_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
_BUSY_REASONS = frozenset({"TransactionConflict"}) | _THROTTLED_REASONS
THROTTLED_ERRORS = frozenset({
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
})
_BUSY_ERRORS = frozenset({"TransactionConflictException", "TransactionInProgressException"}) | THROTTLED_ERRORS

Explain = Callable[[Any], Exception | None]


class TryAgainError(SiyuError):
    """Contention outlasted the retry budget: the caller may simply try again."""

    status = 409
    code = "TRY_AGAIN"
    default_message = "too many requests touched the same items at once, try again"


class TransactionTooLargeError(SiyuError):
    status = 400
    code = "INVALID_REQUEST"
    default_message = "the request touches more items than one transaction can hold"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter."""

    attempts: int = 8
    base_seconds: float = 0.005
    cap_seconds: float = 0.25

    def pauses(self) -> Iterator[int]:
        """Attempt numbers, pausing before every one but the first."""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt)))
            yield attempt


RETRY = RetryPolicy()


class Replan(Exception):
    """What an explanation returns when its refusal shows the plan was made from a stale view.

    It outranks the explanations of the items after it, which were judged by
    that stale plan: with `replan=True`, `build` runs again; without, the
    refusal is raised as `TransactionRefusedError`.
    """


@dataclass(frozen=True)
class Refusal:
    """One item whose condition said no, with the item as it was (None: it did not exist)."""

    label: str
    item: Any


class TransactionRefusedError(Exception):
    """Conditions refused the transaction and no participant's explanation decided the answer."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        super().__init__("refused: " + ", ".join(refusal.label for refusal in refusals))

    def refused(self, label: str) -> bool:
        return any(refusal.label == label for refusal in self.refusals)

    def item(self, label: str) -> Any:
        """The old item of the first refusal with this label (None if absent or it did not exist)."""
        return next((refusal.item for refusal in self.refusals if refusal.label == label), None)


@dataclass
class _Part:
    label: str
    kind: str
    request: dict[str, Any]
    model: type[Model]
    explain: Explain | None


@dataclass
class Transaction:
    """The items of one TransactWriteItems, in the order they were added."""

    token: str | None = None
    previous_refusal: TransactionRefusedError | None = None
    _parts: list[_Part] = field(default_factory=list)
    _keys: set[tuple[str, str]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._parts)

    def save(self, model: Model, condition: Condition | None = None, *, label: str, explain: Explain | None = None) -> None:
        request = model.get_save_kwargs_from_instance(condition=condition, return_values_on_condition_failure=_ALL_OLD)
        self._add(label, "Put", request, type(model), explain)

    def update(
        self, model: Model, actions: list[Action], condition: Condition | None = None,
        *, label: str, explain: Explain | None = None,
    ) -> None:
        request = model.get_update_kwargs_from_instance(
            actions=actions, condition=condition, return_values_on_condition_failure=_ALL_OLD
        )
        self._add(label, "Update", request, type(model), explain)

    def delete(self, model: Model, condition: Condition | None = None, *, label: str, explain: Explain | None = None) -> None:
        request = model.get_delete_kwargs_from_instance(condition=condition, return_values_on_condition_failure=_ALL_OLD)
        self._add(label, "Delete", request, type(model), explain)

    def condition_check(
        self, model_cls: type[Model], hash_key: Any, range_key: Any = None, condition: Condition | None = None,
        *, label: str, explain: Explain | None = None,
    ) -> None:
        if condition is None:
            raise TypeError("a condition check needs a condition")
        request = model_cls.get_operation_kwargs_from_class(hash_key, range_key=range_key, condition=condition)
        request["ReturnValuesOnConditionCheckFailure"] = _ALL_OLD
        self._add(label, "ConditionCheck", request, model_cls, explain)

    def _add(self, label: str, kind: str, request: dict[str, Any], model: type[Model], explain: Explain | None) -> None:
        key = (request["TableName"], json.dumps(_key_of(request, model), sort_keys=True))
        if key in self._keys:
            raise ValueError(f"{label}: one transaction cannot touch the same item twice")
        self._keys.add(key)
        self._parts.append(_Part(label, kind, request, model, explain))

    def commit(self) -> None:
        """Send the items; raise the explained error, `TransactionRefusedError`, or `_Busy`."""
        if not self._parts:
            return
        items = [{part.kind: part.request} for part in self._parts]
        _check_budget(items)
        arguments: dict[str, Any] = {"TransactItems": items}
        if self.token:
            arguments["ClientRequestToken"] = self.token
        try:
            db.connection().client.transact_write_items(**arguments)
        except ClientError as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: ClientError) -> Exception:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _BUSY_ERRORS:
            return _Busy(throttled=code in THROTTLED_ERRORS)
        if code != "TransactionCanceledException":
            return exc
        reasons = exc.response.get("CancellationReasons") or []
        codes = {reason.get("Code") for reason in reasons}
        if "ConditionalCheckFailed" not in codes:
            return _Busy(throttled=bool(codes & _THROTTLED_REASONS)) if codes & _BUSY_REASONS else exc
        refused = [
            (part, Refusal(part.label, part.model.from_raw_data(reason["Item"]) if reason.get("Item") else None))
            for part, reason in zip(self._parts, reasons)
            if reason.get("Code") == "ConditionalCheckFailed"
        ]
        for part, refusal in refused:
            decided = part.explain(refusal.item) if part.explain else None
            if isinstance(decided, Replan):
                break
            if decided is not None:
                return decided
        return TransactionRefusedError([refusal for _, refusal in refused])


class _Busy(Exception):
    """Contention or throttling: the same transaction may succeed if sent again."""

    def __init__(self, throttled: bool) -> None:
        super().__init__("throttled" if throttled else "contended")
        self.throttled = throttled


def _key_of(request: dict[str, Any], model: type[Model]) -> dict[str, Any]:
    if "Key" in request:
        return request["Key"]
    names = [attribute.attr_name for attribute in (model._hash_key_attribute(), model._range_key_attribute()) if attribute]
    return {name: request["Item"][name] for name in names}


def _check_budget(items: list[dict[str, Any]]) -> None:
    if len(items) > MAX_ITEMS:
        raise TransactionTooLargeError(f"the request touches {len(items)} items; one transaction holds {MAX_ITEMS}")
    size = len(json.dumps(items, separators=(",", ":")).encode())
    if size > MAX_BYTES:
        raise TransactionTooLargeError(f"the request writes {size} bytes; one transaction holds {MAX_BYTES}")


def write(
    build: Callable[[Transaction], T],
    *,
    busy: type[SiyuError] = TryAgainError,
    replan: bool = False,
    token: str | None = None,
    policy: RetryPolicy = RETRY,
) -> T:
    """Build a transaction, commit it, and answer what `build` returned.

    `build` runs again for every attempt, so it must only describe the write.
    """
    previous: TransactionRefusedError | None = None
    throttled = False
    pauses = policy.pauses()
    next(pauses)
    for _ in range(policy.attempts + (policy.attempts if replan else 0)):
        txn = Transaction(token=token, previous_refusal=previous)
        result = build(txn)
        try:
            txn.commit()
            return result
        except TransactionRefusedError as refused:
            if not replan:
                raise
            previous = refused  # a stale plan: make it again at once from what the refusal showed
        except _Busy as contended:
            throttled = contended.throttled
            if next(pauses, None) is None:
                break
    raise ThrottledError() if throttled else busy()


def retrying(action: Callable[[], T], *, busy: type[SiyuError] = TryAgainError, policy: RetryPolicy = RETRY) -> T:
    """Run a single-item write (pynamodb save/update/delete) under the same retry policy."""
    throttled = False
    for _ in policy.pauses():
        try:
            return action()
        except (PutError, UpdateError, DeleteError) as exc:
            if exc.cause_response_code not in _BUSY_ERRORS:
                raise
            throttled = exc.cause_response_code in THROTTLED_ERRORS
    raise ThrottledError() if throttled else busy()


def busy_error(error: BaseException) -> SiyuError | None:
    """The answer for an error that DynamoDB's throttling or a transaction conflict is behind, if one is.

    Paths that write a single item without `retrying` get botocore's retries
    only; what outlasts them is still the caller's to retry, never a 500.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ThrottledError | TryAgainError):
            return current
        if isinstance(current, ClientError):
            code = current.response.get("Error", {}).get("Code")
            if code in THROTTLED_ERRORS:
                return ThrottledError()
            if code in _BUSY_ERRORS:
                return TryAgainError()
        current = current.__cause__ or current.__context__ or getattr(current, "cause", None)
    return None


def condition_failed(error: PutError | UpdateError | DeleteError) -> bool:
    """Whether a single-item write failed because its condition said no (and not for any other reason)."""
    return error.cause_response_code == "ConditionalCheckFailedException"
