"""Opaque list cursors, sealed to the caller and the list they were issued for.

A service pages with a position of its own (a dict: the last key it read, an
offset); the edge hands it out as `<position>.<tag>`, base64url, where the tag
is an HMAC over the list's binding (caller, route, filters) and the position.
A cursor comes back to the service only if this API issued it to this caller
for this list, so a service never sees a position it did not give out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import InvalidRequestError

__all__ = ["seal", "unseal", "MAX_CURSOR_LENGTH"]

MAX_CURSOR_LENGTH = 2048
_TAG_BYTES = 16
_REFUSAL = "was not issued by this API to this caller for this list"


def _key() -> bytes:
    from chalicelib.config import secret

    # Derived, so a cursor tag can never pass for a token signature or the other way round.
    return hmac.new(secret("token_signing_key").encode(), b"siyu list cursor v1", hashlib.sha256).digest()


def _tag(binding: str, position: str) -> bytes:
    message = f"{binding}\n{position}".encode()
    return hmac.new(_key(), message, hashlib.sha256).digest()[:_TAG_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(position: Mapping[str, Any] | None, binding: str) -> str | None:
    """The cursor for `position` on the list `binding` names; None when the list has ended."""
    if not position:
        return None
    encoded = _encode(json.dumps(position, separators=(",", ":"), sort_keys=True).encode())
    return f"{encoded}.{_encode(_tag(binding, encoded))}"


def unseal(cursor: str | None, binding: str) -> dict[str, Any] | None:
    """The position a cursor stands for, if this API issued it for `binding`; otherwise 400."""
    if not cursor:
        return None
    encoded, _, tag = cursor.partition(".")
    if not encoded or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidRequestError("cursor", _REFUSAL)
    try:
        valid = hmac.compare_digest(_decode(tag), _tag(binding, encoded))
        position = json.loads(_decode(encoded)) if valid else None
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("cursor", _REFUSAL) from exc
    if not isinstance(position, dict):
        raise InvalidRequestError("cursor", _REFUSAL)
    return position
