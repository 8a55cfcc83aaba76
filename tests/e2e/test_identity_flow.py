"""Identity and videos as a client meets them: HTTP against real processes, a real SMTP sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM
from domains.outbox.aggregate import email_id
from tests.conftest import MailStack, connect_test_client
from tests.e2e.accounts import (
    WAIT,
    browser,
    email_sent,
    event_bodies,
    new_address,
    register,
    sign_in,
    signed_up,
)
from tests.helpers import event_types, eventually, stream_messages


@pytest.fixture
async def js(mail_stack: MailStack) -> AsyncIterator[JetStreamContext]:
    nc = await connect_test_client(mail_stack.stack.server.url)
    yield nc.jetstream()
    await nc.close()


async def test_register_then_sign_in_and_out(mail_stack: MailStack) -> None:
    email = new_address()
    async with browser(mail_stack) as client:
        created = await register(client, email, "sup3r secret words", "Ada")
        assert created.status_code == 201, created.text
        user = created.json()
        assert set(user) == {"id", "display_name", "bio", "registered_at", "position"}
        assert created.headers["location"] == f"/api/users/{user['id']}"
        assert (await client.get("/api/sessions/current")).status_code == 401

        anonymous = client.cookies["sid"]
        signed = await sign_in(client, email.upper(), "sup3r secret words")
        assert signed.status_code == 200, signed.text
        assert signed.json() == {"user_id": user["id"], "email": email, "display_name": "Ada"}
        assert client.cookies["sid"] != anonymous  # a new session id once signed in
        current = await client.get("/api/sessions/current")
        assert current.json()["user_id"] == user["id"]

        out = await client.delete("/api/sessions/current")
        assert out.status_code == 204
        assert (await client.get("/api/sessions/current")).status_code == 401


async def test_signing_in_again_ends_the_session_signed_in_before(mail_stack: MailStack) -> None:
    """A second sign-in on one browser left the first session's cookie signed in for
    its 30 days: a cookie copied before it went on working."""
    async with browser(mail_stack) as client, browser(mail_stack) as copy:
        first = await signed_up(client, "first")
        copy.cookies.set("sid", client.cookies["sid"])
        assert (await copy.get("/api/sessions/current")).json()["user_id"] == first["user_id"]
        second = new_address("second")
        assert (await register(client, second, "another secret")).status_code == 201
        assert (await sign_in(client, second, "another secret")).status_code == 200
        assert (await client.get("/api/sessions/current")).json()["email"] == second
        assert (await copy.get("/api/sessions/current")).status_code == 401


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    mail_stack: MailStack,
) -> None:
    email = new_address()
    async with browser(mail_stack) as client:
        assert (await register(client, email)).status_code == 201
        wrong = await sign_in(client, email, "not the password")
        unknown = await sign_in(client, new_address("nobody"), "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"] == "Wrong email or password."


async def test_a_taken_email_is_409_whatever_its_case(mail_stack: MailStack) -> None:
    email = new_address()
    async with browser(mail_stack) as client:
        assert (await register(client, email)).status_code == 201
        again = await register(client, email.upper(), name="Eve")
    assert again.status_code == 409
    assert again.json()["title"] == "Email already registered"


async def test_twenty_concurrent_registrations_of_one_email_make_one_user_and_one_email(
    mail_stack: MailStack, js: JetStreamContext
) -> None:
    email = new_address("race")
    spellings = [email.upper() if i % 2 else email.title() for i in range(20)]
    clients = [browser(mail_stack) for _ in spellings]  # 20 sessions
    try:
        answers = await asyncio.gather(
            *(
                register(c, spelling, name=f"Racer {i}")
                for i, (c, spelling) in enumerate(zip(clients, spellings, strict=True))
            )
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19, codes
    winner = next(a for a in answers if a.status_code == 201).json()
    users = [e for e in await event_bodies(js, "ev.user.>") if e["email"].casefold() == email]
    assert len(users) == 1  # one UserRegistered for the address, in any spelling
    assert [t for _, t in await event_types(js, f"ev.user.{winner['id']}")] == ["UserRegistered"]
    await eventually(lambda: email_sent(js, "welcome", email), within=20)
    assert len(mail_stack.mail_to(email)) == 1


async def test_the_welcome_email_is_sent_once(mail_stack: MailStack, js: JetStreamContext) -> None:
    email = new_address("welcome")
    async with browser(mail_stack) as client:
        assert (await register(client, email, name="Wendy")).status_code == 201
    await eventually(lambda: email_sent(js, "welcome", email), within=20)
    [mail] = mail_stack.mail_to(email)
    assert "Subject: Welcome to notify-service, Wendy" in mail
    assert f"Message-ID: <{email_id('welcome', email)}@notify-service>" in mail
    types = [t for _, t in await event_types(js, f"ev.email.{email_id('welcome', email)}")]
    assert types == ["EmailRequested", "EmailHandoverStarted", "EmailSent"]


async def test_commands_for_users_answer_401_anonymous_and_403_to_others(
    mail_stack: MailStack, js: JetStreamContext
) -> None:
    video = {"title": "Cats", "url": "https://example.org/cats.mp4"}
    async with (
        browser(mail_stack) as owner,
        browser(mail_stack) as other,
        browser(mail_stack) as anonymous,
    ):
        before = await stream_messages(js, COMMANDS_STREAM)
        refused = await anonymous.post("/api/videos", json=video, headers=WAIT)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert await stream_messages(js, COMMANDS_STREAM) == before  # nothing published

        me = await signed_up(owner, "owner")
        published = await owner.post("/api/videos", json=video, headers=WAIT)
        assert published.status_code == 201, published.text
        record = published.json()
        assert (record["owner_id"], record["views"]) == (me["user_id"], 0)
        rename = f"/api/videos/{record['id']}/rename"

        await signed_up(other, "other")
        before = await stream_messages(js, COMMANDS_STREAM)
        assert (await other.post(rename, json={"title": "Mine"}, headers=WAIT)).status_code == 403
        assert (await anonymous.post(rename, json={"title": "Mine"})).status_code == 401
        missing = await owner.post("/api/videos/nosuchvideo/rename", json={"title": "X"})
        assert missing.status_code == 404
        assert await stream_messages(js, COMMANDS_STREAM) == before

        before = await stream_messages(js, COMMANDS_STREAM)
        name = {"display_name": "Owner\r\nBcc: x@example.org"}
        lines = await owner.post("/api/users/me/profile", json=name, headers=WAIT)
        assert lines.status_code == 422
        assert lines.json()["errors"] == [
            {"loc": "$.display_name", "msg": "must not contain control characters"}
        ]
        assert await stream_messages(js, COMMANDS_STREAM) == before

        rejected = await owner.post(rename, json={"title": "!!!"}, headers=WAIT)
        assert rejected.status_code == 422
        assert rejected.json()["title"] == "Video name rejected"
        assert rejected.json()["errors"] == [
            {"loc": "$.title", "msg": "must contain a letter or a digit"}
        ]
        renamed = await owner.post(rename, json={"title": "Cats, again"}, headers=WAIT)
        assert renamed.status_code == 200
        assert renamed.json()["title"] == "Cats, again"
    types = [t for _, t in await event_types(js, f"ev.video.{record['id']}")]
    assert types == ["VideoPublished", "VideoNameRejected", "VideoRenamed"]


async def test_a_viewing_sent_again_counts_once_and_home_sums_the_distinct_ones(
    mail_stack: MailStack,
) -> None:
    async with browser(mail_stack) as owner, browser(mail_stack) as viewer:
        await signed_up(owner, "host")
        published = await owner.post(
            "/api/videos", json={"title": "Dogs", "url": "https://example.org/d"}, headers=WAIT
        )
        video_id = published.json()["id"]
        views = f"/api/videos/{video_id}/views"
        answers = [
            await viewer.post(views, json={"viewing_id": viewing}, headers=WAIT)
            for viewing in ["v1", "v1", "v2", "v1", "v2", "v3"]
        ]
        assert {a.status_code for a in answers} == {200}
        assert answers[-1].json()["views"] == 3
        assert (await viewer.get(f"/api/videos/{video_id}")).json()["views"] == 3
        position = answers[-1].json()["position"]
        home = await viewer.get(f"/api/home?min_position={position}")
        assert home.status_code == 200
        assert home.json()["per_video"][video_id] == 3
