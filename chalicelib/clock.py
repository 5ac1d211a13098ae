"""Time is an input: code asks `now()`, jobs pass the moment of their event.

Business days are Asia/Shanghai calendar days. Tests move time with `frozen_at`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

__all__ = ["SHANGHAI", "now", "frozen_at", "shanghai_date", "iso", "parse_iso", "epoch_seconds"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

_frozen = threading.local()
_frozen_everywhere: list[dt.datetime] = []


def now() -> dt.datetime:
    """The current moment, timezone-aware (UTC)."""
    frozen = getattr(_frozen, "moment", None) or (_frozen_everywhere[-1] if _frozen_everywhere else None)
    return frozen if frozen is not None else dt.datetime.now(dt.timezone.utc)


@contextlib.contextmanager
def frozen_at(moment: dt.datetime, *, all_threads: bool = True) -> Iterator[None]:
    """Make `now()` answer `moment` (for every thread unless told otherwise)."""
    if moment.tzinfo is None:
        raise ValueError("frozen_at needs an aware datetime")
    if all_threads:
        _frozen_everywhere.append(moment)
    else:
        _frozen.moment = moment
    try:
        yield
    finally:
        if all_threads:
            _frozen_everywhere.pop()
        else:
            _frozen.moment = None


def shanghai_date(moment: dt.datetime | None = None) -> dt.date:
    return (moment or now()).astimezone(SHANGHAI).date()


def iso(moment: dt.datetime) -> str:
    """ISO-8601 with the Shanghai offset, as the API answers times."""
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def parse_iso(text: str) -> dt.datetime:
    """Parse an ISO-8601 moment; a value without offset is read as Shanghai time."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def epoch_seconds(moment: dt.datetime | None = None) -> int:
    return int((moment or now()).timestamp())
