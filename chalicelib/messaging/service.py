"""WeChat one-time subscription messages: credits kept, each message sent at most once.

Sending reserves first, in one transaction: the message record (absent before)
and one credit (above zero). Only then is WeChat called. If WeChat fails for a
reason that may pass, the reservation is undone so a later run can try again;
if the member refused (43101), the credit is gone, as it is at WeChat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib import clock, transact
from chalicelib.config import settings
from chalicelib.errors import InvalidRequestError
from chalicelib.messaging.models import SentMessage, SubscriptionCredit
from chalicelib.transact import Transaction, TransactionRefusedError

__all__ = ["templates", "accept", "credits", "send_once", "SENT", "ALREADY_SENT", "NO_CREDIT", "REFUSED", "FAILED"]

SENT, ALREADY_SENT, NO_CREDIT, REFUSED, FAILED = "sent", "already_sent", "no_credit", "refused", "failed"


def templates() -> dict[str, str]:
    return settings().subscription_templates()


def accept(
    member_id: str, template_ids: list[str], *, also: Iterable[Callable[[Transaction], Any]] = ()
) -> dict[str, Any]:
    """Add a credit per accepted template, written with `also`'s items (another domain's checks)."""
    known = set(templates().values())
    for index, template_id in enumerate(template_ids):
        if template_id not in known:
            raise InvalidRequestError(f"templateIds.{index}", "is not a template of this mini-program")

    def build(txn: Transaction) -> None:
        for add in also:
            add(txn)
        for template_id in sorted(set(template_ids)):
            accepted = template_ids.count(template_id)
            txn.update(
                SubscriptionCredit(member_id, template_id),
                [SubscriptionCredit.credits.add(accepted)],
                label=f"credit {template_id}",
            )

    transact.write(build)
    return credits(member_id)


def credits(member_id: str) -> dict[str, Any]:
    held = {template_id: 0 for template_id in templates().values()}
    for credit in SubscriptionCredit.query(member_id, consistent_read=True):
        held[credit.template_id] = int(credit.credits)
    return {"credits": held}


def send_once(
    key: str,
    member_id: str,
    openid: str | None,
    template_id: str,
    data: dict[str, str],
    page: str | None = None,
    *,
    at: dt.datetime | None = None,
) -> str:
    """Send the message named `key` unless it was sent before; spend one credit.

    `at` dates the message: a job passes its own moment.
    """
    from chalicelib.wechat import client as wechat

    if not openid:
        return NO_CREDIT
    message = SentMessage(key, member_id=member_id, template_id=template_id, status="sending", created_at=at or clock.now())
    credit = SubscriptionCredit(member_id, template_id)

    def reserve(txn: Transaction) -> None:
        txn.save(message, SentMessage.key.does_not_exist(), label="message")
        txn.update(credit, [SubscriptionCredit.credits.add(-1)], SubscriptionCredit.credits > 0, label="credit")

    def give_back(txn: Transaction) -> None:
        txn.delete(message, label="message")
        txn.update(credit, [SubscriptionCredit.credits.add(1)], label="credit")

    try:
        transact.write(reserve)
    except TransactionRefusedError as refused:
        return ALREADY_SENT if refused.refused("message") else NO_CREDIT
    try:
        wechat.send_subscribe_message(openid, template_id, data, page)
    except wechat.UserRefusedMessageError:
        message.update(actions=[SentMessage.status.set(REFUSED)])
        return REFUSED
    except Exception:
        transact.write(give_back)
        return FAILED
    message.update(actions=[SentMessage.status.set(SENT)])
    return SENT
