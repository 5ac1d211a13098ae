"""Cold start of a real request: a fresh process answering its first request, against bare boto3.

For each request family the parent prepares fresh state (a new openid, member,
store, order) and spawns a child that imports the app and hands it one API
Gateway proxy event with `app.app(event, context)`, as Lambda does. Against it,
a child that imports boto3, makes a DynamoDB client and sends the same DynamoDB
requests the app sent. Those requests are recorded once per family, from a cold
app child of the same kind, with `chalicelib.db.recording`, and replayed
verbatim: the items they write exist by then, so a write whose condition asks
for a new item fails its condition, and a TransactWriteItems, which carries its
ClientRequestToken, is answered as the repeat it is. Either still makes its
round trip with the same request; replacing the ids the app made up (member
ids, hashed lookups, coupon ids) without knowing how it made them could not
promise the same shapes.

Children get the environment the stack exported for its API server (table
prefix, DynamoDB and moto endpoints, sandbox URLs, secrets, WeChat Pay keys)
and read their input on stdin; the time runs from the spawn to the child's
answer line on stdout, so interpreter shutdown is not counted.

`python -m bench.cold_request [runs]` runs this section alone.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

import bench
from local.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("SIYU_BENCH_COLD_RUNS", "7"))
GOAL = 1.5
# Starts the child's answer line: the app's own log lines go to stdout too, as on Lambda.
ANSWER = "cold-request answer: "

# What a Lambda context offers that the app reads (Powertools' idempotency asks for the time left).
LAMBDA_CONTEXT = '''
class LambdaContext:
    function_name = "api_handler"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api_handler"
    aws_request_id = "cold-request"

    def get_remaining_time_in_millis(self):
        return 30000
'''

APP_CHILD = '''
import json, sys
''' + f'ANSWER = {ANSWER!r}' + '''
case = json.load(sys.stdin)
import app
''' + LAMBDA_CONTEXT + '''
answer = app.app(case["event"], LambdaContext())
body = answer.get("body")
body = body.decode() if isinstance(body, bytes) else body
sys.stdout.write(ANSWER + json.dumps({"statusCode": answer["statusCode"], "body": body}) + "\\n")
sys.stdout.flush()
'''

# The app child again, recording every DynamoDB request, every other outbound HTTP request and every botocore client made.
RECORDING_CHILD = '''
import json, sys
''' + f'ANSWER = {ANSWER!r}' + '''
case = json.load(sys.stdin)
import urllib3.connectionpool
from chalicelib import db

others = []
send = urllib3.connectionpool.HTTPConnectionPool.urlopen

def recorded_urlopen(pool, method, url, *args, **kwargs):
    others.append({"method": method, "port": pool.port, "url": url.split("?")[0]})
    return send(pool, method, url, *args, **kwargs)

urllib3.connectionpool.HTTPConnectionPool.urlopen = recorded_urlopen

import botocore.session

clients = []
create_client = botocore.session.Session.create_client

def recorded_create_client(session, service_name, *args, **kwargs):
    clients.append(service_name)
    return create_client(session, service_name, *args, **kwargs)

botocore.session.Session.create_client = recorded_create_client
import app
''' + LAMBDA_CONTEXT + '''
with db.recording() as log:
    answer = app.app(case["event"], LambdaContext())
requests = [{"operation": entry.operation, "body": entry.body} for entry in log]
body = answer.get("body")
body = body.decode() if isinstance(body, bytes) else body
sys.stdout.write(ANSWER + json.dumps({"statusCode": answer["statusCode"], "body": body,
                             "requests": requests, "others": others, "clients": clients}) + "\\n")
sys.stdout.flush()
'''

BARE_CHILD = '''
import json, sys
''' + f'ANSWER = {ANSWER!r}' + '''
plan = json.load(sys.stdin)
import boto3
from botocore import xform_name
from botocore.exceptions import ClientError

client = boto3.client("dynamodb", region_name=plan["region"], endpoint_url=plan["endpoint"])
failed = []
for request in plan["requests"]:
    try:
        getattr(client, xform_name(request["operation"]))(**request["body"])
    except ClientError as error:
        failed.append(error.response["Error"]["Code"])
sys.stdout.write(ANSWER + json.dumps({"requests": len(plan["requests"]), "failed": failed}) + "\\n")
sys.stdout.flush()
'''


@dataclass
class Family:
    name: str
    route: str
    prepare: Callable[[], dict[str, Any]]  # a proxy event for fresh state
    after: Callable[[dict[str, Any]], None] = lambda event: None  # run after each app child, untimed


@dataclass
class Measured:
    family: Family
    app_seconds: list[float]
    bare_seconds: list[float]
    requests: list[dict[str, Any]]
    others: list[dict[str, Any]]
    clients: list[str]
    replay_failures: list[str]

    @property
    def app_median(self) -> float:
        return statistics.median(self.app_seconds)

    @property
    def bare_median(self) -> float:
        return statistics.median(self.bare_seconds)

    @property
    def ratio(self) -> float:
        return self.app_median / self.bare_median


def proxy_event(method: str, resource: str, body: str | None, headers: dict[str, str] | None = None,
                path_parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event, as Lambda hands it to the API handler."""
    headers = {"Content-Type": "application/json", "Host": "api.siyu.example", **(headers or {})}
    path = resource
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _member_token() -> tuple[str, str]:
    """(member id, token) of a member who has just logged in."""
    from chalicelib.usecases import me

    answer = me.login(f"dev:{_fresh('cold')}", None)
    return answer["member"]["memberId"], answer["token"]


