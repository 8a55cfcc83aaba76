"""Following the view version pointer (`task rebuild` moves it) on a server of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.js import JetStreamContext

from contracts.topology import VIEW_VERSIONS_BUCKET, create_view_buckets
from contracts.views import POINTER_KEY, ActiveViews, Pointer, read_whole_pointer, write_pointer
from tests.conftest import REGISTRY, connect_test_client
from tests.helpers import eventually
from tests.processes import NatsServer


async def make_version(js: JetStreamContext, version: int) -> None:
    await create_view_buckets(js, REGISTRY.buckets, version)


@pytest.fixture
async def active(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> AsyncIterator[ActiveViews]:
    """Following the pointer on the fresh server (fresh_js has made the buckets)."""
    nc = await connect_test_client(fresh_server.url)
    views = ActiveViews()
    await views.start(nc)
    yield views
    await views.stop()
    await nc.close()


async def test_a_moved_pointer_is_followed_live(
    active: ActiveViews, fresh_js: JetStreamContext
) -> None:
    assert active.current.version == 1
    changed = active.changed
    await make_version(fresh_js, 2)
    await write_pointer(fresh_js, 2)

    async def moved() -> bool | None:
        return True if active.current.version == 2 else None

    await eventually(moved)
    assert changed.is_set()  # what restarts async views and ends live streams
    assert (await (await active.current.bucket("locations")).status()).bucket == "view_locations_v2"


async def test_a_move_missed_while_away_is_caught_by_refresh(
    active: ActiveViews, fresh_js: JetStreamContext
) -> None:
    await active.stop()  # as if disconnected: the move goes by unseen
    await make_version(fresh_js, 2)
    await write_pointer(fresh_js, 2)
    assert active.current.version == 1
    await active.refresh()  # what a reconnect does
    assert active.current.version == 2


async def test_a_rollback_is_followed_and_a_late_older_pointer_is_not(
    active: ActiveViews, fresh_js: JetStreamContext
) -> None:
    """A process followed the pointer up only, so a rollback (`--activate`) needed every
    process restarted; a pointer's generation now says which of two is newer."""
    await make_version(fresh_js, 2)
    await write_pointer(fresh_js, 2)
    await write_pointer(fresh_js, 1)  # rolled back

    async def back() -> bool | None:
        return True if active.current.version == 1 else None

    await eventually(back)
    pointer = await read_whole_pointer(fresh_js)
    assert pointer.generation == 2
    # A pointer of an older generation (a late copy of the move to 2) is not followed,
    # neither as it arrives nor when it is read again.
    stale = msgspec.json.encode(Pointer(2, generation=1))
    await fresh_js.publish(f"$KV.{VIEW_VERSIONS_BUCKET}.{POINTER_KEY}", stale)
    await active.refresh()
    assert active.current.version == 1
