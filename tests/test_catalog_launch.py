"""Launch SKUs: a location's stock spread over shard rows, reserved, settled, counted and routed."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import db, transact
from chalicelib.catalog import service as catalog
from chalicelib.catalog import stock
from chalicelib.catalog.errors import (
    AlreadyReservedError,
    BelowReservedError,
    LaunchLimitError,
    NotHeldError,
    OutOfStockError,
    StockBusyError,
)
from chalicelib.catalog.models import Stock, shard_store
from chalicelib.catalog.shards import forget_shards
from chalicelib.catalog.schemas import SkuPut
from tests import whole_table
from tests.conftest import unique


def new_sku(launch_shards: int | None = None, **extra) -> str:
    sku_id = unique("sku")
    body = {"title": "思语 Phone S3 首发", "price": 599900, "category": "phone", "launchShards": launch_shards, **extra}
    catalog.put_sku(sku_id, SkuPut.model_validate(body))
    return sku_id


def level(store_id: str, sku_id: str) -> tuple[int, int, int]:
    found = catalog.stock_level(store_id, sku_id)
    assert found["available"] == found["onHand"] - found["reserved"]
    return found["onHand"], found["reserved"], found["available"]


def shard_rows(store_id: str, sku_id: str, shards: int) -> list[tuple[int, int, int]]:
    """(on hand, reserved, available) of each shard row, (0, 0, 0) where it does not exist."""
    found = db.batch_get([(Stock, (shard_store(store_id, n), sku_id)) for n in range(shards)])
    return [(int(r.on_hand), int(r.reserved), int(r.available)) if r else (0, 0, 0) for r in found]


def base_row(store_id: str, sku_id: str) -> tuple[int, int, int] | None:
    (row,) = db.batch_get([(Stock, (store_id, sku_id))])
    return (int(row.on_hand), int(row.reserved), int(row.available)) if row else None


def no_breaches(sku_id: str) -> list:
    return [breach for breach in whole_table.stock_breaches() if breach["skuId"] == sku_id]


def reserve(order_id: str, store_id: str, sku_id: str, qty: int, shards: int) -> list[stock.Hold]:
    return transact.write(
        lambda txn: stock.reserve_lines(txn, order_id, store_id, {sku_id: qty}, launch={sku_id: shards}),
        replan=True,
        busy=StockBusyError,
    )


@pytest.fixture(autouse=True)
def fresh_memory():
    forget_shards()
    yield
    forget_shards()


# --- The rush ---------------------------------------------------------------------------------

def test_a_launch_rush_sells_exactly_the_stock_and_spreads_the_writes_over_the_shards(stack):
    sku, store, shards = new_sku(launch_shards=8), unique("store"), 8
    catalog.set_on_hand(store, sku, 200)
    assert shard_rows(store, sku, shards) == [(25, 0, 25)] * shards
    table = Stock.Meta.table_name
    done = threading.Event()
    lowest: list[int] = []

    def watch() -> None:  # stock is never negative, at any moment of the rush
        while not done.is_set():
            lowest.append(min(available for _, _, available in shard_rows(store, sku, shards)))

    def attempt(n: int) -> str:
        try:
            reserve(unique(f"order{n}"), store, sku, 1, shards)
            return "granted"
        except OutOfStockError as refused:
            assert (refused.store_id, refused.sku_id) == (store, sku)
            return "out"
        except StockBusyError:
            return "busy"

    watcher = threading.Thread(target=watch)
    with db.recording() as requests:
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                outcomes = Counter(pool.map(attempt, range(2000)))
        finally:
            done.set()
            watcher.join()
    assert outcomes == {"granted": 200, "out": 1800}
    assert lowest and min(lowest) >= 0
    assert level(store, sku) == (200, 200, 0)
    assert shard_rows(store, sku, shards) == [(25, 25, 0)] * shards
    assert base_row(store, sku) is None
    assert no_breaches(sku) == []
    writes = Counter(
        action["Key"]["store_id"]["S"]
        for request in requests if request.operation == "TransactWriteItems"
        for entry in request.body["TransactItems"]
        for kind, action in entry.items()
        if kind == "Update" and action["TableName"] == table
    )
    assert set(writes) == {shard_store(store, n) for n in range(shards)}
    assert max(writes.values()) <= 2 * sum(writes.values()) / shards, writes


def test_a_launch_line_with_stock_on_its_shard_is_one_round_trip_of_two_items(stack):
    sku, store = new_sku(launch_shards=4), unique("store")
    catalog.set_on_hand(store, sku, 40)
    order = unique("order")
    with db.recording() as requests:
        (hold,) = reserve(order, store, sku, 2, 4)
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    assert len(requests[0].body["TransactItems"]) == 2
    ((shard, qty),) = hold.shards
    assert qty == 2 and hold.line == f"{store}#{sku}"
    assert shard_rows(store, sku, 4)[shard] == (10, 2, 8)
    assert stock.holds_of(order) == [hold]


def test_a_dry_shard_sends_the_line_to_another_and_a_read_says_sold_out(stack):
    sku, store = new_sku(launch_shards=4), unique("store")
    catalog.set_on_hand(store, sku, 1)  # shard 0 holds the one unit, shards 1 to 3 none
    assert shard_rows(store, sku, 4) == [(1, 0, 1), (0, 0, 0), (0, 0, 0), (0, 0, 0)]
    (hold,) = reserve(unique("order"), store, sku, 1, 4)
    assert hold.shards == ((0, 1),)
    forget_shards()
    with db.recording() as requests:
        with pytest.raises(OutOfStockError):
            reserve(unique("order"), store, sku, 1, 4)
    operations = [r.operation for r in requests]
    # At most two landings on empty shards before one consistent read of every row decides.
    assert operations.count("TransactWriteItems") <= 2 and operations[-1] == "BatchGetItem"
    assert level(store, sku) == (1, 1, 0)


def test_the_same_order_reserves_a_launch_line_once(stack):
    sku, store, order = new_sku(launch_shards=8), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 80)
    assert stock.reserve_order(order, store, {sku: 1}, launch={sku: 8}) is True
    for _ in range(5):  # whichever shard the retry picks, the reservation item says it happened
        assert stock.reserve_order(order, store, {sku: 1}, launch={sku: 8}) is False
    with pytest.raises(AlreadyReservedError):
        reserve(order, store, sku, 1, 8)
    assert level(store, sku) == (80, 1, 79)


def test_a_quantity_no_single_shard_holds_is_split_over_the_fullest_shards(stack):
    sku, store, order = new_sku(launch_shards=4), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 4)  # one unit on each shard
    (hold,) = reserve(order, store, sku, 3, 4)
    assert len(hold.shards) == 3 and sum(qty for _, qty in hold.shards) == 3
    assert stock.holds_of(order) == [hold]
    assert level(store, sku) == (4, 3, 1)
    assert no_breaches(sku) == []
    with pytest.raises(OutOfStockError):
        reserve(unique("order"), store, sku, 2, 4)  # one unit left: the sum is short
    assert stock.release_order(order) == 1
    assert level(store, sku) == (4, 0, 4) and shard_rows(store, sku, 4) == [(1, 0, 1)] * 4


def test_a_launch_line_takes_at_most_the_launch_limit(stack):
    sku, store = new_sku(launch_shards=2), unique("store")
    catalog.set_on_hand(store, sku, 100)
    with pytest.raises(LaunchLimitError) as caught:
        reserve(unique("order"), store, sku, stock.MAX_LAUNCH_QTY + 1, 2)
    assert caught.value.status == 409 and caught.value.code == "LAUNCH_LIMIT"
    assert level(store, sku) == (100, 0, 100)
    assert stock.stock_items({sku: 5, "other": 9}, launch={sku: 2}) == 1 + 5 + 2


# --- Settling -------------------------------------------------------------------------------

def test_releasing_a_launch_reservation_gives_its_own_shard_back_once(stack):
    sku, store, order = new_sku(launch_shards=4), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 8)
    (hold,) = reserve(order, store, sku, 1, 4)
    ((shard, _),) = hold.shards
    assert shard_rows(store, sku, 4)[shard] == (2, 1, 1)
    assert stock.release_order(order) == 1
    assert stock.release_order(order) == 0
    assert shard_rows(store, sku, 4) == [(2, 0, 2)] * 4
    for settle in (stock.release_hold, stock.commit_hold):
        with pytest.raises(NotHeldError):
            transact.write(lambda txn: settle(txn, hold))
    assert level(store, sku) == (8, 0, 8) and no_breaches(sku) == []


def test_committing_a_launch_reservation_ships_from_its_own_shard_once(stack):
    sku, store, order = new_sku(launch_shards=4), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 8)
    (hold,) = reserve(order, store, sku, 2, 4)
    ((shard, _),) = hold.shards
    assert stock.commit_order(order) == 1
    assert stock.commit_order(order) == 0
    assert stock.release_order(order) == 0  # shipped stock is not released afterwards
    assert [row for n, row in enumerate(shard_rows(store, sku, 4)) if n != shard] == [(2, 0, 2)] * 3
    assert shard_rows(store, sku, 4)[shard] == (0, 0, 0)
    assert level(store, sku) == (6, 0, 6) and no_breaches(sku) == []


def test_settling_a_launch_line_as_if_it_were_one_row_is_refused(stack):
    sku, store, order = new_sku(launch_shards=4), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 8)
    reserve(order, store, sku, 1, 4)
    with pytest.raises(NotHeldError):
        transact.write(lambda txn: stock.release(txn, store, sku, 1, order))
    assert level(store, sku) == (8, 1, 7)


def test_racing_releases_of_a_launch_reservation_release_once(stack):
    sku, store, order = new_sku(launch_shards=4), unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 8)
    reserve(order, store, sku, 3, 4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        released = list(pool.map(lambda _: stock.release_order(order), range(8)))
    assert sum(released) == 1
    assert level(store, sku) == (8, 0, 8) and no_breaches(sku) == []


# --- Counting ------------------------------------------------------------------------------

def test_a_count_spreads_over_the_shards_and_the_level_sums_them(stack):
    sku, store = new_sku(launch_shards=8), unique("store")
    answer = catalog.set_on_hand(store, sku, 21)
    assert answer == {"storeId": store, "skuId": sku, "onHand": 21, "reserved": 0, "available": 21}
    assert sorted(on_hand for on_hand, _, _ in shard_rows(store, sku, 8)) == [2, 2, 2, 3, 3, 3, 3, 3]
    assert base_row(store, sku) is None
    holds = [reserve(unique("order"), store, sku, 1, 8)[0] for _ in range(3)]
    assert level(store, sku) == (21, 3, 18)
    with pytest.raises(BelowReservedError) as caught:
        catalog.set_on_hand(store, sku, 2)
    assert caught.value.code == "BELOW_RESERVED" and "3 reserved" in caught.value.message
    assert level(store, sku) == (21, 3, 18)
    assert catalog.set_on_hand(store, sku, 3)["available"] == 0
    assert catalog.set_on_hand(store, sku, 11)["available"] == 8
    rows = shard_rows(store, sku, 8)
    assert all(on_hand >= reserved for on_hand, reserved, _ in rows) and sum(r[0] for r in rows) == 11
    assert sorted(available for _, _, available in rows) == [1] * 8
    assert sum(reserved for _, reserved, _ in rows) == 3 == sum(h.qty for h in holds)
    assert no_breaches(sku) == []


def test_a_launch_skus_first_count_never_overwrites_live_stock(stack):
    sku, store = new_sku(launch_shards=4), unique("store")
    assert catalog.stock_first_count(store, sku, 10) is True
    reserve(unique("order"), store, sku, 1, 4)
    assert catalog.stock_first_count(store, sku, 50) is False
    assert level(store, sku) == (10, 1, 9)
    assert sorted(on_hand for on_hand, _, _ in shard_rows(store, sku, 4)) == [2, 2, 3, 3]


def test_stores_with_stock_sums_a_launch_skus_shards(stack):
    sku = new_sku(launch_shards=8)
    a, b = unique("a"), unique("b")
    catalog.set_on_hand(a, sku, 12)  # 1 or 2 on each shard
    catalog.set_on_hand(b, sku, 3)
    assert stock.stores_with_stock({sku: 1}) == sorted([a, b])
    assert stock.stores_with_stock({sku: 4}, launch={sku: 8}) == [a]
    assert stock.stores_with_stock({sku: 3}, launch={sku: 8}) == sorted([a, b])
    assert stock.stores_with_stock({sku: 13}, launch={sku: 8}) == []


# --- Changing launchShards ----------------------------------------------------------------------

def test_changing_launch_shards_re_lays_each_locations_stock_and_keeps_what_is_reserved(stack):
    sku, store = new_sku(), unique("store")
    catalog.set_on_hand(store, sku, 10)
    ordinary = unique("order")
    assert stock.reserve_order(ordinary, store, {sku: 2})
    body = {"title": "思语 Phone S3 首发", "price": 599900, "category": "phone"}

    catalog.put_sku(sku, SkuPut.model_validate({**body, "launchShards": 4}))  # ordinary -> 4 shards
    assert base_row(store, sku) == (2, 2, 0)  # what the open order holds stays where it is
    assert shard_rows(store, sku, 4) == [(2, 0, 2)] * 4
    assert level(store, sku) == (10, 2, 8)
    launched = unique("order")
    reserve(launched, store, sku, 1, 4)
    assert stock.release_order(ordinary) == 1
    assert level(store, sku) == (10, 1, 9) and base_row(store, sku) == (2, 0, 2)

    catalog.put_sku(sku, SkuPut.model_validate({**body, "launchShards": 2}))  # 4 -> 2 shards
    assert base_row(store, sku) == (0, 0, 0)
    rows = shard_rows(store, sku, 4)
    assert [available for _, _, available in rows] == [5, 4, 0, 0]
    assert sum(reserved for _, reserved, _ in rows) == 1
    assert level(store, sku) == (10, 1, 9) and no_breaches(sku) == []

    catalog.put_sku(sku, SkuPut.model_validate(body))  # back to an ordinary SKU
    assert base_row(store, sku)[2] == 9 and level(store, sku) == (10, 1, 9)
    assert stock.reserve_order(unique("order"), store, {sku: 9})
    assert stock.commit_order(launched) == 1
    assert level(store, sku) == (9, 9, 0) and no_breaches(sku) == []


def test_putting_a_launch_sku_again_writes_no_stock(stack):
    sku, store = new_sku(launch_shards=4), unique("store")
    catalog.set_on_hand(store, sku, 8)
    body = {"title": "新标题", "price": 599900, "category": "phone", "launchShards": 4}
    with db.recording() as requests:
        catalog.put_sku(sku, SkuPut.model_validate(body))
    assert "TransactWriteItems" not in [r.operation for r in requests]
    assert shard_rows(store, sku, 4) == [(2, 0, 2)] * 4


# --- An ordinary SKU is as it was ------------------------------------------------------------------

def test_an_ordinary_skus_line_is_still_one_stock_item_next_to_a_launch_line(stack):
    plain, other, launch_sku = new_sku(), new_sku(), new_sku(launch_shards=8)
    store, order = unique("store"), unique("order")
    for sku_id in (plain, other, launch_sku):
        catalog.set_on_hand(store, sku_id, 16)
    with db.recording() as requests:
        transact.write(lambda txn: stock.reserve_lines(txn, unique("order"), store, {plain: 1, other: 2}))
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    items = requests[0].body["TransactItems"]
    stock_keys = [e["Update"]["Key"]["store_id"]["S"] for e in items if "Update" in e]
    assert len(items) == 4 and stock_keys == [store, store]
    with db.recording() as requests:
        reserve_all = {plain: 1, other: 1, launch_sku: 1}
        transact.write(lambda txn: stock.reserve_lines(txn, order, store, reserve_all, launch={launch_sku: 8}),
                       replan=True)
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    items = requests[0].body["TransactItems"]
    assert len(items) == 6
    assert level(store, plain) == (16, 2, 14) and level(store, other) == (16, 3, 13)
    assert level(store, launch_sku) == (16, 1, 15)
    assert stock.release_order(order) == 3
    assert level(store, plain) == (16, 1, 15) and level(store, launch_sku) == (16, 0, 16)


def test_an_ordinary_skus_count_and_level_read_and_write_its_one_row(stack):
    sku, store = new_sku(), unique("store")
    with db.recording() as requests:
        catalog.set_on_hand(store, sku, 5)
        catalog.stock_level(store, sku)
    assert [r.operation for r in requests] == ["GetItem", "UpdateItem", "BatchGetItem"]


def test_the_audit_names_a_broken_shard(stack):
    sku, store = new_sku(launch_shards=2), unique("store")
    row = Stock(shard_store(store, 1), sku, on_hand=5, reserved=0, available=9)
    row.save()
    try:
        breaches = no_breaches(sku)
        assert breaches == [{"storeId": store, "skuId": sku, "shard": 1,
                             "problems": ["available is not onHand - reserved"]}]
    finally:
        row.delete()


# --- Over HTTP ------------------------------------------------------------------------------------

def sku_body(**overrides):
    body = {"title": "思语 Phone S3 首发", "price": 599900, "memberPrice": 579900, "category": "phone"}
    body.update(overrides)
    return body


def test_launch_shards_and_the_points_price_round_trip_over_http(api, admin_token):
    sku_id = unique("sku")
    body = sku_body(launchShards=8, pointsPrice={"points": 20000, "cash": 399900})
    put = api.put(f"/admin/skus/{sku_id}", admin_token, json=body)
    assert put.status_code == 200, put.text
    answer = put.json()
    assert answer["launchShards"] == 8 and answer["pointsPrice"] == {"points": 20000, "cash": 399900}
    assert api.get(f"/skus/{sku_id}").json() == answer
    listed = api.get("/skus", params={"limit": "100"}).json()["items"]
    assert all(set(item) >= {"launchShards", "pointsPrice"} for item in listed)
    cleared = api.put(f"/admin/skus/{sku_id}", admin_token, json=sku_body(pointsPrice={"points": 1, "cash": 0}))
    assert cleared.json()["launchShards"] is None and cleared.json()["pointsPrice"] == {"points": 1, "cash": 0}
    plain = api.put(f"/admin/skus/{sku_id}", admin_token, json=sku_body()).json()
    assert plain["launchShards"] is None and plain["pointsPrice"] is None
    assert api.get(f"/skus/{sku_id}").json() == plain


def test_the_stock_of_a_launch_sku_is_counted_and_read_over_http(api, admin_token):
    sku_id, store = unique("sku"), unique("store")
    assert api.put(f"/admin/skus/{sku_id}", admin_token, json=sku_body(launchShards=4)).status_code == 200
    put = api.put(f"/admin/inventory/{store}/{sku_id}", admin_token, json={"onHand": 9})
    assert put.status_code == 200, put.text
    expected = {"storeId": store, "skuId": sku_id, "onHand": 9, "reserved": 0, "available": 9}
    assert put.json() == expected
    assert api.get(f"/admin/inventory/{store}/{sku_id}", admin_token).json() == expected
    reserve(unique("order"), store, sku_id, 4, 4)
    refused = api.put(f"/admin/inventory/{store}/{sku_id}", admin_token, json={"onHand": 3})
    assert refused.status_code == 409 and refused.json()["code"] == "BELOW_RESERVED"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"launchShards": 0}, "launchShards"),
        ({"launchShards": 33}, "launchShards"),
        ({"launchShards": "8"}, "launchShards"),
        ({"launchShards": 2.5}, "launchShards"),
        ({"pointsPrice": {"points": 0, "cash": 100}}, "pointsPrice.points"),
        ({"pointsPrice": {"points": 100, "cash": -1}}, "pointsPrice.cash"),
        ({"pointsPrice": {"points": 100}}, "pointsPrice.cash"),
        ({"pointsPrice": {"points": 1.5, "cash": 0}}, "pointsPrice.points"),
        ({"pointsPrice": 100}, "pointsPrice"),
    ],
)
def test_a_bad_launch_or_points_price_field_is_named(api, admin_token, change, field):
    response = api.put(f"/admin/skus/{unique('sku')}", admin_token, json=sku_body(**change))
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"
    assert response.json()["message"].startswith(field + ":"), response.json()
