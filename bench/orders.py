"""Orders: round trips, state transitions, a launch-SKU rush, and what a paid order costs on AWS.

Everything is called in-process through the service functions the routes and
the state machine's tasks call, against DynamoDB Local, moto's Step Functions
(which runs infra/order.asl.json and invokes app.py's task handlers in this
process) and the sandbox's WeChat Pay.

What is counted, and how:

- DynamoDB round trips: chalicelib.db's `before-send` hook (the one
  `db.recording()` uses), each request attributed to the measure of the thread
  that sent it, so an execution's tasks running meanwhile do not count for the
  API call and the other way round;
- Step Functions requests: a `before-send.states` hook on
  `chalicelib.aws.stepfunctions()`'s client;
- WeChat Pay requests: a counting wrapper around `chalicelib.wechat.pay._send`
  (every HTTP request to WeChat Pay goes through it, retries included);
- request units: every DynamoDB call's parameters and answer, with each
  written item read before and after the write by a client of the bench's own
  (not recorded, its time taken off the measured durations), so a write is
  billed on the larger of its two images and the index entries it changes are
  counted too;
- Lambda durations: the time of each service call (an API invocation) and of
  each task handler moto invoked, minus that bookkeeping.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as dt
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

import bench
from bench import plots
from local.stack import Stack

# --- AWS list prices, us-east-1 ---------------------------------------------------------------
# Step Functions Standard workflows: $0.025 per 1,000 state transitions
#   (https://aws.amazon.com/step-functions/pricing/).
SFN_PER_TRANSITION = 0.025 / 1_000
# Lambda (x86, first pricing tier): $0.20 per 1M requests and $0.0000166667 per GB-second,
#   duration billed per 1 ms (https://aws.amazon.com/lambda/pricing/).
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667
LAMBDA_MEMORY_GB = 512 / 1024  # the functions' MemorySize (infra/, local/aws.py)
# DynamoDB on-demand: $1.25 per million write request units, $0.25 per million read request units
#   (https://aws.amazon.com/dynamodb/pricing/on-demand/, the prices before the cut of November 2024;
#   the page has listed $0.625 and $0.125 since: the report shows both).
DDB_PER_WRU = 1.25 / 1_000_000
DDB_PER_RRU = 0.25 / 1_000_000
DDB_PER_WRU_SINCE_2024_11 = 0.625 / 1_000_000
DDB_PER_RRU_SINCE_2024_11 = 0.125 / 1_000_000
# API Gateway REST APIs: $3.50 per million requests (first 333 million a month)
#   (https://aws.amazon.com/api-gateway/pricing/).
APIGW_PER_REQUEST = 3.50 / 1_000_000

COST_GOAL_PER_1000 = 0.30
TRANSITIONS_PER_SECOND = 800
ORDERS_PER_SECOND_GOAL = 100

RUSH_ATTEMPTS = 2_000
RUSH_WORKERS = 16
RUSH_MEMBERS = 100
RUSH_STOCK = 200
RUSH_SHARDS = 8
BUSIEST_GOAL = 2 / RUSH_SHARDS

WRITE_KB = 1024
READ_KB = 4 * 1024

_tls = threading.local()


# --- What one invocation did ----------------------------------------------------------------------

@dataclass
class Call:
    """One DynamoDB API call and the request units it is billed."""

    operation: str
    table_wru: float = 0.0
    index_wru: float = 0.0
    rru: float = 0.0


@dataclass
class Measure:
    """What one API invocation or one task invocation did."""

    name: str
    order_id: str | None = None
    snapshots: bool = True
    seconds: float = 0.0
    overhead: float = 0.0
    round_trips: list[Any] = field(default_factory=list)  # chalicelib.db.Request
    calls: list[Call] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    wxpay: list[str] = field(default_factory=list)

    @property
    def dynamodb_ops(self) -> list[str]:
        return [request.operation for request in self.round_trips]

    @property
    def billed_ms(self) -> int:
        return max(1, math.ceil(self.seconds * 1000))

    @property
    def wru(self) -> float:
        return sum(call.table_wru + call.index_wru for call in self.calls)

    @property
    def rru(self) -> float:
        return sum(call.rru for call in self.calls)


def _current() -> Measure | None:
    return getattr(_tls, "measure", None)


@contextlib.contextmanager
def _measuring(name: str, snapshots: bool = True) -> Iterator[Measure]:
    measure = Measure(name, snapshots=snapshots)
    previous, _tls.measure = _current(), measure
    started = time.perf_counter()
    try:
        yield measure
    finally:
        measure.seconds = time.perf_counter() - started - measure.overhead
        _tls.measure = previous


class _ByThread(list):  # type: ignore[type-arg]
    """Fed by chalicelib.db's before-send hook, like `db.recording()`'s log: each round trip goes to
    the measure of the thread that sent it (nothing is kept for threads without one)."""

    def append(self, request: Any) -> None:
        measure = _current()
        if measure is not None:
            measure.round_trips.append(request)


# --- Item sizes and request units --------------------------------------------------------------

def _size(item: dict[str, Any] | None) -> int:
    """The rough size of an item: the bytes of its attribute map as JSON."""
    if not item:
        return 0
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, sort_keys=True,
                      default=lambda v: base64.b64encode(v).decode() if isinstance(v, bytes) else sorted(v))
    return len(text.encode())


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


@dataclass(frozen=True)
class _Index:
    keys: tuple[str, ...]
    projection: str
    included: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    keys: tuple[str, ...]
    indexes: tuple[_Index, ...]

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.keys if name in item}

    def entry(self, index: _Index, item: dict[str, Any]) -> dict[str, Any]:
        """What the index keeps of the item."""
        if index.projection == "ALL":
            return item
        names = set(self.keys) | set(index.keys) | set(index.included)
        return {name: value for name, value in item.items() if name in names}

    def index_wru(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        """Index writes a change from `before` to `after` costs (DynamoDB bills them as standard writes)."""
        units = 0
        for index in self.indexes:
            had = before is not None and all(name in before for name in index.keys)
            has = after is not None and all(name in after for name in index.keys)
            if had and has:
                assert before is not None and after is not None
                old, new = self.entry(index, before), self.entry(index, after)
                if any(before[name] != after[name] for name in index.keys):
                    units += _units(_size(old), WRITE_KB) + _units(_size(new), WRITE_KB)  # delete + put
                elif old != new:
                    units += _units(max(_size(old), _size(new)), WRITE_KB)
            elif had:
                assert before is not None
                units += _units(_size(self.entry(index, before)), WRITE_KB)
            elif has:
                assert after is not None
                units += _units(_size(self.entry(index, after)), WRITE_KB)
        return units


class _Schemas:
    """Every table's key and indexes, as DynamoDB Local describes them."""

    def __init__(self, client: Any) -> None:
        from chalicelib.db import all_models

        self.tables: dict[str, _Table] = {}
        for model in all_models():
            model._get_connection()
            described = client.describe_table(TableName=model.Meta.table_name)["Table"]
            indexes = [
                _Index(
                    tuple(part["AttributeName"] for part in index["KeySchema"]),
                    index["Projection"]["ProjectionType"],
                    tuple(index["Projection"].get("NonKeyAttributes", ())),
                )
                for index in described.get("GlobalSecondaryIndexes", []) + described.get("LocalSecondaryIndexes", [])
            ]
            self.tables[model.Meta.table_name] = _Table(
                tuple(part["AttributeName"] for part in described["KeySchema"]), tuple(indexes)
            )


