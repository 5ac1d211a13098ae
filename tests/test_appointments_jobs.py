"""The reminder and no-show jobs: replays and overlapping runs change nothing twice."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock
from chalicelib.appointments import jobs as appointment_jobs
from chalicelib.appointments import service as appointments
from chalicelib.appointments.schemas import BookingRequest
from chalicelib.config import settings
from chalicelib.messaging import service as messaging
from tests.appointment_helpers import at, login, make_store
from tests.conftest import live_member, unique

# Each test keeps to its own days, so the jobs' counts are that test's alone.
REMINDER_DAY = dt.date(2031, 9, 10)
NO_CREDIT_DAY = dt.date(2031, 9, 14)
OVERLAP_DAY = dt.date(2031, 9, 18)
LATE_BOOKING_DAY = dt.date(2031, 9, 22)
RESCHEDULE_DAY = dt.date(2031, 9, 26)
CRON_DAY = dt.date(2031, 9, 30)
NO_SHOW_DAY = dt.date(2031, 10, 6)
BLOCK_DAY = dt.date(2031, 10, 12)


def book(member_id: str, store_id: str, service_id: str, start: dt.datetime, *, now: dt.datetime) -> str:
    with clock.frozen_at(now):
        answer = appointments.book(member_id, BookingRequest(store_id=store_id, service_id=service_id, start=start))
    return answer["appointmentId"]


def give_credits(member_id: str, count: int) -> None:
    messaging.accept(member_id, [settings().template_appointment_reminder] * count)


def messages_to(stack, openid: str) -> list[dict]:
    with stack.sandbox.wechat.lock:
        return [m for m in stack.sandbox.wechat.messages if m["touser"] == openid]


def reminders_at(moment: dt.datetime) -> dict[str, int]:
    with clock.frozen_at(moment):
        return appointment_jobs.send_reminders(moment)


def test_a_booking_is_reminded_24_and_2_hours_before_once_each(api, stack):
    openid, _, member_id = login(api)
    give_credits(member_id, 3)
    store_id = make_store()
    start = at(REMINDER_DAY, "15:00")
    appointment_id = book(member_id, store_id, "repair", start, now=start - dt.timedelta(days=3))

    assert reminders_at(start - dt.timedelta(hours=25))["sent"] == 0
    first = reminders_at(start - dt.timedelta(hours=24))
    replay = reminders_at(start - dt.timedelta(hours=24))
    later = reminders_at(start - dt.timedelta(hours=23, minutes=45))
    second = reminders_at(start - dt.timedelta(hours=2))
    again = reminders_at(start - dt.timedelta(hours=1, minutes=45))

    assert (first["sent"], replay["sent"], later["sent"], second["sent"], again["sent"]) == (1, 0, 0, 1, 0)
    assert replay["alreadySent"] == 1 and again["alreadySent"] == 1
    sent = messages_to(stack, openid)
    assert len(sent) == 2
    assert sent[0]["template_id"] == settings().template_appointment_reminder
    assert sent[0]["data"]["time2"]["value"] == "2031-09-10 15:00"
    assert sent[0]["page"].endswith(appointment_id)
    assert messaging.credits(member_id)["credits"][settings().template_appointment_reminder] == 1


def test_no_reminder_without_a_credit_and_one_once_a_credit_is_given(api, stack):
    openid, _, member_id = login(api)
    store_id = make_store()
    start = at(NO_CREDIT_DAY, "11:00")
    book(member_id, store_id, "film", start, now=start - dt.timedelta(days=3))

    without = reminders_at(start - dt.timedelta(hours=24))
    assert without["noCredit"] == 1 and without["sent"] == 0 and messages_to(stack, openid) == []
    give_credits(member_id, 1)
    with_credit = reminders_at(start - dt.timedelta(hours=23, minutes=45))
    assert with_credit["sent"] == 1 and len(messages_to(stack, openid)) == 1


def test_overlapping_runs_send_each_reminder_once(api, stack):
    members = [login(api) for _ in range(3)]
    store_id = make_store()
    start = at(OVERLAP_DAY, "10:00")
    for _, _, member_id in members:
        give_credits(member_id, 2)
        book(member_id, store_id, "check", start, now=start - dt.timedelta(days=3))
    moment = start - dt.timedelta(hours=2)

    with clock.frozen_at(moment), ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: appointment_jobs.send_reminders(moment), range(4)))

    assert sum(run["sent"] for run in runs) == 3
    assert sum(run["alreadySent"] for run in runs) == 9
    for openid, _, _ in members:
        assert len(messages_to(stack, openid)) == 1


def test_a_booking_made_inside_the_24_hour_window_gets_only_the_2_hour_reminder(api, stack):
    openid, _, member_id = login(api)
    give_credits(member_id, 2)
    store_id = make_store()
    start = at(LATE_BOOKING_DAY, "18:00")
    book(member_id, store_id, "film", start, now=start - dt.timedelta(hours=20))

    assert reminders_at(start - dt.timedelta(hours=19))["sent"] == 0
    assert reminders_at(start - dt.timedelta(hours=2))["sent"] == 1
    assert len(messages_to(stack, openid)) == 1


def test_cancelled_bookings_get_no_reminder_and_a_moved_one_is_reminded_of_its_new_time(api, stack):
    openid, _, member_id = login(api)
    give_credits(member_id, 5)
    store_id = make_store()
    start = at(RESCHEDULE_DAY, "12:00")
    cancelled = book(member_id, store_id, "film", start - dt.timedelta(hours=2), now=start - dt.timedelta(days=3))
    moved = book(member_id, store_id, "film", start, now=start - dt.timedelta(days=3))
    with clock.frozen_at(start - dt.timedelta(days=2)):
        appointments.cancel(member_id, cancelled)

    assert reminders_at(start - dt.timedelta(hours=24))["sent"] == 1
    with clock.frozen_at(start - dt.timedelta(hours=23)):
        new_id = appointments.reschedule(member_id, moved, start + dt.timedelta(days=1))["appointmentId"]
    assert reminders_at(start + dt.timedelta(hours=1))["sent"] == 1  # 24 h before the new start
    sent = messages_to(stack, openid)
    assert [m["data"]["time2"]["value"] for m in sent] == ["2031-09-26 12:00", "2031-09-27 12:00"]
    assert sent[0]["page"].endswith(moved) and sent[1]["page"].endswith(new_id)
    assert reminders_at(start + dt.timedelta(days=1, hours=-2))["sent"] == 1  # the 2 h one, of the new booking only


def test_the_sandbox_runs_the_reminder_job_as_of_the_moment_it_is_given(api, stack):
    openid, token, member_id = login(api)
    accepted = {"templateIds": [settings().template_appointment_reminder]}
    answer = api.post("/members/me/subscriptions", token, json=accepted)
    assert answer.status_code == 200, answer.text
    store_id = make_store()
    start = at(CRON_DAY, "16:00")
    book(member_id, store_id, "film", start, now=start - dt.timedelta(days=3))
    import requests

    moment = (start - dt.timedelta(hours=2)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ran = requests.post(f"{stack.sandbox_url}/sandbox/cron/appointment-reminders", json={"now": moment}, timeout=30)
    assert ran.status_code == 200, ran.text
    assert ran.json()["result"]["sent"] == 1
    messages = requests.get(f"{stack.sandbox_url}/sandbox/wechat/messages", params={"openid": openid}, timeout=30)
    assert len(messages.json()["items"]) == 1


def no_shows_at(moment: dt.datetime) -> dict[str, int]:
    with clock.frozen_at(moment):
        return appointment_jobs.mark_no_shows(moment)


def test_a_booking_not_checked_in_by_its_end_becomes_a_no_show_once(api):
    from chalicelib.auth import MEMBER, STAFF, Principal

    store_id = make_store()
    absent, present = live_member(), live_member()
    start = at(NO_SHOW_DAY, "10:00")
    missed = book(absent, store_id, "film", start, now=start - dt.timedelta(days=1))
    kept = book(present, store_id, "film", start, now=start - dt.timedelta(days=1))
    with clock.frozen_at(start + dt.timedelta(minutes=5)):
        appointments.check_in(Principal(unique("s"), frozenset({MEMBER, STAFF}), store_id=store_id), kept)

    assert no_shows_at(start + dt.timedelta(minutes=15))["noShows"] == 0  # not over yet
    assert no_shows_at(start + dt.timedelta(minutes=20))["noShows"] == 1
    assert no_shows_at(start + dt.timedelta(minutes=35))["noShows"] == 0
    with clock.frozen_at(start + dt.timedelta(hours=1)):
        assert appointments.member_appointment(absent, missed)["status"] == "no_show"
        assert appointments.member_appointment(present, kept)["status"] == "checked_in"


def test_enough_no_shows_pause_booking_for_a_while():
    store_id = make_store()
    member_id = live_member()
    made_at = at(BLOCK_DAY, "08:00")
    for hhmm in ("10:00", "12:00", "14:00"):
        book(member_id, store_id, "film", at(BLOCK_DAY, hhmm), now=made_at)

    result = no_shows_at(at(BLOCK_DAY, "21:00"))
    assert (result["noShows"], result["blocked"]) == (3, 1)
    two_days_on = at(BLOCK_DAY + dt.timedelta(days=2), "10:00")
    with pytest.raises(appointments.BookingBlockedError):
        book(member_id, store_id, "film", two_days_on, now=at(BLOCK_DAY, "21:00"))
    after_block = BLOCK_DAY + dt.timedelta(days=31)
    book(member_id, store_id, "film", at(after_block, "10:00"), now=at(after_block, "08:00"))
