"""The locations domain as pure functions: given events, when a command, then events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.commands import new_aggregate_id
from contracts.domain import EventMeta
from domains.locations.aggregate import Location, decide, evolve
from domains.locations.commands import CreateLocation
from domains.locations.events import LocationCreated
from domains.locations.views import (
    CategoryCount,
    LocationRecord,
    count,
    import_legacy,
    location,
    location_page,
    name_taken,
    stats,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEEDS = CreateLocation(name="Leeds", category="City", description="d")


def meta(seq: int = 1, aggregate_id: str = "0" * 24, at: datetime = T0) -> EventMeta:
    return EventMeta("location", aggregate_id, seq, at, "LocationCreated", "c" * 32, "c" * 32, "s")


def test_a_new_location_is_created() -> None:
    assert decide(None, LEEDS) == [LocationCreated("Leeds", "City", "d")]


def test_a_created_location_is_not_created_again() -> None:
    state = evolve(None, LocationCreated("Leeds", "City", "d"), meta())
    assert state == Location("Leeds")
    assert decide(state, LEEDS) == []


def test_the_location_view_is_the_event_with_its_id_and_time() -> None:
    record = location(None, LocationCreated("Leeds", "City", "d"), meta(aggregate_id="a" * 24))
    assert record == LocationRecord("a" * 24, "Leeds", "City", "d", T0)
    assert location_page(record) == ("/locations/" + "a" * 24, "Open Leeds")


def test_category_counts_add_up_and_stats_list_every_category() -> None:
    created = LocationCreated("Leeds", "City", "")
    one = count(None, created, meta(1))
    two = count(one, created, meta(2))
    assert two == CategoryCount("City", 2)
    summary = stats([two, CategoryCount("Town", 1)])
    assert summary.categories == {
        "Town": 1,
        "City": 2,
        "County/Region": 0,
        "Country": 0,
        "Continent": 0,
    }
    assert summary.total == 3


def test_a_taken_name_is_a_409_naming_it() -> None:
    problem = name_taken(LEEDS).problem()
    assert problem.status == 409
    assert problem.type == "/problems/name-taken"
    assert "Leeds" in problem.detail


def test_aggregate_ids_sort_by_creation_time_and_hide_the_command_id() -> None:
    older = new_aggregate_id("f" * 32, T0)
    newer = new_aggregate_id("0" * 32, T0 + timedelta(milliseconds=1))
    assert older < newer
    assert len(older) == 24
    assert "f" * 12 not in older


def test_a_record_of_the_previous_version_imports_as_its_creation() -> None:
    value = (
        b'{"id":"01a2","name":"Hull","category":"City","description":"x",'
        b'"created_at":"2026-11-23T12:00:00Z"}'
    )
    imported = import_legacy("01a2", value)
    assert imported.aggregate == "location"
    assert imported.aggregate_id == "01a2"
    assert imported.events == [LocationCreated("Hull", "City", "x")]
    assert imported.at == T0
    assert imported.reserve == (("location-name", "Hull"),)
