"""What happened to shipments. Each carries what its readers need (the policy bills
from ShipmentDelivered alone)."""

from __future__ import annotations

import msgspec


class ShipmentCreated(msgspec.Struct, frozen=True):
    account_id: str
    origin: str
    destination: str
    weight_grams: int
    price: int  # minor units, from the tariff when it was created


class ShipmentShipped(msgspec.Struct, frozen=True):
    pass


class ShipmentDelivered(msgspec.Struct, frozen=True):
    account_id: str
    price: int


class ShipmentCancelled(msgspec.Struct, frozen=True):
    pass
