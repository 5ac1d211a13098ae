"""A launch: 2,000 order attempts from 16 threads for the 200 units of a launch SKU spread over 8 shards."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.catalog.errors import OutOfStockError
from chalicelib.errors import SiyuError
from chalicelib.orders import service as orders
from chalicelib.orders.schemas import OrderRequest
from chalicelib.usecases import me
from tests.conftest import unique
from tests.order_helpers import invariant_breaches, level, new_sku, new_store, pickup, remote_spot, stock

pytestmark = pytest.mark.usefixtures("stack")

ATTEMPTS, UNITS, SHARDS, MEMBERS = 2000, 200, 8, 50


def test_a_launch_grants_exactly_its_units_and_never_oversells():
    store = new_store(*remote_spot())
    sku = new_sku(launchShards=SHARDS)
    stock(store, sku, UNITS)
    members = [me.login(f"dev:{unique('fan')}", None)["member"]["memberId"] for _ in range(MEMBERS)]
    body = OrderRequest.model_validate(pickup(store, (sku, 1)))

    def attempt(number: int) -> str:
        try:
            orders.create(members[number % MEMBERS], body)
        except OutOfStockError:
            return "OUT_OF_STOCK"
        except SiyuError as refused:
            return refused.code
        return "granted"

    with ThreadPoolExecutor(16) as pool:
        outcomes = Counter(pool.map(attempt, range(ATTEMPTS)))

    assert outcomes == {"granted": UNITS, "OUT_OF_STOCK": ATTEMPTS - UNITS}
    assert level(store, sku) == {"storeId": store, "skuId": sku, "onHand": UNITS, "reserved": UNITS, "available": 0}
    assert invariant_breaches(members) == {}
