"""The brand's policy documents (points, orders, guides): what HQ changes at run time, each change recorded.

A section's policy is its model's defaults, overridden by the stage's JSON in
the environment (`SIYU_<SECTION>_CONFIG`), overridden in turn by the document
HQ stored (`PUT /admin/config/{section}`): each layer replaces the top-level
keys it names. A stored document and the record of its change (who, when,
before, after) are one write, conditioned on the version the admin read, so
two admins editing at once cannot lose a change.

A container reads the stored documents at most once a minute (`CACHE_SECONDS`):
a policy is an input that may lag a minute behind HQ, never an invariant
(conditions guard those).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, transact
from chalicelib.db import SiyuModel
from chalicelib.errors import ConflictError, InvalidRequestError
from chalicelib.transact import Transaction

__all__ = [
    "CACHE_SECONDS",
    "PolicyDocument",
    "PolicyChange",
    "PolicyChangedError",
    "effective",
    "stored",
    "change",
    "changes",
    "forget",
]

CACHE_SECONDS = 60
Model = TypeVar("Model", bound=BaseModel)


class PolicyDocument(SiyuModel):
    """The overrides HQ stored for a section, as JSON; `version` counts its changes."""

    class Meta:
        table = "policy"

    section = UnicodeAttribute(hash_key=True)
    document = UnicodeAttribute()
    version = NumberAttribute()
    changed_by = UnicodeAttribute()
    changed_at = UTCDateTimeAttribute()


class PolicyChange(SiyuModel):
    """One change of a section: who made it, when, and the effective policy before and after."""

    class Meta:
        table = "policy-changes"

    section = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    changed_by = UnicodeAttribute()
    changed_at = UTCDateTimeAttribute()
    before = UnicodeAttribute()
    after = UnicodeAttribute()


class PolicyChangedError(ConflictError):
    code = "POLICY_CHANGED"
    default_message = "someone changed this policy since you read it: read it again"


_lock = threading.Lock()
_read: dict[str, tuple[float, int, str]] = {}  # section -> (monotonic read time, version, document)


def stored(section: str, *, fresh: bool = False) -> tuple[int, str]:
    """(version, JSON document) HQ stored for `section` ((0, "{}") when none), read at most once a minute."""
    now = time.monotonic()
    with _lock:
        cached = _read.get(section)
    if cached is not None and not fresh and now - cached[0] < CACHE_SECONDS:
        return cached[1], cached[2]
    try:
        item = PolicyDocument.get(section, consistent_read=fresh)
        found = (int(item.version), item.document)
    except DoesNotExist:
        found = (0, "{}")
    with _lock:
        _read[section] = (now, *found)
    return found


def forget() -> None:
    """Read every stored document again at the next use (tests, after changing the environment)."""
    with _lock:
        _read.clear()
    _validated.cache_clear()


@functools.lru_cache(maxsize=32)
def _validated(model: type[Model], environment: str, document: str) -> Model:
    return model.model_validate({**json.loads(environment or "{}"), **json.loads(document)})


def effective(section: str, model: type[Model], env_variable: str) -> Model:
    """The section's policy now: defaults, then the environment's overrides, then HQ's."""
    _, document = stored(section)
    return _validated(model, os.environ.get(env_variable, ""), document)


def _dump(policy: BaseModel) -> str:
    return json.dumps(policy.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def change(
    section: str,
    model: type[Model],
    env_variable: str,
    overrides: dict[str, Any],
    *,
    expected_version: int,
    changed_by: str,
    check: Callable[[Model], None] = lambda policy: None,
) -> tuple[Model, int]:
    """Store `overrides` (top-level keys of the section's model, merged into what HQ stored before) as
    the next version, with the record of the change, in one write conditioned on `expected_version`.

    The result is validated whole (a bad value is 400 naming it) and passed to
    `check` before anything is written. The new policy and its version.
    """
    version, document = stored(section, fresh=True)
    if version != expected_version:
        raise PolicyChangedError()
    environment = os.environ.get(env_variable, "")
    before = _validated(model, environment, document)
    merged = json.dumps({**json.loads(document), **overrides}, ensure_ascii=False, sort_keys=True)
    after = _validated(model, environment, merged)
    check(after)
    now, new_version = clock.now(), expected_version + 1
    as_read = PolicyDocument.version == expected_version if expected_version else PolicyDocument.section.does_not_exist()

    def build(txn: Transaction) -> None:
        txn.save(PolicyDocument(section, document=merged, version=new_version, changed_by=changed_by, changed_at=now),
                 as_read, label="policy", explain=lambda old: PolicyChangedError())
        txn.save(PolicyChange(section, new_version, changed_by=changed_by, changed_at=now,
                              before=_dump(before), after=_dump(after)),
                 PolicyChange.version.does_not_exist(), label="change", explain=lambda old: PolicyChangedError())

    transact.write(build)
    forget()
    return after, new_version


def changes(section: str, limit: int, cursor: dict[str, Any] | None) -> tuple[list[PolicyChange], Any]:
    """A page of the section's changes, newest first, and the position after it."""
    start = None
    if cursor is not None:
        after = cursor.get("before")
        if not isinstance(after, int):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
        start = {"section": {"S": section}, "version": {"N": str(after)}}
    page = PolicyChange.query(section, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    found = list(page)
    last = page.last_evaluated_key
    return found, ({"before": int(last["version"]["N"])} if last else None)
