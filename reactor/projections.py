"""KV adapters: load the state a handler needs, write what it decides.

Idempotency: a location's id derives from its command, and its name claim is
a `kv.create` (fails if the key exists) holding that id. A redelivered
command finds the claim already its own and rewrites the identical record,
so it changes nothing a second time. Two reactors racing for one name: one
create wins, the other re-reads the owner and rejects.
"""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.commands import Command, CreateLocation, encoder
from contracts.topology import name_key
from reactor import handlers
from reactor.handlers import Decision, Rejected

MAX_CLAIM_ATTEMPTS = 5


class LocationsProjection:
    def __init__(self, locations: KeyValue, names: KeyValue) -> None:
        self._locations = locations
        self._names = names

    async def create_location(self, command: Command) -> Decision:
        payload = command.payload
        assert isinstance(payload, CreateLocation)
        key = name_key(payload.name)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            owner = await self._name_owner(key)
            decision = handlers.create_location(command, payload, owner)
            if isinstance(decision, Rejected):
                return decision
            if owner is None:
                try:
                    await self._names.create(key, decision.location.id.encode())
                except KeyWrongLastSequenceError:
                    continue  # claimed meanwhile: decide again with the new owner
            await self._locations.put(decision.location.id, encoder.encode(decision.location))
            return decision
        raise RuntimeError(f"name claim {key} kept changing under us")

    async def _name_owner(self, key: str) -> str | None:
        try:
            entry = await self._names.get(key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None
