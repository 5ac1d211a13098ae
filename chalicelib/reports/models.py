"""The stored daily reports: one small item per Shanghai day."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.db import SiyuModel

__all__ = ["DailyReport"]


class DailyReport(SiyuModel):
    """A day's figures as the job computed them, kept as the very JSON it answered.

    A replay for the same moment computes the same figures from the same records and
    overwrites the item with identical content, so a plain put is the idempotent write.
    """

    class Meta:
        table = "daily-reports"

    day = UnicodeAttribute(hash_key=True)  # YYYY-MM-DD, a Shanghai day
    figures = UnicodeAttribute()  # the report, JSON with sorted keys
    generated_at = UTCDateTimeAttribute()
