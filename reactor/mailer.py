"""The mailer: sends the emails domains ask for (`Mailbox`), each at most once, over SMTP.

Protocol, per mailbox (one durable pull consumer `mailer_<aggregate>` on that
aggregate's EVENTS subjects, shared by every reactor process):

1. A `requested` event arrives. The email's aggregate is loaded: sent or
   failed already, ack (a redelivery, or a consumer created on a store with
   history). A hand-over begun and never finished (a mailer died during it)
   is an unknown outcome: it is recorded as failed, never tried again.
2. The SMTP conversation is opened up to the recipient (connect, EHLO,
   MAIL FROM, RCPT TO). Nothing can have been delivered yet, so a failure
   here is retried: nak with backoff (1 s, 2 s, 4 s... up to a minute) while
   the server is down, up to `max_attempts` deliveries; then the email is
   recorded as failed and dead-lettered. A 5xx answer is final at once.
3. The domain's `begin` command is decided (`EmailHandoverStarted`): only an
   email still due may begin, so of two mailers (or two deliveries) at most
   one gets past this point.
4. DATA: the message goes to the server. Its 250 records `sent`. A refusal
   records `failed` (the server said it did not take it). A connection lost
   mid-DATA records `failed` too: the server may have taken it, and sending
   it again could send it twice.

The mailer decides through the domain's commands, handled in-process by the
command handler (load, decide, append, inline views): the domain's pure
`decide` says what may happen to an email; the mailer only does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

import aiosmtplib
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from contracts.domain import Mail, Mailbox
from contracts.events import StoredEvent, TooNew, UnreadableEvent, read_event
from contracts.registry import Registry
from contracts.topology import EVENTS_STREAM
from reactor.deadletters import deadletter
from reactor.handling import CommandHandler
from reactor.jobs import follow_on, pause

log = logging.getLogger(__name__)

BATCH: Final = 16
FETCH_WAIT: Final = 1.0
TOO_NEW_AGAIN: Final = 30.0  # seconds before an event of a newer mailer comes back


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    sender: str = "notify-service <no-reply@notify.localhost>"
    username: str | None = None
    password: str | None = None
    timeout: float = 15.0
    max_attempts: int = 10
    retry_base: float = 1.0  # seconds before the 2nd attempt; doubled each time, up to a minute

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SmtpSettings:
        return cls(
            host=env.get("SMTP_HOST", "127.0.0.1"),
            port=int(env.get("SMTP_PORT", "8025")),
            sender=env.get("MAIL_FROM", cls.sender),
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            timeout=float(env.get("SMTP_TIMEOUT", "15")),
            max_attempts=int(env.get("MAILER_MAX_ATTEMPTS", "10")),
            retry_base=float(env.get("MAILER_RETRY_BASE", "1")),
        )

    def backoff(self, attempt: int) -> float:
        return float(min(self.retry_base * 2 ** (attempt - 1), 60.0))


class _Transient(Exception):
    """Nothing was handed over, and trying again later may work."""


class _Final(Exception):
    """The email will not be sent: recorded as failed."""


def message(mail: Mail, sender: str, email_id: str, at: datetime) -> EmailMessage:
    """The email as sent (pure). Its Message-ID derives from the email's id."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = f"<{email_id}@notify-service>"
    msg.set_content(mail.body)
    return msg


def consumer_name(box: Mailbox) -> str:
    return f"mailer_{box.aggregate}"


