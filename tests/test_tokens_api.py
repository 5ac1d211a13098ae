"""Tokens over HTTP: standard JWTs, a key rotation that logs nobody out, unknown keys and expiry refused."""

from __future__ import annotations

import time

import jwt
import pytest

from chalicelib import auth
from chalicelib.config import reset_settings, secret
from tests.conftest import unique
from tests.test_http_edge import assert_refused, signed


def _claims(member_id: str, **claims):
    now = int(time.time())
    return {"iss": auth.ISSUER, "aud": auth.AUDIENCE, "sub": member_id, "roles": ["member"], "iat": now,
            "exp": now + 600} | claims


def test_a_login_token_is_a_jwt_with_the_registered_claims_and_its_keys_id(api):
    answer = api.post("/auth/login", json={"code": f"dev:{unique('jwt')}"}).json()
    header = jwt.get_unverified_header(answer["token"])
    assert header["alg"] == "HS256" and header["kid"] == auth.key_id(secret("token_signing_key"))
    claims = jwt.decode(answer["token"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "iat", "exp", "roles"} <= set(claims)
    assert claims["sub"] == answer["member"]["memberId"] and claims["exp"] - claims["iat"] == answer["expiresIn"]


def test_a_token_of_the_previous_key_is_accepted_after_a_rotation(api):
    token = api.login(unique("rotating"))
    old_key = secret("token_signing_key")
    reset_settings()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIYU_TOKEN_SIGNING_KEY_PREVIOUS", old_key)
        patch.setenv("SIYU_TOKEN_SIGNING_KEY", f"rotated-signing-key-{unique('key')}")
        reset_settings()
        try:
            assert api.get("/members/me", token).status_code == 200
            fresh = api.login(unique("after"))
            assert jwt.get_unverified_header(fresh)["kid"] != jwt.get_unverified_header(token)["kid"]
            assert api.get("/members/me", fresh).status_code == 200
        finally:
            patch.undo()
            reset_settings()


def test_a_token_of_an_unknown_key_is_refused(api, member):
    _, token = member
    member_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    stranger = signed(_claims(member_id), key=f"never-configured-signing-key-{unique('key')}")
    assert_refused(api.get("/members/me", stranger), 401, "UNAUTHENTICATED")
    no_kid = jwt.encode(_claims(member_id), secret("token_signing_key"), algorithm="HS256")
    assert_refused(api.get("/members/me", no_kid), 401, "UNAUTHENTICATED")


def test_an_expired_token_is_refused(api, member):
    _, token = member
    member_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    now = int(time.time())
    expired = signed(_claims(member_id, iat=now - 7200, exp=now - 1))
    assert_refused(api.get("/members/me", expired), 401, "UNAUTHENTICATED")
    assert api.get("/members/me", signed(_claims(member_id))).status_code == 200
