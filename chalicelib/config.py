"""Settings: one validated model per process, read lazily from the environment.

Chalice writes each stage's `environment_variables` (see `.chalice/config.json`)
into the Lambda environment; offline, `local/` sets the same variables. Secrets
are never in the environment on AWS: only the names of their SSM parameters are.

Outside the `local` stage the first read (in the first invocation of a cold
container) refuses demo values and secrets given as plain variables: every
request then fails, and one log line names the settings (never their values).
"""

from __future__ import annotations

import functools
import time
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, ValidationError

__all__ = [
    "Settings", "SettingsError", "MissingSecretError",
    "settings", "read_settings", "reset_settings", "secret", "optional_secret",
]

LOCAL = "local"


def _demo(value: str) -> Any:
    """A default that only the local stage may run with."""
    return Field(default=value, json_schema_extra={"demo": True})


class SettingsError(ValueError):
    """Settings a stage must not run with; names the settings, never their values."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("settings refused: " + "; ".join(f"{name} {why}" for name, why in self.problems.items()))


class MissingSecretError(RuntimeError):
    """A secret whose SSM parameter is not named or cannot be read."""


class Settings(BaseModel):
    stage: str = "local"
    region: str = "us-east-1"
    table_prefix: str = "siyu-local-"
    # Only set offline: DynamoDB Local and moto endpoints.
    dynamodb_endpoint: str | None = None
    aws_endpoint: str | None = None

    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_appid: str = _demo("wx-demo-appid")
    wechat_secret: str | None = None
    wechat_secret_parameter: str | None = None

    token_signing_key: str | None = None
    token_signing_key_parameter: str | None = None
    # The key before the last rotation: its tokens stay valid until they expire.
    token_signing_key_previous: str | None = None
    token_signing_key_previous_parameter: str | None = None
    token_ttl_seconds: int = Field(default=7200, gt=0)
    # Derives lookup keys for phone numbers so the key alone reveals nothing; the previous
    # key is set while identities are re-keyed after a rotation (chalicelib.members.lookup).
    lookup_hash_key: str | None = None
    lookup_hash_key_parameter: str | None = None
    lookup_hash_key_previous: str | None = None
    lookup_hash_key_previous_parameter: str | None = None

    # Signs the coupon codes members show at the store's scanner.
    coupon_code_key: str | None = None
    coupon_code_key_parameter: str | None = None
    coupon_code_ttl_seconds: int = Field(default=300, gt=0, le=300)

    # WeChat Pay APIv3, as an ordinary merchant verifying with WeChat Pay's public key
    # (chalicelib.wechat.pay). The public key is not secret, but it decides which
    # notifications are believed, so it comes from SSM like the keys.
    wxpay_api_base: str = "https://api.mch.weixin.qq.com"
    wxpay_mchid: str = _demo("1900000001")
    # The serial number of the merchant API certificate whose private key signs our requests.
    wxpay_merchant_serial: str = _demo("sandbox-merchant-serial")
    wxpay_merchant_key: str | None = None
    wxpay_merchant_key_parameter: str | None = None
    wxpay_apiv3_key: str | None = None
    wxpay_apiv3_key_parameter: str | None = None
    wxpay_public_key: str | None = None
    wxpay_public_key_parameter: str | None = None
    wxpay_public_key_id: str = _demo("PUB_KEY_ID_0000000000000000000000000000")
    wxpay_notify_url: str = _demo("https://example.invalid/webhooks/wechatpay")

    # Message push (消息推送): the token WeChat signs with and the key it encrypts events with.
    wechat_push_token: str | None = None
    wechat_push_token_parameter: str | None = None
    wechat_push_aes_key: str | None = None
    wechat_push_aes_key_parameter: str | None = None

    # Couriers (chalicelib.couriers). Dada's open platform signs requests with the app secret.
    dada_api_base: str = "https://newopen.imdada.cn"
    dada_app_key: str = _demo("dada-demo-app-key")
    dada_app_secret: str | None = None
    dada_app_secret_parameter: str | None = None
    dada_source_id: str = _demo("73753")
    dada_callback_url: str = _demo("https://example.invalid/webhooks/courier/dada")
    # WeChat instant delivery: the shop registered with the delivery company, and its secret.
    wechat_delivery_shopid: str = _demo("wx-demo-shop")
    wechat_delivery_id: str = "SFTC"
    wechat_delivery_app_secret: str | None = None
    wechat_delivery_app_secret_parameter: str | None = None
    # WeChat's logistics service: the express company and the brand's account with it.
    express_delivery_id: str = "SF"
    express_biz_id: str = _demo("demo-biz-id")

    guide_binding_days: int = Field(default=90, gt=0)
    idempotency_ttl_seconds: int = Field(default=86400, gt=0)

    template_appointment_reminder: str = _demo("tpl-appointment-reminder")
    template_order_status: str = _demo("tpl-order-status")
    template_coupon_expiry: str = _demo("tpl-coupon-expiry")
    template_points_expiry: str = _demo("tpl-points-expiry")

    state_machine_arn: str | None = None
    segmented_machine_arn: str | None = None

    def table_name(self, table: str) -> str:
        return f"{self.table_prefix}{table}"

    def subscription_templates(self) -> dict[str, str]:
        return {
            "appointmentReminder": self.template_appointment_reminder,
            "orderStatus": self.template_order_status,
            "couponExpiry": self.template_coupon_expiry,
            "pointsExpiry": self.template_points_expiry,
        }


_ENV_PREFIX = "SIYU_"


def _variable(name: str) -> str:
    return _ENV_PREFIX + name.upper()


def _secret_names() -> list[str]:
    """Every secret setting: the ones that also have a `<name>_parameter`."""
    return [name for name in Settings.model_fields if f"{name}_parameter" in Settings.model_fields]


def _deployed_problems(given: Mapping[str, str]) -> dict[str, str]:
    problems = {}
    for name, field in Settings.model_fields.items():
        if (field.json_schema_extra or {}).get("demo") and given.get(name, field.default) in (field.default, ""):
            problems[name] = f"is missing or the demo value: set {_variable(name)}"
    for name in _secret_names():
        if given.get(name):
            problems[name] = f"is a plain environment variable: name its SSM parameter in {_variable(name)}_PARAMETER"
    return problems


def read_settings(environ: Mapping[str, str]) -> Settings:
    """The settings an environment describes; SettingsError if its stage must not run with them."""
    values = {name: environ[_variable(name)] for name in Settings.model_fields if _variable(name) in environ}
    values.setdefault("region", environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    try:
        current = Settings(**values)
    except ValidationError as exc:
        # Pydantic's own message quotes the input, which may be a secret.
        raise SettingsError({".".join(map(str, e["loc"])): e["msg"] for e in exc.errors()}) from None
    if current.stage != LOCAL and (problems := _deployed_problems(values)):
        raise SettingsError(problems)
    return current


@functools.cache
def _report_once(event: str, **fields: str) -> None:
    from chalicelib.observability import logger

    logger().critical(event, extra=fields)


@functools.cache
def settings() -> Settings:
    try:
        return read_settings(os.environ)
    except SettingsError as error:
        _report_once("settings refused", settings=", ".join(error.problems), problems=str(error))
        raise


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    settings.cache_clear()
    _report_once.cache_clear()
    _absent_until.clear()


def secret(name: str) -> str:
    """A secret setting: its value offline, its SSM SecureString otherwise (settings refuse a plain one there)."""
    current = settings()
    value = getattr(current, name)
    if value:
        return value
    parameter = getattr(current, f"{name}_parameter")
    if not parameter:
        _report_once("secret missing", setting=name, problem=f"neither {_variable(name)} nor its _PARAMETER is set")
        raise MissingSecretError(f"setting {name} has neither a value nor an SSM parameter")
    value = _parameter(parameter)
    if value is None:
        _report_once("secret missing", setting=name, problem=f"SSM parameter {parameter} cannot be read")
        raise MissingSecretError(f"setting {name}: SSM parameter {parameter} cannot be read")
    return value


def optional_secret(name: str) -> str | None:
    """A secret that may be absent (a previous key outside a rotation): None when it is not set or its parameter does not exist."""
    current = settings()
    value = getattr(current, name)
    parameter = getattr(current, f"{name}_parameter")
    return value or (_parameter(parameter) if parameter else None)


_PARAMETER_MAX_AGE = 300
_absent_until: dict[str, float] = {}


def _parameter(name: str) -> str | None:
    """The parameter's value, None if it cannot be read; both remembered for a while, so neither costs a call per request."""
    from aws_lambda_powertools.utilities import parameters

    if _absent_until.get(name, 0.0) > time.monotonic():
        return None
    try:
        # Powertools caches the value for max_age, so a rotated key is picked up.
        return parameters.get_parameter(name, decrypt=True, max_age=_PARAMETER_MAX_AGE)
    except parameters.exceptions.GetParameterError:
        _absent_until[name] = time.monotonic() + _PARAMETER_MAX_AGE
        return None
