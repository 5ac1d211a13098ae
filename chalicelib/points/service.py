"""Points as the rest of siyu sees them: balances, entries, check-in, rules, adjustments.

Other domains move points only through these functions. The coupons exchange
spends points and claims a coupon in one transaction:

    spend = points.prepare_spend(member_id, price, f"exchange#{coupon_id}", "exchange", campaign_id)

    def build(txn: transact.Transaction) -> None:
        spend.add_to(txn)   # spend.item_count items
        ...                 # the claim's own items

    transact.write(build)

The `add_*` functions add a movement to a transaction a use case composes
with another domain's items (a profile's completion and its reward, a POS
member and its points, a member's tier and the figures it follows from).

Orders use points in two ways. The points a member pays with are frozen by
the unpaid order (`freeze_for_order`, joining the order's own transaction),
spent for good when it is paid (`post_order_spend`), given back to their lots
when it is cancelled unpaid (`void_order_spend`) and returned when a paid
order is refunded (`return_order_spend`). The points an order earns are
pending on completion (`earn_order_points`), posted when the return window
closes (`post_order_points`) and voided, or clawed back once posted, on a
refund (`clawback_order_points`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from chalicelib import clock, db
from chalicelib.errors import InvalidRequestError
from chalicelib.points import ledger, rules, tiers
from chalicelib.points.config import points_config
from chalicelib.points.errors import AlreadyCheckedInError, InsufficientPointsError, PendingResolvedError
from chalicelib.points.ledger import (
    ADJUSTMENT,
    AlreadyAppliedError,
    Participant,
    PreparedMerge,
    PreparedSpend,
    Receipt,
    Movement,
    across_shards,
    add_merge,
    clawback,
    earn,
    earn_pending,
    balances_due_for_review,
    merge,
    post_pending,
    prepare_merge,
    prepare_spend,
    read_balance,
    reverse,
    spend,
    void_pending,
)
from chalicelib.points.models import PointsBalance, PointsTransfer, day_keys
from chalicelib.transact import Transaction

__all__ = [
    "AlreadyAppliedError",
    "InsufficientPointsError",
    "Participant",
    "PreparedSpend",
    "PreparedMerge",
    "Receipt",
    "prepare_spend",
    "prepare_merge",
    "spend",
    "earn",
    "earn_pending",
    "post_pending",
    "void_pending",
    "reverse",
    "clawback",
    "merge",
    "add_merge",
    "add_profile_reward",
    "add_pos_import",
    "add_tier_review",
    "tier_change",
    "across_shards",
    "balances_due_for_review",
    "queue_window_exits",
    "balance_key",
    "member_points",
    "tier_progress",
    "available",
    "overview",
    "entries",
    "entry_view",
    "checkin",
    "adjust",
    "award_review",
    "approve_review",
    "receipt_view",
    "award_referral",
    "order_points_earned",
    "earn_order_points",
    "post_order_points",
    "void_order_points",
    "clawback_order_points",
    "freeze_for_order",
    "post_order_spend",
    "void_order_spend",
    "return_order_spend",
    "order_points",
    "SYSTEM_ACCOUNTS",
    "system_movements",
]

order_points = rules.order_points
add_tier_review = tiers.add_review
tier_change = tiers.change
queue_window_exits = tiers.queue_window_exits


# --- Reading ---------------------------------------------------------------------

def balance_key(member_id: str) -> tuple[type[PointsBalance], str]:
    """The key of a member's balance, for a caller's multi-table `db.batch_get`."""
    return PointsBalance, member_id


def member_points(member_id: str, balance: PointsBalance | None) -> dict[str, int]:
    """`{available}` as `GET /members/me` shows it, from a balance read by `batch_get` (or None)."""
    balance = ledger.remember(balance if balance is not None else PointsBalance.empty(member_id))
    return {"available": int(balance.available or 0)}


def tier_progress(tier: str | None, balance: PointsBalance | None) -> dict[str, Any]:
    return tiers.progress(tier, balance)


def available(member_id: str) -> int:
    return int(read_balance(member_id).available or 0)


def _end_of_day(day: str) -> str:
    return clock.iso(dt.datetime.combine(dt.date.fromisoformat(day), dt.time(23, 59, 59), clock.SHANGHAI))


def overview(member_id: str) -> dict[str, Any]:
    """`GET /points`: the balance and the lots expiring within the window, soonest first."""
    balance = read_balance(member_id)
    horizon = (clock.shanghai_date() + dt.timedelta(days=points_config().expiring_window_days)).isoformat()
    return {
        "available": int(balance.available or 0),
        "pending": int(balance.pending or 0),
        "expiring": [
            {"points": amount, "expiresAt": _end_of_day(day)}
            for day, amount in balance.sorted_lots()
            if day <= horizon
        ],
    }


# A hold (points frozen by an unpaid order) is a pending spend.
_STATUS = {"posted": "posted", "post": "posted", "pending": "pending", "hold": "pending", "void": "voided"}


def entry_view(transfer: PointsTransfer) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "entryId": transfer.transfer_id,
        "delta": int(transfer.delta or 0),
        "reason": transfer.reason,
        "reference": transfer.reference,
        "status": _STATUS.get(transfer.kind, transfer.kind),
        "createdAt": clock.iso(transfer.created_at),
    }
    if transfer.pending_delta:
        entry["pendingDelta"] = int(transfer.pending_delta)
    if transfer.expires_on and (int(transfer.delta or 0) > 0 or transfer.kind == "pending"):
        entry["expiresAt"] = _end_of_day(transfer.expires_on)
    return entry


def _valid_cursor(member_id: str, cursor: dict[str, Any] | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    names = {"account_id", "transfer_id", "created_at"}
    if (
        set(cursor) != names
        or any(not isinstance(cursor[n], dict) or not isinstance(cursor[n].get("S"), str) for n in names)
        or cursor["account_id"]["S"] != member_id
    ):
        raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    return cursor


def entries(member_id: str, limit: int, cursor: dict[str, Any] | None = None) -> dict[str, Any]:
    """`GET /points/entries`: the member's transfers, newest first, a page at a time."""
    page = PointsTransfer.by_time.query(
        member_id,
        scan_index_forward=False,
        limit=limit,
        page_size=limit,
        consistent_read=True,
        last_evaluated_key=_valid_cursor(member_id, cursor),
    )
    items = [entry_view(transfer) for transfer in page]
    last = page.last_evaluated_key if len(items) == limit else None
    return {"items": items, "nextCursor": last}


