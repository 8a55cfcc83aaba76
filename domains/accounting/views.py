"""The read side of accounts: the holder, the balance, and the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from contracts.domain import EventMeta, Link, View
from domains.accounting.events import AccountCharged, AccountOpened, PaymentRecorded


class Entry(msgspec.Struct, frozen=True):
    kind: Literal["charge", "payment"]
    amount: int
    reference: str
    at: datetime


class AccountRecord(msgspec.Struct, frozen=True):
    id: str
    holder: str
    balance: int  # charges - payments: what the holder owes
    ledger: list[Entry]
    opened_at: datetime
    position: int  # the last event this record reflects (its checkpoint)


def account(record: AccountRecord | None, event: Any, meta: EventMeta) -> AccountRecord:
    if isinstance(event, AccountOpened):
        return AccountRecord(meta.aggregate_id, event.holder, 0, [], meta.at, meta.seq)
    assert record is not None
    if isinstance(event, AccountCharged):
        entry, change = Entry("charge", event.amount, event.reference, meta.at), event.amount
    else:
        entry, change = Entry("payment", event.amount, event.reference, meta.at), -event.amount
    return msgspec.structs.replace(
        record,
        balance=record.balance + change,
        ledger=[*record.ledger, entry],
        position=meta.seq,
    )


def account_page(record: AccountRecord) -> Link:
    return Link(f"/accounts/{record.id}", f"Open {record.holder}'s account")


ACCOUNTS = View(
    "accounts",
    state=AccountRecord,
    events=(AccountOpened, AccountCharged, PaymentRecorded),
    apply=account,
    inline=True,
    page=account_page,
)
