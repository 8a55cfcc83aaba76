"""`GET /openapi.json`: an OpenAPI 3.1 document built from the registry and msgspec schemas.

Every command route (its body schema, 202 / 201 / 200, the problems), every
read (list pages, one record, summaries, live streams), the command status
and event streams, and the operations endpoints. Schemas come from the
domains' msgspec Structs (`msgspec.json.schema_components`), so the
document cannot drift from what the API validates.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Final

import msgspec

from api.reads import CURSOR, MAX_LIMIT, RANK_CURSOR, filter_values
from api.sessions import CurrentUser, SignInForm
from api.status import Accepted, Pending
from contracts.domain import Aggregator, CommandSpec, GetRead, ListRead, SummaryRead
from contracts.notices import Notice, Problem
from contracts.registry import Registry

REF: Final = "#/components/schemas/{name}"
PROBLEM_JSON: Final = "application/problem+json"
ID_SCHEMA: Final = {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"}
COMMAND_ID_SCHEMA: Final = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


def _ref(t: type) -> dict[str, str]:
    return {"$ref": REF.format(name=t.__name__)}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": _REASONS.get(code, "Problem"),
            "content": {PROBLEM_JSON: {"schema": _ref(Problem)}},
        }
        for code in codes
    }


_REASONS: Final = {
    400: "Malformed request",
    401: "Not signed in (or, signing in: wrong email or password)",
    403: "Not allowed (not the owner)",
    404: "Not found",
    409: "Conflict (a business rule, or an Idempotency-Key still in flight)",
    413: "Body too large",
    415: "Not JSON",
    422: "Invalid (schema, parameter, or a business rule)",
    429: "Too many streams for this session, or too many failed sign-ins",
    503: (
        "NATS unavailable, a view behind, too many streams or too many commands waiting: "
        "retry after Retry-After"
    ),
}

_MIN_POSITION: Final = {
    "name": "min_position",
    "in": "query",
    "required": False,
    "description": "Answer once the view has applied the events up to this position "
    "(a notice's `position`).",
    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
}
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA}


def _id_param(name: str) -> dict[str, Any]:
    return {**_ID_PARAM, "name": name}


_COMMAND_ID_PARAM: Final = {
    "name": "command_id",
    "in": "path",
    "required": True,
    "schema": COMMAND_ID_SCHEMA,
}
_SSE: Final = {"text/event-stream": {"schema": {"type": "string"}}}
_COMMAND_HEADERS: Final = [
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`wait=N` (RFC 7240, N ≤ 30): answer with the outcome if it comes in time.",
        "schema": {"type": "string"},
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Retry safely: the same key and body get the first answer again.",
        "schema": {"type": "string"},
    },
    {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"}},
]


def _command(spec: CommandSpec, registry: Registry) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Succeeded within Prefer: wait"}
    # The resource; its notice when there is none: none made (a batch of messages) or none left
    # (a deletion: a change that may remove its record).
    schema: dict[str, Any]
    if spec.resource is None:
        schema = _ref(Notice)
    elif spec.creates:
        schema = _ref(registry.views[spec.resource].state)
    else:
        schema = {"anyOf": [_ref(registry.views[spec.resource].state), _ref(Notice)]}
    ok["content"] = {"application/json": {"schema": schema}}
    responses: dict[str, Any] = {
        "202": {
            "description": "Accepted: the outcome comes as a notice",
            "content": {"application/json": {"schema": _ref(Accepted)}},
        },
        "201" if spec.creates and spec.resource else "200": ok,
        **_problems(400, 409, 413, 415, 422, 503),
        "4XX": {
            "description": "The command failed within Prefer: wait (its problem)",
            "content": {PROBLEM_JSON: {"schema": _ref(Problem)}},
        },
    }
    if not spec.creates:
        responses.update(_problems(404))
    if spec.access == "user":
        responses.update(_problems(401))
    if spec.owner is not None:
        responses.update(_problems(403))
    limit = f" The body may be up to {spec.max_body} bytes." if spec.max_body else ""
    return {
        "summary": spec.summary or spec.name,
        "description": (spec.body.__doc__ or "").strip() + limit,
        "operationId": spec.name,
        "tags": [registry.command_domain[spec.name].name],
        "parameters": ([] if spec.creates or spec.on_self else [_ID_PARAM]) + _COMMAND_HEADERS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(spec.body)}},
        },
        "responses": responses,
    }


def _page_schema(state: type) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "limit", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(state)},
            "limit": {"type": "integer"},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }


def _filter_param(state: type, name: str) -> dict[str, Any]:
    """A list's filter: the field's values when they are a fixed set, else any short text."""
    fixed = filter_values(state, name)
    values = {"enum": fixed} if fixed is not None else {"minLength": 1, "maxLength": 256}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"Only records whose {name} is this",
        "schema": {"type": "string", **values},
    }


def _read(read: ListRead | GetRead | SummaryRead, registry: Registry, tag: str) -> dict[str, Any]:
    view = registry.readable(read.view)
    assert view is not None  # the registry checked
    common = {"summary": read.summary or read.path, "tags": [tag]}
    if isinstance(read, ListRead):
        ranked = isinstance(view, Aggregator) and view.rank is not None
        cursor = RANK_CURSOR if ranked else CURSOR
        params = [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "The `next_cursor` of the page before",
                "schema": {"type": "string", "pattern": cursor.pattern},
            },
            _MIN_POSITION,
            *(_filter_param(view.state, name) for name in read.filters),
        ]
        body: dict[str, Any] = _page_schema(view.state)
        errors = _problems(422, 503)
        if read.parent is not None:
            params.insert(0, _id_param(read.param))
            errors = _problems(404, 422, 503)
    elif isinstance(read, GetRead):
        params = [_id_param(read.param), _MIN_POSITION]
        body = _ref(view.state)
        errors = _problems(404, 422, 503)
    else:
        params = [_MIN_POSITION]
        body = _ref(read.schema)
        errors = _problems(422, 503)
    return {
        **common,
        "operationId": f"read_{read.view}_{type(read).__name__}",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": body}}},
            **errors,
        },
    }


def _fixed_paths() -> dict[str, Any]:
    status = {"anyOf": [_ref(Notice), _ref(Pending)]}
    return {
        "/api/commands/{command_id}": {
            "get": {
                "summary": "A command's status: its notice, or pending",
                "operationId": "command_status",
                "tags": ["commands"],
                "parameters": [_COMMAND_ID_PARAM],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": status}},
                    },
                    **_problems(404),
                },
            }
        },
        "/api/commands/{command_id}/events": {
            "get": {
                "summary": "A command's outcome as one server-sent event (or `timeout`)",
                "operationId": "command_events",
                "tags": ["commands"],
                "parameters": [
                    _COMMAND_ID_PARAM,
                    {
                        "name": "timeout",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
                    },
                ],
                "responses": {
                    "200": {"description": "An event stream", "content": _SSE},
                    **_problems(404, 422, 429, 503),
                },
            }
        },
        "/api/events": {
            "get": {
                "summary": "Every notice of this browser session, resumable (Last-Event-ID)",
                "operationId": "session_events",
                "tags": ["commands"],
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {"description": "An event stream", "content": _SSE},
                    **_problems(429, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Alive",
                "operationId": "healthz",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Connected, streams and buckets present",
                "operationId": "readyz",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Ready",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_problems(503),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text",
                "operationId": "metrics",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _session_paths() -> dict[str, Any]:
    user = {"application/json": {"schema": _ref(CurrentUser)}}
    return {
        "/api/sessions": {
            "post": {
                "summary": "Sign in: binds this browser session to the user (a new session cookie)",
                "operationId": "sign_in",
                "tags": ["sessions"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(SignInForm)}},
                },
                "responses": {
                    "200": {"description": "Signed in", "content": user},
                    **_problems(400, 401, 413, 415, 422, 429, 503),
                },
            }
        },
        "/api/sessions/current": {
            "get": {
                "summary": "Who this browser session is signed in as",
                "operationId": "current_session",
                "tags": ["sessions"],
                "responses": {
                    "200": {"description": "Signed in", "content": user},
                    **_problems(401, 503),
                },
            },
            "delete": {
                "summary": "Sign out (a new, anonymous session cookie)",
                "operationId": "sign_out",
                "tags": ["sessions"],
                "responses": {"204": {"description": "Signed out"}, **_problems(503)},
            },
        },
    }


def _mark_secrets(components: dict[str, Any], registry: Registry) -> None:
    """Secret fields (passwords): `writeOnly` and `format: password` in their schemas."""
    secret = [(SignInForm.__name__, "password")] if registry.sign_in is not None else []
    for spec in registry.commands.values():
        secret += [(spec.body.__name__, name) for name in spec.secrets]
    for schema, name in secret:
        components[schema]["properties"][name].update(writeOnly=True, format="password")


def _version() -> str:
    try:
        return metadata.version("notify-service")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "0"


def document(registry: Registry, version: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API serving `registry`."""
    paths: dict[str, Any] = {}
    types: list[type] = [Problem, Notice, Pending, Accepted]
    for spec in registry.commands.values():
        if spec.path is None:
            continue
        paths.setdefault(spec.path, {})["post"] = _command(spec, registry)
        types.append(spec.body)
    if registry.sign_in is not None:
        paths.update(_session_paths())
        types += [SignInForm, CurrentUser]
    for domain in registry.domains:
        for read in domain.reads:
            view = registry.readable(read.view)
            assert view is not None  # the registry checked
            types.append(read.schema if isinstance(read, SummaryRead) else view.state)
            paths.setdefault(read.path, {})["get"] = _read(read, registry, domain.name)
            if isinstance(read, GetRead) and view.followable:
                paths[f"{read.path}/live"] = {
                    "get": {
                        "summary": f"Follow one {read.view} record (server-sent events)",
                        "operationId": f"live_{read.view}",
                        "tags": [domain.name],
                        "parameters": [_id_param(read.param)],
                        "responses": {
                            "200": {"description": "An event stream", "content": _SSE},
                            **_problems(404, 429, 503),
                        },
                    }
                }
    paths.update(_fixed_paths())
    _, components = msgspec.json.schema_components(list(dict.fromkeys(types)), ref_template=REF)
    _mark_secrets(components, registry)
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "notify-service",
            "version": version or _version(),
            "description": "Commands in, outcomes out over server-sent events. "
            "Domains: " + ", ".join(d.title for d in registry.domains) + ".",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))  # plain JSON types
    return result
