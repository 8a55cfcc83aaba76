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

Connected, a live copy can still be lost: core NATS delivers at most once (a
route between clustered servers that fails and reconnects, a subscription
over its pending limit, a change of the stream's leader, which republishes
from the new one). The relay receives every notice, so it sees such a loss as
a hole in the NOTICES sequences: it reads what is missing from the store (a
few requests at a time, each given FILL_TIMEOUT) and relays it before the
notice that showed the hole; a hole longer than MAX_FILL, or a read that
fails, tells every waiter to look in the store instead. A lost last notice
shows no hole until the next one comes, so while there are waiters and no
notice has come for QUIET seconds, the relay asks the store for its last
sequence (one request a period, per process). From NATS going away until
the relay has read the store's last sequence after the reconnect, it looks
for no holes (every waiter looks in the store once it has that sequence;
meanwhile a session's waiter is told to look in the store at each live
notice rather than handed it, as it may have passed a lost one); a read
that fails is made again every AWAY_RETRY seconds, whether live
notices come or not (a lost one could hide among them).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from api.inbox import MAX_WAITING, Inbox
from contracts.lookups import StoredNotice, notice_bounds
from contracts.notices import Notice, notice_decoder
from contracts.topology import LIVE_NOTICES_ALL, NOTICES_STREAM

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

# A hole in the sequences of the live notices longer than this is not read from
# the store: every waiter looks in the store instead.
MAX_FILL: Final = 1024
FILL_AT_ONCE: Final = 64  # requests in flight while a hole is read
FILL_TIMEOUT: Final = 1.0  # each: live notices wait while a hole is read
# With waiters and no live notice for this long, ask the store whether its last
# notice came (a lost last notice shows no hole).
QUIET: Final = 1.0
# Not yet read after a reconnect (the read failed): read the store's last this often.
AWAY_RETRY: Final = 1.0


