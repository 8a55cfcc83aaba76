"""Which reactors are alive, and how many of a group of jobs (an aggregator's partitions)
this one may hold: its fair share, so that two reactors both take partitions.

Each reactor keeps a key `member.<holder>` in the leases bucket alive (the
bucket's TTL drops it LEASE_TTL seconds after the reactor stops renewing it)
and counts the live ones every RETRY_EVERY. Its share of a group of n jobs
is ceil(n / members). A runner takes a job only within the share, and one
holding more than the share (a reactor has joined) hands a job over at its
next renewal; the newcomer, trying every second, takes it.

A reactor that dies: its leases and its member key expire within LEASE_TTL,
the others count one member fewer within RETRY_EVERY, and take its jobs on
their next try (RETRY_EVERY): every partition has a holder again within
TAKEOVER_BOUND seconds. A clean stop deletes the key and releases the
leases at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from typing import Final

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.lookups import bucket_keys
from contracts.topology import LEASE_TTL, LEASES_BUCKET
from reactor.jobs import pause
from reactor.leases import RENEW_EVERY, RETRY_EVERY

log = logging.getLogger(__name__)

MEMBER_PREFIX: Final = "member."
# A dead reactor's jobs have a holder again within this many seconds.
TAKEOVER_BOUND: Final = LEASE_TTL + 2 * RETRY_EVERY


class Members:
    """This reactor's membership, and the count of live reactors."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, holder: str) -> None:
        self._js = js
        self._kv = kv
        self.holder = holder
        self.count = 1  # live reactors, this one included
        self._shares: list[Share] = []

    def share(self, size: int) -> Share:
        """The gate of a group of `size` jobs."""
        share = Share(self, size)
        self._shares.append(share)
        return share

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        renew_at = 0.0
        try:
            while not stop.is_set():
                try:
                    if loop.time() >= renew_at:
                        await self._kv.put(self._key(self.holder), self.holder.encode())
                        renew_at = loop.time() + RENEW_EVERY
                    self.count = max(1, await self._live())
                except (nats.errors.Error, TimeoutError) as exc:
                    if stop.is_set():  # stopping with the server gone: its connection closed
                        break
                    log.warning("members: %s: %s; again shortly", type(exc).__name__, exc)
                await pause(stop, RETRY_EVERY)
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._kv.delete(self._key(self.holder))

    async def _live(self) -> int:
        keys = await bucket_keys(self._js, LEASES_BUCKET)
        members = [k for k in keys if k.startswith(MEMBER_PREFIX)]

        async def alive(key: str) -> bool:
            try:
                await self._kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):  # expired, or a clean stop's tombstone
                return False
            return True

        return sum(await asyncio.gather(*(alive(k) for k in members)))

    @staticmethod
    def _key(holder: str) -> str:
        # A holder is any REACTOR_ID; a KV key is not any text.
        return MEMBER_PREFIX + hashlib.sha256(holder.encode()).hexdigest()[:16]


class Share:
    """A reactor's fair share of one group of jobs (a `reactor.jobs.Gate`)."""

    def __init__(self, members: Members, size: int) -> None:
        self._members = members
        self._size = size
        self.held: set[str] = set()

    @property
    def limit(self) -> int:
        return math.ceil(self._size / self._members.count)

    def reserve(self, job: str) -> bool:
        if job in self.held or len(self.held) < self.limit:
            self.held.add(job)
            return True
        return False

    def over(self, job: str) -> bool:
        # Counted off at once, so that the next runner to ask does not go too.
        if len(self.held) > self.limit and job in self.held:
            self.held.discard(job)
            return True
        return False

    def drop(self, job: str) -> None:
        self.held.discard(job)
