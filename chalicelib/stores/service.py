"""Stores: kept by admins, listed by distance, read by appointments, orders and coupons.

Reads go through a per-container cache with a short life (`CACHE_SECONDS`):
the store list is small (thousands of items at most) and changes rarely, so
`GET /stores` computes haversine distances over the cached list instead of
keeping a geo index, and a booking learns a store's hours and capacities
without a read. A change made in another container is seen here within
`CACHE_SECONDS`; `put_store` forgets this container's copy at once. A store
unknown to the cached list is read directly, so a new store works at once.

The cache may choose, never decide: a write that depends on a cached store
(a booking takes a seat of the capacity the cache says) adds
`require_unchanged(txn, store)`, a check that the store still has the
revision the copy came from. If an admin changed it meanwhile, the refusal
brings the store as it is now, this container keeps that, and the write is
planned again from it: a stale copy costs one more round trip, never a seat.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.stores.models import OpenHoursAttribute, ServiceAttribute, StoreRecord
from chalicelib.stores.schemas import WEEKDAYS, StoreSpec, StoresQuery, minutes_of
from chalicelib.transact import Replan, Transaction
from chalicelib.validation import ID_PATTERN

__all__ = [
    "CACHE_SECONDS",
    "Service",
    "Store",
    "ServiceNotOfferedError",
    "put_store",
    "from_spec",
    "get_store",
    "find_store",
    "require_unchanged",
    "check_store_id",
    "list_stores",
    "nearest",
    "store_view",
    "distance_km",
    "forget_cached_stores",
]

CACHE_SECONDS = 60.0
EARTH_RADIUS_KM = 6371.0088
_STORE_ID = re.compile(ID_PATTERN)


class ServiceNotOfferedError(NotFoundError):
    default_message = "this store does not offer this service"


@dataclass(frozen=True)
class Service:
    service_id: str
    name: str
    duration_minutes: int
    capacity: int


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    address: str
    phone: str | None
    lat: float
    lng: float
    # weekday ("mon".."sun") -> opening intervals in minutes after midnight, sorted
    open_hours: dict[str, tuple[tuple[int, int], ...]]
    services: tuple[Service, ...]
    delivery_radius_km: float
    active: bool
    revision: str | None = None

    def service(self, service_id: str) -> Service:
        for service in self.services:
            if service.service_id == service_id:
                return service
        raise ServiceNotOfferedError()

    def hours_on(self, day: dt.date) -> tuple[tuple[int, int], ...]:
        """The opening intervals of that (Shanghai) calendar day."""
        return self.open_hours.get(WEEKDAYS[day.weekday()], ())

    def distance_km(self, lat: float, lng: float) -> float:
        return distance_km(self.lat, self.lng, lat, lng)

    def delivers_to(self, lat: float, lng: float) -> bool:
        return self.active and self.distance_km(lat, lng) <= self.delivery_radius_km


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine): within metres of the truth at city scale."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


# --- Records and the cache ----------------------------------------------------------

def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _from_record(record: StoreRecord) -> Store:
    hours: dict[str, tuple[tuple[int, int], ...]] = {}
    for day in WEEKDAYS:
        intervals = getattr(record.open_hours, day, None) or []
        parsed = []
        for text in intervals:
            opens, _, closes = text.partition("-")
            parsed.append((minutes_of(opens), minutes_of(closes)))
        if parsed:
            hours[day] = tuple(sorted(parsed))
    return Store(
        store_id=record.store_id,
        name=record.name,
        address=record.address,
        phone=record.phone,
        lat=float(record.lat),
        lng=float(record.lng),
        open_hours=hours,
        services=tuple(
            Service(s.service_id, s.name, int(s.duration_minutes), int(s.capacity)) for s in record.services or []
        ),
        delivery_radius_km=float(record.delivery_radius_km or 0),
        active=bool(record.active),
        revision=record.revision,
    )


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listed_at: float | None = None
        self.stores: dict[str, Store] = {}
        self.single: dict[str, tuple[float, Store]] = {}

    def fresh(self, at: float | None) -> bool:
        return at is not None and time.monotonic() - at < CACHE_SECONDS


_cache = _Cache()


def forget_cached_stores() -> None:
    """Drop this container's copy of the stores (after a change, and in tests)."""
    with _cache.lock:
        _cache.listed_at = None
        _cache.stores = {}
        _cache.single = {}


def list_stores(*, include_inactive: bool = False) -> list[Store]:
    """Every store, from this container's cache (at most `CACHE_SECONDS` old), by id."""
    with _cache.lock:
        if _cache.fresh(_cache.listed_at):
            stores = list(_cache.stores.values())
        else:
            stores = None
    if stores is None:
        loaded = {record.store_id: _from_record(record) for record in StoreRecord.scan()}
        with _cache.lock:
            _cache.stores, _cache.listed_at = loaded, time.monotonic()
        stores = list(loaded.values())
    stores.sort(key=lambda store: store.store_id)
    return [store for store in stores if include_inactive or store.active]


