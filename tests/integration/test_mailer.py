"""The mailer in-process, against a real nats-server and a real SMTP server (aiosmtpd) on
loopback: at most once when a hand-over was interrupted, a refusal is final, and two mailers
sharing a burst send each email once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.topology import DEADLETTERS_STREAM, RESERVATIONS_BUCKET
from contracts.views import ViewBuckets
from domains.outbox.aggregate import email_id
from domains.outbox.commands import SendEmail, StartEmailHandover
from reactor.eventstore import EventStore
from reactor.handling import CommandHandler
from reactor.mailer import Mailer, SmtpSettings
from reactor.reservations import Reservations
from tests.conftest import REGISTRY
from tests.helpers import envelope, event_types, eventually, stream_messages


@dataclass
class Received:
    """An SMTP server's handler that keeps the recipients of each message, or refuses them."""

    refuse: str | None = None  # e.g. "550 no such user": RCPT is refused
    recipients: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.recipients += envelope.rcpt_tos
        return "250 Message accepted for delivery"


@dataclass
class Rig:
    js: JetStreamContext
    handler: CommandHandler
    received: Received
    start: Callable[[int], None]  # start this many mailers


@pytest.fixture
async def rig(fresh_nc: Client, fresh_js: JetStreamContext) -> AsyncIterator[Rig]:
    received = Received()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(received), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    buckets = ViewBuckets(fresh_js, 1)
    reservations = Reservations(await fresh_js.key_value(RESERVATIONS_BUCKET))
    handler = CommandHandler(
        REGISTRY, EventStore(fresh_nc, REGISTRY), reservations, lambda: buckets
    )
    settings = SmtpSettings(port=port, max_attempts=3, retry_base=0.1, timeout=5)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(n: int) -> None:
        for _ in range(n):
            mailer = Mailer(fresh_js, REGISTRY, handler, settings)
            tasks.append(asyncio.create_task(mailer.run(stop)))

    yield Rig(fresh_js, handler, received, start)
    stop.set()
    await asyncio.gather(*tasks)
    server.close()
    await server.wait_closed()


async def ask(handler: CommandHandler, address: str) -> str:
    """Ask for a welcome-like email to `address`; the email's aggregate id."""
    email = email_id("test", address)
    notice = await handler.handle(envelope(SendEmail(address, "Hi", "Hello"), aggregate_id=email))
    assert notice.status == "succeeded"
    return email


async def fate(js: JetStreamContext, email: str) -> list[str]:
    return [t for _, t in await event_types(js, f"ev.email.{email}")]


async def ends_with(js: JetStreamContext, email: str, last: str) -> list[str] | None:
    types = await fate(js, email)
    return types if types and types[-1] == last else None


async def test_a_hand_over_interrupted_by_a_crash_is_never_tried_again(rig: Rig) -> None:
    email = await ask(rig.handler, "crash@example.org")
    # A mailer recorded the hand-over, then died before its outcome.
    begun = await rig.handler.handle(envelope(StartEmailHandover(), aggregate_id=email))
    assert begun.status == "succeeded"
    rig.start(1)
    types = await eventually(partial(ends_with, rig.js, email, "EmailFailed"))
    assert types == ["EmailRequested", "EmailHandoverStarted", "EmailFailed"]
    assert rig.received.recipients == []
    assert await stream_messages(rig.js, DEADLETTERS_STREAM) == 1


async def test_a_message_that_cannot_be_composed_fails_at_once_before_any_hand_over(
    rig: Rig,
) -> None:
    """A subject with a line break in it (a name taken before names were checked): the
    email fails with that reason, not as an interrupted hand-over after a retry."""
    email = email_id("test", "lines@example.org")
    ask_for = SendEmail("lines@example.org", "Welcome, Ada\r\nBcc: x@example.org", "Hello")
    notice = await rig.handler.handle(envelope(ask_for, aggregate_id=email))
    assert notice.status == "succeeded"
    rig.start(1)
    types = await eventually(partial(ends_with, rig.js, email, "EmailFailed"))
    assert types == ["EmailRequested", "EmailFailed"]
    assert rig.received.recipients == []
    letter = await rig.js.get_last_msg(DEADLETTERS_STREAM, f"dlq.ev.email.{email}")
    assert letter.headers is not None
    assert "cannot be composed" in letter.headers["Dlq-Error"]
    assert letter.headers["Dlq-Deliveries"] == "1"


async def test_a_refused_recipient_fails_at_once(rig: Rig) -> None:
    rig.received.refuse = "550 5.1.1 no such user"
    email = await ask(rig.handler, "nobody@example.org")
    rig.start(1)
    types = await eventually(partial(ends_with, rig.js, email, "EmailFailed"))
    assert types == ["EmailRequested", "EmailFailed"]  # not handed over: nothing can have gone
    letter = await rig.js.get_last_msg(DEADLETTERS_STREAM, f"dlq.ev.email.{email}")
    assert letter.headers is not None
    assert letter.headers["Dlq-Reason"] == "email-failed"
    assert "550" in letter.headers["Dlq-Error"]
    assert letter.headers["Dlq-Deliveries"] == "1"


async def test_two_mailers_send_a_burst_each_email_once(rig: Rig) -> None:
    addresses = [f"burst-{uuid.uuid4().hex[:8]}@example.org" for _ in range(30)]
    emails = await asyncio.gather(*(ask(rig.handler, a) for a in addresses))
    rig.start(2)
    for email in emails:
        await eventually(partial(ends_with, rig.js, email, "EmailSent"), within=20)
    assert sorted(rig.received.recipients) == sorted(addresses)
    again = await ask(rig.handler, addresses[0])  # asked again: once, for ever
    assert again == emails[0]
    assert (await fate(rig.js, emails[0])).count("EmailRequested") == 1
