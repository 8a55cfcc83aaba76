"""A command's status: its stored notice, or `pending` while it has none."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.problems import not_found
from api.services import services
from api.urls import command_id_param
from contracts.commands import encoder
from contracts.lookups import find_command, find_notice
from contracts.notices import Action, Problem


class Accepted(msgspec.Struct, frozen=True):
    """The 202 answer to a command: where to learn its outcome."""

    command_id: str
    status: Literal["pending"]
    status_url: str
    events_url: str


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A command accepted and not yet decided: the notice's shape, `status` pending."""

    command_id: str
    type: str
    status: Literal["pending"] = "pending"
    submitted_at: datetime
    completed_at: None = None
    resource: None = None
    resource_url: None = None
    actions: list[Action] = msgspec.field(default_factory=list)
    error: Problem | None = None


async def status(request: Request) -> Response:
    """GET /api/commands/{id}"""
    svc = services(request)
    command_id = command_id_param(request)
    stored = await find_notice(svc.js, command_id)
    if stored is not None:
        return Response(encoder.encode(stored.notice), media_type="application/json")
    command = await find_command(svc.js, command_id)
    if command is None:
        raise not_found("The command")
    pending = Pending(command_id=command_id, type=command.type, submitted_at=command.submitted_at)
    return Response(encoder.encode(pending), media_type="application/json")
