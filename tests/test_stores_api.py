"""Stores over HTTP: admins keep them, anyone finds the nearest."""

from __future__ import annotations

import random

import pytest

from chalicelib.stores import service as stores
from tests.appointment_helpers import store_body
from tests.conftest import unique


def remote_spot() -> tuple[float, float]:
    """A point in the open ocean where no other test's store stands."""
    return round(random.uniform(-60, -50), 4), round(random.uniform(-170, -100), 4)


def put_store(api, admin_token, store_id: str, **overrides):
    return api.put(f"/admin/stores/{store_id}", admin_token, json=store_body(**overrides))


def test_an_admin_creates_and_replaces_a_store(api, admin_token):
    store_id = unique("store")
    created = put_store(api, admin_token, store_id, name="思语 南京西路店")
    assert created.status_code == 200, created.text
    assert created.json()["storeId"] == store_id and created.json()["name"] == "思语 南京西路店"
    film = {"serviceId": "film", "name": "屏幕贴膜", "durationMinutes": 20, "capacity": 2}
    assert created.json()["services"][0] == film
    assert created.json()["openHours"]["mon"] == [{"open": "10:00", "close": "20:00"}]
    replaced = put_store(api, admin_token, store_id, name="思语 南京西路旗舰店", deliveryRadiusKm=8)
    fetched = api.get(f"/stores/{store_id}")
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "思语 南京西路旗舰店" and fetched.json()["deliveryRadiusKm"] == 8
    assert replaced.json() == fetched.json()


def test_stores_are_sorted_by_distance_and_cut_by_the_radius(api, admin_token):
    lat, lng = remote_spot()
    near, middle, far = unique("near"), unique("mid"), unique("far")
    put_store(api, admin_token, far, lat=lat + 0.05, lng=lng)  # about 5.6 km north
    put_store(api, admin_token, near, lat=lat + 0.001, lng=lng)  # about 110 m
    put_store(api, admin_token, middle, lat=lat, lng=lng + 0.02)  # about 1.3 km east
    answer = api.get("/stores", params={"lat": lat, "lng": lng, "radiusKm": 10})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [item["storeId"] for item in items] == [near, middle, far]
    assert items[0]["distanceKm"] == pytest.approx(0.11, abs=0.01)
    assert items[2]["distanceKm"] == pytest.approx(5.56, abs=0.05)
    assert {"storeId", "name", "address", "lat", "lng", "distanceKm", "services", "openHours"} <= set(items[0])
    within_two = api.get("/stores", params={"lat": lat, "lng": lng, "radiusKm": 2}).json()["items"]
    assert [item["storeId"] for item in within_two] == [near, middle]


def test_the_list_pages_with_a_cursor(api, admin_token):
    lat, lng = remote_spot()
    ids = [unique("page") for _ in range(3)]
    for index, store_id in enumerate(ids):
        put_store(api, admin_token, store_id, lat=lat + 0.001 * (index + 1), lng=lng)
    first = api.get("/stores", params={"lat": lat, "lng": lng, "radiusKm": 1, "limit": 2}).json()
    second = api.get(
        "/stores", params={"lat": lat, "lng": lng, "radiusKm": 1, "limit": 2, "cursor": first["nextCursor"]}
    ).json()
    assert [item["storeId"] for item in first["items"] + second["items"]] == ids
    assert second["nextCursor"] is None


def test_an_inactive_store_is_not_listed(api, admin_token):
    lat, lng = remote_spot()
    closed = unique("closed")
    put_store(api, admin_token, closed, lat=lat, lng=lng, active=False)
    assert api.get("/stores", params={"lat": lat, "lng": lng, "radiusKm": 1}).json()["items"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lat": "north", "lng": "121.4"}, "lat"),
        ({"lat": "91", "lng": "121.4"}, "lat"),
        ({"lat": "31.2", "lng": "181"}, "lng"),
        ({"lat": "nan", "lng": "121.4"}, "lat"),
        ({"lat": "31.2"}, "lng"),
        ({"radiusKm": "5"}, "radiusKm"),
        ({"lat": "31.2", "lng": "121.4", "radiusKm": "-1"}, "radiusKm"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_coordinates_are_400_naming_the_field(api, params, field):
    answer = api.get("/stores", params=params)
    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST" and field in answer.json()["message"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"lat": "31.2"}, "lat"),
        ({"lat": 100}, "lat"),
        ({"services": [{"serviceId": "x", "name": "x", "durationMinutes": 7, "capacity": 1}]}, "durationMinutes"),
        ({"services": [{"serviceId": "x", "name": "x", "durationMinutes": 20, "capacity": 0}]}, "capacity"),
        ({"openHours": {"mon": [{"open": "20:00", "close": "10:00"}]}}, "openHours"),
        ({"openHours": {"mon": [{"open": "9:00", "close": "10:00"}]}}, "open"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_store_body_is_400_naming_the_field(api, admin_token, overrides, field):
    answer = put_store(api, admin_token, unique("bad"), **overrides)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "INVALID_REQUEST" and field in answer.json()["message"]


def test_only_admins_keep_stores(api, member, admin_token):
    _, token = member
    assert api.put(f"/admin/stores/{unique('s')}", json=store_body()).status_code == 401
    assert api.put(f"/admin/stores/{unique('s')}", token, json=store_body()).status_code == 403
    assert api.put("/admin/stores/bad%20id", admin_token, json=store_body()).status_code == 400


def test_an_unknown_store_is_404(api):
    assert api.get(f"/stores/{unique('nowhere')}").json()["code"] == "NOT_FOUND"
    slots = api.get(f"/stores/{unique('nowhere')}/slots", params={"serviceId": "film", "date": "2031-01-01"})
    assert slots.status_code == 404


def test_the_haversine_distance_between_nanjing_road_west_and_lujiazui():
    assert stores.distance_km(31.2286, 121.4530, 31.2366, 121.5020) == pytest.approx(4.74, abs=0.05)
