"""Request bodies, queries and answers of the appointment routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from chalicelib import clock
from chalicelib.validation import (
    EARLIEST,
    ID_PATTERN,
    LATEST,
    Day,
    Page,
    QueryModel,
    RequestModel,
    ResponseModel,
    Timestamp,
)

__all__ = [
    "EARLIEST",
    "LATEST",
    "BookingRequest",
    "RescheduleRequest",
    "SlotsQuery",
    "StoreDayQuery",
    "MyAppointmentsQuery",
    "DaySlots",
    "Appointment",
    "AppointmentPage",
    "StoreAppointment",
    "StoreAppointmentPage",
]

AppointmentStatus = Literal["booked", "cancelled", "checked_in", "no_show", "rescheduled"]


def _moment(value: object) -> object:
    """An ISO-8601 time (Shanghai when it has no offset), to the minute."""
    if isinstance(value, str):
        try:
            moment = clock.parse_iso(value)
        except ValueError as exc:
            raise ValueError("must be an ISO-8601 time such as 2026-11-23T09:30:00+08:00") from exc
        if moment.second or moment.microsecond:
            raise ValueError("must be a whole minute")
        if not EARLIEST.year <= moment.year <= LATEST.year:
            raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
        return moment
    return value


class BookingRequest(RequestModel):
    store_id: str = Field(pattern=ID_PATTERN)
    service_id: str = Field(pattern=ID_PATTERN)
    start: dt.datetime
    note: str | None = Field(default=None, max_length=200)

    _start = field_validator("start", mode="before")(_moment)


class RescheduleRequest(RequestModel):
    start: dt.datetime

    _start = field_validator("start", mode="before")(_moment)


def _calendar_date(value: object) -> object:
    if isinstance(value, str) and len(value) != 10:
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _plausible(value: dt.date | None) -> dt.date | None:
    if value is not None and not EARLIEST <= value <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


class SlotsQuery(QueryModel):
    service_id: str = Field(alias="serviceId", pattern=ID_PATTERN)
    date: dt.date

    _date = field_validator("date", mode="before")(_calendar_date)
    _date_range = field_validator("date")(_plausible)


class StoreDayQuery(QueryModel):
    date: dt.date | None = None
    store_id: str | None = Field(default=None, alias="storeId", pattern=ID_PATTERN)

    _date = field_validator("date", mode="before")(_calendar_date)
    _date_range = field_validator("date")(_plausible)


class MyAppointmentsQuery(QueryModel):
    status: AppointmentStatus | None = None


# --- Answers -------------------------------------------------------------------------------


class Slot(ResponseModel):
    start: Timestamp
    end: Timestamp
    capacity: int
    remaining: int
    status: Literal["open", "full", "closed"]


class DaySlots(ResponseModel):
    """`GET /stores/{storeId}/slots`: a Shanghai day's slots of one service."""

    store_id: str
    service_id: str
    date: Day
    slots: list[Slot]


class Appointment(ResponseModel):
    """A booking. A moved one links both ways: `rescheduledFrom` on the new, `rescheduledTo` on the old."""

    appointment_id: str
    store_id: str
    store_name: str | None = None
    service_id: str
    service_name: str | None = None
    start: Timestamp
    end: Timestamp
    status: AppointmentStatus
    note: str | None = None
    created_at: Timestamp | None = None
    cancelled_at: Timestamp | None = None
    checked_in_at: Timestamp | None = None
    no_show_at: Timestamp | None = None
    rescheduled_from: str | None = None
    rescheduled_to: str | None = None


class AppointmentPage(Page[Appointment]):
    """`GET /members/me/appointments`: latest start first."""


class StoreAppointment(Appointment):
    """A booking as its store sees it: whose it is."""

    member_id: str


class StoreAppointmentPage(Page[StoreAppointment]):
    """`GET /store/appointments`: one store's bookings of one Shanghai day, by start."""

    store_id: str
    date: Day
