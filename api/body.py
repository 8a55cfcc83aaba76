"""Reading a command from the request body: JSON only, size-limited, validated.

JSON only, whatever the command: the content type is what keeps another
site's page from sending one without the browser asking first (a CORS
preflight, which the API does not answer), so a command of no fields (ship a
shipment) takes `application/json` too, with `{}` or an empty body.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import msgspec
from starlette.requests import Request

from api.headers import whole_number
from api.problems import HTTPProblem
from contracts.validation import InvalidPayload, MalformedBody, decode_payload

T = TypeVar("T", bound=msgspec.Struct)


async def command_payload(
    request: Request, schema: type[T], limit: int, body_timeout: float = 10.0
) -> T:
    """The body as `schema`, or the problem to answer: 415, 413, 408, 400 or 422."""
    _require_json(request)
    try:
        async with asyncio.timeout(body_timeout):
            body = await _read_body(request, limit)
    except TimeoutError:
        raise HTTPProblem(
            408,
            "Request timeout",
            f"The body took over {body_timeout:g} s to arrive.",
            headers={"Connection": "close"},
        ) from None
    if not body.strip():
        body = b"{}"  # no body: a command of no fields (an action's), or the fields it lacks
    try:
        return decode_payload(schema, body)
    except MalformedBody as exc:
        raise HTTPProblem(400, "Malformed JSON", str(exc)) from None
    except InvalidPayload as exc:
        raise HTTPProblem(
            422,
            "Invalid command",
            f"The {schema.__name__} command is not valid: {exc}",
            slug="validation",
            errors=exc.errors,
        ) from None


def _require_json(request: Request) -> None:
    """application/json (or a +json type, RFC 6839), in UTF-8 if it names a charset."""
    media_type, *parameters = request.headers.get("content-type", "").split(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPProblem(
            415,
            "Unsupported media type",
            f"Send the command as application/json, not {media_type or 'no content type'}"
            " (a command of no fields too: the type, with {} or no body).",
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise HTTPProblem(
                415,
                "Unsupported media type",
                f"Send the command in UTF-8 (JSON's encoding), not {charset or 'no charset'}.",
            )


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = HTTPProblem(413, "Body too large", f"The body is over the limit of {limit} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and (whole_number(declared) or 0) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
