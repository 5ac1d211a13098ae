"""A deployed stage as the template needs it: .chalice/config.json, plus the operating limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROJECT", "CHALICE_CONFIG", "Stage", "stage_environment", "load_stage"]

PROJECT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = PROJECT / ".chalice" / "config.json"


@dataclass(frozen=True)
class Limits:
    log_retention_days: int
    # API Gateway stage throttling, for every method: requests per second, and the bucket above it.
    api_rate: int
    api_burst: int


# prod keeps a year of logs: a points or coupon dispute comes back months later.
# Its API limits sit above a launch at 56x a normal day's peak for a brand of
# 10 million members (about 4,000 requests a second, bench/capacity.py; set them
# from the brand's own numbers), yet a flood they let through needs about 500
# concurrent API handlers (at ~100 ms a request), half a region's default Lambda
# quota, and stays under the account's 10,000 a second.
_LIMITS = {
    "prod": Limits(log_retention_days=365, api_rate=5000, api_burst=10000),
}
_DEFAULT_LIMITS = Limits(log_retention_days=30, api_rate=50, api_burst=100)


@dataclass(frozen=True)
class Stage:
    name: str
    environment: dict[str, str]
    traced: bool
    api_stage: str
    limits: Limits

    @property
    def table_prefix(self) -> str:
        return self.environment["SIYU_TABLE_PREFIX"]

    def parameter(self, setting: str) -> str:
        """The SSM parameter name of a secret setting (`wechat_secret`) in this stage."""
        return self.environment[f"SIYU_{setting.upper()}_PARAMETER"]

    def resource_name(self, name: str) -> str:
        """`siyu-<stage>-<name>`: functions, queues, topics and alarms of a stage."""
        return f"siyu-{self.name}-{name}"


def _config(config_path: Path) -> dict:
    return json.loads(config_path.read_text(encoding="utf-8"))


def stage_environment(stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The environment Chalice gives the stage's functions (top level, then the stage)."""
    config = _config(config_path)
    if stage not in config.get("stages", {}):
        raise ValueError(f"{config_path} has no stage {stage!r}")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def load_stage(stage: str, config_path: Path = CHALICE_CONFIG) -> Stage:
    config = _config(config_path)
    environment = stage_environment(stage, config_path)
    prefix = environment.get("SIYU_TABLE_PREFIX")
    if prefix != f"siyu-{stage}-":
        raise ValueError(f"stage {stage}: SIYU_TABLE_PREFIX must be 'siyu-{stage}-', not {prefix!r}")
    settings = config["stages"][stage]
    return Stage(
        name=stage,
        environment=environment,
        traced=bool(settings.get("xray", config.get("xray", False))),
        api_stage=settings.get("api_gateway_stage", config.get("api_gateway_stage", "api")),
        limits=_LIMITS.get(stage, _DEFAULT_LIMITS),
    )
