"""Clients of the identity and videos routes, for the end-to-end and fault tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.topology import EVENTS_STREAM
from domains.outbox.aggregate import email_id
from tests.conftest import MailStack, connect_test_client
from tests.helpers import event_types

WAIT = {"Prefer": "wait=15"}


def new_address(name: str = "ada") -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.org"


def browser(mail_stack: MailStack) -> httpx.AsyncClient:
    """One browser session: a cookie jar of its own."""
    return httpx.AsyncClient(base_url=mail_stack.stack.url, timeout=httpx.Timeout(20, read=30))


async def register(
    client: httpx.AsyncClient, email: str, password: str = "correct horse 1", name: str = "Ada"
) -> httpx.Response:
    body = {"email": email, "password": password, "display_name": name}
    return await client.post("/api/users", json=body, headers=WAIT)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/sessions", json={"email": email, "password": password})


async def signed_up(client: httpx.AsyncClient, name: str = "ada") -> dict[str, Any]:
    """A new user, signed in on `client`: its /api/sessions/current."""
    email = new_address(name)
    assert (await register(client, email, name=name.title())).status_code == 201
    response = await sign_in(client, email, "correct horse 1")
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


async def event_bodies(js: JetStreamContext, subject: str) -> list[dict[str, Any]]:
    """The bodies of every event on `subject`, in order."""
    bodies: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return bodies
        assert msg.seq is not None
        bodies.append(json.loads(msg.data or b"{}"))
        seq = msg.seq + 1


async def email_sent(js: JetStreamContext, purpose: str, address: str) -> bool | None:
    subject = f"ev.email.{email_id(purpose, address)}"
    return True if ("EmailSent" in {t for _, t in await event_types(js, subject)}) else None


async def email_sent_in(ms: MailStack, purpose: str, address: str) -> bool | None:
    """`email_sent`, on a connection of its own to the stack's server."""
    nc = await connect_test_client(ms.stack.server.url)
    try:
        return await email_sent(nc.jetstream(), purpose, address)
    finally:
        await nc.close()
