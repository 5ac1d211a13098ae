"""Bookings, the seat counters of slots, the members' overlap guards and no-show records.

Four tables, because each has its own key and its own reason to be written:

- `appointments`: one item per booking. Its id names its slot (see
  `chalicelib.appointments.service`), so a reschedule writes a new booking and
  marks the old one `rescheduled`. Three indexes: the member's bookings,
  a store's bookings per Shanghai day, and (sparse) the bookings still open,
  per Shanghai day, which is all the reminder and no-show jobs read.
- `appointment-slots`: one counter per (store, service, day, start), created by
  the first booking of that slot; `booked < capacity` is its condition.
- `appointment-guards`: one item per member per 5-minute step a booking covers
  (see `chalicelib.appointments.service` for why).
- `appointment-members`: no-show counts and the block they may earn.
"""

from __future__ import annotations

import datetime as dt
import zlib

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "BOOKED",
    "CANCELLED",
    "CHECKED_IN",
    "NO_SHOW",
    "RESCHEDULED",
    "Appointment",
    "AppointmentsByMember",
    "AppointmentsByStoreDay",
    "OpenAppointmentsByDay",
    "AppointmentsBookedOnDay",
    "BOOKED_DAY_SHARDS",
    "booked_day_key",
    "booked_day_keys",
    "SlotCounter",
    "OverlapGuard",
    "MemberBookingRecord",
]

BOOKED, CANCELLED, CHECKED_IN, NO_SHOW = "booked", "cancelled", "checked_in", "no_show"
# Moved to another slot: `rescheduled_to` names the booking that replaced it.
RESCHEDULED = "rescheduled"


# A day's bookings are spread over this many index partitions: a promotion's rush is not one hot key.
BOOKED_DAY_SHARDS = 8


def booked_day_key(day: dt.date, appointment_id: str) -> str:
    """The `booked-day` index key of a booking made on `day` (Shanghai), by the hash of its id."""
    return f"{day.isoformat()}#{zlib.crc32(appointment_id.encode()) % BOOKED_DAY_SHARDS}"


def booked_day_keys(day: dt.date) -> list[str]:
    """Every `booked-day` index key of a day, for a reader of the day."""
    return [f"{day.isoformat()}#{shard}" for shard in range(BOOKED_DAY_SHARDS)]


class AppointmentsByMember(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-member"
        projection = AllProjection()

    member_id = UnicodeAttribute(hash_key=True)
    start = UTCDateTimeAttribute(range_key=True)


class AppointmentsByStoreDay(GlobalSecondaryIndex):
    class Meta:
        index_name = "by-store-day"
        projection = AllProjection()

    store_day = UnicodeAttribute(hash_key=True)
    start = UTCDateTimeAttribute(range_key=True)


class OpenAppointmentsByDay(GlobalSecondaryIndex):
    """Sparse: only bookings whose `open_day` is set, i.e. still `booked`."""

    class Meta:
        index_name = "open-by-day"
        projection = AllProjection()

    open_day = UnicodeAttribute(hash_key=True)
    start = UTCDateTimeAttribute(range_key=True)


class AppointmentsBookedOnDay(GlobalSecondaryIndex):
    """Sparse: bookings by the Shanghai day they were made (`<YYYY-MM-DD>#<shard>`), whatever became of
    them since; a reschedule's new booking is a move, not a booking, and is not in it. Keys only: the
    daily report counts them."""

    class Meta:
        index_name = "booked-day"
        projection = KeysOnlyProjection()

    booked_day = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class Appointment(SiyuModel):
    class Meta:
        table = "appointments"

    appointment_id = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute()
    store_id = UnicodeAttribute()
    store_name = UnicodeAttribute()
    service_id = UnicodeAttribute()
    service_name = UnicodeAttribute()
    start = UTCDateTimeAttribute()
    end = UTCDateTimeAttribute()
    # The Shanghai day of `start`, YYYY-MM-DD, and `<storeId>#<day>` for the store's list.
    day = UnicodeAttribute()
    store_day = UnicodeAttribute()
    # Set to `day` while the booking is open; removed when it is cancelled, checked in, missed or moved.
    open_day = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    note = UnicodeAttribute(null=True)
    # When this booking was made (by booking or by a reschedule): reminders due
    # before that moment are not sent late.
    booked_at = UTCDateTimeAttribute()
    # A reschedule links the old booking and the new one both ways. The new one
    # holds no copy of the note: it is read from the booking it was moved from.
    rescheduled_from = UnicodeAttribute(null=True)
    rescheduled_to = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    booked_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `created_at`, for a new booking
    updated_at = UTCDateTimeAttribute()
    cancelled_at = UTCDateTimeAttribute(null=True)
    checked_in_at = UTCDateTimeAttribute(null=True)
    checked_in_by = UnicodeAttribute(null=True)
    no_show_at = UTCDateTimeAttribute(null=True)
    # Every change adds one.
    version = NumberAttribute(default=0)

    by_member = AppointmentsByMember()
    by_store_day = AppointmentsByStoreDay()
    open_by_day = OpenAppointmentsByDay()
    booked_on_day = AppointmentsBookedOnDay()


class SlotCounter(SiyuModel):
    """Seats taken in one slot of one service at one store."""

    class Meta:
        table = "appointment-slots"

    # `<storeId>#<serviceId>#<YYYY-MM-DD>`: one query answers a day's slots.
    slot_day = UnicodeAttribute(hash_key=True)
    start = UnicodeAttribute(range_key=True)  # HH:MM, Shanghai time
    booked = NumberAttribute(default=0)
    expires_at = TTLAttribute(null=True)


class OverlapGuard(SiyuModel):
    """`<memberId>#<YYYY-MM-DDTHH:MM>`: this member is booked during that 5-minute step."""

    class Meta:
        table = "appointment-guards"

    key = UnicodeAttribute(hash_key=True)
    appointment_id = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class MemberBookingRecord(SiyuModel):
    class Meta:
        table = "appointment-members"

    member_id = UnicodeAttribute(hash_key=True)
    no_shows = NumberAttribute(default=0)
    # No-shows not yet turned into a block; the block takes `no_show_limit` of them.
    strikes = NumberAttribute(default=0)
    blocked_until = UTCDateTimeAttribute(null=True)
