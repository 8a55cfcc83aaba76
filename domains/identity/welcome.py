"""The welcome email policy: a registered user gets one welcome email, once per address."""

from __future__ import annotations

from contracts.domain import EventMeta, Issue
from domains.identity.events import UserRegistered
from domains.outbox import SendEmail, email_id

SUBJECT = "Welcome to notify-service, {name}"
BODY = """Hello {name},

your account ({email}) is ready: sign in at /account/signin.

This is the only email we send you on registering. If it was not you, ignore it.
"""


def welcome(event: UserRegistered, meta: EventMeta) -> list[Issue]:
    name, address = event.display_name, event.email
    email = SendEmail(address, SUBJECT.format(name=name), BODY.format(name=name, email=address))
    return [Issue(email, email_id("welcome", address))]
