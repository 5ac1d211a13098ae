"""Reservations against stock, at the service level against DynamoDB Local."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import db, transact
from chalicelib.catalog import service as catalog
from chalicelib.catalog import stock
from chalicelib.catalog.errors import AlreadyReservedError, BelowReservedError, NotHeldError, OutOfStockError
from chalicelib.catalog.schemas import SkuPut
from tests import whole_table
from tests.conftest import live_member, unique


@pytest.fixture
def sku(stack) -> str:
    sku_id = unique("sku")
    catalog.put_sku(sku_id, SkuPut(title="测试充电器", price=9900, member_price=8900, category="charger"))
    return sku_id


def level(store_id: str, sku_id: str) -> tuple[int, int, int]:
    found = catalog.stock_level(store_id, sku_id)
    assert found["available"] == found["onHand"] - found["reserved"]
    return found["onHand"], found["reserved"], found["available"]


def test_a_reservation_moves_stock_from_available_to_reserved(sku):
    store = unique("store")
    catalog.set_on_hand(store, sku, 10)
    assert stock.reserve_order(unique("order"), store, {sku: 3}) is True
    assert level(store, sku) == (10, 3, 7)


def test_a_reservation_is_one_transaction_in_one_round_trip(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 5)
    with db.recording() as requests:
        hold = transact.write(lambda txn: stock.reserve(txn, store, sku, 2, order))
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    assert hold.line == f"{store}#{sku}"
    assert stock.holds_of(order) == [stock.Hold(order, store, sku, 2)]


def test_the_same_order_reserves_only_once(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 5)
    assert stock.reserve_order(order, store, {sku: 2}) is True
    assert stock.reserve_order(order, store, {sku: 2}) is False
    assert level(store, sku) == (5, 2, 3)


def test_a_retried_reservation_inside_a_callers_transaction_is_explained(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 5)
    stock.reserve_order(order, store, {sku: 1})
    with pytest.raises(AlreadyReservedError):
        transact.write(lambda txn: stock.reserve(txn, store, sku, 1, order))
    assert level(store, sku) == (5, 1, 4)


def test_twenty_buyers_of_seven_get_exactly_seven(sku):
    store = unique("store")
    catalog.set_on_hand(store, sku, 7)

    def buy(n: int) -> str:
        try:
            return "reserved" if stock.reserve_order(unique(f"order{n}"), store, {sku: 1}) else "repeat"
        except OutOfStockError:
            return "out"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(buy, range(20)))
    assert outcomes.count("reserved") == 7 and outcomes.count("out") == 13
    assert level(store, sku) == (7, 7, 0)


def test_the_same_order_retried_at_once_by_many_threads_reserves_once(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 10)
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: stock.reserve_order(order, store, {sku: 2}), range(10)))
    assert outcomes.count(True) == 1 and outcomes.count(False) == 9
    assert level(store, sku) == (10, 2, 8)


def test_an_order_is_reserved_whole_or_not_at_all(stack, sku):
    other = unique("sku")
    catalog.put_sku(other, SkuPut(title="测试耳机", price=19900, category="audio"))
    store = unique("store")
    catalog.set_on_hand(store, sku, 5)
    catalog.set_on_hand(store, other, 1)
    with pytest.raises(OutOfStockError) as caught:
        stock.reserve_order(unique("order"), store, {sku: 2, other: 2})
    assert caught.value.sku_id == other and caught.value.code == "OUT_OF_STOCK"
    assert level(store, sku) == (5, 0, 5) and level(store, other) == (1, 0, 1)


def test_a_location_that_never_stocked_the_sku_is_out_of_stock(sku):
    store = unique("store")
    with pytest.raises(OutOfStockError) as caught:
        stock.reserve_order(unique("order"), store, {sku: 1})
    assert caught.value.store_id == store and caught.value.sku_id == sku
    assert level(store, sku) == (0, 0, 0)


def test_releasing_gives_the_stock_back_once(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 4)
    stock.reserve_order(order, store, {sku: 3})
    assert stock.release_order(order) == 1
    assert stock.release_order(order) == 0
    assert level(store, sku) == (4, 0, 4)
    assert stock.holds_of(order) == []


def test_committing_ships_the_reserved_stock_once(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 4)
    stock.reserve_order(order, store, {sku: 3})
    assert stock.commit_order(order) == 1
    assert stock.commit_order(order) == 0
    assert level(store, sku) == (1, 0, 1)
    assert stock.release_order(order) == 0  # shipped stock is not released afterwards


def test_release_and_commit_in_a_callers_transaction_refuse_what_is_not_held(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 4)
    stock.reserve_order(order, store, {sku: 2})
    transact.write(lambda txn: stock.release(txn, store, sku, 2, order))
    for settle in (stock.release, stock.commit):
        with pytest.raises(NotHeldError):
            transact.write(lambda txn: settle(txn, store, sku, 2, order))
    with pytest.raises(NotHeldError):
        transact.write(lambda txn: stock.release(txn, store, sku, 1, unique("order")))
    assert level(store, sku) == (4, 0, 4)


def test_racing_releases_release_once(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 6)
    stock.reserve_order(order, store, {sku: 5})
    with ThreadPoolExecutor(max_workers=8) as pool:
        released = list(pool.map(lambda _: stock.release_order(order), range(8)))
    assert sum(released) == 1
    assert level(store, sku) == (6, 0, 6)


def test_on_hand_cannot_be_set_below_what_is_reserved(sku):
    store = unique("store")
    catalog.set_on_hand(store, sku, 5)
    stock.reserve_order(unique("order"), store, {sku: 3})
    with pytest.raises(BelowReservedError) as caught:
        catalog.set_on_hand(store, sku, 2)
    assert caught.value.status == 409 and caught.value.code == "BELOW_RESERVED"
    assert level(store, sku) == (5, 3, 2)
    assert catalog.set_on_hand(store, sku, 3)["available"] == 0
    assert catalog.set_on_hand(store, sku, 9)["available"] == 6


def test_stores_with_stock_are_those_holding_every_line(sku):
    other = unique("sku")
    catalog.put_sku(other, SkuPut(title="测试保护壳", price=4900, category="case"))
    a, b, c = unique("a"), unique("b"), unique("c")
    catalog.set_on_hand(a, sku, 3)
    catalog.set_on_hand(a, other, 1)
    catalog.set_on_hand(b, sku, 1)
    catalog.set_on_hand(b, other, 5)
    catalog.set_on_hand(c, sku, 9)
    assert stock.stores_with_stock({sku: 1}) == sorted([a, b, c])
    assert stock.stores_with_stock({sku: 2}) == sorted([a, c])
    assert stock.stores_with_stock({sku: 2, other: 1}) == [a]
    assert stock.stores_with_stock({sku: 1, other: 2}) == [b]
    assert stock.stores_with_stock({sku: 10}) == []
    stock.reserve_order(unique("order"), c, {sku: 8})
    assert stock.stores_with_stock({sku: 2}) == [a]


def test_the_stock_audit_finds_every_row_consistent(sku):
    store, order = unique("store"), unique("order")
    catalog.set_on_hand(store, sku, 5)
    stock.reserve_order(order, store, {sku: 2})
    report = whole_table.run("stock-audit")
    assert report["checked"] >= 1
    assert [b for b in report["examples"] if b["skuId"] == sku] == []


def test_a_first_count_never_overwrites_live_stock(sku):
    store = unique("store")
    assert catalog.stock_first_count(store, sku, 5) is True
    stock.reserve_order(unique("order"), store, {sku: 1})
    assert catalog.stock_first_count(store, sku, 50) is False
    assert level(store, sku) == (5, 1, 4)


def test_an_order_puts_its_longest_stock_list_and_its_coupon_lock_in_one_transaction(stack):
    from chalicelib.coupons import checkout, claims, service
    from tests.coupon_helpers import new_campaign

    store, order = unique("store"), unique("order")
    skus = [unique("sku") for _ in range(stock.MAX_LINES)]
    for sku_id in skus:
        catalog.put_sku(sku_id, SkuPut(title="测试配件", price=1900, category="accessory"))
        catalog.set_on_hand(store, sku_id, 1)
    member_id = live_member()
    coupon_id = claims.claim(member_id, new_campaign(threshold=0)["campaignId"])["couponId"]
    too_many = {sku_id: 1 for sku_id in skus[:-1]} | {skus[-1]: 2}

    def build(txn: transact.Transaction, quantities: dict[str, int]) -> None:
        checkout.add_lock(txn, member_id, coupon_id, order)
        stock.reserve_lines(txn, order, store, quantities)

    with pytest.raises(OutOfStockError) as caught:
        transact.write(lambda txn: build(txn, too_many))
    assert caught.value.sku_id == skus[-1]
    assert service.get_coupon(member_id, coupon_id).status == "available"
    with db.recording() as requests:
        transact.write(lambda txn: build(txn, {sku_id: 1 for sku_id in skus}))
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    assert len(stock.holds_of(order)) == stock.MAX_LINES
    assert service.get_coupon(member_id, coupon_id).status == "locked"
    assert stock.MAX_LINES * 2 + 10 <= transact.MAX_ITEMS  # room left for the order and its points freeze