# --- Earning rules ------------------------------------------------------------------

def checkin(member_id: str, *, also: list[Participant] | None = None) -> dict[str, Any]:
    """The day's check-in: once per Shanghai day, with the streak's bonus; one write (with `also`'s items).

    The streak is planned from the balance as this container last saw it (read
    only if it has not), and the write is conditioned on that balance's
    version, so a stale plan is refused with the current balance to plan
    again from, and the answer's `available` is exact. The transfer
    `checkin#<member>#<day>` makes every second check-in of the day a no.
    """
    now = clock.now()
    today = clock.shanghai_date(now)
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    transfer_id = f"checkin#{member_id}#{today.isoformat()}"
    lot = ledger.default_expiry(now)
    planned: list[tuple[PointsBalance, Movement, int]] = []

    def plan(seen: PointsBalance | None) -> Movement:
        balance = seen or ledger.recall(member_id) or read_balance(member_id)
        if balance.last_checkin == today.isoformat():
            raise AlreadyCheckedInError()
        streak = int(balance.streak or 0) + 1 if balance.last_checkin == yesterday else 1
        award = rules.checkin_award(streak)
        movement = ledger.credit(
            seen, member_id, transfer_id, ledger.ISSUED, "checkin", today.isoformat(),
            {lot: award} if award else {},
            delta=award, expires_on=lot if award else None, created_at=now,
            expect_version=int(balance.version or 0),
            balance_actions=[
                PointsBalance.last_checkin.set(today.isoformat()),
                PointsBalance.streak.set(streak),
                PointsBalance.tier_activity.add(1),
            ],
            activity=(rules.month_of(now), 0, 1), activity_month=rules.month_of(now), also=list(also or []),
        )
        planned.append((balance, movement, streak))
        return movement

    receipt = ledger.apply(member_id, plan, strict=False)
    if not receipt.applied:
        raise AlreadyCheckedInError()
    balance, movement, streak = planned[-1]
    # Exact as far as it goes, since the write required the version it was planned from.
    after = ledger.moved_on(balance, movement)
    after.last_checkin, after.streak = today.isoformat(), streak
    ledger.remember(after)
    return {"awarded": movement.delta, "streak": streak, "available": after.available}


