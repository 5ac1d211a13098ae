"""Subscription-message credits and the record of every message sent."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.db import SiyuModel

__all__ = ["SubscriptionCredit", "SentMessage"]


class SubscriptionCredit(SiyuModel):
    """How many more messages of a template the member has accepted (one per acceptance)."""

    class Meta:
        table = "subscription-credits"

    member_id = UnicodeAttribute(hash_key=True)
    template_id = UnicodeAttribute(range_key=True)
    credits = NumberAttribute(default=0)


class SentMessage(SiyuModel):
    """One message per natural key (`appointment#<id>#24h`, ...): written before sending."""

    class Meta:
        table = "sent-messages"

    key = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute()
    template_id = UnicodeAttribute()
    status = UnicodeAttribute()  # sending, sent, refused
    created_at = UTCDateTimeAttribute()
