"""Identity and videos under faults: secrets never stored or logged, viewings counted once
while reactors die, emails through SMTP outages (sent once, or given up on), sign-in limits
shared by API instances."""

from __future__ import annotations

import asyncio
import signal
from functools import partial
from pathlib import Path

import httpx

from contracts.topology import NOTICES_STREAM
from domains.outbox.aggregate import email_id
from tests.conftest import connect_test_client, own_mail_stack
from tests.e2e.accounts import (
    WAIT,
    browser,
    email_sent_in,
    new_address,
    register,
    sign_in,
    signed_up,
)
from tests.e2e.faults import kill_every_second
from tests.helpers import event_types, eventually, stream_messages
from tests.processes import api, base_url, run_module, sink_port


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_no_plaintext_password_reaches_the_store_a_log_or_a_notice(tmp_path: Path) -> None:
    debug = {"LOG_LEVEL": "DEBUG"}
    with own_mail_stack(tmp_path, reactor_env=debug, api_env=debug) as ms:
        email = new_address("secret")
        secrets = ["Plaintext-Pass-1", "Wrong-Guess-2", "Too-short", "Keyed-Pass-3"]
        async with browser(ms) as client:
            assert (await register(client, email, secrets[0])).status_code == 201
            assert (await sign_in(client, email, secrets[1])).status_code == 401
            assert (await sign_in(client, email, secrets[0])).status_code == 200
            short = {"email": new_address(), "password": secrets[2][:6], "display_name": "X"}
            assert (await client.post("/api/users", json=short)).status_code == 422
            keyed = {"email": new_address(), "password": secrets[3], "display_name": "Key"}
            for _ in range(2):  # the second is answered from the Idempotency-Key's record
                answer = await client.post(
                    "/api/users", json=keyed, headers={**WAIT, "Idempotency-Key": "k-1"}
                )
                assert answer.status_code == 201
                assert secrets[3] not in answer.text
        await eventually(partial(email_sent_in, ms, "welcome", email), within=20)
        store = ms.stack.server.store_dir
        assert files_containing(store, email.encode())  # the grep does read what is stored
        for secret in secrets:
            assert files_containing(store, secret.encode()) == [], secret
            assert files_containing(ms.mail_dir, secret.encode()) == [], secret
            for process in (ms.stack.api, ms.stack.reactor, ms.stack.server, ms.sink):
                assert not [line for line in process.lines if secret in line], process.name


async def test_a_viewing_sent_five_times_while_reactors_die_counts_once(tmp_path: Path) -> None:
    with own_mail_stack(tmp_path) as ms:
        nc = await connect_test_client(ms.stack.server.url)
        js = nc.jetstream()
        try:
            async with browser(ms) as owner, browser(ms) as viewer:
                await signed_up(owner, "owner")
                published = await owner.post(
                    "/api/videos", json={"title": "Rain", "url": "https://e.org/r"}, headers=WAIT
                )
                video_id = published.json()["id"]
                viewings = [f"view-{i}" for i in range(40)]
                before = await stream_messages(js, NOTICES_STREAM)

                async def send_all() -> None:
                    for round_ in range(5):  # each viewing id five times, spread over time
                        answers = await asyncio.gather(
                            *(
                                viewer.post(f"/api/videos/{video_id}/views", json={"viewing_id": v})
                                for v in viewings
                            )
                        )
                        assert {a.status_code for a in answers} == {202}, round_
                        await asyncio.sleep(0.6)

                sending = asyncio.create_task(send_all())
                kills = await kill_every_second(
                    ms.stack.reactor, js, until_notices=before + 5 * len(viewings), within=120
                )
                await sending
                assert kills >= 2
                record = (await viewer.get(f"/api/videos/{video_id}")).json()
                assert record["views"] == len(viewings)
                home = await viewer.get(f"/api/home?min_position={record['position']}")
                assert home.json()["per_video"][video_id] == len(viewings)
            viewed = [t for _, t in await event_types(js, f"ev.video.{video_id}")]
            assert viewed.count("VideoViewed") == len(viewings)
        finally:
            await nc.close()


async def test_emails_wait_for_the_smtp_server_and_go_out_once_it_is_back(
    tmp_path: Path,
) -> None:
    with own_mail_stack(tmp_path) as ms:
        port = sink_port(ms.sink)
        ms.sink.stop()
        addresses = [new_address(f"wait{i}") for i in range(3)]
        async with browser(ms) as client:
            for address in addresses:
                assert (await register(client, address)).status_code == 201

        async def retrying() -> bool | None:
            tries = sum("attempt 2 failed" in line for line in ms.stack.reactor.lines)
            return True if tries >= len(addresses) else None

        await eventually(retrying, within=20)
        ms.sink.argv[ms.sink.argv.index("--port") + 1] = str(port)
        ms.sink.start()  # back, on the same port
        for address in addresses:
            await eventually(partial(email_sent_in, ms, "welcome", address), within=30)
            assert len(ms.mail_to(address)) == 1