def add_profile_reward(txn: Transaction, member_id: str, at: dt.datetime) -> int:
    """Add the profile-completion reward to `txn` (`profile#<member>`: once per member); the points it pays."""
    points = points_config().profile.points
    if points:
        plan = ledger.earning(member_id, points, f"profile#{member_id}", "profile", member_id, at=at)
        ledger.join(txn, member_id, plan)
    return points


def add_pos_import(
    txn: Transaction, member_id: str, points: int, expires_at: dt.date | None, actor: str, at: dt.datetime
) -> str:
    """Add to `txn` the points a member brings from the stores' POS (`pos#<member>#import`); their expiry day."""
    if expires_at is not None and expires_at < clock.shanghai_date(at):
        raise InvalidRequestError("expiresAt", "must not be in the past")
    expires_on = expires_at.isoformat() if expires_at is not None else ledger.default_expiry(at)
    if points:
        plan = ledger.earning(
            member_id, points, f"pos#{member_id}#import", "pos_import", expires_on=expires_on, actor=actor, at=at
        )
        ledger.join(txn, member_id, plan)
    return expires_on


def _capped(member_id: str, rule: str, daily_cap: int | None) -> tuple[str, int] | None:
    return (rules.cap_key(member_id, rule, clock.shanghai_date()), daily_cap) if daily_cap else None


def award_review(
    member_id: str, review_id: str, actor: str | None = None, *, also: list[Participant] | None = None
) -> Receipt:
    """Points for an approved review, once per review, at most `daily_cap` reviews a day.

    `also`: another domain's items the award must be written with (a check that the member is live).
    """
    rule = points_config().review
    month = rules.month_of(clock.now())
    return earn(
        member_id, rule.points, f"review#{review_id}", "review", review_id,
        cap=_capped(member_id, "review", rule.daily_cap), activity=(month, 0, 1),
        balance_actions=[PointsBalance.tier_activity.add(1)], actor=actor, also=also,
    )


def award_referral(referrer_id: str, referred_id: str) -> Receipt:
    """The referrer's points when the referred member's first order completes; once per referral."""
    rule = points_config().referral
    return earn(
        referrer_id, rule.points, f"referral#{referred_id}", "referral", referred_id,
        cap=_capped(referrer_id, "referral", rule.daily_cap),
    )


def adjust(
    member_id: str, delta: int, reason: str, actor: str, *, also: list[Participant] | None = None
) -> dict[str, Any]:
    """An admin's correction: a transfer with the adjustment account, never a negative balance.

    `also` joins the transfer either way (a check that the member is live).
    """
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0 or abs(delta) > ledger.MAX_POINTS:
        raise InvalidRequestError("delta", f"must be a non-zero integer from -{ledger.MAX_POINTS} to {ledger.MAX_POINTS}")
    transfer_id = f"adjust#{uuid.uuid4().hex}"
    if delta > 0:
        receipt = earn(
            member_id, delta, transfer_id, "adjust", reason, counterparty=ADJUSTMENT, actor=actor, also=also,
        )
    else:
        receipt = spend(
            member_id, -delta, transfer_id, "adjust", reason, counterparty=ADJUSTMENT, actor=actor, also=also,
        )
    return {"memberId": member_id, **receipt_view(receipt)}


