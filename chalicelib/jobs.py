"""What every scheduled job shares: "now" comes from the event, never the wall clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import clock

__all__ = ["moment_of"]


def moment_of(event: Any) -> dt.datetime:
    """The event's `time` (EventBridge's scheduled time), so a replay runs as of then."""
    raw = event.get("time") if isinstance(event, dict) else getattr(event, "time", None)
    if not raw:
        return clock.now()
    return clock.parse_iso(str(raw))
