"""Atomic batch publish to a JetStream stream (ADR-50; server 2.12+, stream `allow_atomic`).

nats-py has no helper, so this sends the headers itself:

- message 1: a request with `Nats-Batch-Id` and `Nats-Batch-Sequence: 1`,
  plus any expected-sequence headers (they are checked against the stream as
  it was before the batch; on later messages they would see the batch's own
  messages); the server answers with an empty reply, or an error;
- messages 2..n-1: plain publishes with the next sequence;
- message n: a request with `Nats-Batch-Commit: 1`; the reply is the pub ack
  `{"stream", "seq", "batch", "count"}` (seq of the last message; the batch is
  stored contiguously) or an `error` object, and then nothing is stored.

Errors seen against nats-server 2.15: a stale expected sequence is 10164
("wrong last sequence"), a `Nats-Msg-Id` already stored is 10201 (the batch
"contains duplicate message id").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec
from nats.aio.client import Client

BATCH_ID = "Nats-Batch-Id"
BATCH_SEQ = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"


class Message(NamedTuple):
    subject: str
    data: bytes
    headers: Mapping[str, str]


class BatchAck(NamedTuple):
    stream: str
    seq: int  # the last message's sequence; the first is seq - size + 1
    size: int


class BatchRejected(Exception):
    """The server refused the batch; none of it was stored."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"{description} (err_code {err_code})")
        self.err_code = err_code
        self.description = description


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Reply(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    count: int = 0
    error: _Error | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


def _check(data: bytes) -> _Reply:
    reply = _reply_decoder.decode(data) if data else _Reply()
    if reply.error is not None:
        raise BatchRejected(reply.error.err_code, reply.error.description)
    return reply


async def publish_atomic(
    nc: Client,
    messages: Sequence[Message],
    *,
    first_headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per request, as nats-py's own
) -> BatchAck:
    """Store `messages` all or none; `first_headers` ride on message 1 (expected sequences)."""
    if len(messages) < 2:
        raise ValueError("an atomic batch has at least two messages (publish one on its own)")
    batch_id = uuid.uuid4().hex
    last = len(messages)
    for n, message in enumerate(messages, start=1):
        headers = {**message.headers, BATCH_ID: batch_id, BATCH_SEQ: str(n)}
        if n == 1:
            headers.update(first_headers or {})
            _check((await nc.request(message.subject, message.data, timeout, headers=headers)).data)
        elif n < last:
            await nc.publish(message.subject, message.data, headers=headers)
        else:
            headers[BATCH_COMMIT] = "1"
            reply = await nc.request(message.subject, message.data, timeout, headers=headers)
            ack = _check(reply.data)
            return BatchAck(ack.stream, ack.seq, ack.count)
    raise AssertionError("unreachable")
