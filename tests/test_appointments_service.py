"""Booking, cancelling, rescheduling and checking in, at the service level on DynamoDB Local."""

from __future__ import annotations

import datetime as dt

import pytest

from chalicelib import clock, db
from chalicelib.appointments import service as appointments
from chalicelib.appointments.schemas import BookingRequest
from chalicelib.auth import ADMIN, MEMBER, STAFF, Principal
from chalicelib.errors import ForbiddenError, NotFoundError
from chalicelib.stores import service as stores
from chalicelib.stores.schemas import StoreSpec
from tests.appointment_helpers import MONDAY, at, make_store, store_body
from tests.conftest import live_member, unique
from tests.test_transact import contention  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("stack")

MORNING = at(MONDAY, "08:00")


def booking(store_id: str, service_id: str, start: dt.datetime, note: str | None = None) -> BookingRequest:
    return BookingRequest(store_id=store_id, service_id=service_id, start=start, note=note)


def remaining(store_id: str, service_id: str, start: dt.datetime) -> int:
    answer = appointments.slots(store_id, service_id, start.date())
    return next(slot["remaining"] for slot in answer["slots"] if slot["start"] == clock.iso(start))


def staff_of(store_id: str) -> Principal:
    return Principal(member_id=unique("staff"), roles=frozenset({MEMBER, STAFF}), store_id=store_id)


def test_slots_are_the_days_hours_cut_by_the_service_duration():
    store_id = make_store()
    with clock.frozen_at(MORNING):
        film = appointments.slots(store_id, "film", MONDAY)["slots"]
        repair = appointments.slots(store_id, "repair", MONDAY)["slots"]
    assert len(film) == 30 and len(repair) == 10
    assert film[0] == {
        "start": "2031-06-02T10:00:00+08:00",
        "end": "2031-06-02T10:20:00+08:00",
        "capacity": 2,
        "remaining": 2,
        "status": "open",
    }
    assert repair[-1]["start"] == "2031-06-02T19:00:00+08:00" and repair[-1]["end"] == "2031-06-02T20:00:00+08:00"


def test_past_slots_and_slots_inside_the_lead_time_are_closed():
    store_id = make_store()
    with clock.frozen_at(at(MONDAY, "11:45")):
        film = {slot["start"][11:16]: slot for slot in appointments.slots(store_id, "film", MONDAY)["slots"]}
        with pytest.raises(appointments.SlotClosedError):
            appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "12:00")))
    assert film["11:40"]["status"] == "closed" and film["11:40"]["remaining"] == 0
    assert film["12:00"]["status"] == "closed"  # within the 30-minute lead time
    assert film["12:20"]["status"] == "open" and film["12:20"]["remaining"] == 2


def test_a_closed_day_has_no_slots_and_a_start_off_the_grid_is_closed():
    store_id = make_store(openHours={"tue": [{"open": "10:00", "close": "18:00"}]})
    with clock.frozen_at(MORNING):
        assert appointments.slots(store_id, "film", MONDAY)["slots"] == []
        with pytest.raises(appointments.SlotClosedError):
            appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "10:00")))
        tuesday = MONDAY + dt.timedelta(days=1)
        with pytest.raises(appointments.SlotClosedError):
            appointments.book(live_member(), booking(store_id, "film", at(tuesday, "10:05")))


def test_a_booking_takes_a_seat_and_answers_the_booking():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        answer = appointments.book(member_id, booking(store_id, "film", at(MONDAY, "10:00"), note="iPhone"))
        left = remaining(store_id, "film", at(MONDAY, "10:00"))
    assert answer["status"] == "booked" and answer["storeId"] == store_id and answer["serviceId"] == "film"
    assert answer["start"] == "2031-06-02T10:00:00+08:00" and answer["end"] == "2031-06-02T10:20:00+08:00"
    assert answer["appointmentId"].startswith("a") and answer["note"] == "iPhone"
    assert left == 1


def test_a_full_slot_refuses_the_next_member():
    store_id = make_store()
    with clock.frozen_at(MORNING):
        appointments.book(live_member(), booking(store_id, "repair", at(MONDAY, "14:00")))
        with pytest.raises(appointments.SlotFullError):
            appointments.book(live_member(), booking(store_id, "repair", at(MONDAY, "14:00")))


def test_a_member_cannot_hold_overlapping_bookings_even_across_services_and_stores():
    store_id, other_store = make_store(), make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "10:00")))
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "10:40")))
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(other_store, "check", at(MONDAY, "10:30")))
        # Back to back is fine.
        appointments.book(member_id, booking(store_id, "film", at(MONDAY, "11:00")))
        assert remaining(store_id, "film", at(MONDAY, "10:40")) == 2


