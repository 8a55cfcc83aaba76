"""`task watch` against a real nats-server: it shows what the store keeps, as it keeps it."""

from __future__ import annotations

import asyncio
import signal

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError

from contracts.topology import keyed_subject
from reactor.eventstore import EXPECTED_SUBJECT_SEQ
from reactor.watch import follow
from tests.helpers import eventually


async def test_watch_shows_stored_events_keyed_ones_too_and_not_refused_appends(
    fresh_nc: Client, fresh_js: JetStreamContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused append (a conflict) was printed as if it had happened, and a keyed event
    (published on evk.*, stored at its partition's ev.* subject) was never printed."""
    printed: list[str] = []

    async def output(needle: str) -> bool | None:
        printed.extend(capsys.readouterr().out.splitlines())
        return True if any(needle in line for line in printed) else None

    watching = asyncio.create_task(follow(fresh_nc))
    try:
        await eventually(lambda: output("watching"))
        with pytest.raises(BadRequestError):  # the aggregate is not at 5: refused
            await fresh_js.publish(
                "ev.location.refused", b'{"name":"A"}', headers={EXPECTED_SUBJECT_SEQ: "5"}
            )
        await fresh_js.publish(keyed_subject("chat", "general"), b'{"channel":"general"}')
        await fresh_js.publish("ev.location.stored", b'{"name":"B"}')
        await eventually(lambda: output("ev.location.stored"))
        await eventually(lambda: output('{"channel":"general"}'))
        assert not any("ev.location.refused" in line for line in printed)
        [keyed] = [line for line in printed if "general" in line]
        assert " ev.chat." in keyed  # where it is stored, not where it was published
    finally:
        watching.cancel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