def _member_post(resource: str, payload: dict[str, Any] | None, path_parameters: dict[str, str] | None = None,
                 token: str | None = None) -> dict[str, Any]:
    token = token or _member_token()[1]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    body = json.dumps(payload) if payload is not None else None
    return proxy_event("POST", resource, body, headers, path_parameters)


def _new_store() -> str:
    from chalicelib.stores import service as stores
    from chalicelib.stores.schemas import StoreSpec

    every_day = {day: [{"open": "10:00", "close": "20:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    store_id = _fresh("coldstore")
    stores.put_store(store_id, StoreSpec.model_validate({
        "name": "思语服务中心 冷启动店",
        "address": "上海市静安区南京西路1266号",
        "lat": 31.2286,
        "lng": 121.4530,
        "openHours": every_day,
        "services": [{"serviceId": "repair", "name": "维修检测", "durationMinutes": 60, "capacity": 1}],
        "deliveryRadiusKm": 5,
    }), updated_by="bench")
    return store_id


def _login() -> dict[str, Any]:
    return proxy_event("POST", "/auth/login", json.dumps({"code": f"dev:{_fresh('cold')}"}))


def _claim_family(stock: int) -> Family:
    from chalicelib import clock
    from chalicelib.coupons import service as coupons
    from chalicelib.coupons.schemas import CampaignCreate

    now = clock.now()
    campaign = coupons.create_campaign(CampaignCreate.model_validate({
        "title": "满200减20", "kind": "cash", "value": 2000, "threshold": 20000,
        "totalStock": stock, "perMemberLimit": 1,
        "validFrom": (now - dt.timedelta(minutes=1)).isoformat(),
        "validTo": (now + dt.timedelta(days=30)).isoformat(),
    }), created_by="bench")
    path = {"campaignId": campaign["campaignId"]}
    return Family("coupon claim", "POST /coupons/campaigns/{campaignId}/claim",
                  lambda: _member_post("/coupons/campaigns/{campaignId}/claim", None, path))


def _booking() -> dict[str, Any]:
    from chalicelib import clock

    day = clock.shanghai_date(dt.datetime.now(dt.timezone.utc)) + dt.timedelta(days=3)
    start = dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=clock.SHANGHAI)
    return _member_post("/appointments", {"storeId": _new_store(), "serviceId": "repair", "start": clock.iso(start)})


def _stocked_pickup(stock: int) -> dict[str, Any]:
    """An order body: one unit of a SKU the store has `stock` of, picked up at the store."""
    from chalicelib.catalog import service as catalog
    from chalicelib.catalog.schemas import SkuPut

    store_id, sku_id = _new_store(), _fresh("coldsku")
    catalog.put_sku(sku_id, SkuPut.model_validate(
        {"title": "思语 Air 2 降噪耳机", "price": 69900, "memberPrice": 64900, "category": "audio"}))
    catalog.set_on_hand(store_id, sku_id, stock)
    return {"items": [{"skuId": sku_id, "qty": 1}], "fulfillment": {"mode": "pickup", "storeId": store_id}}


def _order_family(stock: int) -> Family:
    body = _stocked_pickup(stock)
    return Family("order create", "POST /orders", lambda: _member_post("/orders", body))


def _payment_family(stack: Stack, stock: int) -> Family:
    """A TRANSACTION.SUCCESS for a new unpaid order, signed and encrypted by the sandbox's WeChat Pay."""
    from chalicelib.orders import service as orders
    from chalicelib.orders.schemas import OrderRequest

    body = OrderRequest.model_validate(_stocked_pickup(stock))

    def prepare() -> dict[str, Any]:
        member_id, _ = _member_token()
        order_id = orders.create(member_id, body)["orderId"]
        paid = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": False},
                             timeout=30)
        paid.raise_for_status()
        notification = stack.sandbox.wxpay.payment_notification(order_id)
        assert notification is not None
        headers = stack.sandbox.wxpay_keys.notification_headers(notification)
        issued.append(order_id)
        return proxy_event("POST", "/webhooks/wechatpay", notification.decode(), headers)

    issued: list[str] = []
    return Family("payment notification", "POST /webhooks/wechatpay", prepare,
                  after=lambda event: _parked(issued[-1]))


def _parked(order_id: str) -> None:
    """Wait for the paid order's execution to park at the store's acceptance, so it runs between measurements."""
    from chalicelib.orders.models import TaskToken

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(True for _ in TaskToken.query(order_id, consistent_read=True)):
            return
        time.sleep(0.1)


def families(stack: Stack, runs: int) -> list[Family]:
    # Every app child's claim or order takes one unit; a replayed transaction is answered as a repeat.
    stock = 2 * runs + 10
    return [
        Family("login (first, new openid)", "POST /auth/login", _login),
        _claim_family(stock),
        Family("appointment booking", "POST /appointments", _booking),
        _order_family(stock),
        _payment_family(stack, stock),
    ]


def _child(script: str, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Seconds from spawning `python -c script` to its answer line, and the answer."""
    stdin = json.dumps(payload).encode()
    started = time.perf_counter()
    errors = tempfile.TemporaryFile()
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(stdin)
    child.stdin.close()
    line = child.stdout.readline()
    while line and not line.startswith(ANSWER.encode()):
        line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    rest = child.stdout.read()
    child.wait()
    if child.returncode != 0 or not line:
        errors.seek(0)
        raise RuntimeError(f"child failed ({child.returncode}): {errors.read().decode()[-2000:]} {rest.decode()[-500:]}")
    errors.close()
    return elapsed, json.loads(line[len(ANSWER):])


def _answered(family: Family, answer: dict[str, Any]) -> None:
    if answer["statusCode"] >= 300:
        raise RuntimeError(f"{family.name}: the app answered {answer['statusCode']}: {answer.get('body')}")


def _binary_free(requests_made: list[dict[str, Any]]) -> None:
    # The recorded bodies are wire JSON, where a binary value is base64 text; boto3 would encode it again.
    text = json.dumps([request["body"] for request in requests_made])
    if '"B":' in text or '"BS":' in text:
        raise RuntimeError("a recorded request carries a binary attribute: replaying it needs decoding first")


def measure(family: Family, runs: int) -> Measured:
    from chalicelib.config import settings

    event = family.prepare()
    _, recorded = _child(RECORDING_CHILD, {"event": event})
    _answered(family, recorded)
    family.after(event)
    requests_made = recorded["requests"]
    _binary_free(requests_made)
    plan = {"region": settings().region, "endpoint": settings().dynamodb_endpoint, "requests": requests_made}
    _, replayed = _child(BARE_CHILD, plan)
    app_seconds, bare_seconds = [], []
    for run in range(runs):
        event = family.prepare()
        order = ("app", "bare") if run % 2 == 0 else ("bare", "app")
        for side in order:
            if side == "app":
                seconds, answer = _child(APP_CHILD, {"event": event})
                _answered(family, answer)
                app_seconds.append(seconds)
                family.after(event)
            else:
                seconds, _ = _child(BARE_CHILD, plan)
                bare_seconds.append(seconds)
    return Measured(family, app_seconds, bare_seconds, requests_made, recorded["others"], recorded["clients"],
                    replayed["failed"])


def _others(measured: Measured, stack: Stack) -> str:
    """The app's outbound requests that did not go to DynamoDB, named by where they went."""
    from chalicelib.config import settings

    def port_of(url: str | None) -> int | None:
        return int(url.rstrip("/").rsplit(":", 1)[-1]) if url else None

    names = {stack.sandbox_port: "sandbox", port_of(settings().aws_endpoint): "moto"}
    dynamodb = port_of(settings().dynamodb_endpoint)
    seen = [f"{names.get(other['port'], other['port'])} {other['method']} {other['url']}"
            for other in measured.others if other["port"] != dynamodb]
    return ", ".join(seen) or "none"


def report(results: list[Measured], stack: Stack, runs: int) -> str:
    lines = [
        "## Cold start of a real request",
        "",
        f"Each family's first request answered by a fresh process (`import app`, then `app.app(event, context)` "
        f"with an API Gateway proxy event, as Lambda calls it) against a fresh process that imports boto3, makes a "
        f"DynamoDB client and sends the same DynamoDB requests. Spawn to answer line, wall clock in the parent, "
        f"alternated, medians of {runs}; fresh state (openid, member, store, order) for every app run. The bare side "
        f"replays the requests recorded from a cold app run verbatim, so writes that want a new item fail their "
        f"condition and transactions are answered as repeats of the same ClientRequestToken (a round trip all the "
        f"same). Goal: ratio at most {GOAL}.",
        "",
        "| family | app median | bare median | ratio | goal | DynamoDB requests (both) |",
        "|---|---|---|---|---|---|",
    ]
    for measured in results:
        verdict = "met" if measured.ratio <= GOAL else "NOT met"
        bench.figure(f"cold first request, {measured.family.name}: app / bare boto3",
                     f"{measured.ratio:.2f} ({measured.app_median * 1000:.0f} / {measured.bare_median * 1000:.0f} ms)",
                     f"<= {GOAL}", measured.ratio <= GOAL)
        lines.append(
            f"| {measured.family.name} | {measured.app_median * 1000:.0f} ms | {measured.bare_median * 1000:.0f} ms "
            f"| {measured.ratio:.2f} | {verdict} | {len(measured.requests)} |")
    lines += ["", "| family | route | DynamoDB requests | failed in the replay | other outbound requests of the app "
              "| botocore clients the app made |", "|---|---|---|---|---|---|"]
    for measured in results:
        operations = ", ".join(request["operation"] for request in measured.requests)
        failed = ", ".join(measured.replay_failures) or "none"
        clients = ", ".join(f"{service} x{count}" for service, count in collections.Counter(measured.clients).items())
        lines.append(f"| {measured.family.name} | `{measured.family.route}` | {operations} | {failed} "
                     f"| {_others(measured, stack)} | {clients} |")
    lines += ["", "Both sides make one DynamoDB client: every model shares the app's one connection "
              "(chalicelib/db.py), since a client made from a botocore session of its own loads and parses "
              "DynamoDB's service model again."]
    return "\n".join(lines)


def run(stack: Stack, runs: int = RUNS) -> str:
    return report([measure(family, runs) for family in families(stack, runs)], stack, runs)


def main() -> None:
    from local.dynamodb_local import free_port

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    stack = Stack(api_port=free_port(), sandbox_port=free_port(), table_prefix=f"bench{os.getpid()}-", seed=False)
    stack.start()
    try:
        print(run(stack, runs))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
