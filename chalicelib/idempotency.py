"""`Idempotency-Key` for POSTs: the same key and body answer the first answer again.

Built on Powertools Idempotency with its DynamoDB persistence. The record is
written with the condition "absent, or expired": expiry is checked on every
read and write, so nothing depends on DynamoDB TTL actually deleting items.
Only successful answers are stored; a request that failed may be retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pynamodb.attributes import TTLAttribute, UnicodeAttribute

from chalicelib.config import settings
from chalicelib.db import SiyuModel, connection
from chalicelib.errors import ConflictError, IdempotencyKeyReusedError, InvalidRequestError

__all__ = ["IdempotencyRecord", "run_once"]

MAX_KEY_LENGTH = 128


class IdempotencyRecord(SiyuModel):
    """The table Powertools writes (attribute names are Powertools' defaults)."""

    class Meta:
        table = "idempotency"

    id = UnicodeAttribute(hash_key=True)
    # TTL only tidies up; correctness comes from the expiry check on read.
    expiration = TTLAttribute(null=True)


@functools.cache
def _persistence(table_name: str, endpoint: str | None, region: str) -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    # The models' own botocore client (the same low-level calls a boto3 client makes), so no second
    # copy of DynamoDB's service model is loaded; `endpoint` and `region` key the cache.
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=connection().client)


def run_once(
    scope: str,
    key: str,
    payload: Any,
    action: Callable[[], Any],
    lambda_context: Any = None,
) -> Any:
    """Run `action` once per (scope, key); a repeat with the same payload gets its answer."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequestError("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    current = settings()
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="payload",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=current.idempotency_ttl_seconds,
    )
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=_persistence(current.table_name("idempotency"), current.dynamodb_endpoint, current.region),
        config=config,
        key_prefix="siyu",
    )
    def guarded(request: dict[str, Any]) -> Any:
        return action()

    try:
        return guarded(request={"key": f"{scope}#{key}", "payload": payload})
    except IdempotencyValidationError as exc:
        raise IdempotencyKeyReusedError() from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise ConflictError("a request with this Idempotency-Key is still running", code="REQUEST_IN_PROGRESS") from exc

