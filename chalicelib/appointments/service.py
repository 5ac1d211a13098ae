"""Appointments: slots derived from store hours, bookings that never overbook.

Slots are not stored ahead. A store's opening intervals on a Shanghai day are
cut by the service's duration; each cut is a slot with the service's capacity.
A slot's seats are counted in a `SlotCounter` item that the first booking
creates.

Every booking change is one `TransactWriteItems` whose conditions are the rules:

    book        store     CONDITION CHECK   if its revision is the cached copy's     -> planned again
                member    CONDITION CHECK   if not blocked for no-shows              -> BOOKING_BLOCKED
                guards    PUT per step      if absent                                -> ALREADY_BOOKED
                counter   ADD booked 1      if booked < capacity (or no counter yet)  -> SLOT_FULL
                booking   PUT               if the id is new
    cancel      booking   status=cancelled  if the caller's and booked
                counter   ADD booked -1     if booked > 0
                guards    DELETE
    reschedule  store     CONDITION CHECK   if its revision is the cached copy's     -> planned again
                old booking status=rescheduled, rescheduled_to  if the caller's and booked
                new booking PUT             if the id is new
                new counter ADD 1           if booked < capacity                     -> SLOT_FULL
                old counter ADD -1          if booked > 0
                guards    PUT the new steps (if absent), DELETE the old ones, re-point the shared ones

An appointment id names its slot: `a-<storeId>.<serviceId>.<YYYYMMDDHHMM>.<minutes>.<random>`
(Shanghai start, the booking's own duration, which stays right when an admin later
changes the service's). Store and service ids hold no dot, so the id parses
one way; one that does not parse is not found. From the id alone a cancel or
reschedule knows the slot counter, the guards and the cut-off, and the
caller's member id (from the token) is the owner the write is conditioned on:
neither reads before it writes. Only a refused write reads the booking, to
say why (absent or another member's: NOT_FOUND; no longer booked: NOT_BOOKED;
already cancelled: the cancelled booking again). A reschedule therefore
gives the member a new booking, with a new id, and the old one is kept as
`rescheduled`, linked both ways.

The overlap guard: one `OverlapGuard` item per member per 5-minute step a
booking covers (`<memberId>#<YYYY-MM-DDTHH:MM>`, Shanghai time). Store hours
and service durations are multiples of 5 minutes, so every slot boundary lies
on that grid and two bookings overlap exactly when they cover a common step.
Each guard is written with `attribute_not_exists` in the booking's own
transaction, so "a member holds no two overlapping active bookings" is a
DynamoDB condition: of two racing bookings that overlap, in the same or
another store, for the same or another service, only one can create the step
they share. Weighed and not chosen: one guard per member per day (forbids a
morning screen film and an afternoon repair); one guard per slot start
(misses a 10:00 60-minute repair against a 10:20 screen film: different
starts, same time); a per-member schedule item with a version (a read before
every booking, overlap checked in Python, retries under contention). Cost: a
20-minute service writes 4 guards, a 60-minute one 12, the longest allowed
(180 minutes) 36, so even a reschedule (a put per new step, shared ones
re-pointed to the new booking, a delete per old step; at most 72 guards and
5 other items) stays inside the 100 items of one transaction. Cancelling
deletes the guards; checked-in and missed bookings keep theirs until their
TTL, as they lie in the past; a moved booking's guards are the new one's.

Booking and reschedule read nothing: the store comes from the stores'
per-container cache, and the write checks that the store still has the
revision that copy came from, so a capacity or hours the cache holds from
before an admin's change can pick the slot but never decide it; a stale copy
costs the write one more round trip, planned again from the store the
refusal brought back. Cancel reads nothing either. Check-in is one UpdateItem
(the store and the times come from the id; the item answers with its new
values), conditioned on the booking being booked and not over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import clock, db, transact
from chalicelib.appointments.models import (
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    NO_SHOW,
    RESCHEDULED,
    Appointment,
    MemberBookingRecord,
    OverlapGuard,
    SlotCounter,
    booked_day_key,
    booked_day_keys,
)
from chalicelib.appointments.policy import policy
from chalicelib.appointments.schemas import EARLIEST, LATEST, BookingRequest
from chalicelib.auth import Principal
from chalicelib.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError, SiyuError
from chalicelib.members import service as members
from chalicelib.stores import service as stores
from chalicelib.stores.schemas import GRID_MINUTES, MAX_SERVICE_MINUTES
from chalicelib.transact import Explain, Transaction, TransactionRefusedError, TryAgainError

__all__ = [
    "erase_member_appointments",
    "last_visit",
    "Slot",
    "SlotFullError",
    "SlotClosedError",
    "AlreadyBookedError",
    "BookingBlockedError",
    "TooLateError",
    "TooEarlyError",
    "NotBookedError",
    "TryAgainError",
    "day_slots",
    "slots",
    "book",
    "cancel",
    "reschedule",
    "check_in",
    "member_appointments",
    "store_appointments",
    "get_appointment",
    "member_appointment",
    "guard_keys",
    "view",
    "booked_on",
    "outcomes_on",
]

GUARD_STEP = dt.timedelta(minutes=GRID_MINUTES)
# Guards and counters outlive their slot by this much, then DynamoDB's TTL tidies them.
KEEP_AFTER_END = dt.timedelta(days=2)
_APPOINTMENT_ID = re.compile(
    r"^a-(?P<store>[A-Za-z0-9_-]{1,64})\.(?P<service>[A-Za-z0-9_-]{1,64})"
    r"\.(?P<start>[0-9]{12})\.(?P<minutes>[1-9][0-9]{0,2})\.[0-9a-f]{16}$"
)
# A moved booking's note is read from the booking it was moved from: at most this many hops back.
_NOTE_HOPS = 10


class SlotFullError(ConflictError):
    code = "SLOT_FULL"
    default_message = "every seat of this slot is taken"


class SlotClosedError(ConflictError):
    code = "SLOT_CLOSED"
    default_message = "this slot cannot be booked"


class AlreadyBookedError(ConflictError):
    code = "ALREADY_BOOKED"
    default_message = "you already hold a booking at this time"


class BookingBlockedError(ConflictError):
    code = "BOOKING_BLOCKED"
    default_message = "booking is paused for a while after missed appointments"


class TooLateError(ConflictError):
    code = "TOO_LATE"
    default_message = "it is too late to change this booking"


class TooEarlyError(ConflictError):
    code = "TOO_EARLY"
    default_message = "it is too early to check in"


class NotBookedError(ConflictError):
    code = "NOT_BOOKED"
    default_message = "this appointment is no longer booked"


# --- Slots ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    start: dt.datetime  # Shanghai time
    end: dt.datetime
    capacity: int

    @property
    def day(self) -> dt.date:
        return self.start.date()

    @property
    def key(self) -> str:
        return f"{self.start:%H:%M}"


def day_slots(store: stores.Store, service: stores.Service, day: dt.date) -> list[Slot]:
    """The service's slots on that Shanghai day: each opening interval cut by the duration."""
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=clock.SHANGHAI)
    found = []
    for opens, closes in store.hours_on(day):
        minute = opens
        while minute + service.duration_minutes <= closes:
            start = midnight + dt.timedelta(minutes=minute)
            found.append(Slot(start, start + dt.timedelta(minutes=service.duration_minutes), service.capacity))
            minute += service.duration_minutes
    return found


