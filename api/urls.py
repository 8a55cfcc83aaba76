"""URLs of a command, and the path parameter that names one."""

from __future__ import annotations

import re

from starlette.requests import Request

from api.problems import not_found

COMMAND_ID = re.compile(r"^[0-9a-f]{32}$")
# An aggregate's id in a path: one subject token and one KV key (no dots, no wildcards).
ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def status_url(command_id: str) -> str:
    return f"/api/commands/{command_id}"


def events_url(command_id: str) -> str:
    return f"/api/commands/{command_id}/events"


def resource_id_param(request: Request, collection: str | None, param: str = "id") -> str:
    """The {id} of a resource's path (or the name a read gives it); 404 unless it can be
    one (one subject token, one KV key)."""
    resource_id: str = request.path_params[param]
    if not ID.match(resource_id):
        raise not_found(f"The {collection} resource")
    return resource_id


def command_id_param(request: Request) -> str:
    """The {command_id} of the path; 404 unless it is one (no NATS wildcards get through)."""
    command_id: str = request.path_params["command_id"]
    if not COMMAND_ID.match(command_id):
        raise not_found("The command")
    return command_id
