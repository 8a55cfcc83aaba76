"""A job that cannot get past an event says so where operators look.

A bug in a domain's fold, a policy issuing a command nobody registered, a
record the code cannot read: the job stops moving (its position stays, nothing
is skipped) and its runner tries again, backing off to every 30 s. Before
this, the only sign was a traceback in that reactor's log and a lag that
grew, so `task status` showed a view "behind 1234" with no reason, and a
monitoring system had no series to alert on.

Each failure is now recorded in `runner_progress` at `failing.<job>`: the
error's first line, the last event the job got past, since when, how many
attempts, and which reactor tried last (any reactor may hold the lease
next). The first position the job stores after that (it got past, or the
events were not its to read) deletes the record, whoever runs it then.
`task status` lists them, and `/metrics` has `notify_job_failing{job}`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Final

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from contracts.lookups import bucket_keys
from contracts.topology import RUNNER_PROGRESS_BUCKET

PREFIX: Final = "failing."
MAX_ERROR: Final = 300  # characters of the error kept (its first line)


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    job: str
    error: str  # "ZeroDivisionError: division by zero"
    position: int  # the last event the job got past: it is stuck on what comes after
    since: datetime  # the first failure since the job last moved
    at: datetime  # the latest
    attempts: int
    reactor: str  # the one that tried last


_decoder: Final = msgspec.json.Decoder(Failure)
_encoder: Final = msgspec.json.Encoder()


def describe(exc: BaseException) -> str:
    """The error in one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= MAX_ERROR else line[: MAX_ERROR - 1] + "…"


class Failures:
    """The failing records of one reactor's runners."""

    def __init__(self, kv: KeyValue, reactor: str) -> None:
        self._kv = kv
        self._reactor = reactor

    async def record(self, job: str, exc: BaseException, position: int) -> None:
        """Count a failure of `job` (stuck after `position`); NATS away: not recorded."""
        now = datetime.now(UTC)
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            before = await self._get(job)
            same_run = before is not None and before.position == position
            failure = Failure(
                job=job,
                error=describe(exc),
                position=position,
                since=before.since if before is not None and same_run else now,
                at=now,
                attempts=before.attempts + 1 if before is not None and same_run else 1,
                reactor=self._reactor,
            )
            await self._kv.put(PREFIX + job, _encoder.encode(failure))

    async def clear(self, job: str) -> None:
        """`job` moved: whatever stopped it has passed (a read first: no tombstone a run)."""
        if await self._get(job) is not None:
            await self._kv.delete(PREFIX + job)

    async def _get(self, job: str) -> Failure | None:
        try:
            entry = await self._kv.get(PREFIX + job)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        try:
            return _decoder.decode(entry.value or b"")
        except msgspec.DecodeError:
            return None  # written by a release of another shape: written again


async def failing(js: JetStreamContext) -> list[Failure]:
    """Every job stuck now, by name."""
    try:
        kv = await js.key_value(RUNNER_PROGRESS_BUCKET)
        keys = await bucket_keys(js, RUNNER_PROGRESS_BUCKET, PREFIX)
    except NotFoundError:
        return []
    found = []
    for key in sorted(keys):
        try:
            entry = await kv.get(key)
            found.append(_decoder.decode(entry.value or b""))
        except (KeyNotFoundError, KeyDeletedError, msgspec.DecodeError):
            continue  # cleared (its delete marker is listed too), or another release's shape
    return found
