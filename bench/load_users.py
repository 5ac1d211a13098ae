"""The locustfile of `bench.load`: members walking the mixed journey, the store's clerk serving them.

Locust runs this in a process of its own (`bench.load` starts it): importing
locust monkey-patches sockets and threads for gevent, which must never happen
in the process that holds the stack (moto's executions and the API's workers
are real threads). The plan (`SIYU_LOAD_PLAN`, a JSON file written by
`bench.load.prepare`) names the API, the sandbox, the stores with their
clerks' tokens, the SKU and the campaigns; what every request answered is
written to the plan's `out` path when locust quits.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any

from locust import HttpUser, between, events, task

PLAN: dict[str, Any] = json.loads(open(os.environ["SIYU_LOAD_PLAN"], encoding="utf-8").read())

# route, status, milliseconds, outcome (ok, refused, error), error code
samples: list[tuple[str, int, float, str, str | None]] = []
errors: list[dict[str, Any]] = []
orders: list[dict[str, Any]] = []
members: list[str] = []
coupons: list[dict[str, str]] = []
appointments: list[dict[str, str]] = []
journeys = {"started": 0, "finished": 0}

ERRORS_KEPT = 30


class Refused(Exception):
    """The journey cannot go on (an error, or a refusal that leaves it nothing to do)."""


class Member(HttpUser):
    """A new member each journey: login, stores, coupons, a booking, a pickup order paid and collected."""

    host = PLAN["apiUrl"]
    wait_time = between(0.0, 0.2)

    def call(self, method: str, path: str, route: str, *, token: str | None = None, body: Any = None,
             params: dict[str, Any] | None = None, refusals: tuple[str, ...] = (), url: str | None = None,
             check: Any = None) -> tuple[str, Any]:
        """(outcome, answer body) of one request; anything but a 200 or an expected refusal is an error."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        with self.client.request(method, url or path, name=route, headers=headers, json=body, params=params,
                                 catch_response=True) as response:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            code = answer.get("code") if isinstance(answer, dict) else None
            problem = check(answer) if check and response.status_code == 200 else None
            if response.status_code == 200 and not problem:
                outcome = "ok"
                response.success()
            elif response.status_code == 409 and code in refusals:
                outcome = "refused"
                response.success()
            else:
                outcome = "error"
                response.failure(problem or f"{response.status_code} {code}")
                if len(errors) < ERRORS_KEPT:
                    errors.append({"route": route, "method": method, "path": path, "body": body,
                                   "status": response.status_code, "answer": (response.text or "")[:500],
                                   "problem": problem, "at": time.time()})
            samples.append((route, response.status_code, float(response.request_meta["response_time"]),
                            outcome, code))
        return outcome, answer

    def must(self, *args: Any, **kwargs: Any) -> Any:
        outcome, answer = self.call(*args, **kwargs)
        if outcome != "ok":
            raise Refused(outcome)
        return answer

    @task
    def journey(self) -> None:
        journeys["started"] += 1
        try:
            self.walk()
        except Refused:
            return
        journeys["finished"] += 1

    def walk(self) -> None:
        login = self.must("POST", "/auth/login", "POST /auth/login", body={"code": f"dev:load-{uuid.uuid4().hex}"})
        token, member_id = login["token"], login["member"]["memberId"]
        members.append(member_id)

        near = PLAN["near"]
        found = self.must("GET", "/stores", "GET /stores", params={"lat": near["lat"], "lng": near["lng"],
                                                                    "radiusKm": near["radiusKm"]})
        ours = {store["storeId"]: store for store in PLAN["stores"]}
        listed = [item["storeId"] for item in found["items"] if item["storeId"] in ours]
        if not listed:
            raise Refused("none of the load's stores is listed near its point")
        store = ours[random.choice(listed)]

        coupon_id = self.claim(token, member_id, PLAN["campaignId"])
        self.claim(token, member_id, PLAN["scarceCampaignId"])
        self.book(token, store)
        self.order(token, member_id, store, coupon_id)

    def claim(self, token: str, member_id: str, campaign_id: str) -> str | None:
        outcome, answer = self.call("POST", f"/coupons/campaigns/{campaign_id}/claim",
                                    "POST /coupons/campaigns/{campaignId}/claim", token=token,
                                    refusals=("SOLD_OUT", "CLAIM_BUSY"))
        if outcome == "error":
            raise Refused(outcome)
        if outcome == "ok":
            coupons.append({"memberId": member_id, "campaignId": campaign_id, "couponId": answer["couponId"]})
            return answer["couponId"]
        return None

    def book(self, token: str, store: dict[str, Any]) -> None:
        day = random.choice(PLAN["days"])
        slots = self.must("GET", f"/stores/{store['storeId']}/slots", "GET /stores/{storeId}/slots",
                          params={"serviceId": PLAN["serviceId"], "date": day})["slots"]
        free = [slot for slot in slots if slot["remaining"] > 0] or [slot for slot in slots
                                                                      if slot["status"] != "closed"]
        if not free:
            return
        body = {"storeId": store["storeId"], "serviceId": PLAN["serviceId"], "start": random.choice(free)["start"]}
        outcome, answer = self.call("POST", "/appointments", "POST /appointments", token=token, body=body,
                                    refusals=("SLOT_FULL", "TRY_AGAIN"))
        if outcome == "error":
            raise Refused(outcome)
        if outcome == "ok":
            appointments.append({"appointmentId": answer["appointmentId"], "storeId": store["storeId"], "day": day})

    def order(self, token: str, member_id: str, store: dict[str, Any], coupon_id: str | None) -> None:
        body: dict[str, Any] = {"items": [{"skuId": PLAN["skuId"], "qty": 1}],
                                "fulfillment": {"mode": "pickup", "storeId": store["storeId"]}}
        if coupon_id:
            body["couponId"] = coupon_id
        created = self.must("POST", "/orders", "POST /orders", token=token, body=body)
        order = {"orderId": created["orderId"], "memberId": member_id, "storeId": store["storeId"],
                 "couponId": coupon_id, "reached": "pending_payment", "attempted": None}
        orders.append(order)
        order_id, staff = order["orderId"], store["staffToken"]

        def step(state: str, *args: Any, **kwargs: Any) -> Any:
            order["attempted"] = state
            answer = self.must(*args, **kwargs)
            order["reached"], order["attempted"] = state, None
            return answer

        step("paid", "POST", "/sandbox/wxpay/pay", "POST /sandbox/wxpay/pay", url=f"{PLAN['sandboxUrl']}/sandbox/wxpay/pay",
             body={"orderId": order_id}, check=notified)
        step("accepted", "POST", f"/store/orders/{order_id}/accept", "POST /store/orders/{orderId}/accept", token=staff)
        step("ready", "POST", f"/store/orders/{order_id}/ready", "POST /store/orders/{orderId}/ready", token=staff)
        seen = self.must("GET", f"/orders/{order_id}", "GET /orders/{orderId}", token=token, check=has_pickup_code)
        step("completed", "POST", f"/store/orders/{order_id}/pickup", "POST /store/orders/{orderId}/pickup", token=staff,
             body={"pickupCode": seen["fulfillment"]["pickupCode"]})


def notified(answer: Any) -> str | None:
    """The sandbox answers 200 whatever the API said to its notification: the API must have applied it (204)."""
    status = answer.get("apiStatus") if isinstance(answer, dict) else None
    return None if status == 204 else f"the payment notification was answered {status}"


def has_pickup_code(answer: Any) -> str | None:
    code = ((answer or {}).get("fulfillment") or {}).get("pickupCode")
    return None if code else "a packed pickup order shows its member no pickup code"


@events.quitting.add_listener
def _write_what_happened(environment: Any, **_: Any) -> None:
    with open(PLAN["out"], "w", encoding="utf-8") as out:
        json.dump({"samples": samples, "errors": errors, "orders": orders, "members": members, "coupons": coupons,
                   "appointments": appointments, "journeys": journeys}, out)