def test_a_booking_is_one_round_trip():
    store_id, member_id = make_store(), live_member()
    with clock.frozen_at(MORNING):
        appointments.slots(store_id, "film", MONDAY)  # the store is now in this container's cache
        with db.recording() as log:
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "15:00")))
    assert [request.operation for request in log] == ["TransactWriteItems"]


def test_cancelling_frees_the_seat_and_the_members_time():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        first = appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "16:00")))
        cancelled = appointments.cancel(member_id, first["appointmentId"])
        again = appointments.cancel(member_id, first["appointmentId"])
        assert remaining(store_id, "repair", at(MONDAY, "16:00")) == 1
        appointments.book(member_id, booking(store_id, "film", at(MONDAY, "16:20")))
    assert cancelled["status"] == "cancelled" and "cancelledAt" in cancelled
    assert again["status"] == "cancelled"


def test_cancelling_within_the_cut_off_is_too_late():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "film", at(MONDAY, "11:00")))
    with clock.frozen_at(at(MONDAY, "09:30")):
        with pytest.raises(appointments.TooLateError):
            appointments.cancel(member_id, made["appointmentId"])
        with pytest.raises(appointments.TooLateError):
            appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "15:00"))


def test_another_members_booking_is_not_found():
    store_id = make_store()
    with clock.frozen_at(MORNING):
        made = appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "12:00")))
        with pytest.raises(NotFoundError):
            appointments.cancel(live_member(), made["appointmentId"])
        with pytest.raises(NotFoundError):
            appointments.reschedule(live_member(), made["appointmentId"], at(MONDAY, "13:00"))
        with pytest.raises(NotFoundError):
            appointments.cancel(live_member(), "a0000000000000000")


def test_rescheduling_moves_the_seat_in_one_write():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "12:00")))
        moved = appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "13:00"))
        assert moved["start"] == "2031-06-02T13:00:00+08:00" and moved["status"] == "booked"
        assert moved["appointmentId"] != made["appointmentId"] and moved["rescheduledFrom"] == made["appointmentId"]
        assert remaining(store_id, "repair", at(MONDAY, "12:00")) == 1
        assert remaining(store_id, "repair", at(MONDAY, "13:00")) == 0
        # The member's time moved too: 12:00 is free for them, 13:00 is not.
        appointments.book(member_id, booking(store_id, "film", at(MONDAY, "12:00")))
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "13:20")))
        # The old id is finished: cancelling or moving it again changes nothing.
        with pytest.raises(appointments.NotBookedError):
            appointments.cancel(member_id, made["appointmentId"])
        with pytest.raises(appointments.NotBookedError):
            appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "15:00"))
        assert remaining(store_id, "repair", at(MONDAY, "12:00")) == 1
        assert remaining(store_id, "repair", at(MONDAY, "13:00")) == 0
        assert remaining(store_id, "repair", at(MONDAY, "15:00")) == 1
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "13:20")))
        old = appointments.member_appointment(member_id, made["appointmentId"])
        assert old["status"] == "rescheduled" and old["rescheduledTo"] == moved["appointmentId"]
        mine = appointments.member_appointments(member_id, None, 20, None)["items"]
        assert moved["appointmentId"] in [item["appointmentId"] for item in mine]
        assert made["appointmentId"] not in [item["appointmentId"] for item in mine]


def test_cancel_reschedule_and_check_in_are_one_round_trip_each():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "13:00")))
        with db.recording() as moving:
            moved = appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "14:00"))
        with db.recording() as cancelling:
            cancelled = appointments.cancel(member_id, moved["appointmentId"])
        kept = appointments.book(member_id, booking(store_id, "film", at(MONDAY, "16:00")))
    with clock.frozen_at(at(MONDAY, "15:55")):
        with db.recording() as checking_in:
            arrived = appointments.check_in(staff_of(store_id), kept["appointmentId"])
    assert [request.operation for request in moving] == ["TransactWriteItems"]
    assert [request.operation for request in cancelling] == ["TransactWriteItems"]
    assert [request.operation for request in checking_in] == ["UpdateItem"]
    assert cancelled["status"] == "cancelled" and cancelled["appointmentId"] == moved["appointmentId"]
    assert arrived["status"] == "checked_in" and arrived["memberId"] == member_id


