"""The store record: place, hours, the services it offers, how far it delivers."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from chalicelib.db import SiyuModel

__all__ = ["StoreRecord", "ServiceAttribute", "OpenHoursAttribute"]


class ServiceAttribute(MapAttribute):
    service_id = UnicodeAttribute()
    name = UnicodeAttribute()
    duration_minutes = NumberAttribute()
    # Seats per slot: how many technicians can do this service at once.
    capacity = NumberAttribute()


class OpenHoursAttribute(MapAttribute):
    """Per weekday, the opening intervals as `HH:MM-HH:MM` (a missing day is closed)."""

    mon = ListAttribute(of=UnicodeAttribute, null=True)
    tue = ListAttribute(of=UnicodeAttribute, null=True)
    wed = ListAttribute(of=UnicodeAttribute, null=True)
    thu = ListAttribute(of=UnicodeAttribute, null=True)
    fri = ListAttribute(of=UnicodeAttribute, null=True)
    sat = ListAttribute(of=UnicodeAttribute, null=True)
    sun = ListAttribute(of=UnicodeAttribute, null=True)


class StoreRecord(SiyuModel):
    class Meta:
        table = "stores"

    store_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    address = UnicodeAttribute()
    phone = UnicodeAttribute(null=True)
    # Coordinates in the datum the mini-program sends (GCJ-02, as wx.getLocation's `gcj02`).
    lat = NumberAttribute()
    lng = NumberAttribute()
    open_hours = OpenHoursAttribute(default=dict)
    services = ListAttribute(of=ServiceAttribute, default=list)
    delivery_radius_km = NumberAttribute(default=0)
    active = BooleanAttribute(default=True)
    updated_at = UTCDateTimeAttribute()
    updated_by = UnicodeAttribute(null=True)
    # New with every write: a write that relied on a cached copy of the store is
    # conditioned on the revision that copy came from.
    revision = UnicodeAttribute(null=True)
