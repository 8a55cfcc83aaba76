"""`task purge` against a cluster: it asks every server who is connected."""

from __future__ import annotations

import asyncio

from reactor.purge import monitor_urls
from tests.cluster.conftest import ClusterStack
from tests.processes import run_module


async def test_purge_refuses_while_clients_of_any_server_are_connected(
    cluster: ClusterStack,
) -> None:
    """The two APIs are on two different servers: asking the first one alone saw one."""
    servers = cluster.nats.servers
    env = {"NATS_MONITOR_URL": ",".join(s.monitor_url for s in servers)}
    refused = await asyncio.to_thread(
        run_module, cluster.nats.url, "reactor.purge", "--yes", env=env
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("purge: refused: 2 api, 2 reactor connected to NATS")


def test_the_monitoring_endpoints_follow_the_servers_as_cluster_up_lays_them_out() -> None:
    env = {"NATS_URL": "nats://127.0.0.1:4222,nats://127.0.0.1:4223, nats://h3:4224"}
    assert monitor_urls(env) == [
        "http://127.0.0.1:8222",
        "http://127.0.0.1:8223",
        "http://h3:8224",
    ]
    assert monitor_urls({**env, "NATS_MONITOR_PORT": "9000"})[0] == "http://127.0.0.1:9000"
    assert monitor_urls({"NATS_MONITOR_URL": "http://a:1, http://b:2"}) == [
        "http://a:1",
        "http://b:2",
    ]
    assert monitor_urls({}) == ["http://127.0.0.1:8222"]
