"""Settings: a deployed stage refuses demo values and plain secrets; local runs as it always has."""

from __future__ import annotations

import json

import pytest

from chalicelib import config
from chalicelib.config import MissingSecretError, SettingsError, read_settings

TEMPLATES = ("template_appointment_reminder", "template_order_status", "template_coupon_expiry", "template_points_expiry")


def _deployed(stage: str, **overrides: str) -> dict[str, str]:
    environ = {
        "SIYU_STAGE": stage,
        "SIYU_TABLE_PREFIX": f"siyu-{stage}-",
        "SIYU_WECHAT_APPID": "wx5f1c2a9e7d3b4c60",
        **{f"SIYU_{name.upper()}": f"Kq3{name[9:13]}Zx81vTfQm0aLrW" for name in TEMPLATES},
        "SIYU_WXPAY_MCHID": "1612345678",
        "SIYU_WXPAY_MERCHANT_SERIAL": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "SIYU_WXPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0116123456782025120300000000000001",
        "SIYU_WXPAY_NOTIFY_URL": f"https://api.{stage}.siyu.example.cn/webhooks/wechatpay",
        "SIYU_DADA_APP_KEY": "dada8f1c2a9e7d3b4c60", "SIYU_DADA_SOURCE_ID": "1432021",
        "SIYU_DADA_CALLBACK_URL": f"https://api.{stage}.siyu.example.cn/webhooks/courier/dada",
        "SIYU_WECHAT_DELIVERY_SHOPID": "122877712", "SIYU_EXPRESS_BIZ_ID": "siyu_sf_021",
        **{
            f"SIYU_{name.upper()}_PARAMETER": f"/siyu/{stage}/{name.replace('_', '-')}"
            for name in ("wechat_secret", "token_signing_key", "lookup_hash_key", "coupon_code_key",
                         "wxpay_merchant_key", "wxpay_apiv3_key", "wxpay_public_key", "wechat_push_token",
                         "wechat_push_aes_key", "dada_app_secret", "wechat_delivery_app_secret")
        },
    }
    environ.update(overrides)
    return {name: value for name, value in environ.items() if value}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_runs_with_real_values_and_ssm_parameters(stage):
    current = read_settings(_deployed(stage))
    assert current.stage == stage and current.wechat_appid == "wx5f1c2a9e7d3b4c60"
    assert current.wechat_secret is None and current.wechat_secret_parameter == f"/siyu/{stage}/wechat-secret"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_refuses_the_demo_appid_and_templates(stage):
    demo = {"SIYU_WECHAT_APPID": "wx-demo-appid", "SIYU_TEMPLATE_ORDER_STATUS": "tpl-order-status"}
    missing = {f"SIYU_{name.upper()}": "" for name in TEMPLATES if name != "template_order_status"}
    with pytest.raises(SettingsError) as refused:
        read_settings(_deployed(stage, **demo, **missing))
    assert sorted(refused.value.problems) == sorted(["wechat_appid", *TEMPLATES])
    assert "wx-demo-appid" not in str(refused.value) and "tpl-order-status" not in str(refused.value)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_refuses_a_secret_given_as_a_plain_variable(stage):
    with pytest.raises(SettingsError) as refused:
        read_settings(_deployed(stage, SIYU_WECHAT_SECRET="plain-wechat-secret-value"))
    assert list(refused.value.problems) == ["wechat_secret"]
    assert "SIYU_WECHAT_SECRET_PARAMETER" in str(refused.value)
    assert "plain-wechat-secret-value" not in str(refused.value)


def test_a_bad_value_is_refused_by_name_without_quoting_it():
    with pytest.raises(SettingsError) as refused:
        read_settings({"SIYU_STAGE": "local", "SIYU_TOKEN_TTL_SECONDS": "s3cr3t-looking"})
    assert list(refused.value.problems) == ["token_ttl_seconds"]
    assert "s3cr3t-looking" not in str(refused.value)


def test_the_local_stage_keeps_its_demo_defaults_and_plain_secrets():
    current = read_settings({"SIYU_STAGE": "local", "SIYU_WECHAT_SECRET": "local-secret"})
    assert current.wechat_appid == "wx-demo-appid" and current.template_order_status == "tpl-order-status"
    assert current.wechat_secret == "local-secret"


@pytest.fixture
def environment(monkeypatch):
    """Replace the process's SIYU_ settings for one test; the cached settings are forgotten before and after."""
    import os

    for name in [name for name in os.environ if name.startswith("SIYU_")]:
        monkeypatch.delenv(name)

    def use(environ: dict[str, str]) -> None:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        config.reset_settings()

    yield use
    monkeypatch.undo()
    config.reset_settings()


def _lines(log_stream) -> list[dict]:
    return [json.loads(line) for line in log_stream().splitlines()]


def test_refused_settings_stop_every_call_and_are_logged_once_by_name(environment, log_stream):
    environment(_deployed("prod", SIYU_WECHAT_APPID="wx-demo-appid", SIYU_LOOKUP_HASH_KEY="plain-lookup-key"))
    for _ in range(2):
        with pytest.raises(SettingsError):
            config.settings()
    refusals = [line for line in _lines(log_stream) if line["message"] == "settings refused"]
    assert len(refusals) == 1 and refusals[0]["level"] == "CRITICAL"
    assert refusals[0]["settings"] == "wechat_appid, lookup_hash_key"
    assert "plain-lookup-key" not in log_stream() and "wx-demo-appid" not in log_stream()


def test_a_secret_missing_from_ssm_is_logged_once_by_name_at_first_use(environment, log_stream, monkeypatch):
    from aws_lambda_powertools.utilities import parameters

    def not_found(name, **options):
        raise parameters.exceptions.GetParameterError(f"ParameterNotFound: {name}")

    monkeypatch.setattr(parameters, "get_parameter", not_found)
    environment(_deployed("dev"))
    for _ in range(2):
        with pytest.raises(MissingSecretError):
            config.secret("wechat_secret")
    missing = [line for line in _lines(log_stream) if line["message"] == "secret missing"]
    assert len(missing) == 1 and missing[0]["setting"] == "wechat_secret"
    assert "/siyu/dev/wechat-secret" in missing[0]["problem"]


def test_a_previous_key_whose_parameter_does_not_exist_is_no_key_and_is_not_asked_for_again(environment, monkeypatch):
    from aws_lambda_powertools.utilities import parameters

    asked: list[str] = []

    def not_found(name, **options):
        asked.append(name)
        raise parameters.exceptions.GetParameterError(f"ParameterNotFound: {name}")

    monkeypatch.setattr(parameters, "get_parameter", not_found)
    environment(_deployed("prod", SIYU_TOKEN_SIGNING_KEY_PREVIOUS_PARAMETER="/siyu/prod/token-signing-key-previous"))
    assert [config.optional_secret("token_signing_key_previous") for _ in range(5)] == [None] * 5
    assert asked == ["/siyu/prod/token-signing-key-previous"]
