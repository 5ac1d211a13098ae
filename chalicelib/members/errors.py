"""The answers a members rule gives when it says no."""

from __future__ import annotations

from chalicelib.errors import ConflictError, UnauthenticatedError

__all__ = ["PhoneInUseError", "HeldOfflineError", "LoginConflictError", "GuideIdInUseError", "MemberGoneError"]


class PhoneInUseError(ConflictError):
    code = "PHONE_IN_USE"
    default_message = "this phone number belongs to another member"


class HeldOfflineError(PhoneInUseError):
    """The phone belongs to an offline (POS) member: merging the two binds it (a use case's step)."""

    def __init__(self, offline_member_id: str) -> None:
        super().__init__()
        self.offline_member_id = offline_member_id


class LoginConflictError(ConflictError):
    code = "LOGIN_CONFLICT"
    default_message = "too many simultaneous logins, try again"


class GuideIdInUseError(ConflictError):
    code = "GUIDE_ID_IN_USE"
    default_message = "this guide id belongs to another person"


class OwnAdminRoleError(ConflictError):
    code = "OWN_ADMIN_ROLE"
    default_message = "an admin cannot revoke their own admin role: another admin can"


class MemberGoneError(UnauthenticatedError):
    default_message = "this member no longer exists"
