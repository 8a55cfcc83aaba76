"""Aggregators: per-key records folded from keyed events, one partition per worker.

Protocol, for partition p of an aggregator (exactly once across crashes,
redeliveries, restarts and a second writer):

- p's events are the keyed events the server stored at `ev.<aggregate>.<p>.*`
  (a subject transform with `partition()`: every event of a key lands in the
  same partition, in stream order). The worker reads them in order from p's
  position (`partition.<p>` in the aggregator's bucket).
- It keeps each key's record and memo in memory, loaded from the bucket the
  first time the key comes up (what is stored is exactly what p's events up
  to its position made of it), and folds events into them with the domain's
  pure `apply`.
- Then it writes, in ONE atomic batch on the bucket's stream: p's new
  position, every record and memo that changed, and p's ranking. All or
  nothing: a crash before the commit loses work that is simply redone from
  the old position; after it, nothing of it is redone. A redelivered event
  is one at or below the position, never read again.
- The position's message carries `Nats-Expected-Last-Subject-Sequence` = the
  revision this worker last read or wrote of it. Any other writer of p (a
  worker that lost its lease without knowing it yet, a rebuild's catch-up)
  moves it, so this worker's next batch is refused whole (`Superseded`) and
  it starts again from what is stored. A key belongs to one partition (the
  server's mapping is fixed), so fencing the position fences all of p's keys.
- A batch holds at most MAX_BATCH messages: when the keys changed since the
  last write approach that, the worker writes before it folds on.

A record carries the position of the last event that changed it, as a view
record does (a live read sends each change once; a rebuild compares them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.js.errors import BadRequestError, KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.commands import encoder
from contracts.domain import MAX_PARTS, Aggregator
from contracts.events import StoredEvent
from contracts.kv import WRONG_LAST_SEQUENCE
from contracts.registry import Registry
from contracts.topology import PARTITIONS, view_bucket
from contracts.views import (
    ActiveViews,
    Progress,
    Ranking,
    Record,
    ViewBuckets,
    memo_key,
    partition_key,
    progress_decoder,
    rank_key,
    ranking_decoder,
    record_decoder,
)
from reactor.batch import BatchRejected, Message, publish_atomic
from reactor.eventstore import EXPECTED_SUBJECT_SEQ, MAX_DECISION
from reactor.jobs import Superseded
from reactor.reader import EventReader

log = logging.getLogger(__name__)

# A write is one atomic batch (the server takes 1,000 messages): the position,
# the ranking, and a record and its memo for each key changed since the last.
MAX_KEYS_PER_WRITE: Final = (MAX_DECISION - 2) // 2
REMEMBER: Final = 50_000  # keys a worker keeps in memory per partition
_memo_encoder: Final = msgspec.json.Encoder(order="deterministic")  # sets, sorted


class KeyState:
    """A key as the worker holds it: its record and memo, and what of them is stored."""

    __slots__ = ("memo", "memo_bytes", "position", "record", "record_bytes")

    def __init__(
        self, record: Any, memo: Any, position: int, record_bytes: bytes, memo_bytes: bytes
    ) -> None:
        self.record = record
        self.memo = memo
        self.position = position  # the last event that changed the record
        self.record_bytes = record_bytes  # the record's state as stored (b"" if none)
        self.memo_bytes = memo_bytes


class PartitionFold:
    """One partition of an aggregator, folded into one version's bucket."""

    def __init__(
        self,
        aggregator: Aggregator,
        nc: Client,
        buckets: ViewBuckets,
        partition: int,
        *,
        remember: int = REMEMBER,
    ) -> None:
        self.aggregator = aggregator
        self.partition = partition
        self._nc = nc
        self._buckets = buckets
        self._bucket = view_bucket(aggregator.name, buckets.version)
        self._remember = remember
        self._record_decoder = msgspec.json.Decoder(aggregator.state)
        self._memo_decoder = msgspec.json.Decoder(aggregator.memo) if aggregator.memo else None
        self._keys: OrderedDict[str, KeyState] = OrderedDict()
        self._dirty: dict[str, None] = {}  # keys changed since the last write, in order
        self._ranks: dict[str, int] = {}
        self._ranks_changed = False
        self.position = 0  # every event of the partition up to here is in what is stored
        self.folded = 0  # ... and up to here in what is in memory
        self._revision = 0  # of the position's message (0: none yet)
        self.applied = 0  # events folded (for reports)
        self._writing: asyncio.Task[None] | None = None

    async def _kv(self) -> KeyValue:
        return await self._buckets.bucket(self.aggregator.name)

    async def start(self) -> int:
        """Forget what is in memory and read the stored position and ranking; the position."""
        with contextlib.suppress(Exception):  # a write of what is now forgotten
            await self.settle()
        self._keys.clear()
        self._dirty.clear()
        kv = await self._kv()
        try:
            entry = await kv.get(partition_key(self.partition))
            self.position = progress_decoder.decode(entry.value or b"").position
            self._revision = entry.revision or 0
        except (KeyNotFoundError, KeyDeletedError):
            self.position, self._revision = 0, 0
        self.folded = self.position
        try:
            entry = await kv.get(rank_key(self.partition))
            self._ranks = dict(ranking_decoder.decode(entry.value or b"").ranks)
        except (KeyNotFoundError, KeyDeletedError):
            self._ranks = {}
        self._ranks_changed = False
        return self.position

    def _parts(self, stored: StoredEvent) -> Mapping[str, Any]:
        split = self.aggregator.split
        return {stored.meta.aggregate_id: stored.event} if split is None else split(stored.event)

    async def apply(self, events: list[StoredEvent]) -> None:
        """Fold events (in stream order, all of this partition) into the keys in memory."""
        parts = [(stored, self._parts(stored)) for stored in events]
        keys = dict.fromkeys(key for _, touched in parts for key in touched)
        missing = [key for key in keys if key not in self._keys]
        if self.aggregator.rank is not None:
            # The ranking names every key of the partition that has a record (they
            # are written together): a key it does not name is new, nothing to read.
            for key in [k for k in missing if k not in self._ranks]:
                self._keys[key] = KeyState(None, None, 0, b"", b"")
            missing = [key for key in missing if key in self._ranks]
        if missing:
            loaded = await asyncio.gather(*(self._load(key) for key in missing))
            for key, state in zip(missing, loaded, strict=True):
                self._keys[key] = state
            self._forget(keep=keys)
        apply = self.aggregator.apply
        for stored, touched in parts:
            if len(touched) > MAX_PARTS:
                raise ValueError(f"an event of {len(touched)} records: at most {MAX_PARTS}")
            if len(self._dirty) + len(touched) > MAX_KEYS_PER_WRITE:
                # Between events only: a write's position says each event is in whole.
                await self.flush(self.folded)
            for key, part in touched.items():
                state = self._keys[key]
                self._keys.move_to_end(key)
                state.record, state.memo = apply(state.record, state.memo, part, stored.meta)
                state.position = stored.meta.seq
                self._dirty[key] = None
            self.applied += 1
            self.folded = stored.meta.seq

    async def flush(self, position: int) -> None:
        """Store every change and the position `position`, in one atomic write.

        The write goes on while the caller folds on: only one is in flight (the
        next needs its revision), and `settle()` waits for it. What it writes is
        encoded here, before this returns, so folding on changes none of it.
        """
        if position < self.folded:
            # The records hold events past it: stored with it, they would be folded again.
            raise ValueError(f"position {position} is behind what is folded, {self.folded}")
        await self.settle()
        write = self._prepare(position)
        if write is not None:
            self._writing = asyncio.create_task(self._commit(*write))

    async def settle(self) -> None:
        """Wait for the write in flight (Superseded if another writer came first)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def _prepare(
        self, position: int
    ) -> tuple[int, list[Message], list[tuple[KeyState, bytes | None, bytes | None]]] | None:
        changes: list[Message] = []
        written: list[tuple[KeyState, bytes | None, bytes | None]] = []
        for key in self._dirty:
            state = self._keys[key]
            record = encoder.encode(state.record)
            new_record = None
            if record != state.record_bytes:
                stored = Record(state.position, msgspec.Raw(record))
                changes.append(Message(self._subject(key), encoder.encode(stored), {}))
                new_record = record
            new_memo = None
            if self._memo_decoder is not None:
                memo = _memo_encoder.encode(state.memo)
                if memo != state.memo_bytes:
                    changes.append(Message(self._subject(memo_key(key)), memo, {}))
                    new_memo = memo
            if self.aggregator.rank is not None:
                rank = self.aggregator.rank(state.record)
                if self._ranks.get(key) != rank:
                    self._ranks[key] = rank
                    self._ranks_changed = True
            written.append((state, new_record, new_memo))
        self._dirty.clear()
        if self._ranks_changed:
            ranking = encoder.encode(Ranking(self._ranks))
            changes.append(Message(self._subject(rank_key(self.partition)), ranking, {}))
            self._ranks_changed = False
        if not changes and position <= self.position:
            return None
        progress = Message(
            self._subject(partition_key(self.partition)),
            encoder.encode(Progress(position)),
            {EXPECTED_SUBJECT_SEQ: str(self._revision)},
        )
        return position, [progress, *changes], written

    async def _commit(
        self,
        position: int,
        messages: list[Message],
        written: list[tuple[KeyState, bytes | None, bytes | None]],
    ) -> None:
        self._revision = await self._write(messages)
        self.position = position
        for state, new_record, new_memo in written:
            if new_record is not None:
                state.record_bytes = new_record
            if new_memo is not None:
                state.memo_bytes = new_memo

    async def _write(self, messages: list[Message]) -> int:
        """One atomic batch, the position first (its guard); the position's new revision."""
        try:
            if len(messages) == 1:
                ack = await self._nc.jetstream().publish(
                    messages[0].subject,
                    messages[0].data,
                    stream=f"KV_{self._bucket}",
                    headers=dict(messages[0].headers),
                )
                return ack.seq
            batch = await publish_atomic(self._nc, messages)
        except (BadRequestError, BatchRejected) as exc:  # one message; a batch
            if exc.err_code in WRONG_LAST_SEQUENCE:
                raise Superseded(f"partition {self.partition} was written by another") from None
            raise
        return batch.seq - batch.size + 1

    def _subject(self, key: str) -> str:
        return f"$KV.{self._bucket}.{key}"

    async def _load(self, key: str) -> KeyState:
        kv = await self._kv()
        record, memo = None, None
        position, record_bytes, memo_bytes = 0, b"", b""
        try:
            entry = await kv.get(key)
            stored = record_decoder.decode(entry.value or b"")
            record_bytes = bytes(stored.state)
            record, position = self._record_decoder.decode(record_bytes), stored.position
        except (KeyNotFoundError, KeyDeletedError):
            pass
        if self._memo_decoder is not None:
            try:
                entry = await kv.get(memo_key(key))
                memo_bytes = entry.value or b""
                memo = self._memo_decoder.decode(memo_bytes)
            except (KeyNotFoundError, KeyDeletedError):
                pass
        return KeyState(record, memo, position, record_bytes, memo_bytes)

    def _forget(self, keep: Mapping[str, None]) -> None:
        """Keep at most `remember` keys in memory: those changed since the last write stay,
        and so do `keep`, the batch's (more than `remember` for as long as it is folded)."""
        for key in keep:  # the most recently used now: forgotten last
            self._keys.move_to_end(key)
        while len(self._keys) > self._remember:
            key = next(iter(self._keys))
            if key in self._dirty or key in keep:
                return
            del self._keys[key]


