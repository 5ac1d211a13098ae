"""Request bodies, queries and answers of the store routes."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator, model_validator

from chalicelib.validation import ID_PATTERN, Page, QueryModel, RequestModel, ResponseModel

__all__ = [
    "WEEKDAYS",
    "GRID_MINUTES",
    "MAX_SERVICE_MINUTES",
    "Interval",
    "OpenHours",
    "ServiceSpec",
    "StoreSpec",
    "StoresQuery",
    "Store",
    "StorePage",
    "minutes_of",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Every opening time and service duration is a multiple of this, so every slot
# boundary lies on a 5-minute grid (the appointments' overlap guard relies on it).
GRID_MINUTES = 5
# Long enough for any in-store service; keeps a reschedule within one transaction.
MAX_SERVICE_MINUTES = 180
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def minutes_of(text: str) -> int:
    """`HH:MM` as minutes after midnight (`24:00` is 1440)."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class Interval(RequestModel):
    open: str
    close: str

    @field_validator("open", "close")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        match = _CLOCK.match(value)
        if not match or minutes_of(value) > 24 * 60:
            raise ValueError("must be a time HH:MM")
        if minutes_of(value) % GRID_MINUTES:
            raise ValueError(f"must be on a {GRID_MINUTES}-minute boundary")
        return value

    @model_validator(mode="after")
    def _open_before_close(self) -> Interval:
        if minutes_of(self.open) >= minutes_of(self.close):
            raise ValueError("open must be before close")
        return self


class OpenHours(RequestModel):
    mon: list[Interval] = Field(default_factory=list, max_length=4)
    tue: list[Interval] = Field(default_factory=list, max_length=4)
    wed: list[Interval] = Field(default_factory=list, max_length=4)
    thu: list[Interval] = Field(default_factory=list, max_length=4)
    fri: list[Interval] = Field(default_factory=list, max_length=4)
    sat: list[Interval] = Field(default_factory=list, max_length=4)
    sun: list[Interval] = Field(default_factory=list, max_length=4)

    @model_validator(mode="after")
    def _intervals_do_not_overlap(self) -> OpenHours:
        for day in WEEKDAYS:
            intervals = sorted(getattr(self, day), key=lambda interval: minutes_of(interval.open))
            for before, after in zip(intervals, intervals[1:]):
                if minutes_of(after.open) < minutes_of(before.close):
                    raise ValueError(f"{day}: opening intervals overlap")
            setattr(self, day, intervals)
        return self


class ServiceSpec(RequestModel):
    service_id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=20)
    duration_minutes: int = Field(ge=GRID_MINUTES, le=MAX_SERVICE_MINUTES, multiple_of=GRID_MINUTES)
    capacity: int = Field(ge=1, le=50)


class StoreSpec(RequestModel):
    """`PUT /admin/stores/{storeId}`: the whole store (a PUT replaces what was there)."""

    name: str = Field(min_length=1, max_length=40)
    address: str = Field(min_length=1, max_length=120)
    phone: str | None = Field(default=None, max_length=20)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)
    open_hours: OpenHours = Field(default_factory=OpenHours)
    services: list[ServiceSpec] = Field(default_factory=list, max_length=30)
    delivery_radius_km: float = Field(default=0, ge=0, le=100, allow_inf_nan=False)
    active: bool = True

    @field_validator("services")
    @classmethod
    def _unique_service_ids(cls, services: list[ServiceSpec]) -> list[ServiceSpec]:
        seen: set[str] = set()
        for service in services:
            if service.service_id in seen:
                raise ValueError(f"serviceId {service.service_id} appears twice")
            seen.add(service.service_id)
        return services


class StoresQuery(QueryModel):
    """`GET /stores?lat=&lng=&radiusKm=`: coordinates are optional, but only together."""

    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lng: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, validate_default=True)
    radius_km: float | None = Field(
        default=None, alias="radiusKm", gt=0, le=20000, allow_inf_nan=False, validate_default=True
    )

    @field_validator("lng")
    @classmethod
    def _with_lat(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "lat" in info.data and (info.data["lat"] is None) != (value is None):
            raise ValueError("lat and lng go together")
        return value

    @field_validator("radius_km")
    @classmethod
    def _needs_coordinates(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("lat") is None:
            raise ValueError("radiusKm needs lat and lng")
        return value


# --- Answers -------------------------------------------------------------------------------


class StoreService(ResponseModel):
    service_id: str
    name: str
    duration_minutes: int
    capacity: int


class OpeningTime(ResponseModel):
    open: str = Field(pattern=r"^\d\d:\d\d$")
    close: str = Field(pattern=r"^\d\d:\d\d$")


class WeekHours(ResponseModel):
    mon: list[OpeningTime]
    tue: list[OpeningTime]
    wed: list[OpeningTime]
    thu: list[OpeningTime]
    fri: list[OpeningTime]
    sat: list[OpeningTime]
    sun: list[OpeningTime]


class Store(ResponseModel):
    store_id: str
    name: str
    address: str
    phone: str | None
    lat: float
    lng: float
    services: list[StoreService]
    open_hours: WeekHours
    delivery_radius_km: float
    active: bool
    distance_km: float | None = Field(description="from the lat and lng asked for; null without them")


class StorePage(Page[Store]):
    """`GET /stores`: nearest first with coordinates, by storeId without."""
