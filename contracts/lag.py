"""The reactor's lag by domain: how many of each domain's commands are not yet done.

All domains' commands share one durable consumer (`reactor`, DESIGN §5), so
NATS counts its pending commands for all of them together. By domain, as
Kafka counts a consumer group's lag (the log's end minus the committed
offset): the commands of the domain after the consumer's ack floor, waiting
or in flight. Counted by the server itself: a short-lived consumer of the
domain's command subjects, starting just after the ack floor, tells its
`num_pending` and is deleted (kept in memory, never delivered to).

Creating consumers on COMMANDS is not for the API's role (it could then
change the reactor's), so a reactor measures about every `SAMPLE_EVERY`
seconds and keeps the figures in the `runner_progress` bucket (key
`LAG_KEY`), which `/metrics` reads; `task status` measures on the spot.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Final

import msgspec
import nats.errors
from nats.js import JetStreamContext, api

from contracts.registry import Registry
from contracts.topology import COMMANDS_STREAM, REACTOR_CONSUMER, command_subject

SAMPLE_EVERY: Final = 5.0
LAG_KEY: Final = "lag.commands"


class Lag(msgspec.Struct, frozen=True):
    at: datetime  # when it was measured
    ack_floor: int  # the COMMANDS sequence every command up to which is done
    by_domain: dict[str, int]


lag_decoder: Final = msgspec.json.Decoder(Lag)


async def measure(js: JetStreamContext, registry: Registry, at: datetime) -> Lag:
    """Each domain's commands after the reactor consumer's ack floor (raises if there is
    no consumer yet: nats.js.errors.NotFoundError)."""
    info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    last = (await js.stream_info(COMMANDS_STREAM)).state.last_seq
    by_domain = {domain.name: 0 for domain in registry.domains if domain.commands}
    if last <= floor:
        return Lag(at, floor, by_domain)  # everything is done: nothing to count
    for domain in registry.domains:
        if not domain.commands:
            continue
        counter = await js.add_consumer(
            COMMANDS_STREAM,
            api.ConsumerConfig(
                filter_subjects=[command_subject(c.name, "*") for c in domain.commands],
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=floor + 1,
                ack_policy=api.AckPolicy.NONE,
                inactive_threshold=10.0,  # gone by itself if the delete below is lost
                mem_storage=True,
                num_replicas=1,
            ),
        )
        by_domain[domain.name] = counter.num_pending or 0
        if counter.name:
            with contextlib.suppress(nats.errors.Error):
                await js.delete_consumer(COMMANDS_STREAM, counter.name)
    return Lag(at, floor, by_domain)
