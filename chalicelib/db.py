"""DynamoDB access shared by every domain: table binding, transactions, request log.

Models subclass `SiyuModel` and name their table with `Meta.table`; the stage's
prefix, region and endpoint are bound on first use (nothing is read at import).
`TABLE_MODULES` lists every module holding models, so infra/ and local/ derive
the tables from the models instead of keeping copies.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import TTLAttribute
from pynamodb.connection import Connection
from pynamodb.models import Model

from chalicelib.config import settings

__all__ = [
    "SiyuModel",
    "TABLE_MODULES",
    "all_models",
    "connection",
    "Request",
    "recording",
    "intercepting",
    "watch",
    "RETRIES",
    "batch_get",
]

TABLE_MODULES = [
    "chalicelib.idempotency",
    "chalicelib.members.models",
    "chalicelib.wechat.token_cache",
    "chalicelib.messaging.models",
    "chalicelib.coupons.models",
    "chalicelib.orders.models",
    "chalicelib.catalog.models",
    "chalicelib.stores.models",
    "chalicelib.appointments.models",
    "chalicelib.points.models",
    "chalicelib.reports.models",
    "chalicelib.guides.models",
    "chalicelib.policy",
    "chalicelib.runs",
]


# botocore's own policy for DynamoDB (50 ms, doubling: 0.35 s over 3 retries) fits within a request;
# pynamodb's default, botocore's "standard" mode, waits up to 1, 2 and 4 s. The composer retries on top.
RETRIES = {"mode": "legacy", "total_max_attempts": 4}


class SiyuModel(Model):
    """Base of every table model: `class Meta: table = "members"`."""

    class Meta:
        table: str = ""

    @classmethod
    def _get_connection(cls):  # type: ignore[override]
        if cls._connection is None:
            _bind(cls)
            table_connection = super()._get_connection()
            # pynamodb gives each model a connection, a botocore session and a client of its own, and each
            # session loads and parses DynamoDB's service model again: every model shares one instead.
            shared = connection()
            shared.add_meta_table(table_connection.connection.get_meta_table(cls.Meta.table_name))
            table_connection.connection = shared
            return table_connection
        return super()._get_connection()

    @classmethod
    def ttl_attribute_name(cls) -> str | None:
        for name, attribute in cls.get_attributes().items():
            if isinstance(attribute, TTLAttribute):
                return attribute.attr_name or name
        return None


_bind_lock = threading.Lock()


def _bind(model: type[SiyuModel]) -> None:
    with _bind_lock:
        current = settings()
        model.Meta.table_name = current.table_name(model.Meta.table)
        model.Meta.region = current.region
        model.Meta.host = current.dynamodb_endpoint


def all_models() -> list[type[SiyuModel]]:
    models: list[type[SiyuModel]] = []
    for module_name in TABLE_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, SiyuModel)
                and value is not SiyuModel
                and value.__module__ == module_name
            ):
                models.append(value)
    return models


# One client serves every thread of a process: the local server's, the benches' and the tests' many.
MAX_POOL_CONNECTIONS = 50
_connections: dict[tuple[str, str | None], Connection] = {}
_connections_lock = threading.Lock()


def connection() -> Connection:
    """The one connection (and botocore client) every model, transaction and multi-table read goes through."""
    current = settings()
    key = (current.region, current.dynamodb_endpoint)
    shared = _connections.get(key)
    if shared is not None:
        return shared
    with _connections_lock:
        shared = _connections.get(key)
        if shared is None:
            shared = Connection(region=key[0], host=key[1], retry_configuration=RETRIES,
                                max_pool_connections=MAX_POOL_CONNECTIONS)
            watch(shared.client)
            _connections[key] = shared
        return shared


@dataclass(frozen=True)
class Request:
    """One HTTP round trip to DynamoDB, as a botocore hook saw it."""

    operation: str
    body: dict[str, Any]

    def item_keys(self) -> list[tuple[str, str]]:
        """(table, key) of every item this request writes or reads."""
        keys: list[tuple[str, str]] = []

        def add(table: str, key: dict[str, Any]) -> None:
            keys.append((table, json.dumps(key, sort_keys=True)))

        def key_of(table: str, action: dict[str, Any]) -> dict[str, Any]:
            # A Put names its whole item: keep only the table's key attributes when the models know them.
            if "Key" in action:
                return action["Key"]
            item = action.get("Item", {})
            names = _key_attributes(settings().table_prefix).get(table)
            return {name: item[name] for name in names if name in item} if names else item

        for entry in self.body.get("TransactItems", []):
            for action in entry.values():
                add(action["TableName"], key_of(action["TableName"], action))
        if "TableName" in self.body and ("Key" in self.body or "Item" in self.body):
            add(self.body["TableName"], key_of(self.body["TableName"], self.body))
        return keys


@functools.cache
def _key_attributes(table_prefix: str) -> dict[str, tuple[str, ...]]:
    """Table name -> its key attribute names, from the models (for telling Put items apart)."""
    found: dict[str, tuple[str, ...]] = {}
    for model in all_models():
        names = tuple(
            attribute.attr_name
            for attribute in (model._hash_key_attribute(), model._range_key_attribute())
            if attribute is not None
        )
        found[table_prefix + model.Meta.table] = names
    return found


_recordings: list[list[Request]] = []
_recordings_lock = threading.Lock()
_interceptors: list[Callable[[Request], Any]] = []
_watched: set[int] = set()


def watch(client: Any) -> None:
    """Let `recording` and `intercepting` see this DynamoDB client's requests."""
    if id(client) in _watched:
        return
    _watched.add(id(client))
    client.meta.events.register("before-send.dynamodb", _on_send)


