"""The billing policy: a delivered shipment charges its account, once.

The charge's reference is the shipment's id, so however often the policy
sends it (a crash, a rebuild of the policy's position), the account applies
it once; the command's id derives from the delivery event, so its notice is
the same command's, and it reaches the session that delivered, `caused_by`
the delivery.
"""

from __future__ import annotations

from contracts.domain import EventMeta, Issue
from domains.accounting.commands import ChargeAccount
from domains.shipments.events import ShipmentDelivered


def bill(event: ShipmentDelivered, meta: EventMeta) -> list[Issue]:
    return [Issue(ChargeAccount(event.price, meta.aggregate_id), event.account_id)]
