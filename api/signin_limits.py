"""Failed sign-ins, counted per email address and per client, in NATS KV.

Held in KV (bucket `sign_in_attempts`) rather than in memory, so every API
instance counts against the same limit: an attacker cannot spread guesses
over instances. A key is `email.<hash of the folded address>` or
`client.<hash of the client address>`; its value is the number of failures
since the window began. Counting is compare-and-set, so concurrent failures
on several instances are all counted. Once either count reaches its limit,
sign-ins for that email (or from that client) are refused with 429 and
Retry-After until the window has passed, whether or not the password is
right, and the password is not even checked (no oracle while locked).

Each attempt is counted before its password is checked, and taken back when
the password was right: guesses sent at once are each counted as they come,
so the sixth of a hundred sent together is refused (they were all checked
while the count stood at zero, the hundredth signed in). So only failures
count: a user who signs in and out all day is never limited.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Final

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.domain import folded

MAX_CAS_ATTEMPTS: Final = 50


class Failures(msgspec.Struct, frozen=True):
    count: int
    since: float  # when the window began (Unix time)


_decoder: Final = msgspec.json.Decoder(Failures)


def _key(kind: str, value: str) -> str:
    return f"{kind}.{hashlib.sha256(value.encode()).hexdigest()[:40]}"


class SignInLimits:
    def __init__(
        self,
        kv: KeyValue,
        *,
        per_email: int = 5,
        per_client: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kv = kv
        self._limits = {"email": per_email, "client": per_client}
        self._window = window
        self._clock = clock

    def _keys(self, email: str, client: str) -> dict[str, str]:
        return {"email": _key("email", folded(email)), "client": _key("client", client)}

    async def wait(self, email: str, client: str) -> float:
        """Seconds until a sign-in for `email` from `client` may be tried (0: now)."""
        now = self._clock()
        wait = 0.0
        for kind, key in self._keys(email, client).items():
            failures = await self._get(key)
            if failures is None or now - failures.since >= self._window:
                continue
            if failures.count >= self._limits[kind]:
                wait = max(wait, failures.since + self._window - now)
        return wait

    async def attempt(self, email: str, client: str) -> float:
        """Count a sign-in about to be checked, as a failure until `take_back`; the
        seconds to wait when a limit is reached (0: check it). Nothing is counted
        while locked."""
        wait = await self.wait(email, client)
        if wait > 0:
            return wait
        now = self._clock()
        for kind, key in self._keys(email, client).items():
            counted = await self._count(key, +1)
            if counted is not None and counted.count > self._limits[kind]:
                wait = max(wait, counted.since + self._window - now)
        return wait

    async def take_back(self, email: str, client: str) -> None:
        """The attempt was not a failure (the password was right, or never checked)."""
        for key in self._keys(email, client).values():
            await self._count(key, -1)

    async def _get(self, key: str) -> Failures | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return _decoder.decode(entry.value or b"")

    async def _count(self, key: str, by: int) -> Failures | None:
        """Add `by` to the count in the window (a window past starts again); the count
        written, or None when there was nothing to take back."""
        for _ in range(MAX_CAS_ATTEMPTS):
            now = self._clock()
            try:
                entry = await self._kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                if by < 0:
                    return None
                try:
                    new = Failures(by, now)
                    await self._kv.create(key, msgspec.json.encode(new))
                    return new
                except KeyWrongLastSequenceError:
                    continue
            old = _decoder.decode(entry.value or b"")
            if now - old.since >= self._window:
                if by < 0:
                    return None  # counted in a window now past
                new = Failures(by, now)
            else:
                new = Failures(max(0, old.count + by), old.since)
            try:
                await self._kv.update(key, msgspec.json.encode(new), last=entry.revision)
                return new
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError(f"sign-in failures {key} kept changing under us")