class NoticeRelay:
    def __init__(
        self,
        on_notice: Callable[[Notice, float], None] | None = None,
        on_missed: Callable[[int], None] | None = None,
        quiet: float = QUIET,
    ) -> None:
        # Told of each notice this process relays, and when it came, and of how many
        # live notices never came (for /metrics).
        self._on_notice = on_notice
        self._on_missed = on_missed
        self._quiet = quiet
        self._sub: Subscription | None = None
        self._js: JetStreamContext | None = None
        self._watch: asyncio.Task[None] | None = None
        self._by_command: Waiters = defaultdict(set)
        self._by_session: Waiters = defaultdict(set)
        # The highest sequence relayed (None while NATS is away and until the store's
        # last sequence is read after: no holes are looked for), when a live notice
        # last came, and held while a hole is read from the store.
        self._seen: int | None = None
        self._last_live = time.monotonic()
        self._filling = asyncio.Lock()
        self._fill_js: JetStreamContext | None = None
        self._watch_failing = False
        # Notices relayed from the store whose live copies have not come (late, not
        # lost): relayed once, so their copies are not relayed again.
        self._filled: set[int] = set()

    @property
    def waiters(self) -> int:
        return sum(
            len(qs) for index in (self._by_command, self._by_session) for qs in index.values()
        )

    async def start(self, nc: Client) -> None:
        self._js = nc.jetstream()
        self._fill_js = nc.jetstream(timeout=FILL_TIMEOUT)
        self._sub = await nc.subscribe(LIVE_NOTICES_ALL, cb=self._on_msg, pending_msgs_limit=-1)
        await nc.flush()
        # No waiter yet: what was stored before is theirs to look up (subscribe, then check).
        await self._from_the_last(self._js)
        self._watch = asyncio.create_task(self._watch_the_last())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def resync(self) -> None:
        """NATS is back: holes are looked for again after the store's last sequence,
        and every waiter looks in the store (after that read, so that nothing stored
        in between is missed by both)."""
        if self._fill_js is not None:
            try:
                await self._from_the_last(self._fill_js)
            except Exception as exc:  # NATS gone again: the watcher reads it later
                log.warning("the notices' last sequence not read after a reconnect: %r", exc)
        self._resync_waiters()

    async def _from_the_last(self, js: JetStreamContext) -> None:
        last = (await notice_bounds(js)).last_seq
        self._seen = max(self._seen or 0, last)

    def _resync_waiters(self) -> None:
        for index in (self._by_command, self._by_session):
            for queues in index.values():
                for queue in queues:
                    queue.put_nowait(RESYNC)

    def unavailable(self) -> None:
        """NATS went away: tell every session stream (command waiters keep waiting).
        Holes are not looked for until the store's last sequence is read again."""
        self._seen = None
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
        try:
            seq = int((msg.headers or {})["Nats-Sequence"])
        except (KeyError, ValueError):
            log.error("ignoring a live notice without its sequence on %s", msg.subject)
            return
        self._last_live = time.monotonic()
        seen = self._seen
        if seen is not None and seq > seen + 1:
            await self._fill(seq - 1)
        elif seen is not None and seq + MAX_FILL < seen:
            log.warning("NOTICES starts again at %d (it was at %d): made again?", seq, seen)
            self._seen = seq
        if seq in self._filled:  # relayed from the store already: a late copy
            self._filled.discard(seq)
            return
        self._relay(msg.subject.removeprefix("live."), seq, msg.data)

    def _advance(self, seq: int) -> None:
        """Notices up to `seq` are relayed (or told of), unless holes are not looked for."""
        if self._seen is not None:
            self._seen = max(self._seen, seq)

    def _relay(self, subject: str, seq: int, data: bytes) -> None:
        """Hand the notice stored as `seq` on `subject` (notice.<session>.<command>) to
        its waiters."""
        self._advance(seq)
        parts = subject.split(".")
        if len(parts) != 3:
            log.error("ignoring a notice on %s (not notice.<session>.<command>)", subject)
            return
        _, session_id, command_id = parts
        commands, sessions = (
            self._by_command.get(command_id, ()),
            self._by_session.get(session_id, ()),
        )
        if not commands and not sessions:
            return
        received = time.time()
        try:
            item = StoredNotice(notice_decoder.decode(data), seq)
        except msgspec.DecodeError:
            log.exception("ignoring a malformed notice on %s", subject)
            return
        if self._on_notice is not None:
            self._on_notice(item.notice, received)
        # While holes are not looked for (after a reconnect, until the store's last is
        # read), a live notice may have passed a lost one: a session stream, which moves
        # its position on to what it is handed, is told to read from the store instead
        # (up to this one, that lost one included). A command's waiter takes it as is.
        # Past MAX_WAITING waiting, a waiter looks in the store instead, from where it was.
        for queue in commands:
            queue.put_bounded(item, MAX_WAITING, RESYNC)
        told: Item = RESYNC if self._seen is None else item
        for queue in sessions:
            queue.put_bounded(told, MAX_WAITING, RESYNC)

    async def _fill(self, last: int) -> None:
        """Relay the notices after the last one relayed, up to `last`, from the store:
        their live copies were lost. If they cannot be read, every waiter looks in
        the store."""
        async with self._filling:  # one reader of a hole; the others find it filled
            seen = self._seen
            if seen is None or last <= seen:
                return
            first = seen + 1
            try:
                if last - first + 1 > MAX_FILL:
                    raise OverflowError(f"{last - first + 1} notices, over {MAX_FILL}")
                found = await self._read(first, last)
            except Exception as exc:
                log.warning("live notices %d to %d did not come: %r", first, last, exc)
                self._advance(last)
                self._resync_waiters()
                return
            if len(self._filled) > MAX_FILL:  # copies that were lost, not late
                self._filled.clear()
            for msg in found:
                self._relay(msg.subject or "", msg.seq or 0, msg.data or b"")
                self._filled.add(msg.seq or 0)
            self._advance(last)
            if found:
                log.warning(
                    "%d live notices (of %d to %d) did not come: relayed from the store",
                    len(found), first, last,
                )  # fmt: skip
                if self._on_missed is not None:
                    self._on_missed(len(found))

    async def _read(self, first: int, last: int) -> list[RawStreamMsg]:
        """The notices stored as `first` to `last` (those still there), in order."""
        js = self._fill_js
        assert js is not None

        async def one(seq: int) -> RawStreamMsg | None:
            try:
                return await js.get_msg(NOTICES_STREAM, seq=seq)
            except NotFoundError:
                return None  # removed since (expired), or never a notice (a cluster's skip)

        found: list[RawStreamMsg] = []
        for start in range(first, last + 1, FILL_AT_ONCE):
            seqs = range(start, min(start + FILL_AT_ONCE, last + 1))
            found += [m for m in await asyncio.gather(*map(one, seqs)) if m is not None]
        return found

    async def _watch_the_last(self) -> None:
        """While there are waiters and live notices have stopped, ask the store for
        its last sequence: the last live notice may have been lost. Not yet read after
        a reconnect: read it, live notices or not."""
        while True:
            await asyncio.sleep(min(self._quiet, AWAY_RETRY))
            try:
                await self._look_at_the_last()
            except Exception as exc:
                if not self._watch_failing:  # once a streak
                    log.warning("could not look at the notices' last sequence: %r", exc)
                self._watch_failing = True
            else:
                self._watch_failing = False

    async def _look_at_the_last(self) -> None:
        if self._seen is not None:  # holes are looked for: only a lost last one is left
            quiet = time.monotonic() - self._last_live >= self._quiet
            if not quiet or not (self._by_command or self._by_session):
                return
        assert self._js is not None
        seen = self._seen  # live notices may move it on while the store is asked
        last = (await notice_bounds(self._js)).last_seq
        if seen is not None and last < seen:
            # The store ends before what was relayed when it was asked: NATS's store
            # was made again. From its end on, and every waiter looks in the store.
            log.warning("NOTICES ends at %d (it was at %d): made again?", last, seen)
            self._seen = last
            self._resync_waiters()
        elif seen is None:
            # Not read after the reconnect: from here on, and every waiter looks in
            # the store (a reconnect's own read may have come meanwhile).
            self._seen = max(self._seen or 0, last)
            self._resync_waiters()
        elif self._seen is not None and last > self._seen:
            await self._fill(last)


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
