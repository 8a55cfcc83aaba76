"""A shipment: created → shipped → delivered; created → cancelled. Nothing else."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from contracts.domain import EventMeta, Rejection
from domains.shipments.commands import (
    CancelShipment,
    CreateShipment,
    DeliverShipment,
    ShipShipment,
)
from domains.shipments.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentShipped,
)
from domains.shipments.tariff import price

Status = Literal["created", "shipped", "delivered", "cancelled"]


class Shipment(msgspec.Struct, frozen=True):
    status: Status
    account_id: str
    price: int


# The state each command needs, and the word for it in a refusal.
ALLOWED: dict[type, tuple[Status, str]] = {
    ShipShipment: ("created", "shipped"),
    DeliverShipment: ("shipped", "delivered"),
    CancelShipment: ("created", "cancelled"),
}


def decide(state: Shipment | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, CreateShipment):
        if state is not None:
            return []
        cost = price(command.weight_grams, command.origin, command.destination)
        return [
            ShipmentCreated(
                command.account_id,
                command.origin,
                command.destination,
                command.weight_grams,
                cost,
            )
        ]
    if state is None:
        return Rejection(
            404, "No such shipment", "There is no shipment with this id.", slug="no-shipment"
        )
    needed, verb = ALLOWED[type(command)]
    if state.status != needed:
        return Rejection(
            409,
            "Not allowed in this state",
            f"The shipment is {state.status}: it cannot be {verb} (only a {needed} one can).",
            slug="invalid-transition",
        )
    if isinstance(command, ShipShipment):
        return [ShipmentShipped()]
    if isinstance(command, DeliverShipment):
        return [ShipmentDelivered(state.account_id, state.price)]
    return [ShipmentCancelled()]


STATUS_AFTER: dict[type, Status] = {
    ShipmentCreated: "created",
    ShipmentShipped: "shipped",
    ShipmentDelivered: "delivered",
    ShipmentCancelled: "cancelled",
}


def evolve(state: Shipment | None, event: Any, meta: EventMeta) -> Shipment:
    if isinstance(event, ShipmentCreated):
        return Shipment("created", event.account_id, event.price)
    assert state is not None
    return msgspec.structs.replace(state, status=STATUS_AFTER[type(event)])
