"""Applying events to a view: each event to each record once, checkpointed in the same write.

A record holds its state and the position (EVENTS sequence) of the last event
applied to it. To apply events in stream order to a key: read the record,
fold the events after its position into its state with the view's pure
`apply`, and write state and new position together with compare-and-set on
the KV revision; on a conflict, read again and redo. So a redelivered event,
a rebuild racing a reactor, or two reactors writing one key apply nothing
twice, and an event arriving after a later one of its key (a gap) is not
dropped as long as the caller hands the events in order from the key's
start: the reactor does, with every event of the aggregate for each record
its command changes (`reactor.history` keeps them grouped by key).

Several keys touched by one batch are written concurrently.

Each writer remembers the records it last wrote or read, with their KV
revision (a bounded cache), so the usual update of a record this process
wrote before is a compare-and-set without a read; a stale memory fails the
compare-and-set and the record is read afresh. (A remembered record is only
ever behind the stored one, so "applied already" from memory is true.)
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import re
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from contracts.commands import encoder
from contracts.domain import View
from contracts.events import StoredEvent
from contracts.topology import VIEW_PROGRESS, view_bucket
from contracts.views import (
    NULL,
    Progress,
    Record,
    ViewBuckets,
    is_removed,
    progress_decoder,
    record_decoder,
)

log = logging.getLogger(__name__)

MAX_CAS_ATTEMPTS: Final = 100


class BadKey(ValueError):
    """A view's key function gave something KV cannot store."""


_KEY: Final = re.compile(r"[-/_=A-Za-z0-9]+(\.[-/_=A-Za-z0-9]+)*")  # KV's, tokens by dots


def _valid_key(view: View, key: str) -> str:
    if _KEY.fullmatch(key) is None:
        raise BadKey(f"view {view.name}: key {key!r} is not a valid KV key")
    return key


def key_of(view: View, stored: StoredEvent) -> str | None:
    """The key of the view's record the event changes (None: none, or not of its types)."""
    if not isinstance(stored.event, view.events):
        return None
    key = view.key(stored.event, stored.meta)
    return None if key is None else _valid_key(view, key)


def _seq(stored: StoredEvent) -> int:
    return stored.meta.seq