def _written(operation: str, params: dict[str, Any], schemas: _Schemas) -> list[tuple[str, dict[str, Any], str]]:
    """(table, key, action) of every item a write names."""
    found: list[tuple[str, dict[str, Any], str]] = []

    def add(table: str, action: str, body: dict[str, Any]) -> None:
        key = body.get("Key") or schemas.tables[table].key_of(body.get("Item", {}))
        found.append((table, key, action))

    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        add(params["TableName"], operation, params)
    elif operation == "TransactWriteItems":
        for entry in params["TransactItems"]:
            for action, body in entry.items():
                add(body["TableName"], action, body)
    elif operation == "BatchWriteItem":
        for table, entries in params["RequestItems"].items():
            for entry in entries:
                for action, body in entry.items():
                    add(table, action, body)
    return found


def _key_text(table: str, key: dict[str, Any]) -> str:
    return table + json.dumps(key, sort_keys=True, default=str)


def _read_units(operation: str, params: dict[str, Any], answer: dict[str, Any] | None,
                schemas: _Schemas) -> float:
    answer = answer or {}
    if operation == "GetItem":
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        return factor * _units(_size(answer.get("Item")), READ_KB)
    if operation == "BatchGetItem":
        units = 0.0
        for table, wanted in params["RequestItems"].items():
            factor = 1.0 if wanted.get("ConsistentRead") else 0.5
            got = {json.dumps(schemas.tables[table].key_of(item), sort_keys=True, default=str): item
                   for item in answer.get("Responses", {}).get(table, [])}
            for key in wanted["Keys"]:
                units += factor * _units(_size(got.get(json.dumps(key, sort_keys=True, default=str))), READ_KB)
        return units
    if operation in ("Query", "Scan"):
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        items = answer.get("Items", [])
        total = sum(_size(item) for item in items)
        scanned, count = answer.get("ScannedCount", len(items)), answer.get("Count", len(items))
        if count and scanned > count:  # filtered out items were read (and billed) too
            total = total * scanned // count
        return factor * _units(total, READ_KB)
    if operation == "TransactGetItems":
        return sum(2.0 * _units(_size(entry.get("Item")), READ_KB) for entry in answer.get("Responses", []))
    return 0.0


# --- Instrumentation ---------------------------------------------------------------------------