async def test_an_email_is_given_up_after_its_attempts_and_dead_lettered(tmp_path: Path) -> None:
    with own_mail_stack(tmp_path, reactor_env={"MAILER_MAX_ATTEMPTS": "2"}) as ms:
        port = sink_port(ms.sink)
        ms.sink.stop()
        address = new_address("never")
        async with browser(ms) as client:
            assert (await register(client, address)).status_code == 201
        nc = await connect_test_client(ms.stack.server.url)
        js = nc.jetstream()
        subject = f"ev.email.{email_id('welcome', address)}"

        async def failed() -> bool | None:
            return True if "EmailFailed" in {t for _, t in await event_types(js, subject)} else None

        try:
            await eventually(failed, within=20)
        finally:
            await nc.close()
        listed = run_module(ms.stack.server.url, "reactor.dlq", "list")
        assert "email-failed" in listed.stdout
        assert "1 dead letter(s)" in listed.stdout
        status = run_module(ms.stack.server.url, "reactor.status")
        assert "given up     1" in status.stdout, status.stdout
        replayed = run_module(ms.stack.server.url, "reactor.dlq", "replay", "--all")
        assert "left in place" in replayed.stdout

        # The server is back: later emails go out, the given-up one never does.
        ms.sink.argv[ms.sink.argv.index("--port") + 1] = str(port)
        ms.sink.start()
        later = new_address("later")
        async with browser(ms) as client:
            assert (await register(client, later)).status_code == 201
        await eventually(partial(email_sent_in, ms, "welcome", later), within=30)
        assert ms.mail_to(address) == []


async def test_guesses_sent_at_once_are_each_counted_before_they_are_checked(
    tmp_path: Path,
) -> None:
    """Twelve wrong guesses sent together were all checked (each read the count before
    any was counted), and so were a hundred: the limit held only for the next one."""
    limits = {"SIGNIN_FAILURES_PER_EMAIL": "3", "SIGNIN_FAILURES_PER_CLIENT": "100"}
    with own_mail_stack(tmp_path, api_env=limits) as ms:
        async with browser(ms) as client:
            email = new_address("guessed")
            assert (await register(client, email, "the right one")).status_code == 201
            answers = await asyncio.gather(
                *(sign_in(client, email, f"wrong guess {n}") for n in range(12))
            )
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [401] * 3 + [429] * 9  # three checked: the limit
            assert (await sign_in(client, email, "the right one")).status_code == 429


async def test_failed_sign_ins_are_limited_across_api_instances(tmp_path: Path) -> None:
    limits = {"SIGNIN_FAILURES_PER_EMAIL": "3", "SIGNIN_FAILURES_PER_CLIENT": "6"}
    with own_mail_stack(tmp_path, api_env=limits) as ms:
        # The second instance is behind a proxy on this host: it trusts its X-Forwarded-For.
        second = api(ms.stack.server.url, env={**limits, "TRUSTED_PROXIES": "127.0.0.1"}).start()
        try:
            timeout = httpx.Timeout(20, read=30)
            async with (
                browser(ms) as a,
                httpx.AsyncClient(base_url=base_url(second), timeout=timeout) as b,
            ):
                email = new_address("limited")
                assert (await register(a, email, "the right one")).status_code == 201
                for client in (a, b, a):  # three failures, over both instances
                    assert (await sign_in(client, email, "a wrong one")).status_code == 401
                locked = await sign_in(b, email, "the right one")
                assert locked.status_code == 429
                assert 1 <= int(locked.headers["retry-after"]) <= 900
                assert locked.headers["content-type"] == "application/problem+json"
                # Per client: three more failures on other addresses reach its limit of six.
                for i in range(3):
                    unknown = await sign_in(a, new_address(f"x{i}"), "a wrong one")
                    assert unknown.status_code == 401
                other = await sign_in(b, new_address("y"), "a wrong one")
                assert other.status_code == 429
                # Another client behind the trusted proxy has a count of its own; a client
                # of the instance that trusts no proxy cannot claim to be another.
                forwarded = {"X-Forwarded-For": "198.51.100.7"}
                body = {"email": new_address("z"), "password": "a wrong one"}
                assert (
                    await b.post("/api/sessions", json=body, headers=forwarded)
                ).status_code == 401
                assert (
                    await a.post("/api/sessions", json=body, headers=forwarded)
                ).status_code == 429
        finally:
            second.stop(signal.SIGTERM)