class PartitionJob:
    """One partition of an aggregator as a job: a runner holds its lease and folds it."""

    # Once caught up, let events gather this long: each write is one atomic
    # batch of every key changed, so gathering turns many writes into one.
    linger = 0.05
    batch = 4096

    def __init__(
        self,
        aggregator: Aggregator,
        partition: int,
        registry: Registry,
        nc: Client,
        active: ActiveViews,
    ) -> None:
        self.aggregator = aggregator
        self.partition = partition
        self.name = f"aggregator.{aggregator.name}.{partition}"
        self.group = f"aggregator.{aggregator.name}"
        self.subjects = registry.partition_filter(aggregator, partition)
        self._nc = nc
        self._active = active
        self._fold: PartitionFold | None = None
        self._changed: asyncio.Event | None = None

    async def start(self) -> int:
        self._changed = self._active.changed
        self._fold = PartitionFold(self.aggregator, self._nc, self._active.current, self.partition)
        return await self._fold.start()

    async def handle(self, events: list[StoredEvent]) -> None:
        assert self._fold is not None
        await self._fold.apply(events)

    async def save(self, position: int) -> None:
        assert self._fold is not None
        await self._fold.flush(position)

    async def finish(self) -> None:
        if self._fold is not None:
            await self._fold.settle()

    def restart(self) -> asyncio.Event | None:
        return self._changed


