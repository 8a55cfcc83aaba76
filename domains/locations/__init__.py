"""Locations: the reference flow. A name is unique case-insensitively (409)."""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    LegacyBucket,
    ListRead,
    SummaryRead,
    Unique,
    WebPage,
    one_line,
)
from domains.locations.aggregate import decide, evolve
from domains.locations.commands import CreateLocation
from domains.locations.events import LocationCreated
from domains.locations.views import LOCATIONS, STATS, Stats, import_legacy, name_taken, stats

DOMAIN = Domain(
    name="locations",
    title="Locations",
    commands=(
        CommandSpec(
            CreateLocation,
            aggregate="location",
            collection="locations",
            unique=Unique("location-name", lambda c: c.name, name_taken),
            check=one_line("name"),
            resource=LOCATIONS.name,
            summary="Create a location (its name must not be taken, whatever its case)",
        ),
    ),
    events=(Event(LocationCreated),),
    aggregates=(Aggregate("location", initial=None, decide=decide, evolve=evolve),),
    views=(LOCATIONS, STATS),
    reads=(
        SummaryRead(
            "/api/locations/stats", STATS.name, stats, Stats, summary="Locations per category"
        ),
        ListRead("locations", LOCATIONS.name, summary="Locations, newest first"),
        GetRead("locations", LOCATIONS.name, summary="One location"),
    ),
    page=WebPage(
        "Locations",
        "/locations",
        Path(__file__).parent / "web",
        summary="Towns, cities, regions: each name once, whatever its case.",
    ),
    # The previous version kept locations in KV, built from commands.
    legacy=(
        LegacyBucket("locations", import_legacy),
        LegacyBucket("location_names"),
        LegacyBucket("location_stats"),
    ),
)
