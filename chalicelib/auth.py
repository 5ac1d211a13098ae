"""Bearer tokens: HS256 JSON Web Tokens (PyJWT), verified in-process without a database read.

A token's header names its key (`kid`: the first 8 hex digits of the key's
SHA-256), so a rotation logs nobody out: the current and the previous key
both verify, and a token of any other key is refused. The claims are the
registered ones (`iss`, `aud`, `sub` the member id, `iat`, `exp`) and ours:
`roles`, the staff member's `store`, the `guide` id and `gv`, the version of
the person's role grants the token was issued under.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from chalicelib import clock
from chalicelib.errors import ForbiddenError, UnauthenticatedError

__all__ = [
    "Principal",
    "MEMBER",
    "GUIDE",
    "STAFF",
    "ADMIN",
    "ISSUER",
    "AUDIENCE",
    "ALGORITHM",
    "key_id",
    "issue_token",
    "verify_token",
    "from_header",
]

MEMBER, GUIDE, STAFF, ADMIN = "member", "guide", "staff", "admin"
ISSUER, AUDIENCE, ALGORITHM = "siyu", "siyu-mini-program", "HS256"
_REQUIRED = ["iss", "aud", "sub", "iat", "exp"]


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

    def own_store(self) -> str:
        """The one store a staff member works for."""
        if not self.store_id:
            raise ForbiddenError("you work for no store")
        return self.store_id

    def require_store(self, store_id: str) -> None:
        """Staff act only for their own store; admins for every store."""
        if self.has(ADMIN):
            return
        if self.store_id != store_id:
            raise ForbiddenError("this store is not yours")


def key_id(key: str) -> str:
    """The id a key's tokens carry: derived from the key, so it rotates with it and needs no setting."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _current_key() -> str:
    from chalicelib.config import secret

    return secret("token_signing_key")


def _verifying_keys() -> dict[str, str]:
    """The keys a token may be signed with, by id: the current one and, after a rotation, the previous one."""
    from chalicelib.config import optional_secret

    previous = optional_secret("token_signing_key_previous")
    return {key_id(key): key for key in (_current_key(), previous) if key}


def issue_token(principal: Principal) -> tuple[str, int]:
    """A token for `principal` and the seconds it stays valid."""
    import jwt

    from chalicelib.config import settings

    ttl = settings().token_ttl_seconds
    now = clock.epoch_seconds()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.member_id,
        "iat": now,
        "exp": now + ttl,
        "roles": sorted(principal.roles),
    }
    if principal.store_id:
        claims["store"] = principal.store_id
    if principal.guide_id:
        claims["guide"] = principal.guide_id
    if principal.grants_version:
        claims["gv"] = principal.grants_version
    key = _current_key()
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)}), ttl


def verify_token(token: str) -> Principal:
    import jwt

    if not token.isascii():
        raise UnauthenticatedError("malformed token")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = _verifying_keys().get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnauthenticatedError("token signed with an unknown key")
        # Expiry is checked against `clock`, below: PyJWT reads the system time.
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except (jwt.InvalidTokenError, RecursionError) as exc:
        raise UnauthenticatedError("malformed or forged token") from exc
    principal, expiry = _principal(claims)
    if expiry <= clock.epoch_seconds():
        raise UnauthenticatedError("token expired")
    return principal


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _principal(claims: dict[str, Any]) -> tuple[Principal, int]:
    """The caller the claims name and when they expire, if they have the shape `issue_token` gives them."""
    subject, roles, expiry = claims.get("sub"), claims.get("roles", []), claims.get("exp")
    store, guide, grants_version = claims.get("store"), claims.get("guide"), claims.get("gv", 0)
    if (
        not isinstance(subject, str) or not subject
        or not isinstance(roles, list) or not all(isinstance(role, str) for role in roles)
        or not _int(expiry) or not _int(claims.get("iat")) or not _int(grants_version)
        or not isinstance(store, (str, type(None)))
        or not isinstance(guide, (str, type(None)))
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
