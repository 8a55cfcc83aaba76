"""Password hashing and checking: argon2id through argon2-cffi, off the event loop.

Why argon2-cffi: it is the maintained reference binding of Argon2 (the
Password Hashing Competition's winner, RFC 9106), its `PasswordHasher`
defaults to RFC 9106's recommended argon2id parameters, and a hash carries
its own salt and parameters (so they can be raised later:
`check_needs_rehash`). pwdlib is a thin layer over the same library.

A hash costs about 0.1 s of CPU and 64 MiB here, so it runs in a worker
thread, at most `concurrency` at once (a burst of sign-ups cannot take the
process's memory), and the event loop keeps serving meanwhile. Sign-ups'
hashes take at most all but one of those slots, so sign-ins always have one
(80 sign-ups sent at once by one client held an honest sign-in for 8.6 s),
and each kind has at most `max_waiting` requests waiting or running: past
that it is answered at once, `503` with `Retry-After`, rather than queued for
ever (each waiting request holds its password and a connection).

Checking a password for an address nobody registered still verifies one
(against a hash of a random secret made at start), so a wrong password and an
unknown address take about the same time: the answer's timing does not tell
whether an address has an account.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.problems import HTTPProblem


class Passwords:
    def __init__(
        self, hasher: PasswordHasher | None = None, concurrency: int = 2, max_waiting: int = 64
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._hashing = asyncio.Semaphore(max(1, concurrency - 1))  # one left to sign-ins
        self._max_waiting = max_waiting
        self._waiting = {"hash": 0, "verify": 0}  # waiting or running, by kind
        self._decoy = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        async with self._turn("hash"), self._hashing, self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Whether `password` is the one `hashed` was made of; None (no such user): False,
        after as much work as a real check."""
        async with self._turn("verify"), self._slots:
            return await asyncio.to_thread(self._verify, hashed, password)

    @contextlib.asynccontextmanager
    async def _turn(self, kind: str) -> AsyncIterator[None]:
        if self._waiting[kind] >= self._max_waiting:
            raise HTTPProblem(
                503,
                "Too busy",
                "Too many passwords are being checked right now. Try again in a second.",
                slug="busy",
                headers={"Retry-After": "1"},
            )
        self._waiting[kind] += 1
        try:
            yield
        finally:
            self._waiting[kind] -= 1

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            self._hasher.verify(hashed or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None
