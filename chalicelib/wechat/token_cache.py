"""The WeChat access token, shared by every Lambda container through DynamoDB."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.db import SiyuModel

__all__ = ["AccessToken", "cached_token", "store_token", "REFRESH_EARLY_SECONDS"]

# Refresh before WeChat's own expiry so no request carries a token that dies in flight.
REFRESH_EARLY_SECONDS = 300


class AccessToken(SiyuModel):
    class Meta:
        table = "wechat-tokens"

    appid = UnicodeAttribute(hash_key=True)
    access_token = UnicodeAttribute()
    expires_at = NumberAttribute()


def cached_token(appid: str) -> str | None:
    """The stored token if it is still good for more than REFRESH_EARLY_SECONDS."""
    try:
        item = AccessToken.get(appid, consistent_read=True)
    except DoesNotExist:
        return None
    if item.expires_at - REFRESH_EARLY_SECONDS <= clock.epoch_seconds():
        return None
    return item.access_token


def store_token(appid: str, token: str, expires_in: int) -> None:
    AccessToken(appid, access_token=token, expires_at=clock.epoch_seconds() + int(expires_in)).save()
