"""What happened to an email."""

from __future__ import annotations

import msgspec


class EmailRequested(msgspec.Struct, frozen=True):
    to: str
    subject: str
    body: str


class EmailHandoverStarted(msgspec.Struct, frozen=True):
    """Recorded before the message went to the SMTP server: it is never handed over twice."""


class EmailSent(msgspec.Struct, frozen=True):
    pass


class EmailFailed(msgspec.Struct, frozen=True):
    reason: str