class Refold:
    """Every partition of an aggregator folded by this process, lease or not (a rebuild).

    Safe beside live workers of the same buckets: each partition is written
    with its guard, so whichever of two writers is behind is refused and
    reads again what the other stored.
    """

    def __init__(
        self, aggregator: Aggregator, registry: Registry, nc: Client, buckets: ViewBuckets
    ) -> None:
        self.aggregator = aggregator
        self._registry = registry
        self._nc = nc
        self.folds = [PartitionFold(aggregator, nc, buckets, p) for p in range(PARTITIONS)]

    @property
    def applied(self) -> int:
        return sum(f.applied for f in self.folds)

    async def until(self, end: int) -> None:
        """Fold every partition up to `end` (at least): what is stored then covers it."""
        for fold in self.folds:
            await self._one(fold, end)

    async def _one(self, fold: PartitionFold, end: int) -> None:
        subjects = self._registry.partition_filter(self.aggregator, fold.partition)
        while True:
            position = await fold.start()
            if position >= end:
                return
            reader = EventReader(
                self._nc.jetstream(), self._registry, subjects, position, batch=PartitionJob.batch
            )
            try:
                while True:
                    batch = await reader.next_batch(wait=0.2)
                    if batch.last_seq is None:
                        if await reader.read_to_end() is not None:
                            break  # all that is stored of this partition is read
                        continue
                    await fold.apply(batch.events)
                await fold.flush(max(end, reader.position))
                await fold.settle()
                return
            except Superseded:
                continue  # a live worker moved it on meanwhile: look again
            finally:
                await reader.close()