def approve_review(
    member_id: str, review_id: str, actor: str, *, also: list[Participant] | None = None
) -> dict[str, Any]:
    """`POST /admin/points/reviews`: an admin approved a member's review."""
    receipt = award_review(member_id, review_id, actor, also=also)
    return {"memberId": member_id, **receipt_view(receipt)}


def receipt_view(receipt: Receipt) -> dict[str, Any]:
    view: dict[str, Any] = {
        "entryId": receipt.transfer_id,
        "delta": receipt.delta,
        "reason": receipt.reason,
        "reference": receipt.reference,
        "status": _STATUS.get(receipt.kind, receipt.kind),
        "createdAt": clock.iso(receipt.created_at),
    }
    if receipt.pending_delta:
        view["pendingDelta"] = receipt.pending_delta
    if receipt.expires_on and (receipt.delta > 0 or receipt.kind == "pending"):
        view["expiresAt"] = _end_of_day(receipt.expires_on)
    return view


# --- Orders (driven by the orders domain) ------------------------------------------------

def earn_order_points(
    member_id: str, order_id: str, paid_fen: int, tier: str | None, birthday: str | None = None
) -> Receipt | None:
    """A completed order's points, pending until its return window closes (`order#<id>#earn`)."""
    points = rules.order_points(paid_fen, tier, birthday)
    if points <= 0:
        return None
    return earn_pending(member_id, points, f"order#{order_id}#earn", "order", order_id, spend_fen=paid_fen)


def order_points_earned(member_id: str, order_id: str) -> bool:
    """Whether the completed order's points were earned (one read, where a replay of the earning would write)."""
    return ledger.find_transfer(member_id, f"order#{order_id}#earn") is not None


def post_order_points(member_id: str, order_id: str) -> Receipt:
    return post_pending(member_id, f"order#{order_id}#earn")


def void_order_points(member_id: str, order_id: str) -> Receipt:
    return void_pending(member_id, f"order#{order_id}#earn")


def clawback_order_points(member_id: str, order_id: str) -> dict[str, int]:
    """Undo what a refunded order earned: `{"voided", "clawedBack", "shortfall"}` (points).

    Still pending (the return window open): the pending points are voided and
    never arrive. Posted: they are clawed back as far as the balance allows.
    The policy: a clawback never takes a balance below zero. What the member
    has spent already is the shortfall; it is recorded on the clawback
    transfer (`order#<id>#earn#resolve#clawback`, its `shortfall`) and logged,
    and not pursued further. A replay answers the same figures. An order that
    earned nothing answers zeros.
    """
    earn_id = f"order#{order_id}#earn"
    resolve_id = f"{earn_id}#resolve"
    answer = {"voided": 0, "clawedBack": 0, "shortfall": 0}
    earned, resolution = db.batch_get(
        [(PointsTransfer, (member_id, earn_id)), (PointsTransfer, (member_id, resolve_id))]
    )
    if earned is None or earned.kind != "pending":
        return answer
    points = int(earned.pending_delta)
    if resolution is None or resolution.kind == "void":
        try:
            void_pending(member_id, earn_id)
            return {**answer, "voided": points}
        except PendingResolvedError:
            pass  # posted while we looked: claw it back
    receipt = clawback(member_id, resolve_id)
    clawed = -receipt.delta
    shortfall = points - clawed
    if shortfall and receipt.applied:
        from chalicelib.observability import logger

        logger().warning(
            "order points clawed back short: the member spent them already",
            extra={"orderId": order_id, "earned": points, "clawedBack": clawed, "shortfall": shortfall},
        )
    return {**answer, "clawedBack": clawed, "shortfall": shortfall}


# --- Points an order pays with: frozen, then posted, voided or returned ----------------------

def _hold_id(order_id: str) -> str:
    return f"order#{order_id}#points"


