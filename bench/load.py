"""Load: a mixed member journey at rising concurrency, then the invariants, read in DynamoDB.

Each simulated member logs in as someone new, looks for stores near a point,
claims a coupon of a campaign with stock to spare and tries one of a scarce
campaign, books an appointment, orders one SKU for pickup with that coupon,
pays through the sandbox (which sends WeChat Pay's signed notification to the
API), and the store's clerk accepts, packs and hands the order over with the
code the member's order page shows.

Locust drives the members, one locust process per step (`bench/load_users.py`,
in a process of its own because importing locust patches sockets and threads
for gevent); the stack stays in this process, where the invariants are read
after the last step:

- coupons: per campaign, granted <= stock, no shard below zero, the shards'
  remaining plus the coupons granted = the stock, and exactly the coupons the
  members were answered exist;
- orders: each order is where its journey left it (completed after pickup),
  its execution running and waiting at that order's step (none mid-way, none
  failed), the SKU's stock = initial - collected, its reservations = the open
  orders;
- appointments: no slot counter above capacity, each counter = its live bookings;
- points and coupon locks: the ledger audit of every member of the run, and
  the coupon-lock audit.

Per step and route: count, p50, p99 (ms), error rate; an expected refusal
(SOLD_OUT, SLOT_FULL, ...) is counted apart and is not an error. A 5xx, a
dropped connection or any other unexpected answer is an error.

`python -m bench.load --soak` runs longer steps on a stack of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import requests

__all__ = ["run", "run_load", "prepare", "invariants", "markdown", "plot", "main", "BENCH_STEPS", "SOAK_STEPS"]

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "load_users.py"
OUT = HERE / "out"
HEADING = "## Load: a mixed journey at rising concurrency"

BENCH_STEPS, BENCH_SECONDS = (2, 4, 8, 16), 20
SOAK_STEPS, SOAK_SECONDS = (4, 8, 16, 32), 300
# Locust lets a member finish the journey under way when a step's time is up.
STOP_TIMEOUT_SECONDS = 30

SERVICE_ID = "film"
# Few seats on purpose: later steps fill them, so SLOT_FULL (an expected refusal) is exercised.
SLOT_CAPACITY, BOOKING_DAYS = 2, (2, 3)
SKU_STOCK = 100_000
MAIN_STOCK, SCARCE_STOCK, SCARCE_SHARDS = 100_000, 25, 4
OPEN_STATES = ("pending_payment", "paid", "accepted", "ready")
# The state machine's state each journey's end leaves an order's execution in.
EXECUTION_AT = {"paid": "AwaitStore", "accepted": "AwaitPacking", "ready": "AwaitPickup",
                "completed": "ReturnWindow"}
SETTLE_SECONDS = 60


# --- The world the members walk in ----------------------------------------------------------------

def _admin_token(api_url: str) -> str:
    """An HQ admin made the way HQ's first admin is (a grant written directly), logged in over HTTP."""
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = f"load-admin-{uuid.uuid4().hex[:8]}"
    members.grant_role(StaffGrant(openid=openid, role="admin", name="HQ"), granted_by="bench.load")
    return _login(api_url, openid)


def _login(api_url: str, openid: str) -> str:
    answer = requests.post(f"{api_url}/auth/login", json={"code": f"dev:{openid}"}, timeout=30)
    answer.raise_for_status()
    return answer.json()["token"]


