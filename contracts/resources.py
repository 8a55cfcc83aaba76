"""Read-model records: what the reactor writes to KV and the API reads."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from contracts.commands import Category


class Location(msgspec.Struct, frozen=True):
    id: str
    name: str
    category: Category
    description: str
    created_at: datetime


location_decoder: Final = msgspec.json.Decoder(Location)


def location_url(location_id: str) -> str:
    return f"/api/locations/{location_id}"


def location_page(location_id: str) -> str:
    return f"/locations/{location_id}"
