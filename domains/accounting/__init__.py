"""Accounting: accounts, charges and payments; a ledger that never records a transaction twice."""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    ListRead,
    Policy,
    WebPage,
    one_line,
)
from domains.accounting.aggregate import decide, evolve
from domains.accounting.billing import bill
from domains.accounting.commands import ChargeAccount, OpenAccount, RecordPayment
from domains.accounting.events import AccountCharged, AccountOpened, PaymentRecorded
from domains.accounting.views import ACCOUNTS, LEDGER
from domains.shipments.events import ShipmentDelivered

DOMAIN = Domain(
    name="accounting",
    title="Accounts",
    commands=(
        CommandSpec(
            OpenAccount,
            aggregate="account",
            collection="accounts",
            resource=ACCOUNTS.name,
            summary="Open an account",
            check=one_line("holder"),
        ),
        CommandSpec(
            RecordPayment,
            aggregate="account",
            collection="accounts",
            action="payments",
            resource=ACCOUNTS.name,
            summary="Record a payment (a reference is applied once, for ever)",
        ),
        CommandSpec(ChargeAccount, aggregate="account", resource=ACCOUNTS.name),
    ),
    events=(Event(AccountOpened), Event(AccountCharged), Event(PaymentRecorded)),
    aggregates=(Aggregate("account", initial=None, decide=decide, evolve=evolve),),
    views=(ACCOUNTS, LEDGER),
    policies=(Policy("billing", (ShipmentDelivered,), bill),),
    reads=(
        ListRead("accounts", ACCOUNTS.name, summary="Accounts, newest first"),
        GetRead(
            "accounts",
            ACCOUNTS.name,
            summary="One account: its balance, its entries' count and the latest 20",
        ),
        ListRead(
            "accounts",
            LEDGER.name,
            action="ledger",
            parent=ACCOUNTS.name,
            summary="An account's ledger: every entry, newest first",
        ),
    ),
    page=WebPage(
        "Billing",  # not "Accounts": beside the signed-in user's "Account" it read as one
        "/accounts",
        Path(__file__).parent / "web",
        summary="Open an account, see its balance and ledger, record payments.",
    ),
)
