"""Admission: new commands are refused (503, Retry-After) while too many wait for a reactor.

The API stores commands as fast as JetStream takes them, and the reactors
work through them at their own pace. Past their capacity the backlog grows
without bound, and with it every outcome's delay: each user would be told
"ready shortly" about work that may be minutes away. So each API process
samples the reactor consumer's backlog (`num_pending` + `num_ack_pending`:
not yet delivered, and delivered but not done) every SAMPLE_EVERY seconds,
and while it is at the limit or above, a POST that would publish a new
command is refused before anything is written, and before its payload is
taken in (a password hashed): 503, problem `/problems/busy`, and
`Retry-After` the seconds the reactors need to bring the backlog under the
limit at the pace they took commands over the last samples (1 to
MAX_RETRY_AFTER). The pace is how fast the consumer's delivered sequence
moves (new commands handed to a reactor), not its ack floor, which one
command waiting out a retry's backoff holds still.

- A replayed Idempotency-Key is answered as before (nothing is published).
- Commands a policy issues come from a reactor, not the API: never refused.
- Not known (NATS away, no reactor consumer yet, the sampler failing, or a
  sample older than STALE_AFTER): admitted, and the publish answers for NATS.
- The sample is up to SAMPLE_EVERY old, so a burst can pass the limit by
  what arrives in that time; every API process refuses on its own sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Final

import nats.errors
from nats.js import JetStreamContext

from api.problems import HTTPProblem
from contracts.topology import COMMANDS_STREAM, REACTOR_CONSUMER

log = logging.getLogger(__name__)

SAMPLE_EVERY: Final = 0.25
# Seconds: a sample older than this is not trusted to refuse anything. Longer than a
# consumer_info request may take (nats-py's 5 s), so a slow NATS or a busy event loop
# under the very overload admission is for does not switch it off.
STALE_AFTER: Final = 8.0
MAX_RETRY_AFTER: Final = 30


class Backlog:
    def __init__(
        self,
        js: JetStreamContext,
        limit: int,
        every: float = SAMPLE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`limit`: the commands waiting at which new ones are refused (0: never)."""
        self._js = js
        self._clock = clock
        self.limit = limit
        self._every = every
        self.waiting: int | None = None  # at the last sample (None: not known)
        self.sampled_at = 0.0  # the clock's time of the last sample
        self.pace = 0.0  # commands taken a second, over the last samples
        self._delivered: tuple[float, int] | None = None  # (when, delivered seq) last sample
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.limit > 0:
            self._task = asyncio.create_task(self._sample_for_ever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def refusal(self) -> HTTPProblem | None:
        """The 503 to answer a new command with while the backlog is at the limit."""
        waiting = self.waiting
        if self.limit <= 0 or waiting is None or waiting < self.limit:
            return None
        if self._clock() - self.sampled_at > STALE_AFTER:
            return None  # the sampler is stuck: not known
        seconds = self.retry_after(waiting)
        return HTTPProblem(
            503,
            "Too busy",
            f"{waiting} commands are waiting to be handled (the limit is {self.limit}), "
            f"so this one was not taken. Try again in {seconds} s.",
            slug="busy",
            headers={"Retry-After": str(seconds)},
        )

    def retry_after(self, waiting: int) -> int:
        """Seconds until the backlog is under the limit at the reactors' recent pace."""
        if self.pace <= 0:
            return MAX_RETRY_AFTER
        seconds = math.ceil((waiting - self.limit + 1) / self.pace)
        return max(1, min(MAX_RETRY_AFTER, seconds))

    async def sample(self) -> None:
        """Read the reactor consumer's backlog and the pace its reactors take commands at."""
        try:
            info = await self._js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("command backlog not known: %r", exc)
            self.waiting, self._delivered = None, None
            return
        now = self._clock()
        delivered = (info.delivered.stream_seq if info.delivered else None) or 0
        if self._delivered is not None and now > self._delivered[0]:
            pace = max(0, delivered - self._delivered[1]) / (now - self._delivered[0])
            self.pace = pace if self.pace == 0 else 0.5 * (self.pace + pace)
        self._delivered = (now, delivered)
        self.waiting = (info.num_pending or 0) + (info.num_ack_pending or 0)
        self.sampled_at = now

    async def _sample_for_ever(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # a bug or a surprise: not known, and sample on
                log.exception("sampling the command backlog failed")
                self.waiting, self._delivered = None, None
            await asyncio.sleep(self._every)
