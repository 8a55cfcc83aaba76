from __future__ import annotations

from nats.js import JetStreamContext

from contracts.topology import EVENTS_STREAM, NOTICES_STREAM, ensure_topology, stream_names
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
