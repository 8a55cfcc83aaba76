"""What a browser may ask of shipments."""

from __future__ import annotations

from typing import Annotated

import msgspec

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
