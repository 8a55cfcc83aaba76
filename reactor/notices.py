"""Notices: how an outcome is announced (pure functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from contracts.commands import Command
from contracts.domain import Link
from contracts.notices import Action, Notice, Problem


def succeeded(
    command: Command,
    completed_at: datetime,
    *,
    position: int,
    resource: Any = None,
    resource_url: str | None = None,
    page: Link | None = None,
    timings: dict[str, float] | None = None,
) -> Notice:
    return Notice(
        **_about(command, completed_at),
        status="succeeded",
        resource=None if resource is None else msgspec.to_builtins(resource),
        resource_url=resource_url,
        actions=[] if page is None else [Action("navigate", page.href, page.label)],
        position=position,
        timings=timings,
    )


def failed(
    command: Command,
    completed_at: datetime,
    problem: Problem,
    *,
    position: int | None = None,
    timings: dict[str, float] | None = None,
) -> Notice:
    return Notice(
        **_about(command, completed_at),
        status="failed",
        error=problem,
        position=position,
        timings=timings,
    )


def _about(command: Command, completed_at: datetime) -> dict[str, Any]:
    """What every notice says of its command."""
    return {
        "command_id": command.command_id,
        "type": command.type,
        "submitted_at": command.submitted_at,
        "completed_at": completed_at,
        "caused_by": command.caused_by,
    }


def unprocessable(command: Command, reason: str, completed_at: datetime) -> Notice:
    """The notice for a command that kept failing for reasons outside the domain.

    What went wrong (`reason`: an exception's text) is for the operator, in the
    log and the dead letter's headers, not for whoever sent the command.
    """
    return failed(
        command,
        completed_at,
        Problem(
            type="/problems/not-processed",
            title="Command could not be processed",
            status=500,
            detail="The command could not be processed; it was set aside for an operator "
            "(a dead letter).",
        ),
    )


def unfinished(command: Command, reason: str, completed_at: datetime) -> Notice:
    """The notice for a command given up on after its events were stored: it took
    effect, so it must not be sent again, but what it changes is not readable yet (an
    inline view could not be written): an operator replays it (`task dlq:replay`),
    which writes the views and tells `succeeded`. `reason` is not told, as above."""
    return failed(
        command,
        completed_at,
        Problem(
            type="/problems/not-finished",
            title="Command took effect, not yet visible",
            status=500,
            detail="The command took effect, but what it changes could not be shown yet; "
            "it was set aside for an operator (a dead letter), who will finish it. "
            "Do not send it again.",
        ),
    )


def unknown_outcome(command: Command, reason: str, completed_at: datetime) -> Notice:
    """The notice for a command given up on when whether its events were stored could
    not be read (the outage that exhausted it, maybe): it may have taken effect, so it
    must not be sent again blindly. `reason` is not told, as above."""
    return failed(
        command,
        completed_at,
        Problem(
            type="/problems/outcome-unknown",
            title="Command may have taken effect",
            status=500,
            detail="The command could not be finished, and whether it took effect could "
            "not be checked; it was set aside for an operator (a dead letter). Check "
            "what it would change before sending it again.",
        ),
    )
