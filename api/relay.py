"""Relay live notices from NATS to the waiters of this process.

One core subscription per API process, on the subject NOTICES republishes
every stored notice to (`live.notice.<session>.<command>`, with its stream
sequence in the `Nats-Sequence` header). A notice arrives here only after it
is stored, so a waiter that registers and then looks in the store can never
miss one (DESIGN §3.2: subscribe, then check).

While NATS is disconnected, live notices are missed; on reconnect every
waiter is told to look in the store again (`RESYNC`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from contracts.lookups import StoredNotice
from contracts.notices import notice_decoder
from contracts.topology import LIVE_NOTICES_ALL

log = logging.getLogger(__name__)


class Resync:
    """Sentinel: live delivery may have had a gap; re-read the store."""


RESYNC: Final = Resync()
Item = StoredNotice | Resync


class NoticeRelay:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._sub: Subscription | None = None
        self._by_command: defaultdict[str, set[asyncio.Queue[Item]]] = defaultdict(set)

    @property
    def waiters(self) -> int:
        return sum(len(qs) for qs in self._by_command.values())

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(
            LIVE_NOTICES_ALL, cb=self._on_msg, pending_msgs_limit=-1
        )
        await self._nc.flush()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def resync(self) -> None:
        for queues in self._by_command.values():
            for queue in queues:
                queue.put_nowait(RESYNC)

    @asynccontextmanager
    async def command(self, command_id: str) -> AsyncIterator[asyncio.Queue[Item]]:
        """Receive the notice of one command while inside the block."""
        queue: asyncio.Queue[Item] = asyncio.Queue()
        self._by_command[command_id].add(queue)
        try:
            yield queue
        finally:
            waiting = self._by_command[command_id]
            waiting.discard(queue)
            if not waiting:
                del self._by_command[command_id]

    async def _on_msg(self, msg: Msg) -> None:
        command_id = msg.subject.rsplit(".", 1)[-1]
        queues = self._by_command.get(command_id)
        if not queues:
            return
        try:
            seq = int((msg.headers or {})["Nats-Sequence"])
            item = StoredNotice(notice_decoder.decode(msg.data), seq)
        except (KeyError, ValueError, msgspec.DecodeError):
            log.exception("ignoring malformed live notice on %s", msg.subject)
            return
        for queue in queues:
            queue.put_nowait(item)
