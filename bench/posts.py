"""Posts under open-loop load: from the POST to the author's summary reflecting the post.

Setup (not timed): per session a user, registered and signed in before its
event stream opens (signing in gives the session a new id). Then
`POST /api/posts` on a fixed schedule; each sample runs from just before the
POST to the answer of `GET /api/users/{id}/summary?min_position=<the
notice's position>`: the moment the author can read a summary that counts
the post (the summary is a computed, asynchronous view).
"""

from __future__ import annotations

import time
import uuid

import msgspec

from bench.loadgen import Result, Sample, Session, schedule

JSON_WAIT = {"Prefer": "wait=10"}


async def signed_in_session(url: str, n: int) -> tuple[Session, str]:
    """A new user's browser session, signed in, its event stream open; and the user id."""
    session = Session(url)
    email = f"bench-{n}-{uuid.uuid4().hex[:8]}@example.org"
    password = b"bench password"
    body = b'{"email":"%s","password":"%s","display_name":"Bench %d"}' % (
        email.encode(),
        password,
        n,
    )
    registered = await session.client.request("POST", "/api/users", body, JSON_WAIT)
    if registered.status != 201:
        raise RuntimeError(f"sign-up: {registered.status} {registered.body[:200]!r}")
    credentials = b'{"email":"%s","password":"%s"}' % (email.encode(), password)
    signed = await session.client.request("POST", "/api/sessions", credentials)
    if signed.status != 200:
        raise RuntimeError(f"sign-in: {signed.status} {signed.body[:200]!r}")
    await session.__aenter__()  # the event stream, of the signed-in session
    return session, str(msgspec.json.decode(signed.body)["user_id"])


async def posts(url: str, rate: float, duration: float, sessions: int = 4) -> Result:
    opened = [await signed_in_session(url, i) for i in range(sessions)]
    try:

        async def write(i: int) -> Sample:
            session, user_id = opened[i % sessions]
            sample = Sample(sent=time.time())
            body = b'{"title":"Post %d","body":"a post of seven words, number %d"}' % (i, i)
            response = await session.client.request("POST", "/api/posts", body, {})
            if response.status != 202:
                raise RuntimeError(f"{response.status} {response.body[:200]!r}")
            command_id = msgspec.json.decode(response.body)["command_id"]
            _, sample.notice = await session.notice_of(command_id)
            path = f"/api/users/{user_id}/summary?min_position={sample.notice.position}"
            summary = await session.client.request("GET", path)
            if summary.status != 200:
                raise RuntimeError(f"summary: {summary.status} {summary.body[:200]!r}")
            sample.done = time.time()
            return sample

        return await schedule(rate, duration, write)
    finally:
        for session, _ in opened:
            await session.__aexit__(None, None, None)
