from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.topology import (
    EVENTS_STREAM,
    NOTICES_STREAM,
    VIEW_PROGRESS,
    create_view_buckets,
    ensure_topology,
    stream_names,
    view_bucket,
)
from contracts.views import write_pointer
from tests.conftest import REGISTRY


async def test_every_stream_and_bucket_exists(js: JetStreamContext) -> None:
    names = stream_names(REGISTRY.buckets)
    assert {"EVENTS", "KV_view_locations", "KV_view_progress", "KV_reservations"} <= set(names)
    for name in names:
        info = await js.stream_info(name)
        assert info.config.name == name


async def test_the_event_store_keeps_everything_and_takes_atomic_batches(
    js: JetStreamContext,
) -> None:
    config = (await js.stream_info(EVENTS_STREAM)).config
    assert config.allow_atomic
    assert config.allow_direct
    assert config.deny_delete
    assert config.deny_purge
    assert config.max_age in (None, 0.0)


async def test_ensure_is_idempotent_and_restores_drifted_config(js: JetStreamContext) -> None:
    info = await js.stream_info(NOTICES_STREAM)
    drifted = info.config
    drifted.max_age = 3 * 24 * 3600.0
    await js.update_stream(drifted)
    await ensure_topology(js)
    await ensure_topology(js)
    restored = (await js.stream_info(NOTICES_STREAM)).config
    assert restored.max_age == 7 * 24 * 3600


async def test_notices_are_republished_live_once_stored(js: JetStreamContext) -> None:
    config = (await js.stream_info(NOTICES_STREAM)).config
    assert config.republish is not None
    assert (config.republish.src, config.republish.dest) == ("notice.>", "live.notice.>")


async def test_a_view_added_after_a_rebuild_gets_its_buckets_in_the_live_version(
    fresh_js: JetStreamContext,
) -> None:
    """Only version 1 of each view's buckets was made at start: after a rebuild (version
    2 live), a view added to the registry had no bucket to be written to, and every
    command that wrote it failed. Now the live version's, and a building one's."""
    added = "memos"  # the view added after the rebuild
    before = [name for name in REGISTRY.buckets if name != added]
    await create_view_buckets(fresh_js, before, 2)
    await create_view_buckets(fresh_js, before, 3)
    await write_pointer(fresh_js, 2, building=3)
    with pytest.raises(NotFoundError):
        await fresh_js.key_value(view_bucket(added, 2))
    await ensure_topology(fresh_js, REGISTRY.buckets)  # a start with the view added
    for version in (2, 3):
        await fresh_js.key_value(view_bucket(added, version))
        await fresh_js.key_value(view_bucket(VIEW_PROGRESS, version))
