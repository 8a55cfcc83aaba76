"""Copying a message the reactor gave up on to DEADLETTERS, with why; and, when even that
keeps failing, a record of the message dropped from redelivery (`task status` lists it)."""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.topology import DROPPED_BUCKET, deadletter_subject

log = logging.getLogger("reactor")


class Dropped(msgspec.Struct, frozen=True):
    """A message no longer redelivered, though it reached neither DEADLETTERS nor NOTICES."""

    stream: str
    seq: int
    subject: str
    reason: str
    error: str
    deliveries: int
    at: datetime


dropped_decoder = msgspec.json.Decoder(Dropped)


async def deadletter(js: JetStreamContext, msg: Msg, reason: str, error: str, at: datetime) -> None:
    """Copy `msg` to DEADLETTERS once (deduplicated by its stream and sequence)."""
    meta = msg.metadata
    await js.publish(
        deadletter_subject(msg.subject),
        msg.data,
        headers={
            "Nats-Msg-Id": f"dlq:{meta.stream}:{meta.sequence.stream}",
            "Dlq-Reason": reason,
            "Dlq-Error": error[:1000],
            "Dlq-Deliveries": str(meta.num_delivered or 1),
            "Dlq-Stream": meta.stream,
            "Dlq-Stream-Seq": str(meta.sequence.stream),
            "Dlq-Subject": msg.subject,
            "Dlq-Time": at.isoformat(),
        },
    )


async def record_dropped(
    js: JetStreamContext, msg: Msg, reason: str, error: str, at: datetime
) -> None:
    """Keep what an operator needs to find the message again (best effort: logged if not)."""
    meta = msg.metadata
    dropped = Dropped(
        meta.stream,
        meta.sequence.stream,
        msg.subject,
        reason,
        error[:1000],
        meta.num_delivered or 1,
        at,
    )
    try:
        kv = await js.key_value(DROPPED_BUCKET)
        await kv.put(f"{meta.stream}.{meta.sequence.stream}", msgspec.json.encode(dropped))
    except Exception:
        log.exception("could not record dropped %s seq %d", meta.stream, meta.sequence.stream)
