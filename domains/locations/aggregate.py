"""A location: created once, never changed."""

from __future__ import annotations

import msgspec

from contracts.domain import EventMeta
from domains.locations.commands import CreateLocation
from domains.locations.events import LocationCreated


class Location(msgspec.Struct, frozen=True):
    name: str


def decide(state: Location | None, command: CreateLocation) -> list[LocationCreated]:
    if state is not None:
        return []  # created already: nothing more to do
    return [LocationCreated(command.name, command.category, command.description)]


def evolve(state: Location | None, event: LocationCreated, meta: EventMeta) -> Location:
    return Location(event.name)
