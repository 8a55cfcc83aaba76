"""View records, and which version of the view buckets is in use, followed live.

A record is `{"position": N, "state": {...}}`: the state and the EVENTS
sequence of the last event applied to it, in one KV value, so a record and its
checkpoint are written together or not at all. `state` null is a record that
was removed (its checkpoint stays).

An aggregator's bucket holds its records the same way (`<key>`), and beside
them what only its fold needs, under dotted keys that no record key (one
token) can take: `memo.<key>` (a record's memo), `partition.<p>` (how far
partition p has folded EVENTS) and `rank.<p>` (each key of partition p with
its rank, for the busiest-first list). A partition's worker writes all of
these in one atomic batch.

`task rebuild` folds EVENTS again into new buckets (version N+1) and then
moves the pointer (KV `view_versions`, key `active`). Every API and reactor
process follows it: a subscription to the key's subject, made before the
first read of it (subscribe, then check), swaps the bucket handles as soon as
the pointer moves, and a reconnect to NATS reads the pointer again (a move
made while disconnected went by unseen). Version 1 is in use until a rebuild
has happened; versions only go up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Final

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.connection import while_unavailable
from contracts.domain import Aggregator, Readable
from contracts.lookups import bucket_keys
from contracts.topology import PARTITIONS, VIEW_PROGRESS, VIEW_VERSIONS_BUCKET, view_bucket

log = logging.getLogger(__name__)

POINTER_KEY: Final = "active"
# How long a refresh after a reconnect asks again while NATS is unavailable
# (longer than a cluster's election, ~9 s).
REFRESH_PATIENCE: Final = 30.0


class Record(msgspec.Struct, frozen=True, omit_defaults=True):
    """A view record as stored; `state` stays raw JSON until someone needs it.

    A computed view's record also keeps `inputs`, the sum of its input
    records' checkpoints when it was made: it only grows as inputs change, so
    a record made from older inputs is told from one made from newer ones.
    """

    position: int
    state: msgspec.Raw
    inputs: int = 0


class Progress(msgspec.Struct, frozen=True):
    """How far an async view (or a policy) has read EVENTS: every event up to `position`."""

    position: int


class Pointer(msgspec.Struct, frozen=True):
    version: int  # the version read and written
    # A rebuild's version while it is built: inline views are written into it too, so
    # that it holds the commands handled up to the switch (`reactor.rebuild`).
    building: int | None = None
    # One more at every write: a process follows the pointer of the highest generation
    # (a late read of an older one cannot win), whichever way its version moved (a
    # rollback moves it down). 0: written before generations, when versions only rose.
    generation: int = 0


class Ranking(msgspec.Struct, frozen=True):
    """Each key of one partition of an aggregator, with its rank (what the list sorts by)."""

    ranks: dict[str, int]


record_decoder: Final = msgspec.json.Decoder(Record)
progress_decoder: Final = msgspec.json.Decoder(Progress)
ranking_decoder: Final = msgspec.json.Decoder(Ranking)
_pointer_decoder: Final = msgspec.json.Decoder(Pointer)
NULL: Final = b"null"


def memo_key(key: str) -> str:
    return f"memo.{key}"


def partition_key(partition: int) -> str:
    return f"partition.{partition}"


def rank_key(partition: int) -> str:
    return f"rank.{partition}"


def is_removed(record: Record) -> bool:
    return bytes(record.state) == NULL


class ViewBuckets:
    """One version's view buckets, opened on first use."""

    def __init__(self, js: JetStreamContext, version: int) -> None:
        self.js = js
        self.version = version
        self._open: dict[str, KeyValue] = {}

    async def bucket(self, view: str) -> KeyValue:
        kv = self._open.get(view)
        if kv is None:
            kv = self._open[view] = await self.js.key_value(view_bucket(view, self.version))
        return kv

    async def keys(self, view: str, prefix: str = "", *, records_only: bool = False) -> list[str]:
        """The view's keys (those starting with `prefix`, a whole token and its dot);
        `records_only`: one-token keys (an aggregator's records, without its memos,
        partitions and rankings)."""
        return await bucket_keys(
            self.js, view_bucket(view, self.version), prefix, one_token=records_only
        )

    async def record(self, view: str, key: str) -> Record | None:
        try:
            entry = await (await self.bucket(view)).get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return record_decoder.decode(entry.value or b"")

    async def exists(self, view: str, key: str) -> bool:
        """Whether `view` has a record (not removed) at `key`."""
        record = await self.record(view, key)
        return record is not None and not is_removed(record)

    async def records(self, view: str, keys: Iterable[str]) -> dict[str, Record]:
        """The records of `keys` that exist (one get each, concurrently)."""
        wanted = list(keys)
        found = await asyncio.gather(*(self.record(view, k) for k in wanted))
        return {k: r for k, r in zip(wanted, found, strict=True) if r is not None}

    async def progress(self, view: str) -> int:
        """How far the async view `view` has folded EVENTS (0: not started)."""
        try:
            entry = await (await self.bucket(VIEW_PROGRESS)).get(view)
        except (KeyNotFoundError, KeyDeletedError):
            return 0
        return progress_decoder.decode(entry.value or b"").position

    async def partitions(self, aggregator: str) -> list[int]:
        """How far each partition of an aggregator has folded EVENTS (0: not started)."""
        kv = await self.bucket(aggregator)

        async def one(partition: int) -> int:
            try:
                entry = await kv.get(partition_key(partition))
            except (KeyNotFoundError, KeyDeletedError):
                return 0
            return progress_decoder.decode(entry.value or b"").position

        return list(await asyncio.gather(*(one(p) for p in range(PARTITIONS))))

    def progress_subject(self, readable: Readable) -> str:
        """The subject a write of `readable`'s progress is published on (a wildcard for an
        aggregator's partitions): what a wait for `position` subscribes to."""
        if isinstance(readable, Aggregator):
            return f"$KV.{view_bucket(readable.name, self.version)}.{partition_key(0)[:-1]}*"
        return f"$KV.{view_bucket(VIEW_PROGRESS, self.version)}.{readable.name}"

    async def position(self, readable: Readable) -> int:
        """How far a view or an aggregator has folded EVENTS: an aggregator, its slowest
        partition (every event up to there is in its records)."""
        if readable.inline:
            raise ValueError(f"{readable.name} is inline: it has no position of its own")
        if isinstance(readable, Aggregator):
            return min(await self.partitions(readable.name))
        return await self.progress(readable.name)

    async def ranking(self, aggregator: str) -> dict[str, int]:
        """Every key of an aggregator with its rank, from each partition's ranking."""
        kv = await self.bucket(aggregator)

        async def one(partition: int) -> dict[str, int]:
            try:
                entry = await kv.get(rank_key(partition))
            except (KeyNotFoundError, KeyDeletedError):
                return {}
            return ranking_decoder.decode(entry.value or b"").ranks

        merged: dict[str, int] = {}
        for ranks in await asyncio.gather(*(one(p) for p in range(PARTITIONS))):
            merged.update(ranks)
        return merged


