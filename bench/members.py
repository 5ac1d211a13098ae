"""DynamoDB round trips of login and the member's own record."""

from __future__ import annotations

import uuid

from bench.roundtrips import round_trips, table
from local.stack import Stack

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def run(stack: Stack) -> str:
    from chalicelib.usecases import me

    openid = f"bench-{uuid.uuid4().hex[:8]}"
    first_count, first_ops = round_trips(lambda: me.login(f"dev:{openid}"))
    again_count, again_ops = round_trips(lambda: me.login(f"dev:{openid}"))
    member_id = me.login(f"dev:{openid}")["member"]["memberId"]
    me_count, me_ops = round_trips(lambda: me.profile(member_id))
    first_writes = sum(op in WRITES for op in first_ops)
    return "\n".join([
        "## Members: DynamoDB round trips",
        "",
        "Counted with a botocore `before-send` hook on every DynamoDB client (one entry per HTTP request).",
        "",
        table([
            ("first login", first_count, f"one write (writes here: {first_writes})", first_ops),
            ("login of an existing member", again_count, "at most 2", again_ops),
            ("GET /members/me", me_count, "1", me_ops),
        ]),
    ])
