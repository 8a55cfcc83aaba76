"""What a browser may ask of shipments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final

import msgspec
import pycountry

from contracts.notices import FieldError

AccountId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$", description="one of the accounts")
]
# ISO 3166-1 alpha-2: the tariff prices a route by its two countries.
Country = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{2}$", description="a two-letter country code such as GB")
]
Grams = Annotated[int, msgspec.Meta(ge=1, le=30_000)]


class CreateShipment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Create a shipment, billed to an open account when it is delivered."""

    account_id: AccountId
    origin: Country
    destination: Country
    weight_grams: Grams


class ShipShipment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Hand a created shipment to the carrier."""


class DeliverShipment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Record that a shipped shipment reached its destination (its account is charged)."""


class CancelShipment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Cancel a shipment that has not been shipped."""


# Read once, on import (pycountry loads its data on first use), not per request.
COUNTRIES: Final = frozenset(country.alpha_2 for country in pycountry.countries)


def check_countries(form: CreateShipment, now: datetime) -> Sequence[FieldError]:
    """Each end is a country's ISO 3166-1 code: the tariff prices a route by them."""
    return [
        FieldError(f"$.{end}", "is not a country's code (ISO 3166-1: the United Kingdom is GB)")
        for end in ("origin", "destination")
        if getattr(form, end) not in COUNTRIES
    ]
