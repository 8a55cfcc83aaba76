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


class CategoryCount(msgspec.Struct, frozen=True):
    """One shard of the count of locations in a category.

    `pending` makes the increment exactly-once across crashes: a command is in
    it from the write that counts it until its notice is stored. A redelivered
    command that finds itself there was counted already.
    """

    category: str
    count: int = 0
    pending: list[str] = msgspec.field(default_factory=list)


category_count_decoder: Final = msgspec.json.Decoder(CategoryCount)

# A category's count is split over this many KV keys, `<category>.<shard>`,
# so that concurrent reactors rarely update the same key (readers add them up).
COUNTER_SHARDS: Final = 8


def counter_key(category: str, command_id: str) -> str:
    """The shard of the category's count this command adds to (KV keys allow '/')."""
    return f"{category}.{int(command_id[:8], 16) % COUNTER_SHARDS}"
