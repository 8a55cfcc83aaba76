"""What happened to locations."""

from __future__ import annotations

import msgspec

from domains.locations.commands import Category


class LocationCreated(msgspec.Struct, frozen=True):
    name: str
    category: Category
    description: str
