"""The chat dashboard in Chromium, while `task chat:simulate`'s module sends traffic."""

from __future__ import annotations

import asyncio
import sys
import uuid

from playwright.async_api import Page, expect

from tests.processes import ROOT, Process, base_url


async def total(page: Page) -> int:
    return int((await page.locator("#chart-total").text_content() or "0").replace(",", ""))


async def test_the_dashboard_moves_live_while_traffic_comes_in(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    prefix = uuid.uuid4().hex[:6]
    simulator = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.chatsim", "--url", url, "--prefix", prefix),
        *("--rate", "2000", "--channels", "20", "--duration", "6"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        busiest = f"{prefix}-0000"
        await page.goto(f"{url}/chat/{busiest}")
        await expect(page.locator("#chart-title")).to_have_text(f"#{busiest}")
        await expect(page.locator("#chart-total")).not_to_have_text("0")
        seen = await total(page)
        # Without a reload: the live stream moves the chart, the list follows.
        await expect(page.locator("#chart-total")).not_to_have_text(f"{seen:,}")
        assert await total(page) > seen
        await expect(page.locator("#chart rect.win").first).to_be_visible()
        row = page.locator(f"#channels tr[data-channel='{busiest}']")
        await expect(row).to_have_attribute("aria-current", "true")
        await row.get_by_role("link").click()
        await expect(page).to_have_url(f"{url}/chat/{busiest}")
    finally:
        out, _ = await simulator.communicate()
    assert simulator.returncode == 0, out.decode()  # the API's counts equal its tally
    # Once the traffic has stopped, chart and list settle on that count.
    record = await (await page.request.get(f"{url}/api/chat/channels/{busiest}")).json()
    counted = f"{record['total']:,}"
    await expect(page.locator("#chart-total")).to_have_text(counted)
    await expect(page.locator(f"#channels tr[data-channel='{busiest}'] td").last).to_have_text(
        counted
    )


async def test_a_channel_not_there_yet_or_not_a_name_says_so(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """A channel with no message showed an empty chart and "total 0"; a name that is not
    a channel's showed the busiest channel under its URL."""
    url = base_url(api_process)
    quiet = f"quiet-{uuid.uuid4().hex[:6]}"
    await page.goto(f"{url}/chat/{quiet}")
    await expect(page.locator("#chart-waiting")).to_have_text(
        f"No message in #{quiet} yet: it shows here from the first."
    )
    await page.goto(f"{url}/chat/bad.name")
    await expect(page.locator("#chart-title")).to_have_text("No such channel")
    await expect(page.locator("#chart-waiting")).to_contain_text("“bad.name” is not a channel's")
    await expect(page.locator("#channels tr[aria-current]")).to_have_count(0)  # none followed
