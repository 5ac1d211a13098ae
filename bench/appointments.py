"""Appointments: DynamoDB round trips per booking, cancel and reschedule; a race for one slot."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.roundtrips import live_members, round_trips, table
from local.stack import Stack

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DAY = dt.date(2031, 6, 2)
RACE_CAPACITY = 3
RACERS = RACE_CAPACITY + 8


def _at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def _writes_and_reads(ops: list[str]) -> str:
    writes = sum(op in WRITES for op in ops)
    return f"{writes} write, {len(ops) - writes} read"


def run(stack: Stack) -> str:
    from chalicelib import clock
    from chalicelib.appointments import service as appointments
    from chalicelib.appointments.schemas import BookingRequest
    from chalicelib.auth import MEMBER, STAFF, Principal
    from chalicelib.stores import service as stores
    from chalicelib.stores.schemas import WEEKDAYS, StoreSpec

    store_id = f"bench-{uuid.uuid4().hex[:8]}"
    spec = StoreSpec.model_validate({
        "name": "bench store",
        "address": "上海市静安区南京西路1266号",
        "lat": 31.2268,
        "lng": 121.4550,
        "openHours": {day: [{"open": "10:00", "close": "22:00"}] for day in WEEKDAYS},
        "services": [
            {"serviceId": "film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": RACE_CAPACITY},
            {"serviceId": "repair", "name": "维修服务", "durationMinutes": 60, "capacity": 50},
        ],
    })
    stores.put_store(store_id, spec, updated_by="bench")

    def booking(member_id: str, service_id: str, start: dt.datetime) -> dict:
        return appointments.book(member_id, BookingRequest(store_id=store_id, service_id=service_id, start=start))

    member = f"bench-{uuid.uuid4().hex[:8]}"
    live_members([member, f"{member}-cold", f"{member}-2"])
    live_members(f"{member}-t{index}" for index in range(30))
    live_members(f"{member}-r{index}" for index in range(RACERS))
    staff = Principal(member_id="bench-staff", roles=frozenset({MEMBER, STAFF}), store_id=store_id)
    with clock.frozen_at(_at(8)):
        stores.forget_cached_stores()
        cold_count, cold_ops = round_trips(lambda: booking(f"{member}-cold", "film", _at(21)))
        slots_count, slots_ops = round_trips(lambda: appointments.slots(store_id, "film", DAY))
        made: dict = {}
        book_count, book_ops = round_trips(lambda: made.update(booking(member, "repair", _at(10))))
        move_count, move_ops = round_trips(
            lambda: made.update(appointments.reschedule(member, made["appointmentId"], _at(11)))
        )
        cancel_count, cancel_ops = round_trips(lambda: appointments.cancel(member, made["appointmentId"]))
        other = booking(f"{member}-2", "repair", _at(13))
    with clock.frozen_at(_at(12, 55)):
        checkin_count, checkin_ops = round_trips(lambda: appointments.check_in(staff, other["appointmentId"]))

    with clock.frozen_at(_at(8)):
        timings = []
        for index in range(30):
            began = time.perf_counter()
            booking(f"{member}-t{index}", "repair", _at(14))
            timings.append((time.perf_counter() - began) * 1000)

        def race(index: int) -> str:
            try:
                booking(f"{member}-r{index}", "film", _at(18))
                return "booked"
            except appointments.SlotFullError:
                return "SLOT_FULL"

        results: list[str] = []
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            race_count, race_ops = round_trips(lambda: results.extend(pool.map(race, range(RACERS))))
        race_ms = (time.perf_counter() - began) * 1000

    return "\n".join([
        "## Appointments: DynamoDB round trips",
        "",
        "Service level, counted with the botocore `before-send` hook. The store's hours and capacities come",
        "from the per-container store cache, so a booking reads nothing; its write checks that the store still",
        "has the revision the cached copy came from (a stale copy costs one more write, never a seat).",
        "An appointment id names its slot",
        "(`a-<storeId>.<serviceId>.<YYYYMMDDHHMM>.<minutes>.<random>`), so cancel and reschedule derive the",
        "slot counter and the overlap guards from the id and the owner from the token, and write once with",
        "no read first, conditioned on the booking being the caller's and still booked; a reschedule",
        "writes a new booking (new id) and marks the old one `rescheduled`. Only a refused write reads the",
        "booking, to say why. Check-in is one UpdateItem that answers with the item's new values.",
        "",
        table([
            ("book (store cached)", book_count, "1", book_ops),
            ("book (cold container: store not cached)", cold_count, "2", cold_ops),
            ("cancel", cancel_count, f"1 ({_writes_and_reads(cancel_ops)})", cancel_ops),
            ("reschedule (store cached)", move_count, f"1 ({_writes_and_reads(move_ops)})", move_ops),
            ("store check-in", checkin_count, f"1 ({_writes_and_reads(checkin_ops)})", checkin_ops),
            ("slots of a day (store cached)", slots_count, "1", slots_ops),
        ]),
        "",
        f"Booking latency on DynamoDB Local (60-minute service, 12 overlap guards + counter + booking +"
        f" member check + store revision check in one transaction), 30 bookings: median {statistics.median(timings):.1f} ms,"
        f" max {max(timings):.1f} ms.",
        "",
        f"Race: {RACERS} members book one slot of capacity {RACE_CAPACITY} at once: "
        f"{results.count('booked')} booked, {results.count('SLOT_FULL')} SLOT_FULL, "
        f"{race_count} TransactWriteItems requests in all (retries after TransactionConflict included), "
        f"{race_ms:.0f} ms.",
    ])

