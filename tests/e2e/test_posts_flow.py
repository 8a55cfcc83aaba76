"""Posts and user summaries as a client meets them: HTTP and SSE against real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.conftest import MailStack, own_mail_stack
from tests.e2e.accounts import WAIT, browser, signed_up
from tests.processes import api, base_url, reactor


async def write(client: httpx.AsyncClient, title: str, body: str) -> dict[str, Any]:
    response = await client.post("/api/posts", json={"title": title, "body": body}, headers=WAIT)
    assert response.status_code == 201, response.text
    written: dict[str, Any] = response.json()
    return written


async def summary(client: httpx.AsyncClient, user_id: str, position: int) -> dict[str, Any]:
    response = await client.get(f"/api/users/{user_id}/summary?min_position={position}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_the_summary_follows_every_change_of_its_inputs(mail_stack: MailStack) -> None:
    async with browser(mail_stack) as client:
        me = await signed_up(client, "writer")
        uid = me["user_id"]
        first = await write(client, "First", "one two three")
        s = await summary(client, uid, first["position"])
        assert (s["post_count"], s["total_words"], s["latest_post"]["id"]) == (1, 3, first["id"])
        assert s["first_post_at"] == first["written_at"]

        second = await write(client, "Second", "four five")
        edited = await client.post(
            f"/api/posts/{second['id']}/edit",
            json={"title": "Second, edited", "body": "four five six seven"},
            headers=WAIT,
        )
        assert edited.status_code == 200
        s = await summary(client, uid, edited.json()["position"])
        assert (s["post_count"], s["total_words"]) == (2, 3 + 4)
        assert s["latest_post"]["title"] == "Second, edited"

        deleted = await client.post(f"/api/posts/{first['id']}/delete", json={}, headers=WAIT)
        assert deleted.status_code == 200
        assert deleted.json()["resource_url"] is None  # nothing left to point at
        s = await summary(client, uid, deleted.json()["position"])
        assert (s["post_count"], s["total_words"], s["first_post_at"]) == (
            1,
            4,
            second["written_at"],
        )
        assert (await client.get(f"/api/posts/{first['id']}")).status_code == 404

        profile = await client.post(
            "/api/users/me/profile", json={"display_name": "W. Riter", "bio": "Hi"}, headers=WAIT
        )
        assert profile.status_code == 200, profile.text
        assert (profile.json()["display_name"], profile.json()["bio"]) == ("W. Riter", "Hi")
        s = await summary(client, uid, profile.json()["position"])
        assert s["display_name"] == "W. Riter"
        current = await client.get("/api/sessions/current")
        assert current.json()["display_name"] == "W. Riter"

        video = await client.post(
            "/api/videos", json={"title": "V", "url": "https://e.org/v"}, headers=WAIT
        )
        viewed = await client.post(
            f"/api/videos/{video.json()['id']}/views", json={"viewing_id": "w1"}, headers=WAIT
        )
        s = await summary(client, uid, viewed.json()["position"])
        assert s["videos_watched"] == 1
        listed = await client.get(f"/api/posts?author_id={uid}")
        assert [p["id"] for p in listed.json()["items"]] == [second["id"]]


async def test_only_the_author_edits_or_deletes(mail_stack: MailStack) -> None:
    async with (
        browser(mail_stack) as author,
        browser(mail_stack) as other,
        browser(mail_stack) as anonymous,
    ):
        await signed_up(author, "author")
        await signed_up(other, "other")
        post = await write(author, "Mine", "text")
        edit = f"/api/posts/{post['id']}/edit"
        change = {"title": "Yours", "body": "text"}
        assert (await other.post(edit, json=change)).status_code == 403
        assert (await other.post(f"/api/posts/{post['id']}/delete", json={})).status_code == 403
        assert (await anonymous.post(edit, json=change)).status_code == 401
        assert (
            await anonymous.post("/api/users/me/profile", json={"display_name": "X"})
        ).status_code == 401


async def test_the_summary_can_be_followed_live(mail_stack: MailStack) -> None:
    async with browser(mail_stack) as client:
        me = await signed_up(client, "live")
        first = await write(client, "One", "a")
        await summary(client, me["user_id"], first["position"])
        url = f"/api/users/{me['user_id']}/summary/live"
        async with aconnect_sse(client, "GET", url) as source:
            states = (json.loads(e.data) async for e in source.aiter_sse() if e.event == "state")
            now = await anext(states)
            assert now["post_count"] == 1
            await write(client, "Two", "b c")
            async with asyncio.timeout(30):  # each change as it is made: the count goes to 2
                while (changed := await anext(states))["post_count"] != 2:
                    pass
            assert changed["total_words"] == 3


async def test_twenty_posts_at_once_over_two_reactors_and_two_apis_are_all_counted(
    tmp_path: Path,
) -> None:
    with own_mail_stack(tmp_path) as ms:
        second_reactor = reactor(ms.stack.server.url).start()
        second_api = api(ms.stack.server.url).start()
        try:
            async with browser(ms) as a:
                me = await signed_up(a, "busy")
                # The same browser session on the other instance (sessions are in KV).
                b = httpx.AsyncClient(
                    base_url=base_url(second_api), cookies=a.cookies, timeout=a.timeout
                )
                async with b:
                    bodies = [" ".join(["word"] * (i + 1)) for i in range(20)]
                    written = await asyncio.gather(
                        *(
                            write(a if i % 2 else b, f"Post {i}", body)
                            for i, body in enumerate(bodies)
                        )
                    )
                    last = max(w["position"] for w in written)
                    for client in (a, b):
                        s = await summary(client, me["user_id"], last)
                        assert s["post_count"] == 20
                        assert s["total_words"] == sum(range(1, 21))
                        assert s["position"] >= last
        finally:
            second_api.stop()
            second_reactor.stop()
