"""NATS_REPLICAS: every stream and bucket on that many servers; an existing store raised to it."""

from __future__ import annotations

import re
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from contracts.topology import StoreUnsupported, ensure_topology, stream_names
from reactor.status import report
from tests.conftest import REGISTRY
from tests.processes import NATS_PASSWORD, NATS_USER, NatsCluster, NatsServer

pytestmark = pytest.mark.cluster


async def replicas(js: JetStreamContext) -> dict[str, int]:
    names = stream_names(REGISTRY.buckets)
    return {n: (await js.stream_info(n)).config.num_replicas or 1 for n in names}


async def test_a_store_made_on_one_server_is_raised_to_three_and_stays(tmp_path: Path) -> None:
    servers = NatsCluster(tmp_path).start()
    try:
        nc = await nats.connect(servers.url.split(","), user=NATS_USER, password=NATS_PASSWORD)
        js = nc.jetstream()
        await ensure_topology(js, REGISTRY.buckets)  # NATS_REPLICAS unset: 1
        assert set((await replicas(js)).values()) == {1}
        await ensure_topology(js, REGISTRY.buckets, replicas=3)
        raised = await replicas(js)
        assert set(raised.values()) == {3}, raised
        await ensure_topology(js, REGISTRY.buckets, replicas=3)  # again: nothing changes
        await ensure_topology(js, REGISTRY.buckets, replicas=1)  # never lowered by a start
        assert await replicas(js) == raised
        status = await report(js, REGISTRY)  # `task status` says where each stream lives
        events = next(line for line in status if line.startswith("EVENTS "))
        # (a replica just added may still be catching up)
        assert re.search(r"  R3 leader n[123](, catching up: n[123](, n[123])?)?$", events), events
        await nc.close()
    finally:
        servers.stop()


async def test_more_replicas_than_servers_is_one_clear_error(fresh_server: NatsServer) -> None:
    nc = await nats.connect(fresh_server.url, user=NATS_USER, password=NATS_PASSWORD)
    try:
        with pytest.raises(StoreUnsupported, match="set NATS_REPLICAS to at most") as raised:
            await ensure_topology(nc.jetstream(), REGISTRY.buckets, replicas=3)
        assert "\n" not in str(raised.value)
    finally:
        await nc.close()
