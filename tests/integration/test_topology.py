from __future__ import annotations

from nats.js import JetStreamContext

from contracts.topology import NOTICES_STREAM, ensure_topology, stream_names


async def test_every_stream_and_bucket_exists(js: JetStreamContext) -> None:
    for name in stream_names():
        info = await js.stream_info(name)
        assert info.config.name == name


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