def _bookable(slot: Slot, now: dt.datetime) -> bool:
    rules = policy()
    if slot.start < now + dt.timedelta(minutes=rules.lead_minutes):
        return False
    return slot.day <= clock.shanghai_date(now) + dt.timedelta(days=rules.horizon_days)


def _slot_day(store_id: str, service_id: str, day: dt.date) -> str:
    return f"{store_id}#{service_id}#{day.isoformat()}"


def _counter(store_id: str, service_id: str, slot: Slot) -> SlotCounter:
    return SlotCounter(_slot_day(store_id, service_id, slot.day), slot.key)


def _open_slot(store: stores.Store, service: stores.Service, start: dt.datetime, now: dt.datetime) -> Slot:
    """The bookable slot starting at `start`, or SLOT_CLOSED saying why not."""
    if not store.active:
        raise SlotClosedError("this store takes no bookings")
    local = start.astimezone(clock.SHANGHAI)
    slot = next((s for s in day_slots(store, service, local.date()) if s.start == local), None)
    if slot is None:
        raise SlotClosedError("no slot of this service starts at that time")
    if slot.start <= now:
        raise SlotClosedError("this slot has passed")
    if not _bookable(slot, now):
        raise SlotClosedError("this slot is too close or too far ahead to book")
    return slot


