"""The outbox: emails other domains ask for (through a policy), sent by the reactor's mailer.

Each email is sent at most once: the aggregate is the email, asking again
changes nothing, and a hand-over to the SMTP server is recorded before it
happens (`domains.outbox.aggregate`). Domains ask with `SendEmail` to
`email_id(purpose, address)`.
"""

from __future__ import annotations

from contracts.domain import Aggregate, CommandSpec, Domain, Event, Mail, Mailbox
from domains.outbox.aggregate import decide, email_id, evolve, status
from domains.outbox.commands import ConfirmEmailSent, GiveUpEmail, SendEmail, StartEmailHandover
from domains.outbox.events import EmailFailed, EmailHandoverStarted, EmailRequested, EmailSent

__all__ = ["DOMAIN", "SendEmail", "email_id"]


def _compose(event: EmailRequested) -> Mail:
    return Mail(event.to, event.subject, event.body)


DOMAIN = Domain(
    name="outbox",
    title="Outbox",
    commands=tuple(
        CommandSpec(command, aggregate="email")
        for command in (SendEmail, StartEmailHandover, ConfirmEmailSent, GiveUpEmail)
    ),
    events=(
        Event(EmailRequested),
        Event(EmailHandoverStarted),
        Event(EmailSent),
        Event(EmailFailed),
    ),
    aggregates=(Aggregate("email", initial=None, decide=decide, evolve=evolve),),
    mailboxes=(
        Mailbox(
            aggregate="email",
            requested=EmailRequested,
            compose=_compose,
            status=status,
            begin=StartEmailHandover,
            sent=ConfirmEmailSent,
            failed=GiveUpEmail,
        ),
    ),
)
