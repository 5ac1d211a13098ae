"""Couriers behind one interface: dispatch a parcel, ask about it, read what it reports.

One module per courier: `dada` (达达, callbacks it cannot sign), `wechat`
(WeChat instant delivery, 即时配送, reporting through message push) and
`express` (WeChat's logistics service, 物流助手, for the warehouse's parcels).
Each speaks its own wire format and maps its statuses onto the few an order
moves by:

    dispatched -> accepted -> picked_up -> delivered       cancelled ends one dispatch

A dispatch is known by its `ref`, our id of it at the courier (`<orderId>-<n>`
for the order's n-th dispatch), so a report about a dispatch that a
re-dispatch replaced is told apart from one about the current one.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.errors import UpstreamUnavailableError

__all__ = [
    "FORWARD", "CANCELLED", "NAMES", "rank", "Place", "Parcel", "Waybill", "Report",
    "CourierError", "CallbackRejected", "Courier", "courier", "post_to_wechat", "from_timestamp",
]

FORWARD = ("dispatched", "accepted", "picked_up", "delivered")
CANCELLED = "cancelled"
NAMES = ("dada", "wechat", "express")
_MODULES = {"dada": "chalicelib.couriers.dada", "wechat": "chalicelib.couriers.wechat_delivery",
            "express": "chalicelib.couriers.express"}


def rank(status: str) -> int:
    """A status's place in FORWARD: a report moves a dispatch only to a higher one (cancelled is not ranked)."""
    return FORWARD.index(status)


@dataclass(frozen=True)
class Place:
    name: str
    phone: str
    address: str
    lat: float
    lng: float


@dataclass(frozen=True)
class Parcel:
    ref: str
    order_id: str
    shop_no: str  # the store id: stores are registered at the courier under their own ids
    sender: Place
    receiver: Place
    value_fen: int
    description: str
    openid: str


@dataclass(frozen=True)
class Waybill:
    courier: str
    ref: str
    waybill_id: str
    fee_fen: int | None = None


@dataclass(frozen=True)
class Report:
    courier: str
    ref: str
    status: str  # one of FORWARD, or CANCELLED
    code: str  # the courier's own status
    at: dt.datetime
    waybill_id: str | None = None
    rider_name: str | None = None
    rider_phone: str | None = None


class CourierError(UpstreamUnavailableError):
    """The courier refused the request or could not be reached; the task asking is retried."""

    def __init__(self, courier: str, detail: str) -> None:
        super().__init__(f"{courier}: {detail}")


class CallbackRejected(Exception):
    """A callback malformed or mis-signed; the message says which."""


class Courier(Protocol):
    name: str

    def dispatch(self, parcel: Parcel) -> Waybill: ...

    def query(self, ref: str) -> Report | None: ...


def courier(name: str) -> Courier:
    """The courier called `name` (KeyError for any other)."""
    return importlib.import_module(_MODULES[name]).COURIER


def post_to_wechat(courier: str, path: str, payload: dict[str, Any], not_found: int) -> dict[str, Any]:
    """A WeChat delivery API called with the app's access token; `{"errcode": not_found}` when the order is unknown."""
    from chalicelib.wechat import client

    try:
        return client.call_with_token(path, payload)
    except client.WechatError as exc:
        if exc.errcode == not_found:
            return {"errcode": not_found}
        raise CourierError(courier, f"answered errcode {exc.errcode}") from exc


def from_timestamp(seconds: int | float | str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc)