class _Instruments:
    """The hooks and wrappers of this section, installed for its run only."""

    def __init__(self, stack: Stack) -> None:
        import boto3

        from chalicelib.config import settings

        self.stack = stack
        current = settings()
        # Reads of the items a write names, before and after it: never recorded (no chalicelib.db hook).
        self.snapshot_client = boto3.session.Session().client(
            "dynamodb", region_name=current.region, endpoint_url=current.dynamodb_endpoint)
        self.schemas = _Schemas(self.snapshot_client)
        self.tasks: list[Measure] = []
        self.tasks_lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> _Instruments:
        self._record_round_trips()
        self._record_calls()
        self._count_states()
        self._count_wxpay()
        self._time_tasks()
        return self

    def __exit__(self, *_: Any) -> None:
        for undo in reversed(self._undo):
            undo()

    def _record_round_trips(self) -> None:
        from chalicelib import db

        log = _ByThread()
        with db._recordings_lock:
            db._recordings.append(log)

        def undo() -> None:
            with db._recordings_lock:
                db._recordings.remove(log)

        self._undo.append(undo)

    def _record_calls(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        instruments = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            measure = _current()
            if (measure is None or not measure.snapshots or client is instruments.snapshot_client
                    or client.meta.service_model.service_name != "dynamodb"):
                return original(client, operation, params)
            written = _written(operation, params, instruments.schemas)
            before = instruments._images(original, measure, written)
            answer = None
            try:
                answer = original(client, operation, params)
                return answer
            finally:
                after = instruments._images(original, measure, written)
                measure.calls.append(instruments._call(operation, params, answer, written, before, after))

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(BaseClient, "_make_api_call", original))

    def _images(self, original: Any, measure: Measure, written: list[tuple[str, dict[str, Any], str]]
                ) -> dict[str, dict[str, Any] | None]:
        started = time.perf_counter()
        images: dict[str, dict[str, Any] | None] = {}
        for table, key, _ in written:
            answer = original(self.snapshot_client, "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
            images[_key_text(table, key)] = answer.get("Item")
        measure.overhead += time.perf_counter() - started
        return images

    def _call(self, operation: str, params: dict[str, Any], answer: Any,
              written: list[tuple[str, dict[str, Any], str]],
              before: dict[str, dict[str, Any] | None], after: dict[str, dict[str, Any] | None]) -> Call:
        call = Call(operation, rru=_read_units(operation, params, answer, self.schemas))
        transactional = operation == "TransactWriteItems"
        for table, key, action in written:
            old, new = before.get(_key_text(table, key)), after.get(_key_text(table, key))
            units = _units(max(_size(old), _size(new)), WRITE_KB)
            call.table_wru += 2 * units if transactional else units
            if action != "ConditionCheck":
                call.index_wru += self.schemas.tables[table].index_wru(old, new)
        return call

    def _count_states(self) -> None:
        from chalicelib.aws import stepfunctions

        def count(request: Any = None, **_: Any) -> None:
            measure = _current()
            if measure is not None and request is not None:
                target = request.headers.get("X-Amz-Target", b"")
                target = target.decode() if isinstance(target, bytes) else target
                measure.states.append(target.rsplit(".", 1)[-1])

        client = stepfunctions()
        client.meta.events.register("before-send.states", count)
        self._undo.append(lambda: client.meta.events.unregister("before-send.states", count))

    def _count_wxpay(self) -> None:
        from urllib.parse import urlsplit

        from chalicelib.wechat import pay

        original = pay._send

        def send(method: str, url: str, body: str) -> Any:
            measure = _current()
            if measure is not None:
                path = urlsplit(url).path
                if path.endswith("/jsapi"):
                    name = "prepay"
                elif path.endswith("/close"):
                    name = "close"
                elif "/refund/" in path:
                    name = "refund" if method == "POST" else "query refund"
                else:
                    name = "query"
                measure.wxpay.append(name)
            return original(method, url, body)

        pay._send = send  # type: ignore[assignment]
        self._undo.append(lambda: setattr(pay, "_send", original))

    def _time_tasks(self) -> None:
        """Each Lambda task moto invokes runs under a measure of its own (local.aws routes them here)."""
        from local import aws

        with aws._routes_lock:
            originals = dict(aws._routes)
            for name, handler in originals.items():
                aws._routes[name] = self._timed(name.rsplit("-", 1)[-1], handler)

        def undo() -> None:
            with aws._routes_lock:
                aws._routes.update(originals)

        self._undo.append(undo)

    def _timed(self, name: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            with _measuring(name) as measure:
                measure.order_id = event.get("orderId") if isinstance(event, dict) else None
                try:
                    return handler(event, context)
                finally:
                    with self.tasks_lock:
                        self.tasks.append(measure)

        return run

    def tasks_of(self, order_id: str) -> list[Measure]:
        with self.tasks_lock:
            return [task for task in self.tasks if task.order_id == order_id]


# --- Setup -----------------------------------------------------------------------------------

def _remote_spot() -> tuple[float, float]:
    """A place no other store delivers to."""
    return round(random.uniform(20.0, 45.0), 4), round(random.uniform(80.0, 120.0), 4)


def _store(lat: float, lng: float) -> str:
    from chalicelib.stores import service as stores
    from chalicelib.stores.schemas import StoreSpec

    hours = [{"open": "10:00", "close": "20:00"}]
    store_id = f"bench-store-{uuid.uuid4().hex[:10]}"
    stores.put_store(store_id, StoreSpec.model_validate({
        "name": "思语服务中心 压测店",
        "address": "上海市静安区南京西路1266号",
        "lat": lat,
        "lng": lng,
        "openHours": {day: hours for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "services": [{"serviceId": "check", "name": "设备检测", "durationMinutes": 30, "capacity": 3}],
        "deliveryRadiusKm": 5,
    }), updated_by="bench")
    return store_id


def _sku(launch_shards: int | None = None) -> str:
    from chalicelib.catalog import service as catalog
    from chalicelib.catalog.schemas import SkuPut

    sku_id = f"bench-sku-{uuid.uuid4().hex[:10]}"
    body: dict[str, Any] = {
        "title": "思语 Air 2 降噪耳机", "price": 69900, "memberPrice": 64900, "category": "audio",
    }
    if launch_shards:
        body["launchShards"] = launch_shards
    catalog.put_sku(sku_id, SkuPut.model_validate(body))
    return sku_id


def _member(points: int = 0) -> str:
    """A member logged in once (so WeChat Pay has their openid), holding `points`."""
    from chalicelib.points import ledger
    from chalicelib.usecases import me

    member_id = me.login(f"dev:bench-{uuid.uuid4().hex[:12]}", None)["member"]["memberId"]
    if points:
        ledger.earn(member_id, points, f"gift#{member_id}", "adjust")
    return member_id


def _coupon(member_id: str) -> str:
    from chalicelib import clock
    from chalicelib.coupons import claims, service
    from chalicelib.coupons.schemas import CampaignCreate

    now = clock.now()
    campaign_id = service.create_campaign(CampaignCreate.model_validate({
        "title": "满0减10", "kind": "cash", "value": 1000, "threshold": 0, "totalStock": 10, "perMemberLimit": 1,
        "validFrom": (now - dt.timedelta(minutes=1)).isoformat(),
        "validTo": (now + dt.timedelta(days=7)).isoformat(),
    }), created_by="bench")["campaignId"]
    return claims.claim(member_id, campaign_id)["couponId"]


def _pickup(store_id: str, sku_id: str, qty: int = 1, **extra: Any) -> Any:
    from chalicelib.orders.schemas import OrderRequest

    return OrderRequest.model_validate({
        "items": [{"skuId": sku_id, "qty": qty}], "fulfillment": {"mode": "pickup", "storeId": store_id}, **extra,
    })


def _delivery(lat: float, lng: float, sku_id: str, mode: str = "delivery") -> Any:
    from chalicelib.orders.schemas import OrderRequest

    address = {"name": "张三", "phone": "13800000000", "text": "上海市某路1号", "lat": lat, "lng": lng}
    return OrderRequest.model_validate({
        "items": [{"skuId": sku_id, "qty": 1}], "fulfillment": {"mode": mode, "address": address},
    })


@contextlib.contextmanager
def _orders_configured(**overrides: Any) -> Iterator[None]:
    """The orders configuration with `overrides` (a zero-day refund window lets each execution run to its end)."""
    import os

    from chalicelib.orders.config import CONFIG_ENV

    before = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = json.dumps(overrides)
    try:
        yield
    finally:
        os.environ.pop(CONFIG_ENV, None)
        if before is not None:
            os.environ[CONFIG_ENV] = before


def _parked_at(order_id: str, step: str) -> bool:
    from chalicelib.orders.models import TaskToken

    return TaskToken.count(order_id, TaskToken.step == step, consistent_read=True) > 0


def _advance(stack: Stack, order_id: str, status: str) -> dict[str, Any]:
    """The courier's next report, not sent: the bench hands it to the webhook's code in-process."""
    answer = requests.post(f"{stack.sandbox_url}/sandbox/courier/advance",
                           json={"orderId": order_id, "status": status, "notify": False}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def _eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _parked(order_id: str) -> bool:
    from chalicelib.orders.models import TaskToken

    return any(True for _ in TaskToken.query(order_id, consistent_read=True))


def _ended(order_id: str) -> str:
    from chalicelib.orders import flow

    status = flow.execution_status(order_id)
    return status if status not in (None, "RUNNING") else ""


def _pay_at_sandbox(stack: Stack, order_id: str) -> tuple[dict[str, str], bytes]:
    """The member pays (the notification lost); the TRANSACTION.SUCCESS WeChat Pay would send."""
    from chalicelib.wechat import pay

    answer = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": False},
                           timeout=30)
    answer.raise_for_status()
    transaction = pay.query_order(order_id)
    assert transaction is not None
    return stack.sandbox.wxpay_keys.notification("TRANSACTION.SUCCESS", transaction)


def _history(order_id: str) -> dict[str, int]:
    """Counts of the execution's history events by type."""
    from chalicelib.aws import stepfunctions
    from chalicelib.orders import flow

    client = stepfunctions()
    counts: collections.Counter[str] = collections.Counter()
    arguments: dict[str, Any] = {"executionArn": flow.execution_arn(order_id), "maxResults": 1000}
    while True:
        page = client.get_execution_history(**arguments)
        counts.update(event["type"] for event in page["events"])
        if not page.get("nextToken"):
            return dict(counts)
        arguments["nextToken"] = page["nextToken"]


def _transitions(order_id: str) -> dict[str, Any]:
    history = _history(order_id)
    entered = sum(count for kind, count in history.items() if kind.endswith("StateEntered"))
    scheduled = history.get("TaskScheduled", 0)
    retries = max(0, scheduled - history.get("TaskStateEntered", 0))
    return {"entered": entered, "retries": retries, "transitions": entered + retries, "tasks": scheduled}


# --- 1, 2, 4: round trips, transitions and one paid order's life ------------------------------------

def _lives(stack: Stack, instruments: _Instruments) -> dict[str, Any]:
    from chalicelib.catalog import service as catalog
    from chalicelib.orders import flow, fulfillment, lifecycle, payment
    from chalicelib.orders import service as orders
    from chalicelib.stores import service as stores

    lat, lng = _remote_spot()
    store = _store(*_remote_spot())  # the pickup store, away from the delivery address
    nearby = [_store(lat + 0.001, lng), _store(lat + 0.01, lng), _store(lat + 0.02, lng)]
    stores.forget_cached_stores()
    sku = _sku()
    for store_id in (store, *nearby):
        catalog.set_on_hand(store_id, sku, 20)
    member_id = _member(points=3000)

    # A warm container: the stores cached, keys loaded, connections open.
    orders.create(member_id, _pickup(store, sku))
    orders.create(member_id, _delivery(lat, lng, sku))

    coupon_id = _coupon(member_id)
    with _measuring("create") as create:
        created = orders.create(member_id, _pickup(store, sku, couponId=coupon_id, pointsToUse=300))
    order_id = create.order_id = created["orderId"]
    with _measuring("create (delivery)") as delivery:
        delivered = orders.create(member_id, _delivery(lat, lng, sku))
    inventory = stack.table_prefix + "inventory"
    stock_rows_read = sum(
        len(request.body["RequestItems"].get(inventory, {}).get("Keys", []))
        for request in delivery.round_trips if request.operation == "BatchGetItem"
    )
    delivered_to = orders.get_order(delivered["orderId"]).store_id

    headers, body = _pay_at_sandbox(stack, order_id)
    with _measuring("notification") as notification:
        answer = payment.on_notification(headers, body)
    notification.order_id = order_id
    _eventually(lambda: _parked(order_id), "the execution to wait for the store")
    with _measuring("notification again") as duplicate:
        again = payment.on_notification(headers, body)
    with _measuring("GET /orders/{id}") as read:
        orders.order_view(orders.member_order(member_id, order_id))
    with _measuring("accept (store)") as accept:
        lifecycle.accept(order_id, store)
    _eventually(lambda: _parked_at(order_id, fulfillment.PACKING), "the execution to wait for the packing")
    with _measuring("ready (store)") as ready:
        code = fulfillment.ready(order_id, store).pickup_code
    _eventually(lambda: _parked_at(order_id, fulfillment.PICKUP), "the execution to wait for the member")
    with _measuring("pickup (store)") as collect:
        fulfillment.collect(order_id, store, code)
    accepted_end = _eventually(lambda: _ended(order_id), "the completed order's execution to end")
    timeline = [entry.status for entry in orders.get_order(order_id).timeline]

    # A paid order the member cancels before the store accepts it: the compensation path.
    cancelled_id = orders.create(member_id, _pickup(store, sku, pointsToUse=200))["orderId"]
    on_notification_headers, on_notification_body = _pay_at_sandbox(stack, cancelled_id)
    payment.on_notification(on_notification_headers, on_notification_body)
    _eventually(lambda: _parked(cancelled_id), "the second execution to wait for the store")
    lifecycle.cancel(member_id, cancelled_id)
    cancelled_end = _eventually(lambda: _ended(cancelled_id), "the cancelled order's execution to end")
    _eventually(lambda: orders.get_order(cancelled_id).status == "refunded", "the refund to be confirmed")

    # An unpaid order the member cancels: WeChat Pay asked and closed, no execution.
    unpaid_coupon = _coupon(member_id)
    unpaid_id = orders.create(member_id, _pickup(store, sku, couponId=unpaid_coupon, pointsToUse=100))["orderId"]
    with _measuring("cancel (unpaid)") as cancel:
        cancelled_unpaid = lifecycle.cancel(member_id, unpaid_id)

    return {
        "create": create, "delivery": delivery, "stock_rows_read": stock_rows_read,
        "delivered_to_nearest": delivered_to == nearby[0],
        "notification": notification, "notification_answer": answer[0],
        "duplicate": duplicate, "duplicate_answer": again[0], "timeline": timeline,
        "read": read, "accept": accept, "ready": ready, "collect": collect, "cancel": cancel, "cancel_status": cancelled_unpaid.status,
        "accepted": {**_transitions(order_id), "end": accepted_end, "tasks_run": instruments.tasks_of(order_id)},
        "compensated": {**_transitions(cancelled_id), "end": cancelled_end},
        "unpaid_execution": flow.execution_status(unpaid_id),
    }


# --- 5: a completed order's life, mode by mode ----------------------------------------------------

QUICK_WINDOW = {"refund_window_days": 0}  # each execution runs to its end; nothing else changes


def _callbacks(stack: Stack, order_id: str, statuses: tuple[str, ...]) -> list[Measure]:
    """The courier reports `statuses`; each one's webhook is invoked in-process, as its Lambda would be."""
    from chalicelib.orders import courier_reports
    from chalicelib.usecases import wechat_push

    measures = []
    for status in statuses:
        sent = _advance(stack, order_id, status)
        callback = sent["callback"]
        with _measuring(f"{sent['courier']} callback: {status}") as measure:
            if sent["courier"] == "dada":
                answer = courier_reports.on_courier_callback("dada", callback["body"].encode())
            else:
                answer = wechat_push.on_event(callback["query"], callback["body"].encode())
        assert answer[0] == 200, answer
        measures.append(measure)
    return measures


def _completed_life(stack: Stack, instruments: _Instruments, body: Any, stores: list[str], *,
                    reject_first: bool = False) -> dict[str, Any]:
    """One order from creation to the end of its execution; what every API invocation and task did."""
    from chalicelib.orders import fulfillment, lifecycle, payment
    from chalicelib.orders import service as orders

    member_id = _member()
    with _measuring("create") as create:
        order_id = orders.create(member_id, body)["orderId"]
    headers, notification_body = _pay_at_sandbox(stack, order_id)
    with _measuring("notification") as notification:
        payment.on_notification(headers, notification_body)
    api = [create, notification]
    _eventually(lambda: _parked_at(order_id, "store_acceptance"), "the execution to wait for the store")
    store = orders.get_order(order_id).store_id
    if reject_first:
        with _measuring("reject (store)") as reject:
            fulfillment.reject(order_id, store)
        api.append(reject)
        _eventually(lambda: orders.get_order(order_id).store_id != store, "the reroute")
        _eventually(lambda: _parked_at(order_id, "store_acceptance"), "the execution to wait for the next store")
        store = orders.get_order(order_id).store_id
    with _measuring("accept (store)") as accept:
        lifecycle.accept(order_id, store)
    _eventually(lambda: _parked_at(order_id, fulfillment.PACKING), "the execution to wait for the packing")
    with _measuring("ready (store)") as ready:
        order = fulfillment.ready(order_id, store)
    with _measuring("GET /orders/{id}") as read:
        orders.order_view(orders.member_order(member_id, order_id))
    api += [accept, ready, read]
    step = fulfillment.hand_over_step(order)
    _eventually(lambda: _parked_at(order_id, step) and orders.get_order(order_id).courier is not None
                and orders.get_order(order_id).courier.waybill_id, "the courier's dispatch")
    api += _callbacks(stack, order_id, ("delivered",) if order.mode == "express"
                      else ("accepted", "picked_up", "delivered"))
    end = _eventually(lambda: _ended(order_id), "the completed order's execution to end")
    assert orders.get_order(order_id).status == "completed"
    return {"api": api, "end": end, **_transitions(order_id), "tasks_run": instruments.tasks_of(order_id),
            "store": store, "stores": stores}


def _modes(stack: Stack, instruments: _Instruments, pickup_life: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from chalicelib.catalog import service as catalog
    from chalicelib.stores import service as stores

    lat, lng = _remote_spot()
    nearby = [_store(lat + 0.001, lng), _store(lat + 0.01, lng)]
    stores.forget_cached_stores()
    sku = _sku()
    for location in (*nearby, "warehouse"):
        catalog.set_on_hand(location, sku, 20)
    lives = {"pickup": pickup_life}
    with _orders_configured(**QUICK_WINDOW, delivery_couriers=["dada"]):
        lives["delivery (Dada)"] = _completed_life(stack, instruments, _delivery(lat, lng, sku), nearby)
        lives["delivery, rerouted once (Dada)"] = _completed_life(stack, instruments, _delivery(lat, lng, sku),
                                                                 nearby, reject_first=True)
    with _orders_configured(**QUICK_WINDOW, delivery_couriers=["wechat"]):
        lives["delivery (WeChat instant delivery)"] = _completed_life(stack, instruments, _delivery(lat, lng, sku),
                                                                     nearby)
    with _orders_configured(**QUICK_WINDOW):
        lives["express (warehouse)"] = _completed_life(stack, instruments, _delivery(lat, lng, sku, "express"),
                                                       nearby)
    return lives


# --- 3: the launch-SKU rush -----------------------------------------------------------------------

def _rush() -> dict[str, Any]:
    from chalicelib import db
    from chalicelib.catalog import service as catalog
    from chalicelib.config import settings
    from chalicelib.errors import SiyuError
    from chalicelib.orders import service as orders
    from chalicelib.stores import service as stores

    store = _store(*_remote_spot())
    stores.forget_cached_stores()
    sku = _sku(launch_shards=RUSH_SHARDS)
    catalog.set_on_hand(store, sku, RUSH_STOCK)
    with ThreadPoolExecutor(max_workers=8) as pool:
        members = list(pool.map(lambda _: _member(), range(RUSH_MEMBERS)))
    stores.find_store(store)  # the container knows the store before the rush

    def attempt(index: int) -> tuple[str, Measure]:
        with _measuring("rush", snapshots=False) as measure:
            try:
                orders.create(members[index % RUSH_MEMBERS], _pickup(store, sku))
            except SiyuError as error:
                return error.code, measure
            except Exception as error:  # noqa: BLE001 - reported as an outcome, not hidden
                return type(error).__name__, measure
            return "granted", measure

    started = time.perf_counter()
    with db.recording() as log:
        with ThreadPoolExecutor(max_workers=RUSH_WORKERS) as pool:
            results = list(pool.map(attempt, range(RUSH_ATTEMPTS)))
    seconds = time.perf_counter() - started
    outcomes = collections.Counter(outcome for outcome, _ in results)
    trips = {
        kind: collections.Counter(len(m.round_trips) for outcome, m in results if (outcome == "granted") == granted)
        for kind, granted in (("granted", True), ("refused", False))
    }
    refused_reads = [
        sum(len(table["Keys"]) for table in request.body["RequestItems"].values())
        for outcome, m in results if outcome != "granted"
        for request in m.round_trips if request.operation == "BatchGetItem"
    ]
    wxpay = collections.Counter(call for _, m in results for call in m.wxpay)

    inventory = settings().table_prefix + "inventory"
    stock_writes: collections.Counter[str] = collections.Counter()
    for request in log:
        if request.operation == "TransactWriteItems":
            for entry in request.body["TransactItems"]:
                update = entry.get("Update")
                if update and update["TableName"] == inventory:
                    stock_writes[json.dumps(update["Key"], sort_keys=True)] += 1
    level = catalog.stock_level(store, sku)
    return {
        "seconds": seconds,
        "outcomes": outcomes,
        "granted": outcomes["granted"],
        "level": level,
        "requests": collections.Counter(request.operation for request in log),
        "stock_writes": sum(stock_writes.values()),
        "busiest": max(stock_writes.values(), default=0),
        "spread": sorted(stock_writes.values()),
        "trips": trips,
        "refused_keys": refused_reads,
        "wxpay": wxpay,
    }


# --- Report -------------------------------------------------------------------------------------

def _ops(operations: list[str]) -> str:
    return ", ".join(operations) or "-"


def _trips_row(name: str, measure: Measure, goal: str, met: bool | None) -> str:
    verdict = "" if met is None else "met" if met else "NOT met"
    return (f"| {name} | {len(measure.round_trips)} | {len(measure.states)} | {len(measure.wxpay)} | {goal} | "
            f"{verdict} | {_ops(measure.dynamodb_ops)} | {_ops(measure.states)} | {_ops(measure.wxpay)} |")


def _one_write_one_read(measure: Measure) -> bool:
    ops = collections.Counter(measure.dynamodb_ops)
    return ops["TransactWriteItems"] == 1 and ops["BatchGetItem"] <= 1 and sum(ops.values()) == 1 + ops["BatchGetItem"]


def _histogram(counter: collections.Counter[int]) -> str:
    return ", ".join(f"{trips}: {count:,}" for trips, count in sorted(counter.items())) or "-"


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    counts = collections.Counter(values)
    return ", ".join(f"{keys} keys: {count:,}" for keys, count in sorted(counts.items()))


def _money(value: float) -> str:
    return f"${value:,.4f}"


def run(stack: Stack) -> str:
    with _Instruments(stack) as instruments:
        with _orders_configured(**QUICK_WINDOW):
            lives = _lives(stack, instruments)
        pickup_life = {**lives["accepted"], "api": [lives[name] for name in
                                                    ("create", "notification", "read", "accept", "ready", "collect")]}
        modes = _modes(stack, instruments, pickup_life)
        rush = _rush()

    create, delivery, notification = lives["create"], lives["delivery"], lives["notification"]
    duplicate, cancel = lives["duplicate"], lives["cancel"]
    compensated = lives["compensated"]
    checks = {
        "create": _one_write_one_read(create) and create.wxpay == ["prepay"] and not create.states,
        "delivery": _one_write_one_read(delivery) and lives["stock_rows_read"] == 3 and delivery.wxpay == ["prepay"],
        "notification": notification.dynamodb_ops == ["UpdateItem"] and notification.states == ["StartExecution"]
        and not notification.wxpay and lives["notification_answer"] == 204,
        "duplicate": lives["duplicate_answer"] == 204 and lives["timeline"].count("paid") == 1,
        "cancel": cancel.wxpay == ["query", "close"] and lives["cancel_status"] == "cancelled"
        and lives["unpaid_execution"] is None,
    }
    lines = [
        "## Orders: round trips, state transitions, the launch rush, cost per completed order",
        "",
        "Called in-process through the service functions the routes and the state machine's tasks call, on a "
        "warm container (one pickup and one delivery order made first), against DynamoDB Local, moto's Step "
        "Functions running infra/order.asl.json (its Lambda tasks are app.py's handlers in this process) and the "
        "sandbox's WeChat Pay. Requests are attributed to the thread that sent them, so the execution's tasks "
        "(running meanwhile) are counted apart from the API call that started them.",
        "",
        "### Round trips",
        "",
        "| operation | DynamoDB | Step Functions | WeChat Pay | goal | verdict | DynamoDB requests | Step Functions requests "
        "| WeChat Pay requests |",
        "|---|---|---|---|---|---|---|---|---|",
        _trips_row("create: pickup, coupon and points", create,
                   "1 TransactWriteItems + at most 1 BatchGetItem; 1 prepay", checks["create"]),
        _trips_row(f"create: delivery, 3 candidate stores ({lives['stock_rows_read']} stock rows in the batch read"
                   f"{', nearest chosen' if lives['delivered_to_nearest'] else ''})", delivery,
                   "the same, still 1 BatchGetItem", checks["delivery"]),
        _trips_row(f"payment notification (answer {lives['notification_answer']})", notification,
                   "1 conditional UpdateItem; 1 StartExecution", checks["notification"]),
        _trips_row(f"the same notification again (answer {lives['duplicate_answer']})", duplicate,
                   "applies nothing twice (the timeline keeps one `paid`)", checks["duplicate"]),
        _trips_row("cancel an unpaid order", cancel, "WeChat Pay: query, close; no execution", checks["cancel"]),
        _trips_row("GET /orders/{id}", lives["read"], "1 GetItem", lives["read"].dynamodb_ops == ["GetItem"]),
        _trips_row("accept (store)", lives["accept"], "-", None),
        _trips_row("ready (store)", lives["ready"], "-", None),
        _trips_row("pickup (store)", lives["collect"], "-", None),
        "",
        f"Timeline of the paid order after both notifications and its hand-over: {' -> '.join(lives['timeline'])}.",
        "",
    ]

    lines += _transitions_report(lives)
    lines += _rush_report(rush)
    cost_lines, _ = _cost_report(pickup_life)
    lines += cost_lines
    mode_lines, costs = _modes_report(modes)
    lines += mode_lines
    per_mode = {mode: 800 / life["transitions"] for mode, life in modes.items()}
    per_cancelled = 800 / compensated["transitions"] if compensated["transitions"] else math.inf
    lines += [
        "### Orders a second that 800 state transitions a second allow",
        "",
        "Each completed order's transitions are spread over its life (hours to a week); the quota bounds the "
        "rate at which orders can move at all, so the figure is 800 divided by an order's transitions.",
        "",
        "| order | transitions | orders/s | goal |",
        "|---|---|---|---|",
        *(f"| completed: {mode} | {modes[mode]['transitions']} | {rate:,.0f} | >= {ORDERS_PER_SECOND_GOAL} |"
          for mode, rate in per_mode.items()),
        f"| paid, cancelled before acceptance | {compensated['transitions']} | {per_cancelled:,.0f} "
        f"| >= {ORDERS_PER_SECOND_GOAL} |",
        "| unpaid | 0 | (no transitions) | |",
        "",
        "Unpaid orders, refused orders (the whole launch rush's OUT_OF_STOCK) and duplicate notifications start "
        "no execution, so they take nothing from the 800 a second.",
        "",
    ]
    verdicts = {
        "creation is 1 TransactWriteItems + at most 1 BatchGetItem, + 1 prepay": checks["create"]
        and checks["delivery"],
        "the notification is 1 UpdateItem + 1 StartExecution": checks["notification"],
        "a duplicate notification applies nothing": checks["duplicate"],
        "an unpaid order has no execution": lives["unpaid_execution"] is None,
        f"the rush grants exactly {RUSH_STOCK}, no oversell": rush["granted"] == RUSH_STOCK
        and rush["level"]["available"] >= 0,
        f"busiest stock row at most {BUSIEST_GOAL:.3f} of the stock writes": rush["stock_writes"] > 0
        and rush["busiest"] / rush["stock_writes"] <= BUSIEST_GOAL,
    }
    for name, ok in verdicts.items():
        bench.figure(f"orders: {name}", "see Orders", "", ok)
    # These two are in the summary with their values, not as a bare verdict.
    dearest, slowest = max(costs.values()), min(*per_mode.values(), per_cancelled)
    cheap_enough, fast_enough = dearest <= COST_GOAL_PER_1000, slowest >= ORDERS_PER_SECOND_GOAL
    bench.figure("cost per 1,000 completed orders (the dearest mode)", _money(dearest),
                 f"<= ${COST_GOAL_PER_1000:.2f}", cheap_enough)
    bench.figure("orders a second within 800 state transitions a second (the dearest mode)", f"{slowest:,.0f}",
                 f">= {ORDERS_PER_SECOND_GOAL}", fast_enough)
    verdicts[f"at most ${COST_GOAL_PER_1000:.2f} per 1,000 completed orders, every mode"] = cheap_enough
    verdicts[f"at least {ORDERS_PER_SECOND_GOAL} orders/s on 800 transitions/s, every mode"] = fast_enough
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in verdicts.items()]
    return "\n".join(lines)


def _modes_report(modes: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, float]]:
    lines = [
        "### A completed order, mode by mode: transitions and cost per 1,000",
        "",
        "Each order measured as the pickup one above, from creation to the end of its execution (its refund "
        "window set to zero days so it ends here), with every store call and every courier report: Dada's "
        "callbacks (each confirmed with Dada's status query) and WeChat's message-push events, handed to the "
        "webhooks' code in-process as their Lambda invocations would be. The rerouted order is declined by the "
        "nearest store and accepted by the next.",
        "",
        "| mode | states entered | retries | transitions | Lambda tasks | API and webhook calls | WRU | RRU "
        "| per 1,000 completed orders | the same at DynamoDB's prices since 2024-11 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    costs = {}
    for mode, life in modes.items():
        _, total, invocations = _cost_of(life)
        costs[mode] = total
        lines.append(
            f"| {mode} | {life['entered']} | {life['retries']} | {life['transitions']} | {life['tasks']} "
            f"| {len(life['api'])} | {sum(m.wru for m in invocations):g} | {sum(m.rru for m in invocations):g} "
            f"| {_money(total)} | {_money(_at_todays_prices(total, invocations)[1])} |")
    lines += ["", f"Goal: at most ${COST_GOAL_PER_1000:.2f} per 1,000 completed orders in every mode (at the "
              "older DynamoDB prices, the stricter).", ""]
    return lines, costs


def _transitions_report(lives: dict[str, Any]) -> list[str]:
    accepted, compensated = lives["accepted"], lives["compensated"]
    return [
        "### State transitions per order",
        "",
        "Counted from `GetExecutionHistory`: one transition per state entered (`*StateEntered`), plus one per "
        "task retry (a `TaskScheduled` beyond the first of its state).",
        "",
        "| order | states entered | retries | transitions | Lambda tasks (TaskScheduled) | execution |",
        "|---|---|---|---|---|---|",
        f"| paid, collected at the store (pickup) | {accepted['entered']} | {accepted['retries']} | {accepted['transitions']} "
        f"| {accepted['tasks']} | {accepted['end']} |",
        f"| paid, cancelled before acceptance (compensated, refunded) | {compensated['entered']} "
        f"| {compensated['retries']} | {compensated['transitions']} | {compensated['tasks']} | {compensated['end']} |",
        f"| unpaid, cancelled | 0 | 0 | 0 | 0 | none (`execution_status` is "
        f"{lives['unpaid_execution']!r}) |",
        "",
    ]


def _rush_report(rush: dict[str, Any]) -> list[str]:
    oversell = max(0, rush["granted"] - RUSH_STOCK)
    share = rush["busiest"] / rush["stock_writes"] if rush["stock_writes"] else 0.0
    level = rush["level"]
    outcomes = ", ".join(f"{name} {count:,}" for name, count in rush["outcomes"].most_common())
    requests_text = ", ".join(f"{name} {count:,}" for name, count in rush["requests"].most_common())
    return [
        "### Launch-SKU rush",
        "",
        f"{RUSH_ATTEMPTS:,} pickup orders (qty 1) from {RUSH_WORKERS} threads by {RUSH_MEMBERS} members "
        f"(logged in, so each granted order is prepaid at WeChat Pay) for a launch SKU with "
        f"`launchShards: {RUSH_SHARDS}` and {RUSH_STOCK} units at one store, through `orders.service.create`.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| wall time | {rush['seconds']:.1f} s ({RUSH_ATTEMPTS / rush['seconds']:,.0f} orders/s) | |",
        f"| outcomes | {outcomes} | |",
        f"| granted | {rush['granted']} | exactly {RUSH_STOCK} |",
        f"| refused OUT_OF_STOCK | {rush['outcomes'].get('OUT_OF_STOCK', 0):,} | {RUSH_ATTEMPTS - RUSH_STOCK:,} |",
        f"| oversell | {oversell} | 0 |",
        f"| stock after (onHand, reserved, available) | {level['onHand']}, {level['reserved']}, {level['available']} "
        f"| {RUSH_STOCK}, {RUSH_STOCK}, 0 (available >= 0) |",
        f"| DynamoDB requests | {sum(rush['requests'].values()):,} ({requests_text}) | |",
        f"| stock row writes (TransactWriteItems Update actions on inventory) | {rush['stock_writes']:,} | |",
        f"| busiest stock row, share of the stock writes | {rush['busiest']} ({share:.3f}) "
        f"| <= {BUSIEST_GOAL:.3f} |",
        f"| writes per stock row (sorted) | {', '.join(map(str, rush['spread']))} | |",
        f"| DynamoDB round trips per granted order | {_histogram(rush['trips']['granted'])} | |",
        f"| DynamoDB round trips per refused order | {_histogram(rush['trips']['refused'])} | |",
        f"| keys per BatchGetItem of a refused order | {_spread(rush['refused_keys'])} | |",
        f"| WeChat Pay requests in the rush | {_ops([f'{name} {count}' for name, count in rush['wxpay'].items()])} "
        f"| prepay {RUSH_STOCK} (refusals cost WeChat nothing) |",
        "",
        "Round trips per order are given as `round trips: orders`.",
        "",
        f"![Writes per launch stock row; the dashed line is {BUSIEST_GOAL:.3f} of the stock writes]"
        f"({_rush_plot(rush).name})",
        "",
    ]


def _rush_plot(rush: dict[str, Any]) -> Any:
    return plots.bars(
        bench.output_dir() / "order_rush.png", "Launch-SKU rush: writes per stock row", "stock row (by writes)",
        "item writes", {str(index + 1): count for index, count in enumerate(rush["spread"])},
        goal=BUSIEST_GOAL * rush["stock_writes"])


def _table_wru(measure: Measure) -> float:
    return sum(call.table_wru for call in measure.calls)


def _cost_of(life: dict[str, Any]) -> tuple[list[tuple[str, str, float]], float, list[Measure]]:
    """The components of one order's life at list prices, their total per 1,000 such orders, its invocations."""
    api = life["api"]
    tasks = sorted(life["tasks_run"], key=lambda task: task.name)
    invocations = api + tasks
    requests_count = len(api) + life["tasks"]
    gb_seconds = sum(LAMBDA_MEMORY_GB * measure.billed_ms / 1000 for measure in invocations)
    table_wru = sum(call.table_wru for measure in invocations for call in measure.calls)
    index_wru = sum(call.index_wru for measure in invocations for call in measure.calls)
    rru = sum(measure.rru for measure in invocations)
    components = [
        ("Step Functions transitions", f"{life['transitions']}", life["transitions"] * SFN_PER_TRANSITION),
        ("Lambda requests", f"{requests_count} ({len(api)} API and webhooks + {life['tasks']} tasks)",
         requests_count * LAMBDA_PER_REQUEST),
        ("Lambda duration", f"{gb_seconds:.4f} GB-s", gb_seconds * LAMBDA_PER_GB_SECOND),
        ("DynamoDB writes", f"{table_wru + index_wru:g} WRU ({table_wru:g} table + {index_wru:g} index)",
         (table_wru + index_wru) * DDB_PER_WRU),
        ("DynamoDB reads", f"{rru:g} RRU", rru * DDB_PER_RRU),
        ("API Gateway requests", f"{len(api)}", len(api) * APIGW_PER_REQUEST),
    ]
    return components, sum(cost for _, _, cost in components) * 1000, invocations


def _at_todays_prices(total: float, invocations: list[Measure]) -> tuple[float, float]:
    """(the DynamoDB part, the total) per 1,000 at DynamoDB's on-demand prices since November 2024."""
    wru = sum(measure.wru for measure in invocations)
    rru = sum(measure.rru for measure in invocations)
    dynamodb_now = (wru * DDB_PER_WRU_SINCE_2024_11 + rru * DDB_PER_RRU_SINCE_2024_11) * 1000
    return dynamodb_now, total - (wru * DDB_PER_WRU + rru * DDB_PER_RRU) * 1000 + dynamodb_now


def _cost_report(life: dict[str, Any]) -> tuple[list[str], float]:
    components, total, invocations = _cost_of(life)
    dynamodb_now, total_now = _at_todays_prices(total, invocations)
    lines = [
        "### Modelled cost per 1,000 completed pickup orders",
        "",
        "One completed order's life: the creation above (pickup, coupon, points), its payment notification, the "
        "execution's Lambda tasks, one `GET /orders/{id}` by the member, and the store's acceptance, packing and "
        "hand-over with the pickup code (which the execution waits for), to the end of its refund window. Durations are measured here (DynamoDB Local on this machine, each invocation rounded "
        "up to 1 ms, 512 MB); request units use the size of each item's attribute map as JSON, rounded up to the KB "
        "(4 KB for reads), a write billed on the larger of the item before and after it (read back by the bench, "
        "unrecorded and off the durations), transactional actions (ConditionCheck included) twice, and the index "
        "entries a write changes as standard writes.",
        "",
        "| invocation | billed ms | DynamoDB round trips | WRU (table + index) | RRU | Step Functions | WeChat Pay |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {measure.name} | {measure.billed_ms} | {len(measure.round_trips)} ({_ops(measure.dynamodb_ops)}) "
        f"| {measure.wru:g} ({_table_wru(measure):g} + {measure.wru - _table_wru(measure):g}) | {measure.rru:g} "
        f"| {_ops(measure.states)} | {_ops(measure.wxpay)} |"
        for measure in invocations
    ]
    lines += [
        "",
        "| component | per completed order | per 1,000 completed orders |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {quantity} | {_money(cost * 1000)} |" for name, quantity, cost in components]
    lines += [
        f"| **total** | | **{_money(total)}** (goal <= ${COST_GOAL_PER_1000:.2f}: "
        f"{'met' if total <= COST_GOAL_PER_1000 else 'NOT met'}) |",
        "",
        f"At DynamoDB's on-demand prices since November 2024 ($0.625 and $0.125 per million) the DynamoDB part is "
        f"{_money(dynamodb_now)} and the total {_money(total_now)}. Not modelled: CloudWatch logs and metrics, "
        "the Idempotency-Key record when the mini-program sends one, data transfer, WeChat Pay's fees, storage.",
        "",
    ]
    return lines, total
