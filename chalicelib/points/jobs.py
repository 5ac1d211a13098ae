"""The scheduled points jobs; each takes "now" from its event, so a replay runs as of then."""

from __future__ import annotations

import datetime as dt

from chalicelib import clock
from chalicelib.points import ledger
from chalicelib.points.models import PointsBalance

__all__ = ["expire"]


def expire(moment: dt.datetime) -> dict[str, int]:
    """Expire every lot whose day ended before `moment` (Shanghai), one transfer per lot.

    Only the balances the `expiry-due` index names are read, its shards side
    by side. A lot's transfer is `expire#<lot>@<run day>`: replaying the job
    for the same moment finds nothing left to expire, and two runs at once
    expire a lot once. Each expiry is dated `moment`; the last one indexes the
    balance under its next lot. A balance indexed early (a spend emptied its
    soonest lot) is indexed again, as it is.
    """
    run_day = clock.shanghai_date(moment).isoformat()
    return ledger.across_shards(lambda shard: _expire_shard(shard, run_day, moment))


def _expire_shard(shard: str, run_day: str, moment: dt.datetime) -> dict[str, int]:
    counts = {"checked": 0, "lotsExpired": 0, "pointsExpired": 0, "reindexed": 0}
    for balance in ledger.balances_due_to_expire(run_day, shard):
        counts["checked"] += 1
        due = [day for day in balance.remaining_lots() if day < run_day]
        if not due:
            counts["reindexed"] += ledger.index_soonest_lot(balance)
            continue
        current: PointsBalance | None = balance
        for day in due:
            receipt = ledger.expire_lot(balance.account_id, day, moment, current)
            current = None  # the next lot plans from the balance as this expiry left it
            if receipt is not None and receipt.applied:
                counts["lotsExpired"] += 1
                counts["pointsExpired"] -= receipt.delta
    return counts