def get_store(store_id: str, *, fresh: bool = False) -> Store:
    """One store (inactive ones too), cached unless `fresh`; NotFoundError if there is none."""
    if not fresh:
        with _cache.lock:
            if _cache.fresh(_cache.listed_at) and store_id in _cache.stores:
                return _cache.stores[store_id]
            single = _cache.single.get(store_id)
            if single is not None and _cache.fresh(single[0]):
                return single[1]
    try:
        store = _from_record(StoreRecord.get(store_id, consistent_read=True))
    except DoesNotExist as exc:
        raise NotFoundError("no such store") from exc
    _remember(store)
    return store


def _remember(store: Store) -> None:
    with _cache.lock:
        _cache.single[store.store_id] = (time.monotonic(), store)
        if store.store_id in _cache.stores:
            _cache.stores[store.store_id] = store


def require_unchanged(txn: Transaction, store: Store) -> None:
    """Add to `txn` a check that the store is still as this copy of it says.

    A refusal replans the write: this container keeps the store the refusal
    brought, so the next plan starts from it without a read.
    """
    same_revision = (
        StoreRecord.revision == store.revision if store.revision else StoreRecord.revision.does_not_exist()
    )
    txn.condition_check(
        StoreRecord,
        store.store_id,
        condition=StoreRecord.store_id.exists() & same_revision,
        label="store",
        explain=lambda current: _changed(store.store_id, current),
    )


def _changed(store_id: str, current: StoreRecord | None) -> Replan:
    if current is not None:
        _remember(_from_record(current))
    else:
        with _cache.lock:
            _cache.single.pop(store_id, None)
            _cache.stores.pop(store_id, None)
    return Replan()


def check_store_id(store_id: str) -> str:
    """A store id as an admin may choose it (`sh-nanjingxilu`), or 400."""
    if not _STORE_ID.match(store_id):
        raise InvalidRequestError("storeId", "must be 1 to 64 letters, digits, '-' or '_'")
    return store_id


def find_store(store_id: str) -> Store:
    """A store by an id a caller sent: anything malformed is simply not found."""
    if not _STORE_ID.match(store_id):
        raise NotFoundError("no such store")
    return get_store(store_id)


# --- Admin ------------------------------------------------------------------------

def _record(store_id: str, spec: StoreSpec, updated_by: str | None) -> StoreRecord:
    hours = OpenHoursAttribute(**{
        day: [f"{interval.open}-{interval.close}" for interval in getattr(spec.open_hours, day)] or None
        for day in WEEKDAYS
    })
    return StoreRecord(
        store_id,
        name=spec.name,
        address=spec.address,
        phone=spec.phone,
        lat=spec.lat,
        lng=spec.lng,
        open_hours=hours,
        services=[
            ServiceAttribute(
                service_id=s.service_id, name=s.name, duration_minutes=s.duration_minutes, capacity=s.capacity
            )
            for s in spec.services
        ],
        delivery_radius_km=spec.delivery_radius_km,
        active=spec.active,
        updated_at=clock.now(),
        updated_by=updated_by,
        revision=secrets.token_hex(8),
    )


def from_spec(store_id: str, spec: StoreSpec) -> Store:
    """The store a spec describes, without writing it (to compare with what is stored)."""
    return _from_record(_record(store_id, spec, None))


def put_store(store_id: str, spec: StoreSpec, updated_by: str | None = None) -> dict[str, Any]:
    """Create or replace a store (a PUT: the same body twice leaves the same store)."""
    record = _record(store_id, spec, updated_by)
    record.save()
    forget_cached_stores()
    return store_view(_from_record(record))


# --- Views ------------------------------------------------------------------------

def store_view(store: Store, distance: float | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "storeId": store.store_id,
        "name": store.name,
        "address": store.address,
        "phone": store.phone,
        "lat": store.lat,
        "lng": store.lng,
        "services": [
            {
                "serviceId": s.service_id,
                "name": s.name,
                "durationMinutes": s.duration_minutes,
                "capacity": s.capacity,
            }
            for s in store.services
        ],
        "openHours": {
            day: [{"open": _hhmm(opens), "close": _hhmm(closes)} for opens, closes in store.open_hours.get(day, ())]
            for day in WEEKDAYS
        },
        "deliveryRadiusKm": store.delivery_radius_km,
        "active": store.active,
        "distanceKm": None if distance is None else round(distance, 2),
    }
    return view


def nearest(query: StoresQuery, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """Active stores by distance from (lat, lng), within radiusKm if given; by id without coordinates."""
    stores = list_stores()
    if query.lat is not None and query.lng is not None:
        lat, lng = query.lat, query.lng
        ranked = sorted(
            ((store.distance_km(lat, lng), store) for store in stores),
            key=lambda pair: (pair[0], pair[1].store_id),
        )
        if query.radius_km is not None:
            ranked = [(distance, store) for distance, store in ranked if distance <= query.radius_km]
    else:
        ranked = [(None, store) for store in stores]
    offset = _offset(cursor)
    page = ranked[offset: offset + limit]
    following = offset + limit if offset + limit < len(ranked) else None
    return {
        "items": [store_view(store, distance) for distance, store in page],
        "nextCursor": {"offset": following} if following is not None else None,
    }


def _offset(cursor: dict[str, Any] | None) -> int:
    value = cursor or {"offset": 0}
    offset = value.get("offset")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    return offset
