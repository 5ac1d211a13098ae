"""The appointment jobs: reminders before the start, no-shows after the end.

Both read only the sparse `open-by-day` index (bookings still `booked`), a
few Shanghai days of it, and both are safe to replay or to run twice at once:
a reminder is a `send_once` keyed by booking and offset, a no-show is a
conditional status change from `booked`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock, transact
from chalicelib.appointments.models import BOOKED, NO_SHOW, Appointment, MemberBookingRecord
from chalicelib.appointments.policy import policy
from chalicelib.config import settings
from chalicelib.errors import UnauthenticatedError
from chalicelib.transact import Transaction, TransactionRefusedError, TryAgainError

__all__ = ["send_reminders", "mark_no_shows", "reminder_key", "due_offset"]

_THING_LIMIT = 20  # WeChat's `thing` fields take at most 20 characters


def _days(first: dt.datetime, last: dt.datetime) -> list[str]:
    day, end = clock.shanghai_date(first), clock.shanghai_date(last)
    days = []
    while day <= end:
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days


def _open_bookings(days: list[str], range_condition: Any) -> list[Appointment]:
    found: list[Appointment] = []
    for day in days:
        found.extend(Appointment.open_by_day.query(day, range_condition))
    return found


# --- Reminders -----------------------------------------------------------------------

def _label(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def reminder_key(appointment: Appointment, offset_minutes: int) -> str:
    """`appointment#<id>#24h`: a reschedule makes a new booking, with a new id, so a moved one is reminded anew."""
    return f"appointment#{appointment.appointment_id}#{_label(offset_minutes)}"


def due_offset(appointment: Appointment, now: dt.datetime) -> int | None:
    """The reminder due now: the nearest offset already reached, unless the booking came after it.

    A booking made 23 hours ahead gets no "24 h" reminder, only the "2 h" one;
    a run that was missed is made up by the next run, until the next offset is reached.
    """
    if not appointment.start > now:
        return None
    reached = [m for m in policy().reminder_offsets_minutes if appointment.start - dt.timedelta(minutes=m) <= now]
    if not reached:
        return None
    nearest = min(reached)
    if appointment.booked_at > appointment.start - dt.timedelta(minutes=nearest):
        return None
    return nearest


def _message(appointment: Appointment) -> dict[str, str]:
    return {
        "thing1": appointment.service_name[:_THING_LIMIT],
        "time2": f"{appointment.start.astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}",
        "thing3": appointment.store_name[:_THING_LIMIT],
        "thing4": "请按时到店，到店后出示预约"[:_THING_LIMIT],
    }


def send_reminders(now: dt.datetime) -> dict[str, int]:
    """Send each booking's due reminder once, where the member holds a credit for it."""
    from chalicelib.members import service as members
    from chalicelib.messaging import service as messaging

    horizon = now + dt.timedelta(minutes=max(policy().reminder_offsets_minutes, default=0))
    bookings = _open_bookings(_days(now, horizon), Appointment.start.between(now, horizon))
    template = settings().template_appointment_reminder
    openids: dict[str, str | None] = {}
    outcomes: Counter[str] = Counter()
    for appointment in bookings:
        offset = due_offset(appointment, now)
        if appointment.status != BOOKED or offset is None:
            continue
        if appointment.member_id not in openids:
            try:
                openids[appointment.member_id] = members.get_member(appointment.member_id).openid
            except UnauthenticatedError:
                openids[appointment.member_id] = None
        outcome = messaging.send_once(
            key=reminder_key(appointment, offset),
            member_id=appointment.member_id,
            openid=openids[appointment.member_id],
            template_id=template,
            data=_message(appointment),
            page=f"pages/appointments/detail?id={appointment.appointment_id}",
            at=now,
        )
        outcomes[outcome] += 1
    return {
        "checked": len(bookings),
        "sent": outcomes[messaging.SENT],
        "alreadySent": outcomes[messaging.ALREADY_SENT],
        "noCredit": outcomes[messaging.NO_CREDIT],
        "refused": outcomes[messaging.REFUSED],
        "failed": outcomes[messaging.FAILED],
    }


# --- No-shows -----------------------------------------------------------------------

def mark_no_shows(now: dt.datetime) -> dict[str, int]:
    """Bookings not checked in by their end become `no_show`; enough of them block booking."""
    rules = policy()
    since = now - dt.timedelta(days=rules.no_show_lookback_days)
    bookings = _open_bookings(_days(since, now), Appointment.start < now)
    marked = blocked = 0
    for appointment in bookings:
        if appointment.status != BOOKED or appointment.end > now:
            continue
        if _mark(appointment, now):
            marked += 1
            blocked += _block_if_due(appointment.member_id, now)
    return {"checked": len(bookings), "noShows": marked, "blocked": blocked}


def _mark(appointment: Appointment, now: dt.datetime) -> bool:
    """The booking becomes a no-show and the member's count grows, together, once."""
    still_open = (Appointment.status == BOOKED) & (Appointment.end <= now)

    def build(txn: Transaction) -> None:
        txn.update(
            appointment,
            [
                Appointment.status.set(NO_SHOW),
                Appointment.no_show_at.set(now),
                Appointment.updated_at.set(now),
                Appointment.open_day.remove(),
                Appointment.version.add(1),
            ],
            still_open,
            label="booking",
        )
        txn.update(
            MemberBookingRecord(appointment.member_id),
            [MemberBookingRecord.no_shows.add(1), MemberBookingRecord.strikes.add(1)],
            label="record",
        )

    try:
        transact.write(build)
    except (TransactionRefusedError, TryAgainError):
        return False  # checked in, cancelled or marked by an overlapping run meanwhile; the next run sees it
    return True


def _block_if_due(member_id: str, now: dt.datetime) -> int:
    """Turn `no_show_limit` strikes into a block of `no_show_block_days` (once per limit reached)."""
    rules = policy()
    if rules.no_show_block_days == 0:
        return 0
    record = MemberBookingRecord(member_id)
    actions = [
        MemberBookingRecord.strikes.add(-rules.no_show_limit),
        MemberBookingRecord.blocked_until.set(now + dt.timedelta(days=rules.no_show_block_days)),
    ]
    limit_reached = MemberBookingRecord.strikes >= rules.no_show_limit
    try:
        transact.retrying(lambda: record.update(actions=actions, condition=limit_reached))
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return 0
        raise
    return 1
