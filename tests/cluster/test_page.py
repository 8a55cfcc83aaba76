"""The page on a cluster: the server its API instance is connected to is killed, the
page says so briefly, and goes on; nothing made before or after is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.pages import LOCATION_URL, LocationsPage
from tests.cluster.conftest import REPLICAS
from tests.helpers import unique_name
from tests.processes import NatsCluster, Process, api, base_url, reactor

pytestmark = [pytest.mark.cluster, pytest.mark.browser]


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[tuple[NatsCluster, str]]:
    """A cluster of its own, a reactor, and an API given the first server only
    (the package's cluster has had servers killed: its APIs may be anywhere)."""
    servers = NatsCluster(tmp_path).start()
    started: list[Process] = []
    try:
        started.append(reactor(servers.url, env=REPLICAS).start())
        started.append(api(servers.servers[0].url, env=REPLICAS).start())
        yield servers, base_url(started[-1])
    finally:
        for process in reversed(started):
            process.stop()
        servers.stop()


async def test_the_page_goes_on_when_its_servers_nats_is_killed(
    page: Page, small_cluster: tuple[NatsCluster, str]
) -> None:
    cluster, url = small_cluster
    locations = await LocationsPage(page, url).open()
    before = unique_name()
    await locations.create(before)
    await expect(page).to_have_url(LOCATION_URL)

    server = cluster.servers[0]  # the API's server
    server.kill()
    try:
        conn = page.locator("#conn")
        await expect(conn).to_have_attribute("data-state", "unavailable", timeout=5_000)
        # The API reconnects to another server at once; the header is live again
        # once the streams it led have new leaders (an election: seconds).
        await expect(conn).to_have_attribute("data-state", "live", timeout=20_000)
        await locations.open()
        after = unique_name()
        await locations.create(after)
        await expect(page).to_have_url(LOCATION_URL)
    finally:
        await asyncio.to_thread(server.restart)
    await locations.open()
    for name in (before, after):
        await expect(page.get_by_text(name)).to_be_visible()
