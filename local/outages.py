"""Partner outages the sandbox plays on demand: WeChat Pay, Dada and WeChat's courier APIs failing as they do.

`POST /sandbox/outage` with `{"service": "wxpay" | "dada" | "wechat-express",
"kind": "unavailable" | "slow", "times": n, "path": "/v3/refund"}`:

    unavailable  the request is not handled; the answer is a 5xx in the
                 service's own shape (WeChat Pay 500 SYSTEM_ERROR, Dada's
                 gateway 502, WeChat's -1 "system busy")
    slow         the request is handled (a refund is made, a courier sent),
                 then the answer waits past every client's 5 s read timeout:
                 the caller cannot tell whether it happened

`times` limits it to the next n matching requests (unlimited when absent);
`path` narrows the service's paths to those starting with it. Each POST adds
one outage; `DELETE /sandbox/outage` ends them all; `GET` lists them with the
requests each has met.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, g, jsonify, request

__all__ = ["register", "SERVICES", "SLOW_SECONDS"]

SERVICES = {
    "wxpay": ("/v3/",),
    "dada": ("/api/",),
    "wechat-express": ("/cgi-bin/express/", "/wxa/sec/order/"),
}
KINDS = ("unavailable", "slow")
# Beyond the 5 s read timeout of chalicelib/wechat/pay.py, couriers/dada.py and wechat/client.py.
SLOW_SECONDS = 5.5


@dataclass
class Outage:
    service: str
    kind: str
    path: str
    times: int | None
    met: int = 0

    def matches(self, path: str) -> bool:
        return (any(path.startswith(prefix) for prefix in SERVICES[self.service])
                and path.startswith(self.path) and (self.times is None or self.met < self.times))

    def view(self) -> dict[str, Any]:
        return {"service": self.service, "kind": self.kind, "path": self.path, "times": self.times, "met": self.met}


@dataclass
class Outages:
    active: list[Outage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def meet(self, path: str) -> Outage | None:
        with self.lock:
            outage = next((found for found in self.active if found.matches(path)), None)
            if outage is not None:
                outage.met += 1
            return outage


def _unavailable(service: str) -> Any:
    if service == "wxpay":
        return jsonify({"code": "SYSTEM_ERROR", "message": "系统错误"}), 500
    if service == "dada":
        return "<html><body><h1>502 Bad Gateway</h1></body></html>", 502, {"Content-Type": "text/html"}
    return jsonify({"errcode": -1, "errmsg": "system error"}), 503


def _parsed(body: Any) -> Outage | str:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    service, kind, path, times = body.get("service"), body.get("kind"), body.get("path", ""), body.get("times")
    if service not in SERVICES:
        return f"service: one of {sorted(SERVICES)}"
    if kind not in KINDS:
        return f"kind: one of {list(KINDS)}"
    if not isinstance(path, str):
        return "path: a string"
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        return "times: a positive integer"
    return Outage(service, kind, path, times)


def register(app: Flask) -> Outages:
    """The outage routes and the hooks that play them; register before the services' own hooks."""
    outages = Outages()

    @app.before_request
    def outage_refuses() -> Any:
        outage = outages.meet(request.path)
        if outage is None:
            return None
        if outage.kind == "unavailable":
            return _unavailable(outage.service)
        g.slow_answer = True
        return None

    @app.after_request
    def outage_delays(response: Any) -> Any:
        if g.pop("slow_answer", False):
            time.sleep(SLOW_SECONDS)
        return response

    @app.post("/sandbox/outage")
    def begin_outage() -> Any:
        outage = _parsed(request.get_json(force=True, silent=True))
        if isinstance(outage, str):
            return jsonify({"code": "INVALID_REQUEST", "message": outage}), 400
        with outages.lock:
            outages.active.append(outage)
        return jsonify(outage.view())

    @app.get("/sandbox/outage")
    def list_outages() -> Any:
        with outages.lock:
            return jsonify({"items": [outage.view() for outage in outages.active]})

    @app.delete("/sandbox/outage")
    def end_outages() -> Any:
        with outages.lock:
            ended = len(outages.active)
            outages.active.clear()
        return jsonify({"ended": ended})

    return outages