def _as_admin(api_url: str, token: str, method: str, path: str, body: Any) -> dict[str, Any]:
    answer = requests.request(method, api_url + path, json=body, timeout=30,
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    return answer.json()


def prepare(stack: Any, stores: int = 2) -> dict[str, Any]:
    """Stores at a spot of their own with a clerk each, a stocked SKU and two campaigns, set up by an admin
    over HTTP; the plan the locust processes read."""
    from chalicelib import clock
    from chalicelib.stores import service as store_service

    api = stack.api_url
    admin = _admin_token(api)
    run_id = uuid.uuid4().hex[:8]
    lat, lng = 22.0 + int(run_id[:4], 16) % 2000 / 1000, 100.0 + int(run_id[4:], 16) % 2000 / 1000
    every_day = {day: [{"open": "10:00", "close": "20:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    sku_id = f"load-sku-{run_id}"
    _as_admin(api, admin, "PUT", f"/admin/skus/{sku_id}",
              {"title": "思语 Air 2 降噪耳机", "price": 69900, "memberPrice": 64900, "category": "audio"})
    planned_stores = []
    for index in range(stores):
        store_id = f"load-{run_id}-{index}"
        _as_admin(api, admin, "PUT", f"/admin/stores/{store_id}", {
            "name": f"思语服务中心 压测{index}", "address": "上海市静安区南京西路1266号",
            "lat": round(lat + index * 0.01, 5), "lng": lng, "openHours": every_day, "deliveryRadiusKm": 5,
            "services": [{"serviceId": SERVICE_ID, "name": "屏幕贴膜", "durationMinutes": 60, "capacity": SLOT_CAPACITY}],
        })
        _as_admin(api, admin, "PUT", f"/admin/inventory/{store_id}/{sku_id}", {"onHand": SKU_STOCK})
        clerk = f"load-staff-{store_id}"
        _as_admin(api, admin, "POST", "/admin/staff", {"openid": clerk, "role": "staff", "storeId": store_id,
                                                       "name": "店员"})
        planned_stores.append({"storeId": store_id, "staffToken": _login(api, clerk)})
    store_service.forget_cached_stores()
    now = clock.now()
    window = {"validFrom": (now - dt.timedelta(minutes=1)).isoformat(),
              "validTo": (now + dt.timedelta(days=30)).isoformat()}
    main = _as_admin(api, admin, "POST", "/admin/campaigns", {
        "title": "压测 立减10元", "kind": "cash", "value": 1000, "threshold": 0, "totalStock": MAIN_STOCK,
        "perMemberLimit": 1, **window})
    scarce = _as_admin(api, admin, "POST", "/admin/campaigns", {
        "title": "压测 限量券", "kind": "cash", "value": 500, "threshold": 0, "totalStock": SCARCE_STOCK,
        "shardCount": SCARCE_SHARDS, "perMemberLimit": 1, **window})
    today = clock.shanghai_date(dt.datetime.now(dt.timezone.utc))
    return {
        "apiUrl": api, "sandboxUrl": stack.sandbox_url, "runId": run_id,
        "near": {"lat": lat, "lng": lng, "radiusKm": 10},
        "stores": planned_stores, "skuId": sku_id, "serviceId": SERVICE_ID,
        "days": [(today + dt.timedelta(days=ahead)).isoformat() for ahead in BOOKING_DAYS],
        "campaignId": main["campaignId"], "scarceCampaignId": scarce["campaignId"],
        "stock": {main["campaignId"]: MAIN_STOCK, scarce["campaignId"]: SCARCE_STOCK},
    }


# --- The steps --------------------------------------------------------------------------------------

def _locust_step(plan: dict[str, Any], users: int, seconds: int, workdir: Path) -> dict[str, Any]:
    """One step: `users` members at once for `seconds`, in a locust process; what every request answered."""
    out = workdir / f"step-{users}.json"
    plan_file = workdir / f"plan-{users}.json"
    plan_file.write_text(json.dumps({**plan, "out": str(out)}))
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", str(STOP_TIMEOUT_SECONDS),
               "--exit-code-on-error", "0", "--loglevel", "WARNING", "--host", plan["apiUrl"]]
    started = time.monotonic()
    finished = subprocess.run(command, env={**os.environ, "SIYU_LOAD_PLAN": str(plan_file)}, capture_output=True,
                              text=True, timeout=seconds + STOP_TIMEOUT_SECONDS + 120)
    if finished.returncode != 0 or not out.exists():
        raise RuntimeError(f"locust failed ({finished.returncode}):\n{finished.stderr[-4000:]}")
    recorded = json.loads(out.read_text())
    recorded["wallSeconds"] = round(time.monotonic() - started, 1)
    return recorded


def _percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value at least `share` of the values are at or below."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _by_route(samples: list[list[Any]], seconds: float) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[list[Any]]] = defaultdict(list)
    for sample in samples:
        grouped[sample[0]].append(sample)
    routes = {}
    for route, found in sorted(grouped.items()):
        times = [sample[2] for sample in found]
        outcomes = Counter(sample[3] for sample in found)
        routes[route] = {
            "count": len(found), "ok": outcomes["ok"], "refused": outcomes["refused"], "errors": outcomes["error"],
            "serverErrors": sum(1 for sample in found if sample[1] >= 500),
            "errorRate": outcomes["error"] / len(found),
            "refusals": dict(Counter(sample[4] for sample in found if sample[3] == "refused")),
            "statuses": dict(Counter(str(sample[1]) for sample in found)),
            "p50": round(_percentile(times, 0.50), 1), "p99": round(_percentile(times, 0.99), 1),
            "perSecond": round(len(found) / seconds, 2),
        }
    return routes


class _ServerErrors(logging.Handler):
    """The API's logged errors (with their tracebacks) while the load runs: what a 5xx was."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[dict[str, Any]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        entry = {"message": record.getMessage(), "logger": record.name,
                 "traceback": logging.Formatter().formatException(record.exc_info) if record.exc_info else None}
        with self._guard:
            if len(self.records) < 20:
                self.records.append(entry)


def run_load(stack: Any, users_steps: tuple[int, ...] | list[int] = BENCH_STEPS,
             seconds_per_step: int = BENCH_SECONDS) -> dict[str, Any]:
    """The journey at each step of concurrency on the running stack (in this process), then the invariants."""
    from chalicelib.observability import logger

    plan = prepare(stack)
    server_errors = _ServerErrors()
    logger().addHandler(server_errors)
    steps, everything = [], {"orders": [], "members": [], "coupons": [], "appointments": []}
    try:
        with tempfile.TemporaryDirectory(prefix="siyu-load-") as workdir:
            for users in users_steps:
                recorded = _locust_step(plan, users, seconds_per_step, Path(workdir))
                for key in everything:
                    everything[key] += recorded[key]
                steps.append({"users": users, "seconds": seconds_per_step, "wallSeconds": recorded["wallSeconds"],
                              "journeys": recorded["journeys"], "routes": _by_route(recorded["samples"], seconds_per_step),
                              "errorExamples": recorded["errors"][:10]})
        checked = invariants(plan, everything)
    finally:
        logger().removeHandler(server_errors)
    return {"plan": {key: plan[key] for key in ("runId", "skuId", "campaignId", "scarceCampaignId", "days")},
            "steps": steps, "invariants": checked, "serverErrors": server_errors.records,
            "totals": {"orders": len(everything["orders"]), "members": len(everything["members"]),
                       "coupons": len(everything["coupons"]), "appointments": len(everything["appointments"])}}


# --- The invariants, read in DynamoDB and moto ------------------------------------------------------

def invariants(plan: dict[str, Any], seen: dict[str, list[Any]]) -> dict[str, Any]:
    """Each invariant: `{holds, ...details}`; `holds` over all of them under "all"."""
    found = {
        "coupons": _coupon_stock(plan, seen["coupons"]),
        "orders": _orders_where_left(seen["orders"]),
        "stock": _sku_stock(plan, seen["orders"]),
        "appointments": _slots_within_capacity(plan, seen["appointments"]),
        "points": _ledger(seen["members"]),
    }
    found["all"] = {"holds": all(part["holds"] for part in found.values())}
    return found


def _coupon_stock(plan: dict[str, Any], answered: list[dict[str, str]]) -> dict[str, Any]:
    from chalicelib.coupons.models import Coupon, StockShard

    campaigns = {}
    for campaign_id, stock in plan["stock"].items():
        shards = [int(shard.remaining) for shard in StockShard.query(campaign_id, consistent_read=True)]
        granted = {coupon.coupon_id for coupon in Coupon.scan(Coupon.campaign_id == campaign_id, consistent_read=True)}
        answered_here = {claim["couponId"] for claim in answered if claim["campaignId"] == campaign_id}
        campaigns[campaign_id] = {
            "stock": stock, "granted": len(granted), "remaining": sum(shards), "lowestShard": min(shards),
            "holds": len(granted) <= stock and min(shards) >= 0 and sum(shards) + len(granted) == stock
                     and granted == answered_here,
            "answeredButMissing": len(answered_here - granted), "grantedUnanswered": len(granted - answered_here),
        }
    return {"holds": all(campaign["holds"] for campaign in campaigns.values()), "campaigns": campaigns}


def _execution_at(order_id: str) -> tuple[str | None, str | None]:
    """(status, the last state entered) of the order's execution; (None, None) without one."""
    from chalicelib.aws import stepfunctions
    from chalicelib.orders import flow

    client = stepfunctions()
    try:
        status = client.describe_execution(executionArn=flow.execution_arn(order_id))["status"]
    except client.exceptions.ExecutionDoesNotExist:
        return None, None
    entered, arguments = None, {"executionArn": flow.execution_arn(order_id), "maxResults": 1000}
    while True:
        page = client.get_execution_history(**arguments)
        for event in page["events"]:
            if "stateEnteredEventDetails" in event:
                entered = event["stateEnteredEventDetails"]["name"]
        if not page.get("nextToken"):
            return status, entered
        arguments["nextToken"] = page["nextToken"]


def _order_problem(order: dict[str, Any]) -> dict[str, Any] | None:
    from chalicelib.orders.models import Order

    expected = {order["reached"]} | ({order["attempted"]} if order["attempted"] else set())
    status = Order.get(order["orderId"], consistent_read=True).status
    if status not in expected:
        return {"orderId": order["orderId"], "status": status, "expected": sorted(expected)}
    execution, entered = _execution_at(order["orderId"])
    if status == "pending_payment":
        return None if execution is None else {"orderId": order["orderId"], "execution": execution,
                                               "expected": "no execution for an unpaid order"}
    waiting = execution == "RUNNING" and entered == EXECUTION_AT[status]
    closed = status == "completed" and execution == "SUCCEEDED"
    if waiting or closed:
        return None
    return {"orderId": order["orderId"], "status": status, "execution": execution, "at": entered,
            "expected": EXECUTION_AT[status]}


def _orders_where_left(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Every order where its journey left it, and its execution waiting there (executions run on moto's
    threads, so a resumed one is given a little time to reach its next wait)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    pending = list(orders)
    while True:
        problems = [problem for order in pending if (problem := _order_problem(order))]
        if not problems or time.monotonic() > deadline:
            break
        ids = {problem["orderId"] for problem in problems}
        pending = [order for order in pending if order["orderId"] in ids]
        time.sleep(1)
    return {"holds": not problems, "orders": len(orders), "byState": dict(Counter(order["reached"] for order in orders)),
            "problems": problems[:10], "problemCount": len(problems)}


def _sku_stock(plan: dict[str, Any], orders: list[dict[str, Any]]) -> dict[str, Any]:
    from chalicelib.catalog import service as catalog

    stores = {}
    for store in plan["stores"]:
        here = [order for order in orders if order["storeId"] == store["storeId"]]
        collected = sum(1 for order in here if order["reached"] == "completed")
        open_orders = sum(1 for order in here if order["reached"] in OPEN_STATES)
        level = catalog.stock_level(store["storeId"], plan["skuId"])
        stores[store["storeId"]] = {
            "onHand": level["onHand"], "reserved": level["reserved"], "collected": collected, "open": open_orders,
            "holds": level["onHand"] == SKU_STOCK - collected and level["reserved"] == open_orders
                     and level["available"] >= 0,
        }
    return {"holds": all(store["holds"] for store in stores.values()), "stores": stores}


def _slots_within_capacity(plan: dict[str, Any], booked: list[dict[str, str]]) -> dict[str, Any]:
    from chalicelib import clock
    from chalicelib.appointments.models import BOOKED, CHECKED_IN, Appointment, SlotCounter

    problems, slots, seats = [], 0, 0
    answered = {booking["appointmentId"] for booking in booked}
    live: set[str] = set()
    for store in plan["stores"]:
        for day in plan["days"]:
            bookings: Counter[str] = Counter()
            for appointment in Appointment.by_store_day.query(f"{store['storeId']}#{day}"):
                if appointment.status in (BOOKED, CHECKED_IN):
                    live.add(appointment.appointment_id)
                    bookings[f"{appointment.service_id}#{appointment.start.astimezone(clock.SHANGHAI):%H:%M}"] += 1
            for counter in SlotCounter.query(f"{store['storeId']}#{SERVICE_ID}#{day}", consistent_read=True):
                slots += 1
                seats += int(counter.booked or 0)
                held = bookings.pop(f"{SERVICE_ID}#{counter.start}", 0)
                if int(counter.booked or 0) > SLOT_CAPACITY or int(counter.booked or 0) != held:
                    problems.append({"slot": f"{store['storeId']} {day} {counter.start}",
                                     "counter": int(counter.booked or 0), "bookings": held, "capacity": SLOT_CAPACITY})
            problems += [{"slot": f"{store['storeId']} {day} {key}", "counter": 0, "bookings": held}
                         for key, held in bookings.items()]
    missing = answered - live
    return {"holds": not problems and not missing, "slotsUsed": slots, "seatsTaken": seats,
            "bookingsAnswered": len(answered), "answeredButNotLive": len(missing), "problems": problems[:10]}


def _ledger(member_ids: list[str]) -> dict[str, Any]:
    from chalicelib.points import audit
    from chalicelib.usecases.audit import coupon_lock_breaches

    ledger = audit.audit(accounts=member_ids)
    locks = coupon_lock_breaches(member_ids)
    return {"holds": ledger["breaches"] == 0 and not locks, "accounts": ledger["checked"],
            "ledgerBreaches": ledger["breaches"], "examples": ledger.get("examples", [])[:5],
            "couponLockBreaches": locks[:5]}


# --- Reporting ----------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    lines = [HEADING, "",
             "Each member: login, `GET /stores` near a point, claim a coupon (plenty of stock) and one of a scarce "
             f"campaign ({SCARCE_STOCK} coupons over {SCARCE_SHARDS} shards), look at a store's slots and book one "
             f"({SLOT_CAPACITY} seats a slot), order one SKU for pickup with the coupon, pay through the sandbox "
             "(its signed notification to `/webhooks/wechatpay` must be applied: 204), then the clerk accepts, "
             "packs and hands over with the pickup code from `GET /orders/{orderId}`. Locust in a process of its "
             "own, the stack (API, DynamoDB Local, moto) in the bench's; 2 cores shared by both. Times in ms. "
             "Refusals (SOLD_OUT, SLOT_FULL, CLAIM_BUSY, TRY_AGAIN) are expected answers, not errors.", ""]
    for step in results["steps"]:
        journeys = step["journeys"]
        lines += [f"### {step['users']} users, {step['seconds']} s "
                  f"({journeys['finished']} journeys finished of {journeys['started']} started)", "",
                  "| route | count | req/s | p50 | p99 | refused | errors | error rate |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for route, figures in step["routes"].items():
            refused = ", ".join(f"{code} {count}" for code, count in figures["refusals"].items()) or "0"
            lines.append(f"| `{route}` | {figures['count']} | {figures['perSecond']} | {figures['p50']:.0f} | "
                         f"{figures['p99']:.0f} | {refused} | {figures['errors']} | {figures['errorRate']:.1%} |")
        lines.append("")
        for example in step["errorExamples"][:3]:
            lines.append(f"- error: `{example['method']} {example['path']}` answered {example['status']}: "
                         f"`{(example['problem'] or example['answer'])[:200]}`")
        if step["errorExamples"]:
            lines.append("")
    checked = results["invariants"]
    lines += ["### Invariants after the run", "", "| invariant | holds | detail |", "|---|---|---|"]
    for name, campaign in checked["coupons"]["campaigns"].items():
        lines.append(f"| coupons {name} | {_yes(campaign['holds'])} | granted {campaign['granted']} of "
                     f"{campaign['stock']}, remaining {campaign['remaining']}, lowest shard {campaign['lowestShard']}, "
                     f"granted = answered |")
    orders = checked["orders"]
    lines.append(f"| orders where their journey left them, executions waiting there | {_yes(orders['holds'])} | "
                 f"{orders['orders']} orders: " + ", ".join(f"{state} {count}" for state, count in
                                                          sorted(orders["byState"].items()))
                 + (f"; {orders['problemCount']} wrong, e.g. `{orders['problems'][0]}`" if orders["problems"] else "")
                 + " |")
    for store_id, store in checked["stock"]["stores"].items():
        lines.append(f"| stock {store_id} | {_yes(store['holds'])} | onHand {store['onHand']} = {SKU_STOCK} - "
                     f"{store['collected']} collected, reserved {store['reserved']} = {store['open']} open orders |")
    slots = checked["appointments"]
    lines.append(f"| appointment slots within capacity, counters = bookings | {_yes(slots['holds'])} | "
                 f"{slots['slotsUsed']} slots, {slots['seatsTaken']} seats, {slots['bookingsAnswered']} bookings answered |")
    points = checked["points"]
    lines.append(f"| points ledger and coupon locks | {_yes(points['holds'])} | {points['accounts']} accounts audited, "
                 f"{points['ledgerBreaches']} ledger breaches, {len(points['couponLockBreaches'])} lock breaches |")
    lines.append("")
    if results["serverErrors"]:
        lines += ["Errors the API logged during the run:", ""]
        lines += [f"- {error['message']}" for error in results["serverErrors"][:5]]
        lines.append("")
    return "\n".join(lines)


def _yes(holds: bool) -> str:
    return "yes" if holds else "**NO**"


def latency_series(results: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """p50 and p99 by concurrency, per route: `{"POST /orders p99": [(users, ms), ...], ...}`."""
    series: dict[str, list[tuple[int, float]]] = {}
    for step in results["steps"]:
        for route, figures in step["routes"].items():
            for which in ("p50", "p99"):
                series.setdefault(f"{route} {which}", []).append((step["users"], figures[which]))
    return dict(sorted(series.items()))


def plot(results: dict[str, Any], path: Path | str) -> Path:
    """p50 and p99 of each route by concurrency (bench.plots imports matplotlib only when it draws)."""
    from bench import plots

    return plots.lines(path, "Mixed journey: latency by concurrency", "concurrent users", "ms",
                       latency_series(results), logy=True)


def output_dir() -> Path:
    """The bench run's output directory (bench/out/, or bench/ itself for the tracked report)."""
    try:
        from bench import output_dir as bench_output_dir
    except ImportError:
        OUT.mkdir(parents=True, exist_ok=True)
        return OUT
    return bench_output_dir()


def save(results: dict[str, Any], name: str = "load.json") -> Path:
    target = output_dir() / name
    target.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    return target


def _steps_from_environment() -> tuple[tuple[int, ...], int]:
    steps = os.environ.get("SIYU_LOAD_STEPS")
    seconds = os.environ.get("SIYU_LOAD_SECONDS")
    return (tuple(int(users) for users in steps.split(",")) if steps else BENCH_STEPS,
            int(seconds) if seconds else BENCH_SECONDS)


def _figures(results: dict[str, Any]) -> None:
    import bench

    top = results["steps"][-1]
    routes = top["routes"]
    requests = sum(figures["count"] for figures in routes.values())
    errors = sum(figures["errors"] for figures in routes.values())
    # The sandbox's payment answers once siyu's webhook has taken its notification: not a route of ours.
    ours = [route for route in routes if " /sandbox/" not in route]
    slowest = max(ours, key=lambda route: routes[route]["p99"])
    bench.figure(f"load, {top['users']} users: p50 / p99 of the slowest API route (`{slowest}`)",
                 f"{routes[slowest]['p50']:.0f} / {routes[slowest]['p99']:.0f} ms")
    bench.figure(f"load, {top['users']} users: error rate over {requests:,} requests", f"{errors / requests:.2%}",
                 "0", errors == 0)
    bench.figure("load: every invariant after the run", "holds" if results["invariants"]["all"]["holds"] else "broken",
                 "holds", results["invariants"]["all"]["holds"])


def run(stack: Any) -> str:
    """The bench section (`SIYU_LOAD_STEPS=2,4,8` and `SIYU_LOAD_SECONDS=10` make it shorter)."""
    steps, seconds = _steps_from_environment()
    results = run_load(stack, steps, seconds)
    _figures(results)
    data = save(results)
    picture = plot(results, data.with_suffix(".png"))
    return markdown(results) + f"\n![p50 and p99 by concurrency]({picture.name})\n\nData: `{data.name}`.\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.load [--soak] [--steps 4,8,16] [--seconds 60]` on a stack of its own."""
    from local.dynamodb_local import free_port
    from local.stack import Stack

    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--soak", action="store_true", help=f"steps {SOAK_STEPS} of {SOAK_SECONDS} s each")
    parser.add_argument("--steps", help="users at each step, comma-separated")
    parser.add_argument("--seconds", type=int, help="seconds of each step")
    options = parser.parse_args(argv)
    steps = SOAK_STEPS if options.soak else BENCH_STEPS
    seconds = SOAK_SECONDS if options.soak else BENCH_SECONDS
    if options.steps:
        steps = tuple(int(users) for users in options.steps.split(","))
    seconds = options.seconds or seconds
    stack = Stack(api_port=free_port(), sandbox_port=free_port(), table_prefix=f"load{os.getpid()}-", seed=False)
    stack.start()
    try:
        results = run_load(stack, steps, seconds)
    finally:
        stack.stop()
    data = save(results, "soak.json" if options.soak else "load.json")
    plot(results, data.with_suffix(".png"))
    print(markdown(results))
    return 0 if results["invariants"]["all"]["holds"] and not any(
        figures["errors"] for step in results["steps"] for figures in step["routes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
