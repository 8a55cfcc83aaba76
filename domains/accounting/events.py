"""What happened to accounts. Ledger entries are these events: immutable."""

from __future__ import annotations

import msgspec


class AccountOpened(msgspec.Struct, frozen=True):
    holder: str


class AccountCharged(msgspec.Struct, frozen=True):
    amount: int
    reference: str


class PaymentRecorded(msgspec.Struct, frozen=True):
    amount: int
    reference: str