def test_the_note_follows_a_booking_through_its_reschedules():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "check", at(MONDAY, "10:00"), note="屏幕碎了"))
        first = appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "11:00"))
        second = appointments.reschedule(member_id, first["appointmentId"], at(MONDAY, "12:00"))
        assert appointments.member_appointment(member_id, second["appointmentId"])["note"] == "屏幕碎了"
        day = appointments.store_appointments(staff_of(store_id), None, MONDAY, 20, None)["items"]
        mine = appointments.member_appointments(member_id, None, 20, None)["items"]
        moved = appointments.member_appointments(member_id, "rescheduled", 20, None)["items"]
    assert [(item["appointmentId"], item["note"]) for item in day] == [(second["appointmentId"], "屏幕碎了")]
    assert [(item["appointmentId"], item["note"]) for item in mine] == [(second["appointmentId"], "屏幕碎了")]
    assert {item["appointmentId"] for item in moved} == {made["appointmentId"], first["appointmentId"]}


def test_an_id_names_its_slot_and_anything_else_is_not_found():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "17:00")))
        assert made["appointmentId"].startswith(f"a-{store_id}.repair.203106021700.60.")
        prefix, suffix = made["appointmentId"].rsplit(".", 1)
        for forged in (
            f"a-{store_id}.repair.203106021700.65.{suffix}",  # well formed, but no such booking
            f"a-{store_id}.repair.203106021703.60.{suffix}",
            f"a-{store_id}.repair.203113021700.60.{suffix}",
            f"a-{store_id}.repair.203106021700.060.{suffix}",
            f"a-{store_id}.repair.203106021700.185.{suffix}",
            f"a-{store_id}.repair.203106021700.60.{suffix.upper()}",
            f"a-{store_id}.re.pair.203106021700.60.{suffix}",
            prefix,
        ):
            with pytest.raises(NotFoundError):
                appointments.cancel(member_id, forged)
            with pytest.raises(NotFoundError):
                appointments.member_appointment(member_id, forged)
        assert remaining(store_id, "repair", at(MONDAY, "17:00")) == 0
        assert appointments.member_appointment(member_id, made["appointmentId"])["status"] == "booked"


def test_rescheduling_into_an_overlapping_slot_keeps_the_shared_steps():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "check", at(MONDAY, "14:00")))
        moved = appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "14:30"))
        assert moved["end"] == "2031-06-02T15:00:00+08:00"
        appointments.book(member_id, booking(store_id, "film", at(MONDAY, "14:00")))
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "14:40")))


def test_rescheduling_into_a_full_slot_changes_nothing():
    store_id = make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "repair", at(MONDAY, "15:00")))
        appointments.book(live_member(), booking(store_id, "repair", at(MONDAY, "17:00")))
        with pytest.raises(appointments.SlotFullError):
            appointments.reschedule(member_id, made["appointmentId"], at(MONDAY, "17:00"))
        mine = appointments.member_appointments(member_id, None, 20, None)["items"]
        assert [(item["start"], item["status"]) for item in mine] == [("2031-06-02T15:00:00+08:00", "booked")]
        assert remaining(store_id, "repair", at(MONDAY, "15:00")) == 0
        assert remaining(store_id, "repair", at(MONDAY, "17:00")) == 0
        with pytest.raises(appointments.AlreadyBookedError):
            appointments.book(member_id, booking(store_id, "film", at(MONDAY, "15:20")))


def test_staff_check_in_their_own_stores_bookings_only():
    store_id, other_store = make_store(), make_store()
    member_id = live_member()
    with clock.frozen_at(MORNING):
        made = appointments.book(member_id, booking(store_id, "film", at(MONDAY, "10:20")))
        with pytest.raises(appointments.TooEarlyError):
            appointments.check_in(staff_of(store_id), made["appointmentId"])
    with clock.frozen_at(at(MONDAY, "10:15")):
        with pytest.raises(ForbiddenError):
            appointments.check_in(staff_of(other_store), made["appointmentId"])
        arrived = appointments.check_in(staff_of(store_id), made["appointmentId"])
        again = appointments.check_in(staff_of(store_id), made["appointmentId"])
        with pytest.raises(appointments.NotBookedError):
            appointments.cancel(member_id, made["appointmentId"])
    assert arrived["status"] == "checked_in" and again["status"] == "checked_in"
    assert arrived["memberId"] == member_id


def test_an_admin_may_check_in_anywhere_but_not_after_the_end():
    store_id = make_store()
    admin = Principal(member_id=unique("admin"), roles=frozenset({MEMBER, ADMIN}))
    with clock.frozen_at(MORNING):
        made = appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "11:20")))
    with clock.frozen_at(at(MONDAY, "11:40")):
        with pytest.raises(appointments.TooLateError):
            appointments.check_in(admin, made["appointmentId"])


