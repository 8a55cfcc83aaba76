"""The read side of locations: each location, and how many there are per category."""

from __future__ import annotations

from datetime import datetime

import msgspec

from contracts.domain import EventMeta, Imported, Link, Rejection, View
from domains.locations.commands import CATEGORIES, Category, CreateLocation
from domains.locations.events import LocationCreated


class LocationRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    category: Category
    description: str
    created_at: datetime


def location(record: LocationRecord | None, e: LocationCreated, meta: EventMeta) -> LocationRecord:
    return LocationRecord(meta.aggregate_id, e.name, e.category, e.description, meta.at)


def location_page(record: LocationRecord) -> Link:
    return Link(f"/locations/{record.id}", f"Open {record.name}")


LOCATIONS = View(
    "locations",
    state=LocationRecord,
    events=(LocationCreated,),
    apply=location,
    inline=True,
    page=location_page,
)


class CategoryCount(msgspec.Struct, frozen=True):
    category: str
    count: int


def count(record: CategoryCount | None, e: LocationCreated, meta: EventMeta) -> CategoryCount:
    return CategoryCount(e.category, (record.count if record else 0) + 1)


STATS = View(
    "location_stats",
    state=CategoryCount,
    events=(LocationCreated,),
    key=lambda e, meta: e.category,
    apply=count,
)


class Stats(msgspec.Struct, frozen=True):
    categories: dict[str, int]
    total: int


def stats(counts: list[CategoryCount]) -> Stats:
    """Every category, with 0 for those without locations."""
    found = {c.category: c.count for c in counts}
    categories = {category: found.get(category, 0) for category in CATEGORIES}
    return Stats(categories, sum(categories.values()))


def name_taken(command: CreateLocation) -> Rejection:
    return Rejection(
        409,
        "Name already taken",
        f"A location named {command.name!r} already exists.",
        slug="name-taken",
    )


class _LegacyLocation(msgspec.Struct):
    id: str
    name: str
    category: Category
    description: str
    created_at: datetime


def import_legacy(key: str, value: bytes) -> Imported:
    """A location record of the previous version, as the event that creates it now."""
    old = msgspec.json.decode(value, type=_LegacyLocation)
    return Imported(
        "location",
        old.id,
        [LocationCreated(old.name, old.category, old.description)],
        old.created_at,
        reserve=(("location-name", old.name),),
    )
