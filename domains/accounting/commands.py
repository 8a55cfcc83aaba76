"""What may be asked of accounts. Amounts are integer minor units."""

from __future__ import annotations

from typing import Annotated

import msgspec

Amount = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
Reference = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="letters, digits and punctuation, with no spaces",
    ),
]


class OpenAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Open an account for a holder."""

    holder: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RecordPayment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Record a payment from the holder; its reference is applied once, for ever."""

    amount: Amount
    reference: Reference


class ChargeAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Charge the holder (sent by the billing policy); its reference is applied once, for ever."""

    amount: Amount
    reference: Reference
