"""Pure domain logic: a function of the command and the current state.

No NATS, no clock: the adapters in `reactor.projections` load the state,
call these, and write what they return. Each handler returns a decision;
`to_notice` turns it into the notice the browser receives.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from contracts.commands import Command, CreateLocation
from contracts.notices import Action, Notice, Problem
from contracts.resources import CategoryCount, Location, location_page, location_url


class Created(msgspec.Struct, frozen=True):
    """The command succeeded and made (or had already made) `location`."""

    location: Location


class Rejected(msgspec.Struct, frozen=True):
    """A business rule refused the command; nothing was written."""

    problem: Problem


Decision = Created | Rejected


def location_id_for(command: Command) -> str:
    """The id of the location a command creates: the same on every delivery.

    Time-ordered (milliseconds since the epoch, hex) so that sorting ids
    newest-first lists locations newest-first, then 48 bits derived from
    the command id (not the id itself: that is a capability).
    """
    ms = int(command.submitted_at.timestamp() * 1000)
    digest = hashlib.sha256(command.command_id.encode()).hexdigest()
    return f"{ms:012x}{digest[:12]}"


def create_location(command: Command, payload: CreateLocation, name_owner: str | None) -> Decision:
    """Create a location unless another location already has its name.

    `name_owner` is the id of the location holding the name (case-insensitive),
    if any. When it is this command's own location, the command was already
    applied (a redelivery) and succeeds again with the same location.
    """
    location_id = location_id_for(command)
    if name_owner is not None and name_owner != location_id:
        return Rejected(
            Problem(
                type="/problems/name-taken",
                title="Name already taken",
                status=409,
                detail=f"A location named {payload.name!r} already exists.",
                errors=None,
            )
        )
    return Created(
        Location(
            id=location_id,
            name=payload.name,
            category=payload.category,
            description=payload.description,
            created_at=command.submitted_at,
        )
    )


def to_notice(
    command: Command,
    decision: Decision,
    completed_at: datetime,
    timings: dict[str, float] | None = None,
) -> Notice:
    """The notice announcing `decision`."""
    if isinstance(decision, Rejected):
        return Notice(
            command_id=command.command_id,
            type=command.type,
            status="failed",
            submitted_at=command.submitted_at,
            completed_at=completed_at,
            error=decision.problem,
            timings=timings,
        )
    location = decision.location
    return Notice(
        command_id=command.command_id,
        type=command.type,
        status="succeeded",
        submitted_at=command.submitted_at,
        completed_at=completed_at,
        resource=msgspec.to_builtins(location),
        resource_url=location_url(location.id),
        actions=[
            Action(rel="navigate", href=location_page(location.id), label=f"Open {location.name}")
        ],
        timings=timings,
    )


def unprocessable_notice(command: Command, reason: str, completed_at: datetime) -> Notice:
    """The notice for a command that kept failing for reasons outside the domain."""
    return Notice(
        command_id=command.command_id,
        type=command.type,
        status="failed",
        submitted_at=command.submitted_at,
        completed_at=completed_at,
        error=Problem(
            type="/problems/not-processed",
            title="Command could not be processed",
            status=500,
            detail=f"The command could not be processed: {reason}",
        ),
    )


def count_location(current: CategoryCount, command_id: str) -> CategoryCount | None:
    """The counter with this command counted, or None if it already is."""
    if command_id in current.pending:
        return None
    return CategoryCount(current.category, current.count + 1, [*current.pending, command_id])


def settle_count(current: CategoryCount, command_id: str) -> CategoryCount | None:
    """The counter with this command's notice stored, or None if nothing changes."""
    if command_id not in current.pending:
        return None
    return CategoryCount(
        current.category, current.count, [c for c in current.pending if c != command_id]
    )
