"""Shipments: created → shipped → delivered, or created → cancelled; priced by a pure tariff.

A delivery is billed by the accounting domain's policy (`domains.accounting`).
"""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    Exists,
    GetRead,
    ListRead,
    WebPage,
)
from domains.shipments.aggregate import decide, evolve
from domains.shipments.commands import (
    CancelShipment,
    CreateShipment,
    DeliverShipment,
    ShipShipment,
    check_countries,
)
from domains.shipments.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentShipped,
)
from domains.shipments.views import SHIPMENTS

OPEN_ACCOUNT = Exists("accounts", lambda c: c.account_id, "account_id", "is not an open account")


def _action(command: type, action: str, summary: str) -> CommandSpec:
    return CommandSpec(
        command,
        aggregate="shipment",
        collection="shipments",
        action=action,
        resource=SHIPMENTS.name,
        summary=summary,
    )


DOMAIN = Domain(
    name="shipments",
    title="Shipments",
    commands=(
        CommandSpec(
            CreateShipment,
            aggregate="shipment",
            collection="shipments",
            requires=(OPEN_ACCOUNT,),
            check=check_countries,
            resource=SHIPMENTS.name,
            summary="Create a shipment, priced by the tariff (its account must be open)",
        ),
        _action(ShipShipment, "ship", "Ship a created shipment"),
        _action(DeliverShipment, "deliver", "Deliver a shipped shipment (its account is charged)"),
        _action(CancelShipment, "cancel", "Cancel a created shipment"),
    ),
    events=(
        Event(ShipmentCreated),
        Event(ShipmentShipped),
        Event(ShipmentDelivered),
        Event(ShipmentCancelled),
    ),
    aggregates=(Aggregate("shipment", initial=None, decide=decide, evolve=evolve),),
    views=(SHIPMENTS,),
    reads=(
        ListRead(
            "shipments",
            SHIPMENTS.name,
            filters=("status", "account_id"),
            summary="Shipments, newest first; filter by status and account",
        ),
        GetRead("shipments", SHIPMENTS.name, summary="One shipment, with its history"),
    ),
    page=WebPage(
        "Shipments",
        "/shipments",
        Path(__file__).parent / "web",
        summary="Create, ship, deliver or cancel; a delivery charges its account.",
    ),
)
