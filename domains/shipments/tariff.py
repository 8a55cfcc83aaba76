"""The tariff: a shipment's price from its weight and route, in integer minor units."""

from __future__ import annotations

from typing import Final

BASE: Final = 350  # per shipment
PER_STARTED_500G: Final = {"domestic": 120, "international": 450}


def zone(origin: str, destination: str) -> str:
    return "domestic" if origin == destination else "international"


def price(weight_grams: int, origin: str, destination: str) -> int:
    """350 a shipment plus, for every started 500 g, 120 at home or 450 abroad."""
    started = -(-weight_grams // 500)  # ceiling division
    return BASE + started * PER_STARTED_500G[zone(origin, destination)]
