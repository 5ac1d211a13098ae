"""What a coupon operation can refuse, each with its status and code."""

from __future__ import annotations

from chalicelib.errors import ConflictError, NotFoundError

__all__ = [
    "refusal_for",
    "CampaignNotFoundError",
    "CouponNotFoundError",
    "SoldOutError",
    "LimitReachedError",
    "NotEligibleError",
    "NotStartedError",
    "EndedError",
    "ClaimBusyError",
    "CouponUsedError",
    "CouponExpiredError",
    "CouponLockedError",
    "CouponNotLockedError",
    "CodeExpiredError",
    "WrongStoreError",
    "CouponNotApplicableError",
    "NotYourCustomerError",
]


class CampaignNotFoundError(NotFoundError):
    default_message = "no such campaign"


class CouponNotFoundError(NotFoundError):
    default_message = "no such coupon"


class NotYourCustomerError(NotFoundError):
    default_message = "no such customer of yours"


class SoldOutError(ConflictError):
    code = "SOLD_OUT"
    default_message = "this campaign has no coupons left"


class LimitReachedError(ConflictError):
    code = "LIMIT_REACHED"
    default_message = "you already hold as many coupons of this campaign as it allows"


class NotEligibleError(ConflictError):
    code = "NOT_ELIGIBLE"
    default_message = "this campaign is not open to you"


class NotStartedError(ConflictError):
    code = "NOT_STARTED"
    default_message = "this campaign has not started yet"


class EndedError(ConflictError):
    code = "ENDED"
    default_message = "this campaign has ended"


class ClaimBusyError(ConflictError):
    code = "CLAIM_BUSY"
    default_message = "too many simultaneous claims, try again"


class CouponUsedError(ConflictError):
    code = "COUPON_USED"
    default_message = "this coupon has been used"


class CouponExpiredError(ConflictError):
    code = "COUPON_EXPIRED"
    default_message = "this coupon has expired"


class CouponLockedError(ConflictError):
    code = "COUPON_LOCKED"
    default_message = "this coupon is held by an unpaid order"


class CouponNotLockedError(ConflictError):
    code = "COUPON_NOT_LOCKED"
    default_message = "this coupon is not held by this order"


class CodeExpiredError(ConflictError):
    code = "CODE_EXPIRED"
    default_message = "this code has expired, show a fresh one"


class WrongStoreError(ConflictError):
    code = "WRONG_STORE"
    default_message = "this coupon cannot be redeemed at this store"


class CouponNotApplicableError(ConflictError):
    code = "COUPON_NOT_APPLICABLE"
    default_message = "this coupon does not apply to this order"


def refusal_for(status: str) -> ConflictError | None:
    """The error for a coupon that must be available but is used, expired or locked."""
    refusals: dict[str, type[ConflictError]] = {
        "used": CouponUsedError,
        "expired": CouponExpiredError,
        "locked": CouponLockedError,
    }
    refusal = refusals.get(status)
    return refusal() if refusal else None
