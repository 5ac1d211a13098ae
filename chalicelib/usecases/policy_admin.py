"""HQ's view and changes of the brand's policy: tiers and earning rules, order windows and
timeouts, guide attribution and commission rates; every change recorded (chalicelib.policy)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib import clock, policy
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.guides import config as guides
from chalicelib.orders import config as orders
from chalicelib.points import config as points

__all__ = ["SECTIONS", "current", "change", "changes"]

# section -> (its model, the environment variable a stage overrides it with)
SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "points": (points.PointsConfig, points.CONFIG_ENV),
    "orders": (orders.OrdersConfig, orders.CONFIG_ENV),
    "guides": (guides.GuidesConfig, guides.CONFIG_ENV),
}


def _section(name: str) -> tuple[type[BaseModel], str]:
    if name not in SECTIONS:
        raise NotFoundError(f"no policy section {name!r}: one of {', '.join(SECTIONS)}")
    return SECTIONS[name]


def _view(name: str, policy_now: BaseModel, version: int) -> dict[str, Any]:
    return {"section": name, "version": version, "policy": policy_now.model_dump(mode="json")}


def current(name: str) -> dict[str, Any]:
    model, env_variable = _section(name)
    version, _ = policy.stored(name, fresh=True)
    return _view(name, policy.effective(name, model, env_variable), version)


def change(name: str, overrides: dict[str, Any], expected_version: int, changed_by: str) -> dict[str, Any]:
    """Change some top-level settings of a section; the whole policy is checked before it is stored."""
    model, env_variable = _section(name)
    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        raise InvalidRequestError(f"overrides.{unknown[0]}", f"is not a setting of the {name} policy")
    try:
        changed, version = policy.change(name, model, env_variable, overrides,
                                         expected_version=expected_version, changed_by=changed_by)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidRequestError(f"overrides.{where}" if where else "overrides", problem["msg"]) from exc
    return _view(name, changed, version)


def changes(name: str, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    _section(name)
    page, position = policy.changes(name, limit, cursor)
    return {
        "items": [
            {"version": int(item.version), "changedBy": item.changed_by, "changedAt": clock.iso(item.changed_at),
             "before": json.loads(item.before), "after": json.loads(item.after)}
            for item in page
        ],
        "nextCursor": position,
    }