async def read_pointer(js: JetStreamContext) -> int:
    return (await read_whole_pointer(js)).version


async def read_whole_pointer(js: JetStreamContext) -> Pointer:
    return await _pointer_in(await js.key_value(VIEW_VERSIONS_BUCKET))


async def _pointer_in(kv: KeyValue) -> Pointer:
    try:
        entry = await kv.get(POINTER_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return Pointer(1)
    return _pointer_decoder.decode(entry.value or b"")


async def write_pointer(js: JetStreamContext, version: int, building: int | None = None) -> None:
    """Move the pointer (its writer holds the rebuild lease: one writer at a time)."""
    kv = await js.key_value(VIEW_VERSIONS_BUCKET)
    generation = (await _pointer_in(kv)).generation + 1
    await kv.put(POINTER_KEY, msgspec.json.encode(Pointer(version, building, generation)))


class ActiveViews:
    """The view buckets in use now; `current` is always one whole version."""

    def __init__(self) -> None:
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: Subscription | None = None
        self._current: ViewBuckets | None = None
        self._building: ViewBuckets | None = None
        self._generation = 0  # the followed pointer's
        self._switching = asyncio.Lock()
        self.changed = asyncio.Event()  # set (and replaced) at each switch

    @property
    def current(self) -> ViewBuckets:
        assert self._current is not None, "start() first"
        return self._current

    @property
    def building(self) -> ViewBuckets | None:
        """The version a rebuild is building, if one is: inline views go into it too."""
        return self._building

    async def start(self, nc: Client) -> None:
        self._nc, self._js = nc, nc.jetstream()
        subject = f"$KV.{VIEW_VERSIONS_BUCKET}.{POINTER_KEY}"
        self._sub = await nc.subscribe(subject, cb=self._on_pointer)
        await nc.flush()
        await self.refresh()

    async def refresh(self) -> None:
        """Read the pointer again: after a reconnect, a move may have gone by unseen.

        Asked again for up to REFRESH_PATIENCE while NATS answers as unavailable:
        a reconnect after a server's death meets the election of a new leader.
        """
        js = self._js
        if js is not None:
            pointer = await while_unavailable(
                lambda: read_whole_pointer(js),
                within=REFRESH_PATIENCE,
                what="the view version pointer",
            )
            await self._switch(pointer)

    async def stop(self) -> None:
        """Stop following the pointer (from when the server has the unsubscribe)."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):  # the connection closed already
                await self._sub.unsubscribe()
            self._sub = None
            if self._nc is not None:
                with contextlib.suppress(nats.errors.Error):
                    await self._nc.flush()

    async def _on_pointer(self, msg: Msg) -> None:
        try:
            pointer = _pointer_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.error("ignoring a malformed view version pointer: %r", msg.data[:100])
            return
        await self._switch(pointer)

    async def _switch(self, pointer: Pointer) -> None:
        """Move to `pointer.version` unless the pointer is older than the one followed
        (a late read cannot win): by generation, or, between pointers of before
        generations, by version (versions only went up then). What is being built is
        the latest pointer's."""
        version, building = pointer.version, pointer.building
        async with self._switching:
            assert self._js is not None
            if self._current is not None and (
                pointer.generation < self._generation
                or (pointer.generation == self._generation and version < self._current.version)
            ):
                return
            self._generation = pointer.generation
            if building == version:
                building = None
            if (self._building and self._building.version) != building:
                self._building = None if building is None else ViewBuckets(self._js, building)
                if building is not None:
                    log.info("views version %d being built beside %d", building, version)
            if self._current is not None and version == self._current.version:
                return
            self._current = ViewBuckets(self._js, version)
            changed, self.changed = self.changed, asyncio.Event()
            changed.set()
        log.info("views version %d in use", version)
