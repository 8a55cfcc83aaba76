"""Which version of the projection buckets is in use, followed live.

`task rebuild` builds the read model again into new buckets (version N+1) and
then moves the pointer (KV `projections`, key `active`). Every API and
reactor process follows it: a subscription to the key's subject, made before
the first read of it (subscribe, then check), swaps the bucket handles as soon
as the pointer moves, and a reconnect to NATS reads the pointer again (a move
made while disconnected went by unseen). Version 1, the plain bucket names, is in use until a
rebuild has happened; versions only go up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, NamedTuple

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.lookups import bucket_keys, sum_category_counts, values_of
from contracts.topology import (
    LOCATION_NAMES_BUCKET,
    LOCATION_STATS_BUCKET,
    LOCATIONS_BUCKET,
    PROJECTIONS_POINTER_BUCKET,
    versioned,
)

log = logging.getLogger(__name__)

POINTER_KEY: Final = "active"


class Pointer(msgspec.Struct, frozen=True):
    version: int


_pointer_decoder: Final = msgspec.json.Decoder(Pointer)


class Buckets(NamedTuple):
    """One version's projection buckets, used together for one command or read."""

    version: int
    locations: KeyValue
    names: KeyValue
    stats: KeyValue
    js: JetStreamContext

    async def keys(self, bucket: str) -> list[str]:
        """Every key of one of them, by its plain name (LOCATIONS_BUCKET, ...)."""
        return await bucket_keys(self.js, versioned(bucket, self.version))

    async def entries(self, bucket: str) -> dict[str, bytes]:
        """Every key of one of them with its value."""
        kv = {LOCATIONS_BUCKET: self.locations, LOCATION_NAMES_BUCKET: self.names}[bucket]
        return await values_of(kv, await self.keys(bucket))

    async def category_counts(self) -> dict[str, int]:
        shards = await values_of(self.stats, await self.keys(LOCATION_STATS_BUCKET))
        return sum_category_counts(list(shards.values()))


async def open_buckets(js: JetStreamContext, version: int) -> Buckets:
    return Buckets(
        version,
        await js.key_value(versioned(LOCATIONS_BUCKET, version)),
        await js.key_value(versioned(LOCATION_NAMES_BUCKET, version)),
        await js.key_value(versioned(LOCATION_STATS_BUCKET, version)),
        js,
    )


async def read_pointer(js: JetStreamContext) -> int:
    kv = await js.key_value(PROJECTIONS_POINTER_BUCKET)
    try:
        entry = await kv.get(POINTER_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return 1
    return _pointer_decoder.decode(entry.value or b"").version


async def write_pointer(js: JetStreamContext, version: int) -> None:
    kv = await js.key_value(PROJECTIONS_POINTER_BUCKET)
    await kv.put(POINTER_KEY, msgspec.json.encode(Pointer(version)))


class ActiveProjection:
    """The projection buckets in use now; `current` is always one whole version."""

    def __init__(self) -> None:
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: Subscription | None = None
        self._current: Buckets | None = None
        self._switching = asyncio.Lock()

    @property
    def current(self) -> Buckets:
        assert self._current is not None, "start() first"
        return self._current

    async def start(self, nc: Client) -> None:
        self._nc, self._js = nc, nc.jetstream()
        subject = f"$KV.{PROJECTIONS_POINTER_BUCKET}.{POINTER_KEY}"
        self._sub = await nc.subscribe(subject, cb=self._on_pointer)
        await nc.flush()
        await self.refresh()

    async def refresh(self) -> None:
        """Read the pointer again: after a reconnect, a move may have gone by unseen."""
        if self._js is not None:
            await self._switch(await read_pointer(self._js))

    async def stop(self) -> None:
        """Stop following the pointer (from when the server has the unsubscribe)."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
            if self._nc is not None:
                with contextlib.suppress(nats.errors.Error):
                    await self._nc.flush()

    async def _on_pointer(self, msg: Msg) -> None:
        try:
            version = _pointer_decoder.decode(msg.data).version
        except msgspec.DecodeError:
            log.error("ignoring a malformed projection pointer: %r", msg.data[:100])
            return
        await self._switch(version)

    async def _switch(self, version: int) -> None:
        """Move to `version`; versions only go up, so a late, older read cannot win."""
        async with self._switching:
            if self._current is not None and version <= self._current.version:
                return
            assert self._js is not None
            self._current = await open_buckets(self._js, version)
        log.info("projection version %d in use", version)
