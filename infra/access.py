"""What each Lambda function of app.py may touch: the one declaration its IAM role is built from.

`ACCESS` maps every function Chalice makes of app.py (the API handler, each
scheduled job, each state-machine task) to the tables it reads, scans, writes
or deletes from, the secret settings it reads from SSM and the other AWS APIs
it calls. A table is named by its model's `Meta.table`; a domain
(`chalicelib/<domain>/`) stands for all of its models' tables. Both resolve
through `chalicelib.db.all_models()`, so a renamed table or a new index
follows the models. infra/template.py turns each entry into the function's
own role; `problems` is what packaging refuses (a function without a
declaration, a name that resolves to nothing).

A function gets what its code path does today, not what it may do one day:
when a job or task starts touching another table, its entry grows with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, Flag, auto
from typing import Any

__all__ = [
    "API_HANDLER",
    "Verb",
    "READ",
    "SCAN",
    "WRITE",
    "DELETE",
    "Service",
    "Access",
    "ACCESS",
    "TableGrant",
    "domain_of",
    "table_grants",
    "problems",
]

API_HANDLER = "api_handler"


class Verb(Flag):
    READ = auto()  # get, batch get, query (the table and its indexes), condition checks in a transaction
    SCAN = auto()  # a whole-table read: jobs that visit every item, the API's small listings
    WRITE = auto()  # put and update, conditional or not
    DELETE = auto()


READ, SCAN, WRITE, DELETE = Verb.READ, Verb.SCAN, Verb.WRITE, Verb.DELETE


class Service(Enum):
    START_ORDERS = "start an order's execution of the order state machine"
    ANSWER_ORDER_WAITS = "end a waiting step of an order's execution with its task token"
    READ_ORDER_EXECUTIONS = "ask whether an order's execution exists and how it ended"
    START_WHOLE_TABLE_JOBS = "start a whole-table job's execution of the segmented state machine, and read it"


@dataclass(frozen=True)
class Access:
    domains: Mapping[str, Verb] = field(default_factory=dict)
    tables: Mapping[str, Verb] = field(default_factory=dict)
    parameters: frozenset[str] = frozenset()  # secret settings: `wechat_secret` is SIYU_WECHAT_SECRET_PARAMETER
    services: frozenset[Service] = frozenset()


# The wechat-tokens table and the app secret go together: sending a subscription
# message needs an access token, which a container fetches with the secret and
# shares through the table.
_SENDS_WECHAT_MESSAGES = {
    "sent-messages": WRITE | DELETE,  # a failed send is undone so a later run retries it
    "subscription-credits": WRITE,
    "wechat-tokens": READ | WRITE,
}

# Every call to WeChat Pay signs with the merchant key and verifies the answer with
# WeChat Pay's public key; notifications are decrypted with the APIv3 key.
_PAYS = frozenset({"wxpay_merchant_key", "wxpay_apiv3_key", "wxpay_public_key"})

# Closing, refunding and compensating an order give back what it took (a refunded order's commission is void).
_MOVES_ORDER_MONEY = {
    "orders": READ | WRITE,
    "catalog": READ | WRITE,
    "coupons": READ | WRITE,
    "points": READ | WRITE,
    "guides": READ | WRITE,
}

# A waiting task parks its token, and answers it itself (reading and deleting it) when the
# order has already moved past the wait.
_PARKS = READ | WRITE | DELETE

# Completing an order ships its stock, earns its points, reads who is credited and records their commission.
_COMPLETES_ORDERS = {"orders": READ | WRITE, "catalog": READ | WRITE, "points": READ | WRITE, "members": READ,
                     "guides": READ | WRITE}

# Calling a courier: Dada signs with its app secret, WeChat's delivery APIs take an access
# token (fetched with the app secret) and instant delivery a signature with its own secret.
_DISPATCHES = frozenset({"dada_app_secret", "wechat_secret", "wechat_delivery_app_secret"})

ACCESS: dict[str, Access] = {
    API_HANDLER: Access(
        domains={
            "appointments": READ | WRITE | DELETE,
            "catalog": READ | WRITE,
            "coupons": READ | WRITE,
            "guides": READ | WRITE,
            "idempotency": READ | WRITE | DELETE,
            "members": READ | WRITE | DELETE,
            "orders": READ | WRITE | DELETE,
            "points": READ | WRITE,
            "reports": READ,  # the stored daily reports (a day not stored is computed, not stored)
            "stores": READ | WRITE,
            "wechat": READ | WRITE,
        },
        tables={
            "coupon-campaigns": SCAN,  # the admin's campaign list
            "stores": SCAN,  # the store list, cached per container for "nearest"
            "subscription-credits": READ | WRITE,
            "policy": READ | WRITE,  # HQ's changes of the policy, and their record
            "policy-changes": READ | WRITE,
        },
        parameters=frozenset({
            "token_signing_key", "token_signing_key_previous", "wechat_secret", "lookup_hash_key",
            "lookup_hash_key_previous", "coupon_code_key", *_PAYS, *_DISPATCHES,
            "wechat_push_token", "wechat_push_aes_key",
        }),
        services=frozenset({Service.START_ORDERS, Service.ANSWER_ORDER_WAITS}),
    ),
    "appointment-reminders": Access(
        tables={"appointments": READ, "members": READ, **_SENDS_WECHAT_MESSAGES},
        parameters=frozenset({"wechat_secret"}),
    ),
    "appointment-no-shows": Access(
        tables={"appointments": READ | WRITE, "appointment-members": WRITE},
    ),
    "coupon-expiry": Access(
        tables={"coupons": READ | WRITE, "coupon-campaigns": READ | WRITE, "members": READ, **_SENDS_WECHAT_MESSAGES},
        parameters=frozenset({"wechat_secret"}),
    ),
    # The jobs find their work through sparse indexes: none of them scans.
    "points-expiry": Access(
        tables={"points-balances": READ | WRITE, "points-transfers": READ | WRITE},
    ),
    "tier-review": Access(
        tables={"points-balances": READ | WRITE, "points-activity": READ, "members": READ | WRITE,
                "job-runs": READ | WRITE},
    ),
    "ledger-audit": Access(
        tables={"points-balances": READ, "points-transfers": READ, "coupons": READ, "orders": READ},
    ),
    # The jobs that visit every row only start the segmented machine; its tasks do the visiting.
    "ledger-proof": Access(services=frozenset({Service.START_WHOLE_TABLE_JOBS})),
    "stock-audit": Access(services=frozenset({Service.START_WHOLE_TABLE_JOBS})),
    "segment_scan": Access(
        tables={
            "points-balances": READ | SCAN | WRITE,
            "points-transfers": READ,
            "points-activity": READ,
            "members": READ | WRITE,
            "identities": READ | SCAN | WRITE | DELETE,  # identity-rekey
            "inventory": READ | SCAN,
            "stock-reservations": READ,
            "job-runs": READ | WRITE,
        },
        parameters=frozenset({"lookup_hash_key", "lookup_hash_key_previous"}),
    ),
    "segment_finish": Access(tables={"job-runs": READ | WRITE, "inventory": READ, "stock-reservations": READ}),
    "customer-segments": Access(
        tables={"guides": READ, "members": READ, "orders": READ, "coupons": READ, "appointments": READ,
                "guide-customer-segments": WRITE},
    ),
    # Reads the day through the per-day indexes (and the store directory, for each store's bookings).
    "daily-report": Access(
        tables={
            "orders": READ,
            "members": READ,
            "points-transfers": READ,
            "coupons": READ,
            "appointments": READ,
            "stores": SCAN,
            "daily-reports": WRITE,
        },
    ),
    # It only reads WeChat Pay (bills, order and refund queries): signing needs no APIv3 key.
    "pay-reconciliation": Access(
        tables={"orders": READ, "pay-reconciliations": READ | WRITE},
        parameters=frozenset({"wxpay_merchant_key", "wxpay_public_key"}),
    ),
    "order-sweeper": Access(
        domains={**_MOVES_ORDER_MONEY, "members": READ},
        parameters=_PAYS,
        services=frozenset({Service.START_ORDERS, Service.READ_ORDER_EXECUTIONS}),
    ),
    "order_settle_payment": Access(domains={"orders": READ | WRITE, "coupons": READ | WRITE, "points": READ | WRITE}),
    # It answers its own wait when the store accepted before it parked (flow.notify_store).
    "order_notify_store": Access(tables={"order-task-tokens": _PARKS, "orders": READ},
                                 services=frozenset({Service.ANSWER_ORDER_WAITS})),
    "order_compensate": Access(domains={**_MOVES_ORDER_MONEY, "members": READ}, parameters=_PAYS),
    "order_execution_ended": Access(domains={**_MOVES_ORDER_MONEY, "members": READ}, parameters=_PAYS),
    "order_reroute": Access(
        domains={"orders": READ | WRITE, "catalog": READ | WRITE},
        tables={"stores": SCAN, "order-task-tokens": _PARKS},  # the stores that deliver to the address
        services=frozenset({Service.ANSWER_ORDER_WAITS}),
    ),
    "order_await": Access(
        tables={"order-task-tokens": _PARKS, "orders": READ},
        services=frozenset({Service.ANSWER_ORDER_WAITS}),
    ),
    "order_dispatch_courier": Access(
        tables={"order-task-tokens": _PARKS, "orders": READ | WRITE, "stores": READ,
                "wechat-tokens": READ | WRITE},
        parameters=_DISPATCHES,
        services=frozenset({Service.ANSWER_ORDER_WAITS}),
    ),
    "order_complete": Access(domains=_COMPLETES_ORDERS),
    "order_close_refund_window": Access(domains=_COMPLETES_ORDERS),
}

# The functions whose code reads the brand's policy (points, orders or guides configuration, chalicelib.policy).
_READS_POLICY = {name for name in ACCESS if name not in (
    API_HANDLER, "appointment-reminders", "appointment-no-shows", "order_notify_store", "order_await",
)}
for _name in _READS_POLICY:
    ACCESS[_name] = replace(ACCESS[_name], tables={**ACCESS[_name].tables, "policy": READ})

# Only the API issues and checks tokens; a job or a task holding this key could mint an admin's.
_API_ONLY_PARAMETERS = frozenset({"token_signing_key", "token_signing_key_previous"})


@dataclass(frozen=True)
class TableGrant:
    table: str  # the model's Meta.table, without the stage's prefix
    indexes: tuple[str, ...]
    verbs: Verb


def domain_of(model: Any) -> str:
    """`chalicelib.points.models` and `chalicelib.idempotency` are the domains `points` and `idempotency`."""
    return model.__module__.split(".")[1]


def _indexes(model: Any) -> tuple[str, ...]:
    schema = model._get_schema()
    indexes = schema["global_secondary_indexes"] + schema["local_secondary_indexes"]
    return tuple(index["index_name"] for index in indexes)


def table_grants(access: Access, models: Iterable[Any]) -> list[TableGrant]:
    """The tables `access` names, each with its indexes and every verb granted on it, in table order."""
    grants: dict[str, Verb] = {}
    indexes: dict[str, tuple[str, ...]] = {}
    for model in models:
        table = model.Meta.table
        verbs = access.domains.get(domain_of(model), Verb(0))
        verbs |= access.tables.get(table, Verb(0))
        if verbs:
            grants[table] = verbs
            indexes[table] = _indexes(model)
    return [TableGrant(table, indexes[table], verbs) for table, verbs in sorted(grants.items())]


def problems(function_names: Iterable[str], models: Iterable[Any], secret_settings: Iterable[str],
             declarations: Mapping[str, Access] = ACCESS) -> list[str]:
    """What keeps `declarations` from describing the app (empty when nothing does)."""
    models = list(models)
    names = list(function_names)
    domains = {domain_of(model) for model in models}
    tables = {model.Meta.table for model in models}
    secrets = set(secret_settings)
    found = [f"{name}: app.py defines this function but infra/access.py declares no access for it"
             for name in names if name not in declarations]
    found += [f"{name}: declared in infra/access.py but app.py defines no such function"
              for name in declarations if name not in names]
    for name, access in declarations.items():
        found += [f"{name}: no domain {domain!r}" for domain in access.domains if domain not in domains]
        found += [f"{name}: no table {table!r}" for table in access.tables if table not in tables]
        found += [f"{name}: no secret setting {setting!r}" for setting in access.parameters if setting not in secrets]
        if name != API_HANDLER:
            found += [f"{name}: only the API handler may read {setting!r}"
                      for setting in sorted(access.parameters & _API_ONLY_PARAMETERS)]
    return found
