"""Copying a message the reactor gave up on to DEADLETTERS, with why."""

from __future__ import annotations

from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.topology import deadletter_subject


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
