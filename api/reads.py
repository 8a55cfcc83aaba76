"""The read side: a KV get and a decode (DESIGN §4 Reads)."""

from __future__ import annotations

import asyncio
import re

from nats.js.errors import KeyNotFoundError
from starlette.requests import Request
from starlette.responses import Response

from api.problems import invalid_query, not_found
from api.services import services
from contracts.commands import CATEGORIES, encoder
from contracts.resources import Location, location_decoder
from contracts.topology import LOCATIONS_BUCKET

LOCATION_ID = re.compile(r"^[0-9a-f]{24}$")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


async def list_locations(request: Request) -> Response:
    """Newest first: location ids start with their creation time in hex."""
    buckets = services(request).projection.current
    limit = _limit(request)
    newest = sorted(await buckets.keys(LOCATIONS_BUCKET), reverse=True)[:limit]
    entries = await asyncio.gather(
        *(buckets.locations.get(k) for k in newest), return_exceptions=True
    )
    items: list[Location] = []
    for entry in entries:
        if isinstance(entry, KeyNotFoundError):
            continue  # deleted between the listing and the get
        if isinstance(entry, BaseException):
            raise entry
        if entry.value:
            items.append(location_decoder.decode(entry.value))
    return Response(encoder.encode({"items": items, "limit": limit}), media_type="application/json")


async def get_location(request: Request) -> Response:
    location_id: str = request.path_params["location_id"]
    if not LOCATION_ID.match(location_id):
        raise not_found("The location")
    try:
        entry = await services(request).projection.current.locations.get(location_id)
    except KeyNotFoundError:
        raise not_found("The location") from None
    if not entry.value:
        raise not_found("The location")
    return Response(entry.value, media_type="application/json")


async def location_stats(request: Request) -> Response:
    """GET /api/locations/stats: locations per category (every category listed)."""
    counts = await services(request).projection.current.category_counts()
    by_category = {category: counts.get(category, 0) for category in CATEGORIES}
    body = {"categories": by_category, "total": sum(by_category.values())}
    return Response(encoder.encode(body), media_type="application/json")


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid_query("limit", f"an integer from 1 to {MAX_LIMIT}")
    return int(raw)