def _on_send(request: Any, **_: Any) -> Any:
    if not _recordings and not _interceptors:
        return None
    operation = request.headers.get("X-Amz-Target", b"")
    operation = operation.decode() if isinstance(operation, bytes) else operation
    entry = Request(operation.rsplit(".", 1)[-1], json.loads(request.body or b"{}"))
    with _recordings_lock:
        for log in _recordings:
            log.append(entry)
        interceptors = list(_interceptors)
    for intercept in interceptors:
        answer = intercept(entry)
        if answer is not None:
            return answer
    return None


@contextlib.contextmanager
def recording() -> Iterator[list[Request]]:
    """Collect every DynamoDB round trip made (by any thread) inside the block."""
    log: list[Request] = []
    with _recordings_lock:
        _recordings.append(log)
    try:
        yield log
    finally:
        with _recordings_lock:
            _recordings.remove(log)


@contextlib.contextmanager
def intercepting(answer: Callable[[Request], Any]) -> Iterator[None]:
    """While the block runs, `answer` sees every DynamoDB request (of any thread) before it is sent.

    An `AWSResponse` it returns is what the client receives instead of DynamoDB's
    answer (botocore's `before-send` contract: parsed, retried and raised as
    DynamoDB's own would be); None lets the request go.
    """
    with _recordings_lock:
        _interceptors.append(answer)
    try:
        yield
    finally:
        with _recordings_lock:
            _interceptors.remove(answer)


BATCH_GET_KEYS = 100  # BatchGetItem's most keys per round trip


def batch_get(keys: list[tuple[type[SiyuModel], Any]]) -> list[Any]:
    """Read items of several tables, `BATCH_GET_KEYS` to a round trip (strongly consistent).

    `keys` pairs a model with its hash key (or a (hash, range) tuple); the answer
    holds the items in the same order, None for those that do not exist.
    """
    found: list[Any] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        found += _batch_get_once(keys[start:start + BATCH_GET_KEYS])
    return found


def _batch_get_once(keys: list[tuple[type[SiyuModel], Any]]) -> list[Any]:
    request: dict[str, dict[str, Any]] = {}
    wanted: list[tuple[str, dict[str, Any]]] = []
    for model, key in keys:
        hash_key, range_key = key if isinstance(key, tuple) else (key, None)
        model._get_connection()
        item_key = {}
        for attribute, value in ((model._hash_key_attribute(), hash_key), (model._range_key_attribute(), range_key)):
            if attribute is not None:
                item_key[attribute.attr_name] = {attribute.attr_type: attribute.serialize(value)}
        table = model.Meta.table_name
        keys_of_table = request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"]
        if item_key not in keys_of_table:
            keys_of_table.append(item_key)
        wanted.append((table, item_key))
    found: dict[str, list[dict[str, Any]]] = {}
    while request:
        answer = connection().client.batch_get_item(RequestItems=request)
        for table, items in answer.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        request = answer.get("UnprocessedKeys") or {}
    results: list[Any] = []
    for (model, _), (table, item_key) in zip(keys, wanted):
        match = next(
            (item for item in found.get(table, []) if all(item.get(name) == value for name, value in item_key.items())),
            None,
        )
        results.append(model.from_raw_data(match) if match else None)
    return results

