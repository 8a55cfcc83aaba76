"""Idempotency-Key for POSTs (IETF draft-ietf-httpapi-idempotency-key-header).

A key is scoped to the browser session that sent it and kept 24 hours (the KV
bucket's TTL). A request that brings no session cookie is a new session, and so
would its retry be: its key is scoped by the key alone (ANONYMOUS), and its
record names the session its answer's cookie gives, so that a retry with that
cookie (the answer came, a 503 say, and its cookie with it) finds it too. The
key gives no session: the sessions stay random.

Its record holds a fingerprint of the validated command, the
command id, and, once the first request has answered, that answer:

- the same key and body again -> the same answer, nothing published;
- the same key, another body -> 422;
- while the first request has not answered yet (publishing, or waiting on
  `Prefer: wait`) -> 409.

The record is created with `kv.create` (fails if the key exists), so two API
instances racing on one key cannot both publish. An in-flight record older
than its lease (the longest its request can take: IN_FLIGHT_FOR plus the
request's `Prefer: wait`) belongs to a request that died, or that could not
hand its record over: the next request takes it over, reusing its command
id, so at most one command is ever accepted per key (a request slower than
its lease shares the command id, and the publish's `Nats-Msg-Id`, with the
one that took over).
A request whose publish went unacknowledged (503: the command may be stored)
hands its record over at once rather than freeing the key, so its retry is
the same command.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Final

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.kv import delete_unless_changed

# A request's lease on its key: checks, reads and the publish (its patience and
# timeout), plus its `Prefer: wait`.
IN_FLIGHT_FOR: Final = 20.0
STALE_AFTER: Final = 90.0  # the lease of a record written before leases were kept
ANONYMOUS: Final = ""  # the scope of keys sent without a session cookie (never a session id)


class StoredResponse(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes


class Record(msgspec.Struct, frozen=True):
    fingerprint: str
    command_id: str
    started_at: float
    response: StoredResponse | None = None
    lease: float = STALE_AFTER  # seconds after started_at its request may still answer
    session: str | None = None  # sent without a cookie: the session its answer gave


class Started(msgspec.Struct, frozen=True):
    """This request owns the key: publish `command_id`, then `finish`."""

    key: str
    revision: int
    command_id: str
    fingerprint: str  # of the request's command, kept in every write of the record
    lease: float  # seconds it may hold the key in flight (its record's lease)
    taken_over: bool = False
    session: str | None = None  # its record's, kept in every write of it


class Replay(msgspec.Struct, frozen=True):
    response: StoredResponse


class InFlight(msgspec.Struct, frozen=True):
    pass


class Mismatch(msgspec.Struct, frozen=True):
    pass


Outcome = Started | Replay | InFlight | Mismatch
_decoder: Final = msgspec.json.Decoder(Record)


def lease_for(wait_s: int | None) -> float:
    """How long a request that waits `wait_s` (Prefer: wait) may hold its key in flight."""
    return IN_FLIGHT_FOR + (wait_s or 0)


def fingerprint(collection: str, payload: msgspec.Struct) -> str:
    """Of the validated command, so formatting differences in the JSON do not count."""
    return hashlib.sha256(collection.encode() + b"\n" + msgspec.json.encode(payload)).hexdigest()


class IdempotencyKeys:
    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock

    async def begin(
        self,
        session_id: str,
        key: str,
        fingerprint: str,
        command_id: str,
        lease: float = IN_FLIGHT_FOR,
        *,
        cookie: bool = True,
    ) -> Outcome:
        """Take the key for a request that answers within `lease` seconds (else a later
        request with the key takes it over). `cookie`: the request brought its session's
        cookie (else `session_id` is new, the one its answer's cookie gives)."""
        record = Record(
            fingerprint,
            command_id,
            self._clock(),
            lease=lease,
            session=None if cookie else session_id,
        )
        if not cookie:
            return await self._take(_kv_key(ANONYMOUS, key), record)
        own_key = _kv_key(session_id, key)
        own, first = await asyncio.gather(
            self._create(own_key, record), self._first_without_cookie(session_id, key)
        )
        if first is None:
            return own or await self._take(own_key, record, created=False)
        # The first request with the key came without a cookie, and this session is
        # the one its answer gave: its record is this request's.
        if own is not None:
            await delete_unless_changed(self._kv, own_key, own.revision)
        return await self._take(first, record)

    async def _create(self, kv_key: str, record: Record) -> Started | None:
        """The key taken anew, or None if it has a record."""
        try:
            revision = await self._kv.create(kv_key, msgspec.json.encode(record))
        except KeyWrongLastSequenceError:
            return None
        return _started(kv_key, revision, record)

    async def _first_without_cookie(self, session_id: str, key: str) -> str | None:
        """The KV key of the key's record made without a cookie, if its answer gave this
        session."""
        kv_key = _kv_key(ANONYMOUS, key)
        try:
            entry = await self._kv.get(kv_key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        found = _decoder.decode(entry.value or b"")
        return kv_key if found.session == session_id else None

    async def _take(self, kv_key: str, record: Record, *, created: bool = True) -> Outcome:
        """Create the key's record, or answer from the one it has (unless `created` is
        False: it has one, create no more)."""
        fingerprint, command_id, lease = record.fingerprint, record.command_id, record.lease
        for _ in range(3):
            if created and (started := await self._create(kv_key, record)) is not None:
                return started
            created = True
            try:
                entry = await self._kv.get(kv_key)
            except (KeyNotFoundError, KeyDeletedError):
                continue  # expired or released in between: try to create again
            assert entry.value is not None
            assert entry.revision is not None
            existing = _decoder.decode(entry.value)
            if existing.command_id == command_id and existing.response is None:
                # Our own create, stored though its ack was lost (this is asked again):
                # the command id is new to this request, so the record is this one's.
                return _started(kv_key, entry.revision, existing)
            if existing.fingerprint != fingerprint:
                return Mismatch()
            if existing.response is not None:
                return Replay(existing.response)
            if self._clock() - existing.started_at < existing.lease:
                return InFlight()
            takeover = msgspec.structs.replace(existing, started_at=self._clock(), lease=lease)
            try:
                revision = await self._kv.update(
                    kv_key, msgspec.json.encode(takeover), last=entry.revision
                )
            except KeyWrongLastSequenceError:
                continue
            return _started(kv_key, revision, takeover, taken_over=True)
        return InFlight()

    async def finish(self, started: Started, response: StoredResponse) -> None:
        await self._rewrite(started, self._clock(), response)

    async def release(self, started: Started) -> bool:
        """The request failed before anything was accepted: free the key for a retry.
        False if the record changed since (taken over): then it is not ours to free."""
        return await delete_unless_changed(self._kv, started.key, started.revision)

    async def hand_over(self, started: Started) -> bool:
        """The publish's outcome is not known (no acknowledgement): the command may be
        stored. Keep its id with the key, marked as given up on, so that a retry takes
        it over at once with the same command id (and publishes it only if it is not
        stored) instead of making a second command. False if the record changed since."""
        try:
            await self._rewrite(started, self._clock() - started.lease - 1)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def _rewrite(
        self, started: Started, started_at: float, response: StoredResponse | None = None
    ) -> None:
        """Write the started request's record again, unless it changed since."""
        record = Record(
            started.fingerprint,
            started.command_id,
            started_at,
            response,
            lease=started.lease,
            session=started.session,
        )
        await self._kv.update(started.key, msgspec.json.encode(record), last=started.revision)


def _kv_key(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()


def _started(kv_key: str, revision: int, record: Record, *, taken_over: bool = False) -> Started:
    return Started(
        kv_key,
        revision,
        record.command_id,
        record.fingerprint,
        lease=record.lease,
        taken_over=taken_over,
        session=record.session,
    )
