"""Bearer tokens: HMAC-SHA256 signed, verified in-process without a database read.

A token is `v1.<payload>.<signature>`, both base64url. The payload carries the
member id, the roles granted at login, the staff member's store and the guide id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from chalicelib import clock
from chalicelib.errors import ForbiddenError, UnauthenticatedError

__all__ = ["Principal", "MEMBER", "GUIDE", "STAFF", "ADMIN", "issue_token", "verify_token", "from_header"]

MEMBER, GUIDE, STAFF, ADMIN = "member", "guide", "staff", "admin"
_VERSION = "v1"


@dataclass(frozen=True)
class Principal:
    member_id: str
    roles: frozenset[str] = field(default_factory=lambda: frozenset({MEMBER}))
    store_id: str | None = None
    guide_id: str | None = None
    # The version of the person's role grants the token was issued under: a revocation bumps it.
    grants_version: int = 0

    def has(self, role: str) -> bool:
        return role in self.roles

    def require_store(self, store_id: str) -> None:
        """Staff act only for their own store; admins for every store."""
        if self.has(ADMIN):
            return
        if self.store_id != store_id:
            raise ForbiddenError("this store is not yours")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(message: bytes) -> bytes:
    from chalicelib.config import secret

    return hmac.new(secret("token_signing_key").encode(), message, hashlib.sha256).digest()


def issue_token(principal: Principal) -> tuple[str, int]:
    """A token for `principal` and the seconds it stays valid."""
    from chalicelib.config import settings

    ttl = settings().token_ttl_seconds
    claims = {
        "sub": principal.member_id,
        "roles": sorted(principal.roles),
        "exp": clock.epoch_seconds() + ttl,
    }
    if principal.store_id:
        claims["store"] = principal.store_id
    if principal.guide_id:
        claims["guide"] = principal.guide_id
    if principal.grants_version:
        claims["gv"] = principal.grants_version
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{_VERSION}.{payload}".encode()
    return f"{_VERSION}.{payload}.{_b64encode(_sign(signing_input))}", ttl


def verify_token(token: str) -> Principal:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not token.isascii():
        raise UnauthenticatedError("malformed token")
    try:
        signature = _b64decode(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise UnauthenticatedError("malformed token") from exc
    # The signature first: nothing a caller made up is parsed.
    if not hmac.compare_digest(signature, _sign(f"{parts[0]}.{parts[1]}".encode())):
        raise UnauthenticatedError("token signature does not match")
    try:
        claims = json.loads(_b64decode(parts[1]))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise UnauthenticatedError("malformed token") from exc
    principal, expiry = _principal(claims)
    if expiry <= clock.epoch_seconds():
        raise UnauthenticatedError("token expired")
    return principal


def _principal(claims: object) -> tuple[Principal, int]:
    """The caller the claims name and when they expire, if they have the shape `issue_token` gives them."""
    if not isinstance(claims, dict):
        raise UnauthenticatedError("malformed token")
    subject, roles, expiry = claims.get("sub"), claims.get("roles", []), claims.get("exp")
    store, guide, grants_version = claims.get("store"), claims.get("guide"), claims.get("gv", 0)
    if (
        not isinstance(subject, str) or not subject
        or not isinstance(roles, list) or not all(isinstance(role, str) for role in roles)
        or not isinstance(expiry, int) or isinstance(expiry, bool)
        or not isinstance(store, (str, type(None)))
        or not isinstance(guide, (str, type(None)))
        or not isinstance(grants_version, int) or isinstance(grants_version, bool)
    ):
        raise UnauthenticatedError("malformed token")
    principal = Principal(
        member_id=subject, roles=frozenset(roles) | {MEMBER}, store_id=store, guide_id=guide,
        grants_version=grants_version,
    )
    return principal, expiry


def from_header(authorization: str | None) -> Principal:
    if not authorization:
        raise UnauthenticatedError()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("expected 'Authorization: Bearer <token>'")
    return verify_token(token.strip())
