"""Password hashing and checking: argon2id through argon2-cffi, off the event loop.

Why argon2-cffi: it is the maintained reference binding of Argon2 (the
Password Hashing Competition's winner, RFC 9106), its `PasswordHasher`
defaults to RFC 9106's recommended argon2id parameters, and a hash carries
its own salt and parameters (so they can be raised later:
`check_needs_rehash`). pwdlib is a thin layer over the same library.

A hash costs about 0.1 s of CPU and 64 MiB here, so it runs in a worker
thread, at most `concurrency` at once (a burst of sign-ups cannot take the
process's memory), and the event loop keeps serving meanwhile.

Checking a password for an address nobody registered still verifies one
(against a hash of a random secret made at start), so a wrong password and an
unknown address take about the same time: the answer's timing does not tell
whether an address has an account.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None, concurrency: int = 2) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._decoy = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Whether `password` is the one `hashed` was made of; None (no such user): False,
        after as much work as a real check."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, hashed, password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            self._hasher.verify(hashed or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None
