"""Unique values across aggregates (a name, an email): a KV `create`, owned by an aggregate.

The key is `<scope>.<sha256 of the normalised value>` (NFKC, case-folded, so
"Leeds", "LEEDS" and its full-width form are one value); the value is the id
of the aggregate holding it. `create` fails if the key exists, so of two
commands racing for one value exactly one claims it; the other reads the
owner and is refused. A redelivered command finds the claim its own and goes
on. A claim made by a command that was then refused is released, and so is
one held for an aggregate that never came to be by a command given up on
(dead-lettered), so the value can be taken again.
"""

from __future__ import annotations

import hashlib
from typing import Final, NamedTuple

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.domain import SCOPE, folded
from contracts.kv import delete_unless_changed

MAX_ATTEMPTS: Final = 5


def reservation_key(scope: str, value: str) -> str:
    if not SCOPE.match(scope):
        raise ValueError(f"reservation scope {scope!r} must match {SCOPE.pattern}")
    return f"{scope}.{hashlib.sha256(folded(value).encode()).hexdigest()}"


class Claim(NamedTuple):
    key: str
    owner: str  # the aggregate holding the value
    revision: int
    new: bool  # claimed by this call (so a refusal should release it)


class Reservations:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def claim(self, scope: str, value: str, owner: str) -> Claim:
        """Reserve `value` for `owner`, or learn who holds it."""
        key = reservation_key(scope, value)
        for _ in range(MAX_ATTEMPTS):
            # Claim first: a new value (the common case) costs one write, no read.
            try:
                revision = await self._kv.create(key, owner.encode())
                return Claim(key, owner, revision, True)
            except KeyWrongLastSequenceError:
                pass
            held = await self._held(key)
            if held is not None:
                return held  # None: released in between, claim again
        raise RuntimeError(f"reservation {key} kept changing under us")

    async def release(self, claim: Claim) -> bool:
        """Give back a claimed value, only if nobody changed it since; whether it was."""
        return await delete_unless_changed(self._kv, claim.key, claim.revision)

    async def held(self, scope: str, value: str) -> Claim | None:
        """Who holds `value` now, as a claim that `release` can give back; None if nobody."""
        return await self._held(reservation_key(scope, value))

    async def _held(self, key: str) -> Claim | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        assert entry.revision is not None
        return Claim(key, (entry.value or b"").decode(), entry.revision, False)

    async def owner(self, scope: str, value: str) -> str | None:
        claim = await self.held(scope, value)
        return (claim.owner or None) if claim is not None else None
