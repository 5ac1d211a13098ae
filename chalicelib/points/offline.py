"""Members imported from the stores' POS, with their points, until they bind their phone online.

The member, its phone identity and its points are written in one transaction:
an offline member exists with its points or not at all. Binding that phone
online later merges the two (`members.service.bind_phone`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from pynamodb.exceptions import TransactWriteError

from chalicelib import clock, db
from chalicelib.errors import InvalidRequestError
from chalicelib.points import ledger
from chalicelib.points.schemas import OfflineMemberImport

__all__ = ["import_offline_member"]


def import_offline_member(request: OfflineMemberImport, actor: str) -> dict[str, Any]:
    from chalicelib.members.models import Identity, Member
    from chalicelib.members.service import PhoneInUseError, phone_identity_key

    now = clock.now()
    if request.expires_at is not None and request.expires_at < clock.shanghai_date(now):
        raise InvalidRequestError("expiresAt", "must not be in the past")
    expires_on = (request.expires_at or dt.date.fromisoformat(ledger.default_expiry(now))).isoformat()
    member_id = f"m{secrets.token_hex(8)}"
    member = Member(member_id, phone=request.phone, nickname=request.name, offline=True, created_at=now)
    identity = Identity(phone_identity_key(request.phone), member_id=member_id, created_at=now)
    try:
        with db.transaction() as write:
            write.save(identity, condition=Identity.key.does_not_exist())
            write.save(member, condition=Member.member_id.does_not_exist())
            if request.points:
                ledger.Movement(
                    member_id, f"pos#{member_id}#import", ledger.ISSUED, "pos_import", None,
                    delta=request.points, add_lots={expires_on: request.points}, expires_on=expires_on,
                    actor=actor, created_at=now,
                ).add_to(write)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in db.cancellation_codes(exc):
            raise PhoneInUseError() from exc
        raise
    return {"memberId": member_id, "offline": True, "points": request.points, "expiresOn": expires_on}
