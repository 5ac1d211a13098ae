"""What the order flow keeps between a parked execution and the call that resumes it."""

from __future__ import annotations

from pynamodb.attributes import TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.db import SiyuModel

__all__ = ["TaskToken"]


class TaskToken(SiyuModel):
    """The task token of an order's execution waiting at `step` (`store_acceptance`, ...).

    A retried waiting task gets a new token and overwrites the row: the newest
    token is the only one Step Functions still accepts.
    """

    class Meta:
        table = "order-task-tokens"

    order_id = UnicodeAttribute(hash_key=True)
    step = UnicodeAttribute(range_key=True)
    token = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    # Only tidies up rows of executions that ended without being resumed.
    expires_at = TTLAttribute(null=True)