def slots(store_id: str, service_id: str, day: dt.date) -> dict[str, Any]:
    """`{slots: [{start, end, capacity, remaining, status}]}`; closed slots have no seats left."""
    store = stores.find_store(store_id)
    service = store.service(service_id)
    now = clock.now()
    booked = {
        counter.start: int(counter.booked or 0)
        for counter in SlotCounter.query(_slot_day(store_id, service_id, day), consistent_read=True)
    }
    answer = []
    for slot in day_slots(store, service, day):
        remaining = max(0, slot.capacity - booked.get(slot.key, 0))
        is_open = store.active and _bookable(slot, now)
        answer.append({
            "start": clock.iso(slot.start),
            "end": clock.iso(slot.end),
            "capacity": slot.capacity,
            "remaining": remaining if is_open else 0,
            "status": "closed" if not is_open else ("full" if remaining == 0 else "open"),
        })
    return {"storeId": store_id, "serviceId": service_id, "date": day.isoformat(), "slots": answer}


# --- Guards -----------------------------------------------------------------------------

def guard_keys(member_id: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """One key per 5-minute step of [start, end), in Shanghai time."""
    keys = []
    step = start.astimezone(clock.SHANGHAI)
    while step < end:
        keys.append(f"{member_id}#{step:%Y-%m-%dT%H:%M}")
        step += GUARD_STEP
    return keys


def _guard(key: str, appointment_id: str, end: dt.datetime) -> OverlapGuard:
    return OverlapGuard(key, appointment_id=appointment_id, expires_at=end + KEEP_AFTER_END)


# --- Booking ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ref:
    """What an appointment id says: the store, the service and the booked slot."""

    store_id: str
    service_id: str
    slot: Slot

    @property
    def start(self) -> dt.datetime:
        return self.slot.start

    @property
    def end(self) -> dt.datetime:
        return self.slot.end


def _booked(member_id: str, store: stores.Store, service: stores.Service, slot: Slot, now: dt.datetime, **extra: Any) -> Appointment:
    """A new booking of `slot`, its id naming the slot."""
    day = slot.day.isoformat()
    appointment_id = _new_id(store.store_id, service.service_id, slot)
    # A reschedule's new booking is a move: the day's bookings count the one it replaced.
    made_on = None if extra.get("rescheduled_from") else booked_day_key(clock.shanghai_date(now), appointment_id)
    return Appointment(
        appointment_id,
        member_id=member_id,
        store_id=store.store_id,
        store_name=store.name,
        service_id=service.service_id,
        service_name=service.name,
        start=slot.start,
        end=slot.end,
        day=day,
        store_day=f"{store.store_id}#{day}",
        open_day=day,
        status=BOOKED,
        booked_at=now,
        created_at=now,
        booked_day=made_on,
        updated_at=now,
        version=1,
        **extra,
    )


def _new_id(store_id: str, service_id: str, slot: Slot) -> str:
    """`a-<storeId>.<serviceId>.<YYYYMMDDHHMM>.<minutes>.<random>`, the start in Shanghai time."""
    minutes = (slot.end - slot.start) // dt.timedelta(minutes=1)
    start = slot.start.astimezone(clock.SHANGHAI)
    return f"a-{store_id}.{service_id}.{start:%Y%m%d%H%M}.{minutes}.{secrets.token_hex(8)}"


def _parse_id(appointment_id: str) -> _Ref:
    """The slot an id names; an id this module did not make is simply not found."""
    match = _APPOINTMENT_ID.match(appointment_id)
    if match is None:
        raise NotFoundError("no such appointment")
    try:
        start = dt.datetime.strptime(match["start"], "%Y%m%d%H%M").replace(tzinfo=clock.SHANGHAI)
    except ValueError as exc:
        raise NotFoundError("no such appointment") from exc
    minutes = int(match["minutes"])
    if (
        f"{start:%Y%m%d%H%M}" != match["start"]
        or not EARLIEST.year <= start.year <= LATEST.year
        or start.minute % GRID_MINUTES
        or minutes % GRID_MINUTES
        or minutes > MAX_SERVICE_MINUTES
    ):
        raise NotFoundError("no such appointment")
    slot = Slot(start, start + dt.timedelta(minutes=minutes), 0)
    return _Ref(match["store"], match["service"], slot)


def _not_blocked(now: dt.datetime) -> Any:
    return MemberBookingRecord.blocked_until.does_not_exist() | (MemberBookingRecord.blocked_until <= now)


def _seat_free(capacity: int) -> Any:
    # The counter exists from the first booking on; until then every seat is free.
    return SlotCounter.booked.does_not_exist() | (SlotCounter.booked < capacity)


def _take_seat(txn: Transaction, store: stores.Store, service: stores.Service, slot: Slot) -> None:
    """One seat of the slot, of the capacity the store's revision (checked in the same write) gives."""
    txn.update(
        _counter(store.store_id, service.service_id, slot),
        [SlotCounter.booked.add(1), SlotCounter.expires_at.set(slot.end + KEEP_AFTER_END)],
        _seat_free(slot.capacity),
        label="slot",
        explain=lambda old: SlotFullError(),
    )


def _hold_step(txn: Transaction, key: str, appointment_id: str, end: dt.datetime) -> None:
    txn.save(
        _guard(key, appointment_id, end),
        OverlapGuard.key.does_not_exist(),
        label="guard",
        explain=lambda old: AlreadyBookedError(),
    )


def book(member_id: str, request: BookingRequest) -> dict[str, Any]:
    now = clock.now()

    def build(txn: Transaction) -> Appointment:
        store = stores.find_store(request.store_id)
        service = store.service(request.service_id)
        slot = _open_slot(store, service, request.start, now)
        appointment = _booked(member_id, store, service, slot, now, note=request.note)
        stores.require_unchanged(txn, store)
        members.require_member(txn, member_id)
        txn.condition_check(
            MemberBookingRecord, member_id, condition=_not_blocked(now),
            label="blocked", explain=lambda old: BookingBlockedError(),
        )
        for key in guard_keys(member_id, slot.start, slot.end):
            _hold_step(txn, key, appointment.appointment_id, slot.end)
        _take_seat(txn, store, service, slot)
        txn.save(appointment, Appointment.appointment_id.does_not_exist(), label="booking")
        return appointment

    return view(transact.write(build, replan=True))


# --- Reading bookings --------------------------------------------------------------------

def get_appointment(appointment_id: str) -> Appointment:
    _parse_id(appointment_id)
    try:
        return Appointment.get(appointment_id, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFoundError("no such appointment") from exc


def _own(member_id: str, appointment_id: str) -> Appointment:
    """The member's own booking; another member's is as absent as a missing one."""
    appointment = get_appointment(appointment_id)
    if appointment.member_id != member_id:
        raise NotFoundError("no such appointment")
    return appointment


def _with_notes(appointments: list[Appointment]) -> list[Appointment]:
    """Fill in the notes of moved bookings from the bookings they were moved from (one read per hop)."""
    pending = [(a, a.rescheduled_from) for a in appointments if a.note is None and a.rescheduled_from]
    for _ in range(_NOTE_HOPS):
        if not pending:
            break
        earlier = db.batch_get([(Appointment, source) for _, source in pending])
        further = []
        for (appointment, _), before in zip(pending, earlier):
            if before is None or before.member_id != appointment.member_id:
                continue
            if before.note is not None:
                appointment.note = before.note
            elif before.rescheduled_from:
                further.append((appointment, before.rescheduled_from))
        pending = further
    return appointments


def member_appointment(member_id: str, appointment_id: str) -> dict[str, Any]:
    return view(_with_notes([_own(member_id, appointment_id)])[0])


def _callers_and_booked(member_id: str) -> Any:
    return (Appointment.member_id == member_id) & (Appointment.status == BOOKED)


def _close_booking(
    txn: Transaction, member_id: str, appointment_id: str, now: dt.datetime, actions: list[Any], explain: Explain
) -> None:
    """Take the caller's booking out of the open ones, only if it is theirs and still booked."""
    txn.update(
        Appointment(appointment_id),
        [*actions, Appointment.updated_at.set(now), Appointment.open_day.remove(), Appointment.version.add(1)],
        _callers_and_booked(member_id),
        label="booking",
        explain=explain,
    )


def _not_closable(member_id: str, old: Appointment | None) -> Exception:
    """Why the caller's booking could not be closed, from the booking as the refusal found it."""
    if old is None or old.member_id != member_id:
        return NotFoundError("no such appointment")
    if old.status != BOOKED:
        return _not_booked(old)
    return _changed_meanwhile()


def _not_booked(appointment: Appointment) -> NotBookedError:
    return NotBookedError(f"this appointment is {appointment.status.replace('_', ' ')}")


def _require_booked(appointment: Appointment) -> None:
    if appointment.status != BOOKED:
        raise _not_booked(appointment)


def _own_and_booked(member_id: str, appointment_id: str) -> Appointment:
    appointment = _own(member_id, appointment_id)
    _require_booked(appointment)
    return appointment


def _too_late(ref: _Ref, now: dt.datetime) -> TooLateError | None:
    if now > ref.start - dt.timedelta(minutes=policy().cancel_cutoff_minutes):
        return TooLateError(f"changes close {policy().cancel_cutoff_minutes} minutes before the start")
    return None


def _changed_meanwhile() -> ConflictError:
    return ConflictError("the booking changed meanwhile, try again")


# --- Cancel and reschedule ----------------------------------------------------------------

def cancel(member_id: str, appointment_id: str) -> dict[str, Any]:
    """Free the seat and the member's time in one write; cancelling twice answers the cancelled booking.

    The answer holds what the write knows without reading: the id, the slot, the
    new status and when it was set.
    """
    ref = _parse_id(appointment_id)
    now = clock.now()
    late = _too_late(ref, now)
    if late is not None:
        appointment = _own(member_id, appointment_id)
        if appointment.status == CANCELLED:
            return view(_with_notes([appointment])[0])
        _require_booked(appointment)
        raise late

    def is_cancelled(old: Appointment | None) -> bool:
        return old is not None and old.member_id == member_id and old.status == CANCELLED

    def build(txn: Transaction) -> None:
        _close_booking(
            txn, member_id, appointment_id, now, [Appointment.status.set(CANCELLED), Appointment.cancelled_at.set(now)],
            # Cancelled already: no error, the cancelled booking is the answer.
            explain=lambda old: None if is_cancelled(old) else _not_closable(member_id, old),
        )
        txn.update(
            _counter(ref.store_id, ref.service_id, ref.slot),
            [SlotCounter.booked.add(-1)],
            SlotCounter.booked > 0,
            label="slot",
        )
        for key in guard_keys(member_id, ref.start, ref.end):
            txn.delete(OverlapGuard(key), label="guard")

    try:
        transact.write(build)
    except TransactionRefusedError as refused:
        cancelled = refused.item("booking")
        if is_cancelled(cancelled):
            return view(_with_notes([cancelled])[0])
        raise _changed_meanwhile() from refused
    return {
        "appointmentId": appointment_id,
        "storeId": ref.store_id,
        "serviceId": ref.service_id,
        "start": clock.iso(ref.start),
        "end": clock.iso(ref.end),
        "status": CANCELLED,
        "cancelledAt": clock.iso(now),
    }


def _destination(
    member_id: str, appointment_id: str, ref: _Ref, start: dt.datetime, now: dt.datetime
) -> tuple[stores.Store, stores.Service, Slot]:
    """The store, service and open slot a booking moves to; a stranger's or finished booking says so first."""
    try:
        late = _too_late(ref, now)
        if late is not None:
            raise late
        store = stores.get_store(ref.store_id)
        try:
            service = store.service(ref.service_id)
        except stores.ServiceNotOfferedError as exc:
            raise SlotClosedError("this store no longer offers this service") from exc
        return store, service, _open_slot(store, service, start, now)
    except (ConflictError, NotFoundError):
        _own_and_booked(member_id, appointment_id)
        raise


def reschedule(member_id: str, appointment_id: str, start: dt.datetime) -> dict[str, Any]:
    """Move to another slot: a new booking takes the new seat and the old one is marked `rescheduled`.

    One write, or nothing changes. The answer is the new booking, with its new id
    and `rescheduledFrom`; the note stays on the old booking and is read from
    there when the new one is read (so the answer leaves it out).
    """
    ref = _parse_id(appointment_id)
    now = clock.now()

    def build(txn: Transaction) -> Appointment | None:
        store, service, new = _destination(member_id, appointment_id, ref, start, now)
        if new.start == ref.start:
            return None
        moved = _booked(member_id, store, service, new, now, rescheduled_from=appointment_id)
        new_id = moved.appointment_id
        old_keys = guard_keys(member_id, ref.start, ref.end)
        new_keys = guard_keys(member_id, new.start, new.end)
        stores.require_unchanged(txn, store)
        members.require_member(txn, member_id)
        _close_booking(
            txn, member_id, appointment_id, now,
            [Appointment.status.set(RESCHEDULED), Appointment.rescheduled_to.set(new_id)],
            explain=lambda old: _not_closable(member_id, old),
        )
        for key in new_keys:
            if key in old_keys:
                # The step is already the member's, through the booking this write moves: it now names the new one.
                txn.save(_guard(key, new_id, new.end), label="shared-guard")
            else:
                _hold_step(txn, key, new_id, new.end)
        _take_seat(txn, store, service, new)
        txn.update(
            _counter(ref.store_id, ref.service_id, ref.slot),
            [SlotCounter.booked.add(-1)],
            SlotCounter.booked > 0,
            label="old-slot",
            explain=lambda old: _changed_meanwhile(),
        )
        txn.save(moved, Appointment.appointment_id.does_not_exist(), label="new-booking")
        for key in old_keys:
            if key not in new_keys:
                txn.delete(OverlapGuard(key), label="old-guard")
        return moved

    moved = transact.write(build, replan=True)
    if moved is None:
        return view(_with_notes([_own_and_booked(member_id, appointment_id)])[0])
    answer = view(moved)
    del answer["note"]
    return answer


# --- Store side ---------------------------------------------------------------------------

def _check_in_refusal(caller: Principal, appointment_id: str) -> dict[str, Any] | None:
    """Read the booking to say why a check-in was refused; a booking already checked in is answered again."""
    appointment = get_appointment(appointment_id)
    caller.require_store(appointment.store_id)
    if appointment.status == CHECKED_IN:
        return store_view(_with_notes([appointment])[0])
    _require_booked(appointment)
    return None


def check_in(caller: Principal, appointment_id: str) -> dict[str, Any]:
    """Staff of the booking's store mark the customer arrived, from a while before the start until the end.

    One UpdateItem: the store and the times come from the id, and the item answers with its new values.
    """
    ref = _parse_id(appointment_id)
    now = clock.now()
    try:
        caller.require_store(ref.store_id)
        if now < ref.start - dt.timedelta(minutes=policy().checkin_early_minutes):
            raise TooEarlyError(f"check-in opens {policy().checkin_early_minutes} minutes before the start")
        if now >= ref.end:
            raise TooLateError("this appointment has ended")
    except (ForbiddenError, ConflictError):
        answer = _check_in_refusal(caller, appointment_id)
        if answer is not None:
            return answer
        raise
    appointment = Appointment(appointment_id)
    actions = [
        Appointment.status.set(CHECKED_IN),
        Appointment.checked_in_at.set(now),
        Appointment.checked_in_by.set(caller.member_id),
        Appointment.updated_at.set(now),
        Appointment.open_day.remove(),
        Appointment.version.add(1),
    ]
    arrived_in_time = (Appointment.store_id == ref.store_id) & (Appointment.status == BOOKED) & (Appointment.end > now)
    try:
        transact.retrying(lambda: appointment.update(actions=actions, condition=arrived_in_time))
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        answer = _check_in_refusal(caller, appointment_id)
        if answer is not None:
            return answer
        raise _changed_meanwhile() from exc
    return store_view(_with_notes([appointment])[0])


def _page_start(cursor: dict[str, Any] | None, fixed: dict[str, str]) -> dict[str, Any] | None:
    """The key a page of an index query starts after, as this API gave it out (or 400)."""
    key = cursor
    if key is None:
        return None
    expected = {"appointment_id", "start", *fixed}

    def plain_string(value: Any) -> bool:
        if not isinstance(value, dict) or set(value) != {"S"}:
            return False
        return isinstance(value["S"], str) and 0 < len(value["S"]) <= 200

    if (
        set(key) != expected
        or not all(plain_string(value) for value in key.values())
        or any(key[name]["S"] != value for name, value in fixed.items())
    ):
        raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    return key


def store_appointments(
    caller: Principal, store_id: str | None, day: dt.date | None, limit: int, cursor: dict[str, Any] | None
) -> dict[str, Any]:
    """A store's bookings of a Shanghai day, by start: staff and guides see their own store's."""
    store_id = store_id or caller.store_id
    if not store_id:
        raise InvalidRequestError("storeId", "is required for a caller without a store")
    caller.require_store(store_id)
    day = day or clock.shanghai_date()
    store_day = f"{store_id}#{day.isoformat()}"
    found = Appointment.by_store_day.query(
        store_day,
        filter_condition=Appointment.status != RESCHEDULED,
        limit=limit,
        last_evaluated_key=_page_start(cursor, {"store_day": store_day}),
    )
    items = [store_view(appointment) for appointment in _with_notes(list(found))]
    return {
        "storeId": store_id,
        "date": day.isoformat(),
        "items": items,
        "nextCursor": found.last_evaluated_key,
    }


def member_appointments(
    member_id: str, status: str | None, limit: int, cursor: dict[str, Any] | None
) -> dict[str, Any]:
    """The member's bookings, latest start first; those moved to another slot only when asked for by status."""
    found = Appointment.by_member.query(
        member_id,
        scan_index_forward=False,
        filter_condition=(Appointment.status == status) if status else (Appointment.status != RESCHEDULED),
        limit=limit,
        last_evaluated_key=_page_start(cursor, {"member_id": member_id}),
    )
    items = [view(appointment) for appointment in _with_notes(list(found))]
    return {"items": items, "nextCursor": found.last_evaluated_key}


# --- Views -------------------------------------------------------------------------------

def view(appointment: Appointment) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "appointmentId": appointment.appointment_id,
        "storeId": appointment.store_id,
        "storeName": appointment.store_name,
        "serviceId": appointment.service_id,
        "serviceName": appointment.service_name,
        "start": clock.iso(appointment.start),
        "end": clock.iso(appointment.end),
        "status": appointment.status,
        "note": appointment.note,
        "createdAt": clock.iso(appointment.created_at),
    }
    for name, moment in (
        ("cancelledAt", appointment.cancelled_at),
        ("checkedInAt", appointment.checked_in_at),
        ("noShowAt", appointment.no_show_at),
    ):
        if moment is not None:
            answer[name] = clock.iso(moment)
    links = (("rescheduledFrom", appointment.rescheduled_from), ("rescheduledTo", appointment.rescheduled_to))
    for name, link in links:
        if link is not None:
            answer[name] = link
    return answer


def store_view(appointment: Appointment) -> dict[str, Any]:
    """What the store sees: the booking and whose it is."""
    return {**view(appointment), "memberId": appointment.member_id}


# --- Figures ------------------------------------------------------------------------------

def booked_on(day: dt.date) -> int:
    """Bookings made on a Shanghai day (whatever became of them), counted on the sparse `booked-day`
    index shard by shard (Select=COUNT)."""
    return sum(Appointment.booked_on_day.count(key) for key in booked_day_keys(day))


def outcomes_on(day: dt.date) -> dict[str, int]:
    """`{kept, missed}`: the bookings starting on a Shanghai day that were checked in, and no-shows.

    One query of `by-store-day` per store (the store list is the stores' cached directory), so a
    day costs as many small queries as there are stores, never a scan of the bookings.
    """
    outcomes = {"kept": 0, "missed": 0}
    for store in stores.list_stores(include_inactive=True):
        for appointment in Appointment.by_store_day.query(f"{store.store_id}#{day.isoformat()}"):
            if appointment.status == CHECKED_IN:
                outcomes["kept"] += 1
            elif appointment.status == NO_SHOW:
                outcomes["missed"] += 1
    return outcomes


def last_visit(member_id: str) -> dt.datetime | None:
    """When the member last came to a store for a booking (checked in)."""
    kept = Appointment.by_member.query(member_id, scan_index_forward=False,
                                       filter_condition=Appointment.status == CHECKED_IN)
    return max((appointment.checked_in_at or appointment.start for appointment in kept), default=None)


def erase_member_appointments(member_id: str) -> int:
    """The member deletes their account: bookings still ahead are cancelled (their seats freed) where it is
    not too late, and every booking forgets its note; the count of bookings seen."""
    bookings = list(Appointment.by_member.query(member_id))
    for booking in bookings:
        if booking.status == BOOKED:
            with contextlib.suppress(SiyuError):
                cancel(member_id, booking.appointment_id)
        if booking.note is not None:
            booking.update(actions=[Appointment.note.remove()])
    return len(bookings)
