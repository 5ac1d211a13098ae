"""Phone lookup keys: a keyed hash under a key that carries its id, so the key can rotate.

An identity is written as `phone:<kid>:<digest>` under the current key. After
a rotation the previous key (`lookup_hash_key_previous`) still finds what it
wrote until the segmented `identity-rekey` has moved it; identities from
before key ids existed (`phone:<digest>`) are found and moved the same way.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import transact
from chalicelib.config import optional_secret, secret
from chalicelib.members.models import Identity, Member

__all__ = ["PREFIX", "LookupKey", "current_key", "identity_keys", "under_earlier_keys", "rekey"]

PREFIX = "phone:"


@dataclass(frozen=True)
class LookupKey:
    secret: bytes

    @property
    def kid(self) -> str:
        """The key's id: a fingerprint that names the key without revealing it."""
        return hmac.new(self.secret, b"siyu phone lookup key id", hashlib.sha256).hexdigest()[:8]

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.kid}:"

    def _digest(self, phone: str) -> str:
        return hmac.new(self.secret, phone.encode(), hashlib.sha256).hexdigest()[:40]

    def identity_key(self, phone: str) -> str:
        return f"{self.prefix}{self._digest(phone)}"

    def unversioned_identity_key(self, phone: str) -> str:
        return f"{PREFIX}{self._digest(phone)}"


def current_key() -> LookupKey:
    return LookupKey(secret("lookup_hash_key").encode())


def identity_keys(phone: str) -> list[str]:
    """Where the phone's identity may be: first where it is written now, then where earlier keys left it."""
    current = current_key()
    previous = optional_secret("lookup_hash_key_previous")
    keys = [LookupKey(previous.encode())] if previous and previous.encode() != current.secret else []
    return [
        current.identity_key(phone),
        *(key.identity_key(phone) for key in keys),
        *(key.unversioned_identity_key(phone) for key in [current, *keys]),
    ]


def under_earlier_keys() -> Any:
    """The phone identities not under the current key (the segmented `identity-rekey` scans for them)."""
    return Identity.key.startswith(PREFIX) & ~Identity.key.startswith(current_key().prefix)


def rekey(identity: Identity) -> int:
    """Move a phone identity found under an earlier key to the current key; 1 if it moved.

    Run after a rotation, before the previous key is dropped. Each move is one
    transaction conditioned on the identity still naming the member it was read
    with, so it is safe alongside traffic and a second run moves nothing more.
    """
    try:
        phone = Member.get(identity.member_id, consistent_read=True).phone
    except DoesNotExist:
        return 0
    keys = identity_keys(phone) if phone else []
    if identity.key not in keys[1:]:
        return 0  # not the member's phone any more: left for the previous key's retirement to orphan
    as_read = Identity.member_id == identity.member_id

    def build(txn: transact.Transaction) -> None:
        moved = Identity(keys[0], member_id=identity.member_id, created_at=identity.created_at)
        txn.save(moved, Identity.key.does_not_exist() | as_read, label="current key")
        txn.delete(identity, as_read, label="earlier key")

    try:
        transact.write(build)
    except transact.TransactionRefusedError:
        return 0  # changed since the scan; the next run sees it as it is now
    return 1
