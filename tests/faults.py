"""DynamoDB faults injected through botocore's `before-send` hook (`db.intercepting`).

A fault stands in for DynamoDB's answer: the request is never sent, and the
client receives the error DynamoDB would have answered, in its JSON wire
format, so botocore parses it, retries it and raises it as it would the real
one. `Faults` decides request by request, from its own seeded random numbers,
whether a request (by default only the writes) gets a fault, and counts what
it injected.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from botocore.awsrequest import AWSResponse

from chalicelib import db

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
EVERYTHING = WRITES | {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}

# What each kind of fault answers: DynamoDB's error type, and for a transaction the cancellation reason.
THROTTLED = ("ProvisionedThroughputExceededException", "ThrottlingError")
THROTTLING = ("ThrottlingException", "ThrottlingError")
CONFLICT = ("TransactionConflictException", "TransactionConflict")
KINDS = {"throttled": THROTTLED, "throttling": THROTTLING, "conflict": CONFLICT}


class _Body(io.BytesIO):
    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.getvalue()


def answer(kind: str, request: db.Request) -> AWSResponse:
    """DynamoDB's error for `request` under `kind`: a transaction is cancelled on one of its items."""
    error, reason = KINDS[kind]
    body: dict[str, object]
    if request.operation == "TransactWriteItems":
        items = request.body.get("TransactItems", [])
        refused = random.randrange(len(items)) if items else 0
        reasons = [{"Code": reason if at == refused else "None"} for at in range(len(items))]
        body = {
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons "
                       f"[{', '.join(r['Code'] for r in reasons)}]",
            "CancellationReasons": reasons,
        }
    elif kind == "conflict" and request.operation not in WRITES:
        body = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded"}
    else:
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{error}", "message": f"{error} (injected)"}
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected-fault",
               "Content-Length": str(len(raw))}
    return AWSResponse("https://dynamodb.injected", 400, headers, _Body(raw))


@dataclass
class Faults:
    """A fault of one of `kinds` for each request of `operations`, with probability `rate`."""

    rate: float
    seed: int = 0
    kinds: tuple[str, ...] = tuple(KINDS)
    operations: frozenset[str] = WRITES
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    seen: int = 0
    _paused: bool = False
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def __call__(self, request: db.Request) -> AWSResponse | None:
        if self._paused or request.operation not in self.operations:
            return None
        with self._lock:
            self.seen += 1
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.injected[f"{request.operation} {kind}"] += 1
        return answer(kind, request)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults while the block runs."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    @property
    def total(self) -> int:
        return sum(self.injected.values())


@contextlib.contextmanager
def injected(faults: Faults) -> Iterator[Faults]:
    with db.intercepting(faults):
        yield faults
