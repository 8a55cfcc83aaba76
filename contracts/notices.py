"""Notices: the outcome of a command, as the reactor publishes and stores it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One validation error: `loc` is a JSON path such as `$.name`."""

    loc: str
    msg: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem details object."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Action(msgspec.Struct, frozen=True):
    """What the browser should do next, e.g. navigate to the new resource."""

    rel: Literal["navigate"]
    href: str
    label: str


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """The terminal outcome of one command.

    Stored in the NOTICES stream (so late subscribers, reconnecting browsers
    and the status endpoint all see it) and delivered live to waiters.
    """

    command_id: str
    type: str
    status: Literal["succeeded", "failed"]
    submitted_at: datetime
    completed_at: datetime
    resource: dict[str, Any] | None = None
    resource_url: str | None = None
    actions: list[Action] = msgspec.field(default_factory=list)
    error: Problem | None = None
    # The EVENTS sequence of the command's last event (of the state it was
    # decided on, if it appended none): a read with ?min_position=<this>
    # sees the command's effects in every view.
    position: int | None = None
    # The command whose event made a policy send this one (its notice goes to
    # that command's session).
    caused_by: str | None = None
    # Where the time went, as Unix timestamps taken by the reactor:
    # "started" (handling began), "appending" (decided: the append begins),
    # "appended" (events stored), "decided" (inline views written), "sent"
    # (notice handed to JetStream). See README "Performance" and /metrics.
    timings: dict[str, float] | None = None


notice_decoder: Final = msgspec.json.Decoder(Notice)
