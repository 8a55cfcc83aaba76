from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.commands import Command, CreateLocation
from contracts.notices import Action
from contracts.topology import name_key
from reactor.handlers import (
    Created,
    Rejected,
    create_location,
    location_id_for,
    to_notice,
    unprocessable_notice,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def command(name: str = "Leeds", command_id: str = "a" * 32, at: datetime = T0) -> Command:
    return Command(
        command_id=command_id,
        submitted_at=at,
        session_id="s" * 32,
        correlation_id=command_id,
        payload=CreateLocation(name=name, category="City", description="d"),
    )


def test_free_name_creates_the_location() -> None:
    cmd = command()
    decision = create_location(cmd, cmd.payload, name_owner=None)
    assert isinstance(decision, Created)
    loc = decision.location
    assert (loc.name, loc.category, loc.description, loc.created_at) == ("Leeds", "City", "d", T0)
    assert loc.id == location_id_for(cmd)


def test_name_held_by_another_location_is_rejected_as_conflict() -> None:
    cmd = command()
    decision = create_location(cmd, cmd.payload, name_owner="0" * 24)
    assert isinstance(decision, Rejected)
    assert decision.problem.status == 409
    assert "Leeds" in decision.problem.detail


def test_redelivered_command_finds_its_own_name_claim_and_succeeds_again() -> None:
    cmd = command()
    first = create_location(cmd, cmd.payload, name_owner=None)
    again = create_location(cmd, cmd.payload, name_owner=location_id_for(cmd))
    assert first == again


def test_location_ids_sort_by_creation_time_and_hide_the_command_id() -> None:
    older = location_id_for(command(command_id="f" * 32, at=T0))
    newer = location_id_for(command(command_id="0" * 32, at=T0 + timedelta(milliseconds=1)))
    assert older < newer
    assert len(older) == 24
    assert "f" * 12 not in older


def test_names_compare_case_and_width_insensitively() -> None:
    assert name_key("Leeds") == name_key("LEEDS") == name_key("leeds")
    assert name_key("\uff2c\uff45\uff45\uff44\uff53") == name_key("Leeds")  # full-width letters
    assert name_key("Leeds") != name_key("Leed")


def test_succeeded_notice_carries_resource_and_navigation() -> None:
    cmd = command()
    decision = create_location(cmd, cmd.payload, None)
    assert isinstance(decision, Created)
    done = T0 + timedelta(seconds=1)
    notice = to_notice(cmd, decision, done)
    loc_id = decision.location.id
    assert notice.status == "succeeded"
    assert notice.type == "CreateLocation"
    assert notice.completed_at == done
    assert notice.resource is not None
    assert notice.resource["id"] == loc_id
    assert notice.resource_url == f"/api/locations/{loc_id}"
    assert notice.actions == [
        Action(rel="navigate", href=f"/locations/{loc_id}", label="Open Leeds")
    ]
    assert notice.error is None


def test_failed_notice_carries_the_problem() -> None:
    cmd = command()
    decision = create_location(cmd, cmd.payload, "0" * 24)
    notice = to_notice(cmd, decision, T0)
    assert notice.status == "failed"
    assert notice.error is not None
    assert notice.error.status == 409
    assert notice.resource is None
    assert notice.actions == []


def test_unprocessable_notice() -> None:
    notice = unprocessable_notice(command(), "TimeoutError", T0)
    assert notice.status == "failed"
    assert notice.error is not None
    assert notice.error.title == "Command could not be processed"
    assert "TimeoutError" in notice.error.detail
