"""Which reactor runs a job (an async view, a policy): a lease in KV that expires.

The `leases` bucket keeps each key for LEASE_TTL seconds after its last
write. A reactor takes a free job with `create` (fails while someone holds
it) and renews it with compare-and-set every third of the TTL; one that stops
renewing (killed, cut off) loses the job within the TTL, and a standby that
tries once a second takes it over. Correctness does not rest on the lease:
two holders at once (a paused process waking up) only repeat work, since
every write the jobs make is checkpointed.

A holder is named by the reactor's id: random unless `REACTOR_ID` gives a
stable one (as Kafka's `group.instance.id`). A reactor restarted under the
same id finds its own lease still there and takes it back at once, rather
than waiting out the TTL: a reactor that crashes and restarts in a loop
keeps its jobs moving.
"""

from __future__ import annotations

import uuid
from typing import Final

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.kv import delete_unless_changed
from contracts.topology import LEASE_TTL

RENEW_EVERY: Final = LEASE_TTL / 3
RETRY_EVERY: Final = 1.0


class Lease:
    def __init__(self, kv: KeyValue, job: str, holder: str | None = None) -> None:
        self._kv = kv
        self.job = job
        self.holder = holder or uuid.uuid4().hex
        self._revision: int | None = None

    @property
    def held(self) -> bool:
        return self._revision is not None

    async def acquire(self) -> bool:
        """Take the job if nobody holds it (or this holder did, before a restart)."""
        try:
            self._revision = await self._kv.create(self.job, self.holder.encode())
        except KeyWrongLastSequenceError:
            return await self._reclaim()
        return True

    async def _reclaim(self) -> bool:
        try:
            entry = await self._kv.get(self.job)
        except (KeyNotFoundError, KeyDeletedError):
            return False  # freed meanwhile: the next try creates it
        if entry.value != self.holder.encode():
            return False
        try:
            self._revision = await self._kv.update(
                self.job, self.holder.encode(), last=entry.revision
            )
        except KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self) -> bool:
        """Keep the job; False if it was lost (expired and taken, or deleted)."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(
                self.job, self.holder.encode(), last=self._revision
            )
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            self._revision = None
            return False
        return True

    async def release(self) -> None:
        """Give the job up at once (a clean stop), so a standby need not wait for the TTL."""
        if self._revision is not None:
            revision, self._revision = self._revision, None
            await delete_unless_changed(self._kv, self.job, revision)  # False: lost already