def test_the_store_sees_the_days_bookings_by_start():
    store_id = make_store()
    with clock.frozen_at(MORNING):
        late = appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "18:00")))
        early = appointments.book(live_member(), booking(store_id, "repair", at(MONDAY, "10:00")))
        day = appointments.store_appointments(staff_of(store_id), None, MONDAY, 20, None)
        with pytest.raises(ForbiddenError):
            appointments.store_appointments(staff_of(store_id), make_store(), MONDAY, 20, None)
    assert [item["appointmentId"] for item in day["items"]] == [early["appointmentId"], late["appointmentId"]]


def test_a_transaction_conflict_is_retried_until_the_write_goes_through(contention):
    store_id = make_store()
    hook = contention(2)
    with clock.frozen_at(MORNING):
        made = appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "17:00")))
        assert remaining(store_id, "film", at(MONDAY, "17:00")) == 1
    assert made["status"] == "booked" and hook.sent == 3


# --- A container's copy of the store chooses, the write decides ----------------------------

FILM = {"serviceId": "film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": 2}


def change_store_elsewhere(monkeypatch, store_id: str, **changes) -> None:
    """An admin changes the store through another container: this one keeps its cached copy."""
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(stores, "forget_cached_stores", lambda: None)
        stores.put_store(store_id, StoreSpec.model_validate(store_body(**changes)), updated_by="tests")


def booked_at(store_id: str, start: dt.datetime) -> int:
    day = appointments.store_appointments(staff_of(store_id), None, start.date(), 50, None)["items"]
    return sum(1 for item in day if item["start"] == clock.iso(start) and item["status"] == "booked")


def test_a_stale_copy_of_the_store_never_books_past_a_lowered_capacity(monkeypatch):
    store_id = make_store(services=[FILM])
    start = at(MONDAY, "17:00")
    with clock.frozen_at(MORNING):
        appointments.book(live_member(), booking(store_id, "film", start))  # this container now holds the store
        change_store_elsewhere(monkeypatch, store_id, services=[{**FILM, "capacity": 1}])
        with pytest.raises(appointments.SlotFullError):
            appointments.book(live_member(), booking(store_id, "film", start))
        assert booked_at(store_id, start) == 1


def test_a_stale_copy_of_the_store_costs_one_more_round_trip_after_a_raised_capacity(monkeypatch):
    store_id = make_store(services=[{**FILM, "capacity": 1}])
    start = at(MONDAY, "17:00")
    second, third = live_member(), live_member()
    with clock.frozen_at(MORNING):
        appointments.book(live_member(), booking(store_id, "film", start))
        change_store_elsewhere(monkeypatch, store_id, services=[FILM])
        with db.recording() as log:
            appointments.book(second, booking(store_id, "film", start))
        assert [request.operation for request in log] == ["TransactWriteItems", "TransactWriteItems"]
        assert booked_at(store_id, start) == 2
        with db.recording() as log:
            appointments.book(third, booking(store_id, "film", at(MONDAY, "18:00")))
        assert len(log) == 1  # the refusal brought the store as it is now


def test_a_stale_copy_of_the_store_never_books_a_closed_day(monkeypatch):
    store_id = make_store()
    with clock.frozen_at(MORNING):
        appointments.slots(store_id, "film", MONDAY)
        change_store_elsewhere(monkeypatch, store_id, openHours={"tue": [{"open": "10:00", "close": "20:00"}]})
        with pytest.raises(appointments.SlotClosedError):
            appointments.book(live_member(), booking(store_id, "film", at(MONDAY, "17:00")))
        assert booked_at(store_id, at(MONDAY, "17:00")) == 0


def test_a_stale_copy_of_the_store_never_moves_a_booking_past_a_lowered_capacity(monkeypatch):
    store_id = make_store(services=[FILM])
    target = at(MONDAY, "17:00")
    with clock.frozen_at(MORNING):
        appointments.book(live_member(), booking(store_id, "film", target))
        mover = live_member()
        made = appointments.book(mover, booking(store_id, "film", at(MONDAY, "15:00")))
        change_store_elsewhere(monkeypatch, store_id, services=[{**FILM, "capacity": 1}])
        with pytest.raises(appointments.SlotFullError):
            appointments.reschedule(mover, made["appointmentId"], target)
        assert booked_at(store_id, target) == 1
