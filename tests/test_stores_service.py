"""The stores service other domains call: get_store, list_stores, the cache, delivery radius."""

from __future__ import annotations

import datetime as dt

import pytest

from chalicelib import db
from chalicelib.errors import NotFoundError
from chalicelib.stores import service as stores
from chalicelib.stores.schemas import StoreSpec
from tests.appointment_helpers import make_store, store_body
from tests.conftest import unique

pytestmark = pytest.mark.usefixtures("stack")


def test_a_store_is_served_from_the_cache_after_the_first_read():
    store_id = make_store()
    stores.list_stores()
    with db.recording() as log:
        store = stores.get_store(store_id)
        listed = stores.list_stores()
    assert log == []
    assert store.store_id == store_id and store_id in {s.store_id for s in listed}
    assert store.service("repair").duration_minutes == 60 and store.service("repair").capacity == 1
    assert store.hours_on(dt.date(2031, 6, 2)) == ((600, 1200),)


def test_a_store_unknown_to_the_cached_list_is_read_directly():
    stores.list_stores()
    store_id = unique("store")
    # Written as another container would: this container's list does not know it.
    stores._record(store_id, StoreSpec.model_validate(store_body()), "tests").save()
    assert stores.get_store(store_id).store_id == store_id
    with pytest.raises(NotFoundError):
        stores.get_store(unique("nowhere"))


def test_a_change_is_seen_at_once_in_the_container_that_made_it():
    store_id = make_store()
    assert stores.get_store(store_id).name == "思语服务中心 测试店"
    stores.put_store(store_id, StoreSpec.model_validate(store_body(name="新名字")))
    assert stores.get_store(store_id).name == "新名字"
    assert next(s for s in stores.list_stores() if s.store_id == store_id).name == "新名字"


def test_a_store_delivers_within_its_radius_only():
    store = stores.get_store(make_store(deliveryRadiusKm=3))
    assert store.delivers_to(31.2286 + 0.02, 121.4530)  # about 2.2 km north
    assert not store.delivers_to(31.2286 + 0.04, 121.4530)  # about 4.4 km north


def test_an_unknown_service_is_not_offered():
    with pytest.raises(stores.ServiceNotOfferedError):
        stores.get_store(make_store()).service("nails")
