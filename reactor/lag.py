"""Measure the lag by domain (`contracts.lag`) about every SAMPLE_EVERY seconds, for
`/metrics`. Every reactor that runs jobs runs this; one that finds a fresh figure
(another reactor's) leaves it, so the server is asked about once per period."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.lag import LAG_KEY, SAMPLE_EVERY, lag_decoder, measure
from contracts.registry import Registry
from reactor.handling import Clock, utcnow
from reactor.jobs import pause

log = logging.getLogger(__name__)


async def sample_lag(
    js: JetStreamContext,
    registry: Registry,
    progress: KeyValue,
    stop: asyncio.Event,
    *,
    every: float = SAMPLE_EVERY,
    clock: Clock = utcnow,
) -> None:
    while not stop.is_set():
        try:
            if not await _fresh(progress, clock, every):
                lag = await measure(js, registry, clock())
                await progress.put(LAG_KEY, msgspec.json.encode(lag))
        except (nats.errors.Error, TimeoutError) as exc:  # no consumer yet, NATS away
            log.debug("lag not measured: %r", exc)
        await pause(stop, every)


async def _fresh(progress: KeyValue, clock: Clock, every: float) -> bool:
    try:
        entry = await progress.get(LAG_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return False
    try:
        at = lag_decoder.decode(entry.value or b"").at
    except msgspec.DecodeError:
        return False
    return clock() - at < timedelta(seconds=every * 0.8)
