"""`task rebuild` with the API and a reactor running, and commands arriving throughout."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from contracts.topology import LEASE_TTL, LEASES_BUCKET
from contracts.views import ViewBuckets, read_pointer
from domains import registry
from reactor.aggregators import Refold
from reactor.rebuild import (
    LEASE_JOB,
    Busy,
    Fold,
    FoldFailed,
    create_version,
    differences,
    one_at_a_time,
    rebuild,
)
from tests.conftest import connect_test_client
from tests.e2e.sse import command_events, post_location
from tests.helpers import eventually, unique_name
from tests.processes import NatsServer, Stack, run_module


async def create(client: httpx.AsyncClient, name: str, category: str = "City") -> str:
    response = await post_location(client, name, category, Prefer="wait=10")
    assert response.status_code in (201, 409), response.text
    return str(response.status_code)


async def _users_and_videos(client: httpx.AsyncClient) -> None:
    """A user (credentials, profile), a watched and renamed video, posts: every view of them
    and the user's summary must rebuild equal."""
    wait = {"Prefer": "wait=10"}
    email = f"{unique_name('rebuild').replace(' ', '.')}@example.org"
    user = {"email": email, "password": "rebuild pass", "display_name": "Re"}
    assert (await client.post("/api/users", json=user, headers=wait)).status_code == 201
    signed = await client.post("/api/sessions", json={"email": email, "password": "rebuild pass"})
    assert signed.status_code == 200
    video = {"title": "Before", "url": "https://example.org/v"}
    published = await client.post("/api/videos", json=video, headers=wait)
    video_id = published.json()["id"]
    for viewing in ("a", "b", "a"):
        body = {"viewing_id": viewing}
        await client.post(f"/api/videos/{video_id}/views", json=body, headers=wait)
    rename = f"/api/videos/{video_id}/rename"
    assert (await client.post(rename, json={"title": "!!!"}, headers=wait)).status_code == 422
    assert (await client.post(rename, json={"title": "After"}, headers=wait)).status_code == 200
    profile = {"display_name": "Re Built", "bio": "from events"}
    assert (
        await client.post("/api/users/me/profile", json=profile, headers=wait)
    ).status_code == 200
    ids = []
    for i in range(3):
        body = {"title": f"Post {i}", "body": "a few words " * (i + 1)}
        ids.append((await client.post("/api/posts", json=body, headers=wait)).json()["id"])
    edit = {"title": "Edited", "body": "just two"}
    assert (await client.post(f"/api/posts/{ids[0]}/edit", json=edit, headers=wait)).is_success
    assert (await client.post(f"/api/posts/{ids[1]}/delete", json={}, headers=wait)).is_success


async def test_rebuild_switches_to_an_equal_read_model_while_the_api_serves(
    fresh_stack: Stack,
) -> None:
    server, url = fresh_stack.server, fresh_stack.url
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        names = [unique_name() for _ in range(40)]
        for i, name in enumerate(names):
            assert await create(client, name, ("Town", "City", "Country")[i % 3]) == "201"
        for name in names[:5]:
            assert await create(client, name.upper()) == "409"  # recorded failures stay failures
        before = (await client.get("/api/locations", params={"limit": "200"})).json()["items"]
        stats_before = await _stats_with(client, 40)
        await _users_and_videos(client)  # credentials, a renamed video, its views, home totals

        # Commands keep arriving while the rebuild runs.
        during: list[str] = []

        async def keep_posting() -> None:
            for _ in range(30):
                name = unique_name("During")
                assert await create(client, name) == "201"
                during.append(name)

        posting = asyncio.create_task(keep_posting())
        result = await asyncio.to_thread(run_module, server.url, "reactor.rebuild", "--grace", "1")
        await posting
        assert result.returncode == 0, result.stdout + result.stderr
        assert "the rebuilt views equal the old ones" in result.stdout

        nc = await connect_test_client(server.url)
        js: JetStreamContext = nc.jetstream()
        assert await read_pointer(js) == 2
        old, new = ViewBuckets(js, 1), ViewBuckets(js, 2)
        views = list(registry().views.values())
        assert await differences(old, new, views, upto=0) == []
        assert set(await new.keys("locations")) >= set(await old.keys("locations"))

        # The API now reads version 2: everything from before and during is there.
        after = (await client.get("/api/locations", params={"limit": "200"})).json()["items"]
        assert {i["id"] for i in after} >= {i["id"] for i in before}
        assert {i["name"] for i in after} >= set(during)
        stats_after = await _stats_with(client, stats_before["total"] + len(during))
        assert stats_after["total"] == stats_before["total"] + len(during)

        # And the reactor writes to it: a command after the switch lands in version 2 only.
        last = unique_name("After")
        assert await create(client, last) == "201"
        listed = (await client.get("/api/locations", params={"limit": "1"})).json()["items"]
        assert listed[0]["name"] == last
        assert await new.record("locations", listed[0]["id"]) is not None
        assert listed[0]["id"] not in await old.keys("locations")
        await nc.close()


