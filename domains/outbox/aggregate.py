"""An email: requested once, handed over to the SMTP server at most once, then sent or failed.

The email is the aggregate (its id derives from what it is for and the
address: `email_id`), so asking again for an email already asked for changes
nothing, for ever. A hand-over is recorded before it happens: if the mailer
dies during it, nobody knows whether the message went out, and it is not
tried again (at most once, never twice).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from contracts.domain import EventMeta, Rejection, folded
from domains.outbox.commands import ConfirmEmailSent, GiveUpEmail, SendEmail, StartEmailHandover
from domains.outbox.events import EmailFailed, EmailHandoverStarted, EmailRequested, EmailSent

Status = Literal["due", "handing_over", "sent", "failed"]


class Email(msgspec.Struct, frozen=True):
    to: str
    status: Status = "due"


def email_id(purpose: str, address: str) -> str:
    """The aggregate id of the email sent for `purpose` to `address` (whatever its case)."""
    return hashlib.sha256(f"{purpose}\0{folded(address)}".encode()).hexdigest()[:32]


def decide(state: Email | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, SendEmail):
        return (
            [] if state is not None else [EmailRequested(command.to, command.subject, command.body)]
        )
    if state is None:
        return Rejection(404, "No such email", "No email was asked for here.", slug="no-email")
    if isinstance(command, StartEmailHandover):
        return [EmailHandoverStarted()] if state.status == "due" else _not(state, "due")
    if isinstance(command, ConfirmEmailSent):
        if state.status == "sent":
            return []
        return [EmailSent()] if state.status == "handing_over" else _not(state, "handing over")
    assert isinstance(command, GiveUpEmail)
    if state.status == "failed":
        return []
    return [EmailFailed(command.reason)] if state.status != "sent" else _not(state, "unsent")


def _not(state: Email, wanted: str) -> Rejection:
    return Rejection(
        409,
        "Email not in that state",
        f"The email is {state.status.replace('_', ' ')}, not {wanted}.",
        slug="email-state",
    )


def evolve(state: Email | None, event: Any, meta: EventMeta) -> Email:
    if isinstance(event, EmailRequested):
        return Email(event.to)
    assert state is not None
    status: Status = (
        "handing_over"
        if isinstance(event, EmailHandoverStarted)
        else "sent"
        if isinstance(event, EmailSent)
        else "failed"
    )
    return msgspec.structs.replace(state, status=status)


def status(state: Email | None) -> Status:
    return "due" if state is None else state.status
