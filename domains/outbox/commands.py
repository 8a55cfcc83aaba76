"""What may be asked of an email: send it (a policy asks), and what the mailer records."""

from __future__ import annotations

from typing import Annotated

import msgspec

Address = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class SendEmail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Send this email, once for ever (the aggregate is the email: its id says which)."""

    to: Address
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(max_length=20_000)]


class StartEmailHandover(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The mailer is about to hand the message to the SMTP server (only if still due)."""


class ConfirmEmailSent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The SMTP server took the message."""


class GiveUpEmail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The mailer gave up on the email: it will not be sent."""

    reason: Annotated[str, msgspec.Meta(max_length=1000)]
