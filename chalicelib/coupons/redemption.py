"""In-store redemption (核销): the member shows a signed code, the store's staff scans it.

The code is `sc1.<couponId>.<memberId>.<expires>.<signature>`: HMAC-SHA256
with the server's coupon-code key over everything before the signature, so it
binds the coupon, its owner and an expiry at most five minutes away. Checking
it needs no read; marking the coupon used is one conditional write:

    status = available                      not used, locked or expired already
    validFrom <= now < validTo              within the coupon's validity
    no store scope, or it holds this store  WRONG_STORE otherwise

so of six simultaneous scans of one code exactly one succeeds. Only a refused
write reads the coupon, to say why.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock, transact
from chalicelib.config import secret, settings
from chalicelib.coupons import service
from chalicelib.coupons.errors import (
    CodeExpiredError,
    CouponNotFoundError,
    WrongStoreError,
    refusal_for,
)
from chalicelib.coupons.models import AVAILABLE, USED, Coupon, day_key
from chalicelib.errors import ConflictError, ForbiddenError, InvalidRequestError

__all__ = ["CouponCode", "issue_code", "sign_code", "verify_code", "redeem"]

_VERSION = "sc1"
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class CouponCode:
    coupon_id: str
    member_id: str
    expires_at: dt.datetime


def _signature(message: str) -> str:
    digest = hmac.new(secret("coupon_code_key").encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_code(code: CouponCode) -> str:
    message = f"{_VERSION}.{code.coupon_id}.{code.member_id}.{clock.epoch_seconds(code.expires_at)}"
    return f"{message}.{_signature(message)}"


def verify_code(payload: str) -> CouponCode:
    """The code a payload carries, if this server signed it; INVALID_REQUEST otherwise."""
    parts = payload.strip().split(".")
    if len(parts) != 5 or parts[0] != _VERSION:
        raise InvalidRequestError("payload", "is not a coupon code")
    _, coupon_id, member_id, expires, signature = parts
    if not (_ID.match(coupon_id) and _ID.match(member_id) and expires.isdigit() and len(expires) <= 12):
        raise InvalidRequestError("payload", "is not a coupon code")
    try:
        expected = base64.urlsafe_b64decode(_signature(".".join(parts[:4])) + "==")
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("payload", "is not a coupon code") from exc
    if not hmac.compare_digest(expected, given):
        raise InvalidRequestError("payload", "signature does not match")
    return CouponCode(coupon_id, member_id, dt.datetime.fromtimestamp(int(expires), dt.timezone.utc))


def issue_code(member_id: str, coupon_id: str) -> dict[str, Any]:
    """A short-lived code for the member's own available coupon."""
    coupon = service.get_coupon(member_id, coupon_id)
    status = service.effective_status(coupon)
    if status != AVAILABLE:
        raise _refusal(status)
    expires_at = clock.now().replace(microsecond=0) + dt.timedelta(seconds=settings().coupon_code_ttl_seconds)
    code = CouponCode(coupon_id, member_id, expires_at)
    return {"couponId": coupon_id, "payload": sign_code(code), "expiresAt": clock.iso(expires_at)}


def redeem(payload: str, store_id: str | None) -> dict[str, Any]:
    """Mark the coupon in the code used at `store_id` (the scanning staff member's store)."""
    if not store_id:
        raise ForbiddenError("only the staff of a store redeem coupons")
    code = verify_code(payload)
    now = clock.now()
    if code.expires_at <= now:
        raise CodeExpiredError()
    unused = Coupon.coupon_id.exists() & (Coupon.status == AVAILABLE)
    within_validity = (Coupon.valid_from <= now) & (Coupon.valid_to > now)
    at_this_store = Coupon.store_ids.does_not_exist() | Coupon.store_ids.contains(store_id)
    coupon = Coupon(code.member_id, code.coupon_id)
    actions = [
        Coupon.status.set(USED),
        Coupon.used_at.set(now),
        Coupon.redeemed_day.set(day_key(clock.shanghai_date(now), code.coupon_id)),
        Coupon.used_store_id.set(store_id),
        Coupon.open_shard.remove(),
    ]
    try:
        transact.retrying(lambda: coupon.update(actions=actions, condition=unused & within_validity & at_this_store))
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
        raise _why_not(code, store_id, now) from exc
    return service.coupon_view(coupon)


def _refusal(status: str) -> ConflictError:
    return refusal_for(status) or ConflictError(f"this coupon is {status}")


def _why_not(code: CouponCode, store_id: str, now: dt.datetime) -> Exception:
    try:
        coupon = service.get_coupon(code.member_id, code.coupon_id)
    except CouponNotFoundError as exc:
        return exc
    status = service.effective_status(coupon, now)
    if status != AVAILABLE:
        return _refusal(status)
    if coupon.valid_from > now:
        return ConflictError("this coupon is not valid yet", code="NOT_STARTED")
    if coupon.store_ids and store_id not in coupon.store_ids:
        return WrongStoreError()
    return ConflictError("this coupon cannot be redeemed now")
