"""The page on a cluster: the server its API instance is connected to is killed, the
page says so briefly, and goes on; nothing made before or after is lost."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, expect

from tests.browser.pages import LOCATION_URL, LocationsPage
from tests.cluster.conftest import ClusterStack
from tests.helpers import unique_name

pytestmark = [pytest.mark.cluster, pytest.mark.browser]


async def test_the_page_goes_on_when_its_servers_nats_is_killed(
    page: Page, cluster: ClusterStack
) -> None:
    url = cluster.urls[0]  # this API instance was given the first server only
    locations = await LocationsPage(page, url).open()
    before = unique_name()
    await locations.create(before)
    await expect(page).to_have_url(LOCATION_URL)

    server = cluster.nats.servers[0]
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
