"""The read side of accounts: the holder, the balance, and the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from contracts.domain import EventMeta, Link, View
from domains.accounting.events import AccountCharged, AccountOpened, PaymentRecorded

LEDGER_KEPT: Final = 20  # the latest entries an account's record shows; all: its ledger


class Entry(msgspec.Struct, frozen=True):
    kind: Literal["charge", "payment"]
    amount: int
    reference: str
    at: datetime


class AccountRecord(msgspec.Struct, frozen=True):
    id: str
    holder: str
    balance: int  # charges - payments: what the holder owes
    ledger: list[Entry]  # the latest LEDGER_KEPT entries, oldest first
    opened_at: datetime
    position: int  # the last event this record reflects (its checkpoint)
    entries: int = 0  # every entry so far (a record written before it was kept: its ledger's)


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
        ledger=[*record.ledger[max(0, len(record.ledger) - LEDGER_KEPT + 1) :], entry],
        entries=(record.entries or len(record.ledger)) + 1,
        position=meta.seq,
    )


class LedgerEntry(msgspec.Struct, frozen=True):
    """One entry of an account's ledger: a record of its own, `<account id>.<position>`."""

    account_id: str
    kind: Literal["charge", "payment"]
    amount: int
    reference: str
    at: datetime
    position: int


def ledger_entry(record: LedgerEntry | None, event: Any, meta: EventMeta) -> LedgerEntry:
    kind: Literal["charge", "payment"] = (
        "charge" if isinstance(event, AccountCharged) else "payment"
    )
    return LedgerEntry(meta.aggregate_id, kind, event.amount, event.reference, meta.at, meta.seq)


def ledger_key(event: Any, meta: EventMeta) -> str:
    """Under the account's id, by position: listed newest first, as the ledger is read."""
    return f"{meta.aggregate_id}.{meta.seq:012d}"


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
LEDGER = View(
    "account_ledger",
    state=LedgerEntry,
    events=(AccountCharged, PaymentRecorded),
    apply=ledger_entry,
    key=ledger_key,
)  # async: folded from EVENTS after the fact, off the charge's path (`?min_position=`)