class ViewWriter:
    def __init__(self, remember: int = 10_000, *, follows: bool = False) -> None:
        """`follows`: this writer is handed every event of the views it writes, in order,
        from its last `forget()` on (an async view's runner, while it holds the lease).
        Each record it remembers then reflects every event handed to it so far (it
        applied them, or read the record after they were stored), so a computed view's
        inputs are read from memory: a computed record read every input record under its
        key from KV at each change (O(inputs) gets), now only those it has not seen."""
        self._decoders: dict[type, msgspec.json.Decoder[Any]] = {}
        self._known: OrderedDict[tuple[str, str], tuple[Record, int]] = OrderedDict()
        self._remember = remember
        self._follows = follows

    def forget(self) -> None:
        """Drop what is remembered: a runner (re)starting may have missed events (another
        reactor held its lease meanwhile), after which a remembered record may be behind."""
        self._known.clear()

    def _recall(self, bucket: str, key: str) -> tuple[Record, int] | None:
        known = self._known.get((bucket, key))
        if known is not None:
            self._known.move_to_end((bucket, key))
        return known

    def _remember_record(self, bucket: str, key: str, record: Record, revision: int) -> None:
        self._known[(bucket, key)] = (record, revision)
        self._known.move_to_end((bucket, key))
        while len(self._known) > self._remember:
            self._known.popitem(last=False)

    def decode_state(self, view: View, record: Record) -> Any:
        raw = bytes(record.state)
        if raw == NULL:
            return None
        decoder = self._decoders.get(view.state)
        if decoder is None:
            decoder = self._decoders[view.state] = msgspec.json.Decoder(view.state)
        return decoder.decode(raw)

    def keys_of(self, view: View, events: Sequence[StoredEvent]) -> dict[str, list[StoredEvent]]:
        """The view's events grouped by the key they change, each group in stream order."""
        by_key: defaultdict[str, list[StoredEvent]] = defaultdict(list)
        for stored in events:
            key = key_of(view, stored)
            if key is not None:
                by_key[key].append(stored)
        return by_key

    async def apply(
        self,
        buckets: ViewBuckets,
        view: View,
        events: Sequence[StoredEvent],
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """Apply `events` (in stream order) to the view; the state of every key they touch.

        `fresh`: the records are most likely new (a new aggregate's first
        events), so try a create before reading.
        """
        groups = self.keys_of(view, events)
        return await self.apply_groups(buckets, view, groups, fresh=groups.keys() if fresh else ())

    async def apply_groups(
        self,
        buckets: ViewBuckets,
        view: View,
        groups: Mapping[str, Sequence[StoredEvent]],
        *,
        fresh: Collection[str] = (),
    ) -> dict[str, Any]:
        """`apply`, with the events grouped by key already (each group in stream order,
        from the key's first event or at least from its record's checkpoint); `fresh`:
        the keys whose records are most likely new (tried with a create first)."""
        kv = await buckets.bucket(view.name)
        name = view_bucket(view.name, buckets.version)
        states = await asyncio.gather(
            *(
                self._apply_key(kv, name, view, key, group, key in fresh)
                for key, group in groups.items()
            )
        )
        return dict(zip(groups, states, strict=True))

    async def _apply_key(
        self, kv: Any, bucket: str, view: View, key: str, events: Sequence[StoredEvent], fresh: bool
    ) -> Any:
        for attempt in range(MAX_CAS_ATTEMPTS):
            known = self._recall(bucket, key) if attempt == 0 else None
            record: Record | None
            revision: int | None
            if known is not None:
                record, revision = known
            elif fresh and attempt == 0:
                record, revision = None, None
            else:
                record, revision = await self._read(kv, bucket, key) or (None, None)
            position = record.position if record is not None else 0
            state = self.decode_state(view, record) if record is not None else None
            todo = events[bisect.bisect_right(events, position, key=_seq) :]
            if not todo:
                return state  # applied already
            assert view.apply is not None
            for stored in todo:
                state = view.apply(state, stored.event, stored.meta)
            written = Record(todo[-1].meta.seq, msgspec.Raw(encoder.encode(state)))
            value = encoder.encode(written)
            try:
                if revision is None:
                    revision = await kv.create(key, value)
                else:
                    revision = await kv.update(key, value, last=revision)
                self._remember_record(bucket, key, written, revision)
                return state
            except KeyWrongLastSequenceError:
                self._known.pop((bucket, key), None)
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RuntimeError(f"view {view.name} key {key} kept changing under us")

    async def recompute(
        self, buckets: ViewBuckets, view: View, events: Sequence[StoredEvent]
    ) -> dict[str, Any]:
        """Make again each record of a computed view that `events` change; their states.

        The inputs are brought up to date with `events` first (checkpointed, so
        what the reactor wrote already is skipped): an input is never behind
        the event that asked for the record to be made again.
        """
        for source in view.inputs:
            await self.apply(buckets, source.view, events)
        keys = list(self.keys_of(view, events))
        states = await asyncio.gather(*(self._recompute_key(buckets, view, k) for k in keys))
        return dict(zip(keys, states, strict=True))

    async def _recompute_key(self, buckets: ViewBuckets, view: View, key: str) -> Any:
        assert view.compute is not None
        loaded: dict[str, Any] = {}
        checkpoints: list[int] = []
        for source in view.inputs:
            name = source.view.name
            if source.many:
                records = await self._inputs(buckets, name, await buckets.keys(name, f"{key}."))
                found = [records[k] for k in sorted(records)]
            else:
                found = list((await self._inputs(buckets, name, [key])).values())
            checkpoints += [r.position for r in found]
            states = [self.decode_state(source.view, r) for r in found if not is_removed(r)]
            loaded[source.name] = states if source.many else (states[0] if states else None)
        state = view.compute(**loaded)
        position = max(checkpoints, default=0)
        if state is not None and "position" in state.__struct_fields__:
            state = msgspec.structs.replace(state, position=position)
        made = Record(position, msgspec.Raw(encoder.encode(state)), inputs=sum(checkpoints))
        return await self._keep_newer(await buckets.bucket(view.name), view, key, made)

    async def _inputs(self, buckets: ViewBuckets, view: str, keys: list[str]) -> dict[str, Record]:
        """The records of `keys` that exist: from memory when this writer follows (see
        __init__), the others read (and remembered); all read when it does not."""
        if not self._follows:
            return await buckets.records(view, keys)
        bucket = view_bucket(view, buckets.version)
        found: dict[str, Record] = {}
        unknown = []
        for key in keys:
            known = self._recall(bucket, key)
            if known is None:
                unknown.append(key)
            else:
                found[key] = known[0]
        if unknown:
            kv = await buckets.bucket(view)
            read = await asyncio.gather(*(self._read(kv, bucket, key) for key in unknown))
            found.update((k, r[0]) for k, r in zip(unknown, read, strict=True) if r is not None)
        return found

    async def _read(self, kv: Any, bucket: str, key: str) -> tuple[Record, int] | None:
        """The stored record of `key` and its revision (remembered), or None."""
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        record = record_decoder.decode(entry.value or b"")
        self._remember_record(bucket, key, record, entry.revision)
        return record, entry.revision

    async def _keep_newer(self, kv: Any, view: View, key: str, made: Record) -> Any:
        """Write `made` unless the stored record was made from newer (or the same) inputs."""
        for attempt in range(MAX_CAS_ATTEMPTS):
            try:
                entry = await kv.get(key)
                stored, revision = record_decoder.decode(entry.value or b""), entry.revision
            except (KeyNotFoundError, KeyDeletedError):
                stored, revision = None, None
            if not replaces(stored, made):
                assert stored is not None
                return self.decode_state(view, stored)  # as new as this, or newer: keep it
            try:
                if revision is None:
                    await kv.create(key, encoder.encode(made))
                else:
                    await kv.update(key, encoder.encode(made), last=revision)
                return self.decode_state(view, made)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RuntimeError(f"view {view.name} key {key} kept changing under us")

    async def save_progress(self, buckets: ViewBuckets, view: str, position: int) -> None:
        """Record that `view` has folded EVENTS up to `position` (it only moves forward)."""
        kv = await buckets.bucket(VIEW_PROGRESS)
        await save_position(kv, view, position)


def replaces(stored: Record | None, made: Record) -> bool:
    """Whether a computed record `made` should replace the `stored` one.

    `inputs` is the sum of the input records' checkpoints: records are only
    added (a removed one keeps its checkpoint) and checkpoints only grow, so
    inputs read later sum higher, and the record made once every change is
    in has the highest sum of all: whatever order writes land in, it stays.
    """
    return stored is None or made.inputs > stored.inputs


async def save_position(kv: Any, key: str, position: int) -> None:
    """Move the position at `key` forward to `position` (never back), with CAS."""
    value = encoder.encode(Progress(position))
    for _ in range(MAX_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            try:
                await kv.create(key, value)
                return
            except KeyWrongLastSequenceError:
                continue
        if progress_decoder.decode(entry.value or b"").position >= position:
            return
        try:
            await kv.update(key, value, last=entry.revision)
            return
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"progress {key} kept changing under us")
