"""The read side of shipments: each shipment with its history, listable by status and account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta, Link, View
from domains.shipments.aggregate import STATUS_AFTER, Status
from domains.shipments.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentShipped,
)


class Step(msgspec.Struct, frozen=True):
    """One event in a shipment's life."""

    event: str
    status: Status
    at: datetime
    position: int


class ShipmentRecord(msgspec.Struct, frozen=True):
    id: str
    account_id: str
    origin: str
    destination: str
    weight_grams: int
    status: Status
    price: int
    history: list[Step]
    created_at: datetime
    updated_at: datetime


def shipment(record: ShipmentRecord | None, event: Any, meta: EventMeta) -> ShipmentRecord:
    status = STATUS_AFTER[type(event)]
    step = Step(meta.type, status, meta.at, meta.seq)
    if isinstance(event, ShipmentCreated):
        return ShipmentRecord(
            id=meta.aggregate_id,
            account_id=event.account_id,
            origin=event.origin,
            destination=event.destination,
            weight_grams=event.weight_grams,
            status=status,
            price=event.price,
            history=[step],
            created_at=meta.at,
            updated_at=meta.at,
        )
    assert record is not None
    return msgspec.structs.replace(
        record, status=status, history=[*record.history, step], updated_at=meta.at
    )


def shipment_page(record: ShipmentRecord) -> Link:
    return Link(f"/shipments/{record.id}", f"Open the shipment to {record.destination}")


SHIPMENTS = View(
    "shipments",
    state=ShipmentRecord,
    events=(ShipmentCreated, ShipmentShipped, ShipmentDelivered, ShipmentCancelled),
    apply=shipment,
    inline=True,
    page=shipment_page,
)