class Mailer:
    """Runs every mailbox of the registry until stopped."""

    def __init__(
        self,
        js: JetStreamContext,
        registry: Registry,
        handler: CommandHandler,
        settings: SmtpSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._js = js
        self._registry = registry
        self._handler = handler
        self._settings = settings
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._run_box(box, stop) for box in self._registry.mailboxes))

    async def _run_box(self, box: Mailbox, stop: asyncio.Event) -> None:
        sub: JetStreamContext.PullSubscription | None = None
        try:
            while not stop.is_set():
                try:
                    sub = sub or await self._bind(box)
                    msgs = await sub.fetch(batch=BATCH, timeout=FETCH_WAIT)
                except TimeoutError:  # nothing to send (nats-py raises either kind)
                    continue
                except nats.errors.Error as exc:
                    if stop.is_set():  # stopping with the server gone: its connection closed
                        break
                    log.warning(
                        "mailer %s: %s: %s; again in 1s", box.aggregate, type(exc).__name__, exc
                    )
                    if sub is not None:
                        with contextlib.suppress(nats.errors.Error):
                            await sub.unsubscribe()
                    sub = None
                    await pause(stop, 1.0)
                    continue
                await asyncio.gather(*(self._process(box, msg) for msg in msgs))
        finally:
            if sub is not None:  # before any drain (PITFALLS: drain after an empty fetch)
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()

    async def _bind(self, box: Mailbox) -> JetStreamContext.PullSubscription:
        subject = f"ev.{box.aggregate}.>"
        config = api.ConsumerConfig(
            durable_name=consumer_name(box),
            ack_policy=api.AckPolicy.EXPLICIT,
            # Room for a whole SMTP conversation (three timeouts) before a redelivery.
            ack_wait=self._settings.timeout * 4,
            max_deliver=-1,  # attempts are counted here (num_delivered)
            max_ack_pending=BATCH * 4,
            filter_subject=subject,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        await self._js.add_consumer(EVENTS_STREAM, config)
        return await self._js.pull_subscribe_bind(consumer_name(box), EVENTS_STREAM)

    async def _process(self, box: Mailbox, msg: Msg) -> None:
        try:
            stored = read_event(
                self._registry, msg.subject, msg.metadata.sequence.stream, msg.headers, msg.data
            )
        except TooNew as exc:  # a newer mailer's to send: back to the consumer for it
            log.warning("mailer: %s; left to a mailer that knows it", exc)
            await msg.nak(delay=TOO_NEW_AGAIN)
            return
        except UnreadableEvent as exc:
            log.error("mailer: %s; skipped", exc)
            await msg.term()
            return
        if not isinstance(stored.event, box.requested):
            await msg.ack()  # the email's other events: nothing to do
            return
        attempt = msg.metadata.num_delivered or 1
        try:
            await self._send(box, stored, msg)
        except _Transient as exc:
            if attempt < self._settings.max_attempts:
                delay = self._settings.backoff(attempt)
                log.warning(
                    "email %s: attempt %d failed (%s); again in %.1fs",
                    stored.meta.aggregate_id,
                    attempt,
                    exc,
                    delay,
                )
                await msg.nak(delay=delay)
                return
            await self._give_up(box, stored, msg, f"{attempt} attempts failed; the last: {exc}")
        except _Final as exc:
            await self._give_up(box, stored, msg, str(exc))
        except Exception:
            # Our own failure (NATS, a bug): nothing was handed over unless the
            # begin was recorded, which the next delivery finds. Try again later.
            log.exception("email %s: mailer error", stored.meta.aggregate_id)
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=self._settings.backoff(attempt))
            return
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()

    async def _send(self, box: Mailbox, stored: StoredEvent, msg: Msg) -> None:
        email_id = stored.meta.aggregate_id
        status = box.status(await self._handler.state(box.aggregate, email_id))
        if status in ("sent", "failed"):
            return
        if status == "handing_over":
            raise _Final(
                "a mailer stopped while handing the message to the SMTP server: whether it "
                "was sent is unknown, so it is not sent again"
            )
        mail = box.compose(stored.event)
        try:  # before anything is begun: a message that cannot be made fails as it is
            body = message(mail, self._settings.sender, email_id, self._clock())
        except ValueError as exc:  # a header with a line break in it, say
            raise _Final(f"the message cannot be composed: {exc}") from None
        smtp = await self._open(mail)
        try:
            begun = await self._decide(box.begin(), stored)
            if not begun:
                return  # another mailer began this email: it is its to finish
            await msg.in_progress()
            try:
                await smtp.data(body.as_bytes())
            except aiosmtplib.SMTPResponseException as exc:
                raise _Final(
                    f"the SMTP server refused the message: {exc.code} {exc.message}"
                ) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _Final(
                    f"the connection failed while the message was handed over ({exc}): it may "
                    "have been sent, so it is not sent again"
                ) from None
            await self._decide(box.sent(), stored)
            log.info("email %s sent to %s", email_id, _masked(mail.to))
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()

    async def _open(self, mail: Mail) -> aiosmtplib.SMTP:
        """An SMTP conversation up to the recipient: nothing is handed over yet."""
        s = self._settings
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout)
        try:
            await smtp.connect()
            if s.username and s.password:
                await smtp.login(s.username, s.password)
            await smtp.mail(_address(s.sender))
            await smtp.rcpt(mail.to)
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            if exc.code >= 500:
                raise _Final(f"the SMTP server refused: {exc.code} {exc.message}") from None
            raise _Transient(f"SMTP {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise _Transient(f"SMTP server unreachable at {s.host}:{s.port} ({exc})") from None
        return smtp

    async def _decide(self, command: msgspec.Struct, stored: StoredEvent) -> bool:
        """Decide one of the mailbox's commands on the email; whether it succeeded."""
        meta = stored.meta
        # A new id each time: a hand-over begun by a mailer that died must
        # not be told "succeeded" again to the next one.
        envelope = follow_on(meta, command, uuid.uuid4().hex, meta.aggregate_id, self._clock())
        notice = await self._handler.handle(envelope)
        return notice.status == "succeeded"

    async def _give_up(self, box: Mailbox, stored: StoredEvent, msg: Msg, reason: str) -> None:
        log.error("email %s failed: %s", stored.meta.aggregate_id, reason)
        await self._decide(box.failed(reason[:1000]), stored)
        await deadletter(self._js, msg, "email-failed", reason, self._clock())


def _address(sender: str) -> str:
    """The address of a From header ("Name <a@b>" -> "a@b")."""
    return sender.rsplit("<", 1)[-1].rstrip(">").strip()


def _masked(address: str) -> str:
    """An address for a log line: enough to tell, not enough to collect."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
