"""KV adapters: load the state a handler needs, write what it decides.

Idempotency: a location's id derives from its command, and its name claim is
a `kv.create` (fails if the key exists) holding that id. A redelivered
command finds the claim already its own; if its location record is written
too (it is written last) the command was applied in full and changes nothing,
not even the count, otherwise it finishes the job. That is also what lets a
rebuild and a reactor apply the same command to the same buckets. Two
reactors racing for one name: one create wins, the other re-reads the owner
and rejects.

Concurrency on a shared record (the per-category counters): compare-and-set
on the KV revision, retried with jitter on conflict. CAS rather than
partitioning by key because every reactor may handle any command (one shared
durable consumer, no ordering by key), and a conflict costs one re-read
where partitioning would cost a consumer per partition and idle reactors.
Two things keep conflicts rare under load: each category's count is split
over COUNTER_SHARDS keys (`contracts.resources.counter_key`; readers add them
up), and within one process updates to one key take turns (an asyncio lock),
so CAS only arbitrates between processes.
A counter is exactly-once across crashes through its `pending` list (see
`reactor.handlers.CategoryCount`): counted and marked pending in one write,
unmarked by `settle` once the notice is stored.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.commands import Command, CreateLocation, encoder
from contracts.projections import Buckets
from contracts.resources import CategoryCount, category_count_decoder, counter_key
from contracts.topology import name_key
from reactor import handlers
from reactor.handlers import Decision, Rejected

MAX_CLAIM_ATTEMPTS = 5
MAX_CAS_ATTEMPTS = 200


class LocationsProjection:
    """Writes to whichever bucket version `buckets()` gives, one version per call."""

    def __init__(self, buckets: Callable[[], Buckets]) -> None:
        self._buckets = buckets
        self._turns: defaultdict[tuple[int, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._known: dict[tuple[int, str], tuple[CategoryCount, int | None]] = {}

    async def apply(self, command: Command) -> Decision:
        payload = command.payload
        assert isinstance(payload, CreateLocation)
        b = self._buckets()
        key = name_key(payload.name)
        mine = handlers.location_id_for(command)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            # Claim first: with no owner the handler always creates `mine`, so a
            # new name (the common case) costs one write instead of a read and a
            # write. Only a taken name is read, and then decided on.
            try:
                await b.names.create(key, mine.encode())
                owner = None
            except KeyWrongLastSequenceError:
                owner = await _name_owner(b, key)
                if owner is None:
                    continue
            decision = handlers.create_location(command, payload, owner)
            if isinstance(decision, Rejected):
                return decision
            if owner is not None and await _exists(b.locations, mine):
                return decision  # applied in full before (the record is written last)
            await self._update_count(
                b, payload.category, command.command_id, handlers.count_location
            )
            await b.locations.put(mine, encoder.encode(decision.location))
            return decision
        raise RuntimeError(f"name claim {key} kept changing under us")

    async def settle(self, command: Command) -> None:
        """The command's notice is stored: it no longer needs its pending mark."""
        payload = command.payload
        assert isinstance(payload, CreateLocation)
        await self._update_count(
            self._buckets(), payload.category, command.command_id, handlers.settle_count
        )

    async def _update_count(
        self,
        b: Buckets,
        category: str,
        command_id: str,
        change: Callable[[CategoryCount, str], CategoryCount | None],
    ) -> None:
        """Compare-and-set `change` onto the command's counter shard, retrying on conflict.

        The shard's last known state and revision are remembered, so the usual
        update is a write without a read; a stale memory fails the CAS and is
        read afresh. A remembered state is never trusted to mean "nothing to
        change": that is always confirmed by a fresh read.
        """
        key = counter_key(category, command_id)
        shard = (b.version, key)
        async with self._turns[shard]:
            for attempt in range(MAX_CAS_ATTEMPTS):
                remembered = self._known.pop(shard, None)
                if remembered is not None:
                    current, revision = remembered
                else:
                    try:
                        entry = await b.stats.get(key)
                        assert entry.value is not None
                        current = category_count_decoder.decode(entry.value)
                        revision = entry.revision
                    except KeyNotFoundError:
                        current, revision = CategoryCount(category), None
                changed = change(current, command_id)
                if changed is None:
                    if remembered is None:
                        self._known[shard] = (current, revision)
                        return
                    continue  # confirm with a fresh read
                try:
                    if revision is None:
                        written = await b.stats.create(key, encoder.encode(changed))
                    else:
                        written = await b.stats.update(key, encoder.encode(changed), last=revision)
                    self._known[shard] = (changed, written)
                    return
                except KeyWrongLastSequenceError:
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RuntimeError(f"counter {key} kept changing under us")


async def _name_owner(b: Buckets, key: str) -> str | None:
    try:
        entry = await b.names.get(key)
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


async def _exists(kv: KeyValue, key: str) -> bool:
    try:
        await kv.get(key)
    except KeyNotFoundError:
        return False
    return True