async def test_rebuild_of_an_empty_stream(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    result = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--grace", "0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read EVENTS up to 0" in result.stdout
    # Said as soon as it is so: a failure after the switch leaves the new version live.
    assert result.stdout.splitlines()[1] == "rebuild: version 2 is live"


async def test_activating_a_version_that_has_no_buckets_is_refused(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """Every process follows the pointer: to a version with no buckets (a typo), every
    view read and write would fail."""
    result = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--activate", "30"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("rebuild: version 30 cannot be made active: ")
    assert await read_pointer(fresh_js) == 1
    zero = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--activate", "0"
    )
    assert zero.returncode == 2  # argparse's: it was checked as buckets named view_..._v0
    assert "--activate: 0: at least 1" in zero.stderr
    undo = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--activate", "1"
    )
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert undo.stdout.strip() == "rebuild: version 1 is the one in use already"


async def test_one_rebuild_at_a_time_and_a_dead_ones_lease_is_taken_over(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """A second rebuild cleared the first's "being built" and dropped its buckets under
    it. Now it is refused while the first holds the lease; a lease left by a killed
    rebuild is taken over once the server has let it go; a rebuild gives its lease back
    when it ends."""
    async with one_at_a_time(fresh_js):
        with pytest.raises(Busy):
            async with one_at_a_time(fresh_js):
                pass
        refused = await asyncio.to_thread(
            run_module, fresh_server.url, "reactor.rebuild", "--grace", "0"
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        [line] = refused.stderr.splitlines()
        assert line.startswith("rebuild: refused: another rebuild is running")
        assert refused.stdout == ""  # nothing begun
        moved = await asyncio.to_thread(
            run_module, fresh_server.url, "reactor.rebuild", "--activate", "1"
        )
        assert moved.returncode == 1, moved.stdout + moved.stderr
        assert moved.stderr.startswith("rebuild: refused: another rebuild is running")
    kv = await fresh_js.key_value(LEASES_BUCKET)
    await kv.create(LEASE_JOB, b"killed")  # a rebuild's lease, never renewed again
    with pytest.raises(Busy, match=f"its lease ends {LEASE_TTL:g} s after its last renewal"):
        async with one_at_a_time(fresh_js):
            pass

    async def let_go() -> bool | None:
        try:
            await kv.get(LEASE_JOB)
        except KeyNotFoundError:
            return True
        return None

    await eventually(let_go, within=LEASE_TTL + 5)  # by the server, on its own clock
    done = await asyncio.to_thread(run_module, fresh_server.url, "reactor.rebuild", "--grace", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(KeyNotFoundError):  # given back
        await kv.get(LEASE_JOB)


async def test_a_live_rebuild_keeps_its_lease_past_the_ttl(fresh_js: JetStreamContext) -> None:
    """The lease expires LEASE_TTL after its last renewal, by the server's clock: a rebuild
    that runs longer keeps it by renewing it, and every other rebuild meanwhile is refused.
    (Judged stale by the holder's clock, a live rebuild on a machine whose clock was behind
    looked dead, and two rebuilds ran at once.)"""
    loop = asyncio.get_running_loop()
    async with one_at_a_time(fresh_js) as held:
        until = loop.time() + LEASE_TTL + 1
        refusals = 0
        while loop.time() < until:
            with pytest.raises(Busy):
                async with one_at_a_time(fresh_js):
                    pass
            refusals += 1
            await asyncio.sleep(0.25)
        assert not held.lost
    assert refusals > LEASE_TTL  # tried throughout, not once
    async with one_at_a_time(fresh_js):  # given back: the next takes it at once
        pass


async def test_a_rebuild_whose_lease_was_taken_over_stops_and_leaves_the_lease(
    fresh_js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused past LEASE_TTL, its lease taken by another rebuild: at its next renewal it
    is cancelled (it would have switched the service to views the other dropped), and it
    does not delete the other's lease on its way out."""
    monkeypatch.setattr("reactor.rebuild.RENEW_EVERY", 0.05)
    kv = await fresh_js.key_value(LEASES_BUCKET)

    async def rebuilding() -> bool:
        async with one_at_a_time(fresh_js) as lease:
            await kv.put(LEASE_JOB, b"another")  # taken over while this one was paused
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            return lease.lost

    assert await asyncio.wait_for(rebuilding(), 5)
    assert (await kv.get(LEASE_JOB)).value == b"another"


async def test_events_still_flow_after_a_rebuild(fresh_stack: Stack) -> None:
    result = await asyncio.to_thread(
        run_module, fresh_stack.server.url, "reactor.rebuild", "--grace", "0.5"
    )
    assert result.returncode == 0, result.stdout
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:
        response = await post_location(client, unique_name())
        events = await command_events(client, response.json()["command_id"])
        assert [e.event for e in events] == ["succeeded"]
        await eventually(lambda: _ready(client))  # readyz checks version 2's buckets


async def _stats_with(client: httpx.AsyncClient, total: int) -> dict[str, Any]:
    """The stats once the async view has counted `total` (or the last answer, at the deadline)."""

    async def counted() -> dict[str, Any] | None:
        stats: dict[str, Any] = (await client.get("/api/locations/stats")).json()
        return stats if stats["total"] >= total else None

    return await eventually(counted, within=15)


async def _ready(client: httpx.AsyncClient) -> bool | None:
    return True if (await client.get("/readyz")).status_code == 200 else None


async def test_every_command_told_succeeded_is_readable_across_the_switch(
    fresh_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands handled between the rebuild's fold catching up and its switch were
    written to the old version only, and read from the new one (404) until the
    rebuild's last pass. The version being built now gets them from the reactors too:
    right after the switch, every location told `succeeded` reads 200."""
    caught_up = Refold.until

    async def slowly(self: Refold, end: int) -> None:  # a long window before the switch
        await caught_up(self, end)
        await asyncio.sleep(1.0)

    monkeypatch.setattr(Refold, "until", slowly)
    nc = await connect_test_client(fresh_stack.server.url)
    js: JetStreamContext = nc.jetstream()
    made: list[str] = []
    try:
        rebuilding = asyncio.create_task(rebuild(nc, registry(), grace=0.5))
        async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=30) as client:
            while await read_pointer(js) == 1:
                created = await post_location(client, unique_name("Switch"), Prefer="wait=10")
                assert created.status_code == 201, created.text
                made.append(created.headers["location"])
            read = [(await client.get(url)).status_code for url in made]  # before its last pass
            await rebuilding
        assert rebuilding.result()[2] == []  # the rebuilt views equal the old ones
        assert len(made) > 10
        assert read == [200] * len(made)
    finally:
        await nc.close()


async def test_a_rollback_brings_the_version_up_to_date_and_every_process_follows_it(
    fresh_stack: Stack,
) -> None:
    """`--activate 1` after a rebuild moved the pointer alone and asked for a restart:
    every location made while version 2 was live was then a 404 (only the async views
    caught up), and the processes went on writing version 2 until restarted."""
    server = fresh_stack.server
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=30) as client:
        await create(client, unique_name("Before"))
        built = await asyncio.to_thread(run_module, server.url, "reactor.rebuild", "--grace", "1")
        assert built.returncode == 0, built.stdout + built.stderr
        made = []
        for _ in range(5):  # while version 2 is live: not in version 1
            created = await post_location(client, unique_name("OnTwo"), Prefer="wait=10")
            assert created.status_code == 201, created.text
            made.append(created.headers["location"])
        back = await asyncio.to_thread(
            run_module, server.url, "reactor.rebuild", "--activate", "1", "--grace", "1"
        )
        assert back.returncode == 0, back.stdout + back.stderr
        assert "rebuild: version 1 is live" in back.stdout
        nc = await connect_test_client(server.url)
        try:
            assert await read_pointer(nc.jetstream()) == 1
            one = ViewBuckets(nc.jetstream(), 1)  # what a process started now reads
            ids = [url.rsplit("/", 1)[1] for url in made]
            assert [await one.record("locations", i) is not None for i in ids] == [True] * 5
        finally:
            await nc.close()
        # No restart: the API reads version 1, which has them; the reactor writes it.
        assert [(await client.get(url)).status_code for url in made] == [200] * len(made)
        after = await post_location(client, unique_name("OnOne"), Prefer="wait=10")
        assert after.status_code == 201, after.text
        listed = (await client.get("/api/locations", params={"limit": "1"})).json()["items"]
        assert listed[0]["id"] == after.json()["id"]
        # And a rebuild after it says what it empties (version 2, the one left).
        again = await asyncio.to_thread(run_module, server.url, "reactor.rebuild", "--grace", "0")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "rebuild: emptying version 2, left from before" in again.stdout


async def test_a_view_that_raises_stops_the_fold_with_one_line(fresh_stack: Stack) -> None:
    """`task rebuild` printed a traceback of some forty lines for a view's KeyError."""
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=30) as client:
        await create(client, unique_name("Raise"))

    def broken(record: Any, event: Any, meta: Any) -> Any:
        raise KeyError("city")

    domains = registry()
    view = dataclasses.replace(domains.views["location_stats"], apply=broken)
    nc = await connect_test_client(fresh_stack.server.url)
    try:
        js = nc.jetstream()
        await create_version(js, domains, 9)
        fold = Fold(js, domains, ViewBuckets(js, 9), [view])
        with pytest.raises(FoldFailed) as failed:
            await fold.until_caught_up()
        await fold.close()
    finally:
        await nc.close()
    assert re.fullmatch(
        r"view location_stats cannot apply the events \d+ to \d+: KeyError: 'city'",
        str(failed.value),
    )
