"""Relay live notices from NATS to the waiters of this process.

One core subscription per API process, on the subject NOTICES republishes
every stored notice to (`live.notice.<session>.<command>`, with its stream
sequence in the `Nats-Sequence` header). A notice arrives here only after it
is stored, so a waiter that registers and then looks in the store can never
miss one (DESIGN §3.2: subscribe, then check).

Waiters register by command id (a command's event stream, `Prefer: wait`) or
by session id (the session event stream). While NATS is disconnected, live
notices are missed; on reconnect every waiter is told to look in the store
again (`RESYNC`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from api.inbox import Inbox
from contracts.lookups import StoredNotice
from contracts.notices import Notice, notice_decoder
from contracts.topology import LIVE_NOTICES_ALL

log = logging.getLogger(__name__)


class Resync:
    """Sentinel: live delivery may have had a gap; re-read the store."""


RESYNC: Final = Resync()


class Unavailable:
    """NATS is away: a session stream says so and ends (its client comes back later)."""


UNAVAILABLE: Final = Unavailable()
Item = StoredNotice | Resync | Unavailable
Waiters = defaultdict[str, set[Inbox[Item]]]
Registration = AbstractAsyncContextManager[Inbox[Item]]


class NoticeRelay:
    def __init__(self, on_notice: Callable[[Notice, float], None] | None = None) -> None:
        # Told of each notice this process relays, and when it came (for /metrics).
        self._on_notice = on_notice
        self._sub: Subscription | None = None
        self._by_command: Waiters = defaultdict(set)
        self._by_session: Waiters = defaultdict(set)

    @property
    def waiters(self) -> int:
        return sum(
            len(qs) for index in (self._by_command, self._by_session) for qs in index.values()
        )

    async def start(self, nc: Client) -> None:
        self._sub = await nc.subscribe(LIVE_NOTICES_ALL, cb=self._on_msg, pending_msgs_limit=-1)
        await nc.flush()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def resync(self) -> None:
        for index in (self._by_command, self._by_session):
            for queues in index.values():
                for queue in queues:
                    queue.put_nowait(RESYNC)

    def unavailable(self) -> None:
        """NATS went away: tell every session stream (command waiters keep waiting)."""
        for queues in self._by_session.values():
            for queue in queues:
                queue.put_nowait(UNAVAILABLE)

    def command(self, command_id: str, inbox: Inbox[Item] | None = None) -> Registration:
        """Receive the notice of one command while inside the block (into `inbox`, or a new one)."""
        return _register(self._by_command, command_id, inbox or Inbox())

    def session(self, session_id: str, inbox: Inbox[Item] | None = None) -> Registration:
        """Receive every notice of one session while inside the block."""
        return _register(self._by_session, session_id, inbox or Inbox())

    async def _on_msg(self, msg: Msg) -> None:
        _, _, session_id, command_id = msg.subject.split(".", 3)
        targets = [*self._by_command.get(command_id, ()), *self._by_session.get(session_id, ())]
        if not targets:
            return
        received = time.time()
        try:
            seq = int((msg.headers or {})["Nats-Sequence"])
            item = StoredNotice(notice_decoder.decode(msg.data), seq)
        except (KeyError, ValueError, msgspec.DecodeError):
            log.exception("ignoring malformed live notice on %s", msg.subject)
            return
        if self._on_notice is not None:
            self._on_notice(item.notice, received)
        for queue in targets:
            queue.put_nowait(item)


@asynccontextmanager
async def _register(index: Waiters, key: str, inbox: Inbox[Item]) -> AsyncIterator[Inbox[Item]]:
    index[key].add(inbox)
    try:
        yield inbox
    finally:
        waiting = index[key]
        waiting.discard(inbox)
        if not waiting:
            del index[key]
