"""The demo brand's SKUs and stock."""

from __future__ import annotations

from chalicelib.catalog import service as catalog
from chalicelib.catalog import stock
from local import seed
from tests.conftest import unique


def snapshot() -> dict:
    skus = {sku_id: catalog.get_sku(sku_id) for sku_id, *_ in seed.DEMO_SKUS}
    levels = {
        (store_id, sku_id): catalog.stock_level(store_id, sku_id)
        for store_id, counts in seed.DEMO_STOCK.items()
        for sku_id in counts
    }
    return {"skus": skus, "levels": levels}


def test_the_demo_catalog_is_stocked_at_three_stores_and_the_warehouse(stack):
    seed.seed_catalog()
    assert len(seed.DEMO_SKUS) >= 8
    assert set(seed.DEMO_STOCK) == {"sh-nanjingxilu", "sh-lujiazui", "sh-xujiahui", "warehouse"}
    for sku_id, title, price, member_price, _, _ in seed.DEMO_SKUS:
        assert isinstance(price, int) and isinstance(member_price, int) and member_price <= price
    phone = catalog.get_sku("phone-s3-256-black")
    assert phone["price"] == 399900 and "手机" in phone["title"]
    assert "warehouse" in stock.stores_with_stock({"phone-s3-256-black": 1, "earbuds-air2-white": 1})


def test_seeding_twice_changes_nothing(stack):
    seed.seed_catalog()
    before = snapshot()
    seed.seed_catalog()
    assert snapshot() == before


def test_reseeding_keeps_live_stock(stack):
    seed.seed_catalog()
    order = unique("seedcheck")
    stock.reserve_order(order, "sh-xujiahui", {"cable-c2c-1m": 1})
    try:
        before = catalog.stock_level("sh-xujiahui", "cable-c2c-1m")
        seed.seed_catalog()
        assert catalog.stock_level("sh-xujiahui", "cable-c2c-1m") == before
    finally:
        stock.release_order(order)