def freeze_for_order(member_id: str, order_id: str, points: int) -> PreparedSpend:
    """The points an unpaid order pays with, frozen inside the order's own transaction; it reads nothing.

        frozen = points.freeze_for_order(member_id, order_id, 300)
        transact.write(lambda txn: (frozen.add_to(txn), ...), replan=True)  # with stock, coupon, order

    A spend (`order#<id>#points`, kind `hold`) from the member's available
    points, soonest-expiring lots first, to the `frozen` account; its start
    on the line records exactly which lots it took. A refused balance
    explains as InsufficientPointsError; an existing hold raises
    AlreadyAppliedError.
    """
    return ledger.prepare_hold(member_id, points, _hold_id(order_id), "order", order_id)


def post_order_spend(member_id: str, order_id: str, points: int) -> Receipt:
    """The order was paid: its frozen points are spent for good. One round trip, no read.

    `points` is what the order froze (kept on the order); the write requires
    the hold to exist for exactly that many (NotFoundError "no such points
    hold", or HoldMismatchError). It writes `order#<id>#points#resolve` (kind
    `post`) and moves the points from `frozen` to `spent`. A replay answers
    `applied=False`; a hold voided already raises PendingResolvedError.
    """
    return ledger.post_hold(member_id, _hold_id(order_id), points, "order", order_id)


def void_order_spend(member_id: str, order_id: str) -> Receipt | None:
    """The unpaid order was cancelled: its frozen points go back to the very lots they came from.

    Two round trips (one read of the balance and the hold, one write of
    `order#<id>#points#resolve`, kind `void`). None if the order froze no
    points; a replay answers `applied=False`; a hold posted already (the
    order was paid) raises PendingResolvedError.

    Lapsed lots: points whose lot's day ended before today (Shanghai) while
    they were frozen do not come back to life. They go to the `expired`
    account in the same write (the transfer's settlement), as if they had
    never been frozen and the expiry job had taken them; the transfer's
    delta is what came back.
    """
    return ledger.void_hold(member_id, _hold_id(order_id))


def return_order_spend(member_id: str, order_id: str) -> Receipt | None:
    """A paid order was refunded: the points it spent come back to their lots (`order#<id>#points#return`).

    Two round trips, as `void_order_spend`, with its policy for lapsed lots.
    None if the order froze no points; a replay answers `applied=False`; a
    hold never posted raises PendingResolvedError (void it instead).
    """
    return ledger.return_hold(member_id, _hold_id(order_id))


# --- Figures ------------------------------------------------------------------------------

# The system accounts a day's figures are asked of (ledger.py names them all).
SYSTEM_ACCOUNTS = (ledger.ISSUED, ledger.SPENT, ledger.EXPIRED, ledger.CLAWBACK, ledger.ADJUSTMENT, ledger.FROZEN)


def _into_system(transfer: PointsTransfer) -> dict[str, int]:
    """What one transfer moved into each system account's available points (negative: out of it).

    The mirror the audit checks: the counterparty takes the opposite of the member's `delta`, and a
    settlement moves points from one system account to another. Pending points (`pending_delta`)
    are not available anywhere yet, so a pending earn moves nothing until it is posted.
    """
    moved: dict[str, int] = {}
    if transfer.counterparty != ledger.MERGE:
        moved[transfer.counterparty] = -int(transfer.delta or 0)
    settlement = transfer.settlement()
    if settlement is not None:
        source, destination, points = settlement
        moved[source] = moved.get(source, 0) - points
        moved[destination] = moved.get(destination, 0) + points
    return moved


def system_movements(day: dt.date) -> dict[str, int]:
    """The net points each system account took in on a Shanghai day, from that day's transfers.

    `issued` is negative as it gives points out (a check-in of 10 is -10), `spent` and `expired`
    positive as they take them in; a refund's returned points count against the day they come
    back on. Read from the sparse `day` index, shard by shard, never by a scan.
    """
    totals = {account: 0 for account in SYSTEM_ACCOUNTS}
    for key in day_keys(day):
        for transfer in PointsTransfer.on_day.query(key):
            for account, points in _into_system(transfer).items():
                totals[account] = totals.get(account, 0) + points
    return totals
