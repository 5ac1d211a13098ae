"""Settings: one validated model per process, read lazily from the environment.

Chalice writes each stage's `environment_variables` (see `.chalice/config.json`)
into the Lambda environment; offline, `local/` sets the same variables. Secrets
are never in the environment on AWS: only the names of their SSM parameters are.
"""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, Field

__all__ = ["Settings", "settings", "reset_settings", "secret"]


class Settings(BaseModel):
    stage: str = "local"
    region: str = "us-east-1"
    table_prefix: str = "siyu-local-"
    # Only set offline: DynamoDB Local and moto endpoints.
    dynamodb_endpoint: str | None = None
    aws_endpoint: str | None = None

    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_appid: str = "wx-demo-appid"
    wechat_secret: str | None = None
    wechat_secret_parameter: str | None = None

    token_signing_key: str | None = None
    token_signing_key_parameter: str | None = None
    # The key before the last rotation: its tokens stay valid until they expire.
    token_signing_key_previous: str | None = None
    token_signing_key_previous_parameter: str | None = None
    token_ttl_seconds: int = Field(default=7200, gt=0)
    # Derives lookup keys for phone numbers so the key alone reveals nothing.
    lookup_hash_key: str | None = None
    lookup_hash_key_parameter: str | None = None

    # Signs the coupon codes members show at the store's scanner.
    coupon_code_key: str | None = None
    coupon_code_key_parameter: str | None = None
    coupon_code_ttl_seconds: int = Field(default=300, gt=0, le=300)

    guide_binding_days: int = Field(default=90, gt=0)
    idempotency_ttl_seconds: int = Field(default=86400, gt=0)

    template_appointment_reminder: str = "tpl-appointment-reminder"
    template_order_status: str = "tpl-order-status"
    template_coupon_expiry: str = "tpl-coupon-expiry"
    template_points_expiry: str = "tpl-points-expiry"

    state_machine_arn: str | None = None

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


@functools.cache
def settings() -> Settings:
    values = {
        name: os.environ[_ENV_PREFIX + name.upper()]
        for name in Settings.model_fields
        if _ENV_PREFIX + name.upper() in os.environ
    }
    values.setdefault("region", os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    return Settings(**values)


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    settings.cache_clear()


def secret(name: str) -> str:
    """A secret setting: its value offline, its SSM SecureString on AWS."""
    current = settings()
    value = getattr(current, name)
    if value:
        return value
    parameter = getattr(current, f"{name}_parameter")
    if not parameter:
        raise RuntimeError(f"setting {name} has neither a value nor an SSM parameter")
    from aws_lambda_powertools.utilities import parameters

    # Powertools caches the value for max_age, so a rotated key is picked up.
    return parameters.get_parameter(parameter, decrypt=True, max_age=300)
