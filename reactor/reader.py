"""Reading EVENTS in stream order from a position: what async views, policies and rebuilds fold.

An ephemeral pull consumer with no acks, starting after `position` and
filtered to the subjects the reader needs. It is the reader's own, so it
delivers each event once and in order; when it is lost (a reconnect, a
server restart), or one of its messages is (a gap in its consumer
sequence, or one delivered and still not here at the next look), it is
made again from the last event read. Nothing about it
needs to survive the process: whoever folds stores its own position.
Messages are pulled ahead into a buffer (`reactor.pull`), not fetched one
future at a time.
"""

from __future__ import annotations

import logging
from typing import Final, NamedTuple

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from contracts.events import StoredEvent, TooNew, UnreadableEvent, read_event
from contracts.registry import Registry
from contracts.topology import EVENTS_STREAM
from reactor.pull import PullStream

log = logging.getLogger(__name__)

BATCH: Final = 256
INACTIVE: Final = 60.0  # the server drops a reader's consumer this long after it is gone


class Batch(NamedTuple):
    events: list[StoredEvent]
    last_seq: int | None  # the last stream sequence read (events unreadable here included)
    caught_up: bool  # nothing more was pending when the batch was read


class EventReader:
    def __init__(
        self,
        js: JetStreamContext,
        registry: Registry,
        subjects: list[str],
        position: int,
        batch: int = BATCH,
    ) -> None:
        self._js = js
        self._nc: Client = js._nc  # the connection the context is on (nats-py keeps it private)
        self._registry = registry
        self._subjects = subjects
        self._batch = batch
        self.position = position  # every event up to here has been read
        self._pull: PullStream | None = None
        self._consumer: str | None = None
        self._received = 0  # the consumer sequence of the last message taken from it
        self._awaited: int | None = None  # delivered, not yet taken, at the last look
        self._unknown: set[str] = set()

    async def next_batch(self, wait: float) -> Batch:
        """Up to `batch` events after `position`, waiting up to `wait` seconds for the first."""
        try:
            pull = await self._opened()
            msgs = await pull.take(self._batch, wait)
        except nats.errors.Error:
            await self.close()  # the consumer is gone: make it again next time
            raise
        if not msgs:
            return Batch([], None, True)
        events: list[StoredEvent] = []
        for msg in msgs:
            if msg.metadata.sequence.consumer != self._received + 1:
                # One went missing on the way (delivered while the connection was
                # down; nothing is redelivered without acks): read again from here.
                await self._lost()
                if not events:
                    return await self.next_batch(wait)
                return Batch(events, self.position, False)
            self._received = msg.metadata.sequence.consumer
            seq = msg.metadata.sequence.stream
            if seq <= self.position:
                continue  # already read (a consumer made again)
            try:
                events.append(read_event(self._registry, msg.subject, seq, msg.headers, msg.data))
            except TooNew:
                # Not skipped: stop before it (what follows is read again from here).
                await self.close()
                if not events:
                    raise
                return Batch(events, self.position, False)
            except UnreadableEvent as exc:
                self._skip(str(exc))
            self.position = seq
        # Caught up: nothing left on the server past the last message delivered, nor
        # delivered and not taken yet (messages are pulled ahead).
        pending = msgs[-1].metadata.num_pending + pull.buffered
        return Batch(events, self.position, not pending)

    async def _opened(self) -> PullStream:
        """The reader's pull, its consumer made first if there is none."""
        if self._pull is None:
            self._pull = await self._open()
        return self._pull

    async def _lost(self) -> None:
        log.info("an event was lost on its way to a reader; reading again")
        await self.close()

    async def _open(self) -> PullStream:
        start = self.position + 1
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            filter_subjects=self._subjects,
            inactive_threshold=INACTIVE,
            mem_storage=True,
            num_replicas=1,
        )
        info = await self._js.add_consumer(EVENTS_STREAM, config)
        self._consumer, self._received, self._awaited = info.name, 0, None
        pull = PullStream(self._nc, EVENTS_STREAM, info.name, self._batch)
        await pull.start()
        return pull

    async def close(self) -> None:
        """Drop the consumer (if the server is gone, it drops it itself after INACTIVE)."""
        pull, self._pull = self._pull, None
        consumer, self._consumer = self._consumer, None
        try:
            if pull is not None:
                await pull.close()
            if consumer is not None:
                await self._js.delete_consumer(EVENTS_STREAM, consumer)
        except nats.errors.Error as exc:
            log.debug("closing an event reader: %r", exc)

    async def last_seq(self) -> int:
        """The stream's last sequence now."""
        return (await self._js.stream_info(EVENTS_STREAM)).state.last_seq

    async def read_to_end(self) -> int | None:
        """The stream's last sequence, if every event of this reader's up to it has
        been read; None if that cannot be said yet (some are on their way, or
        pending on the server: read on).

        A fetch that brings nothing does not show it: its pull may have been lost
        (a reconnect, the server's restart) or be slow. So after reading the end,
        the reader's consumer must have nothing pending, and nothing delivered
        that was not taken (by its consumer sequence: its stream sequence moves
        on over events of other subjects); a consumer the server no longer has
        is an error (the reader is made again from its position).
        """
        try:
            end = await self.last_seq()
            pull, consumer = await self._opened(), self._consumer
            assert consumer is not None  # made with the pull
            info = await self._js.consumer_info(EVENTS_STREAM, consumer)
        except nats.errors.Error:
            await self.close()
            raise
        delivered = (info.delivered.consumer_seq if info.delivered else None) or 0
        if info.num_pending or pull.buffered:
            return None
        if delivered > self._received:
            if self._awaited is not None and self._received < self._awaited:
                await self._lost()  # delivered at the last look too, and still not here
            else:
                self._awaited = delivered  # on its way, surely, by the next look
            return None
        self._awaited = None
        return end

    def _skip(self, why: str) -> None:
        """An event this process cannot read: skipped, and said once per kind."""
        kind = why.split(": ", 1)[-1]
        if kind not in self._unknown:
            self._unknown.add(kind)
            log.error("skipping an event this reactor cannot read: %s", why)
