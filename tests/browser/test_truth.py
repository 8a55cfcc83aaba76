"""The page tells the truth: NATS away shows in the header and as an error (not an empty
list), long names wrap at phone and desktop widths, the outcome is in view on a phone,
a reload mid-wait keeps the pending command in sight."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from tests.browser.pages import LocationsPage
from tests.helpers import unique_name
from tests.processes import Process, Stack, base_url

LONG = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch " + "x" * 41  # 100


async def test_with_nats_stopped_the_header_and_the_lists_say_so(
    page: Page, fresh_stack: Stack
) -> None:
    url = fresh_stack.url
    await page.goto(url + "/locations")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    fresh_stack.server.stop()
    await expect(page.locator("#conn")).to_have_attribute(
        "data-state", "unavailable", timeout=10_000
    )
    await expect(page.locator("#conn")).to_contain_text("unavailable")
    await page.goto(url + "/locations")  # a list read while NATS is away
    state = page.locator("#list-state")
    await expect(state).to_have_attribute("data-state", "error", timeout=5_000)
    await expect(state).to_contain_text("Could not load the locations")
    await expect(state.get_by_role("button", name="Retry")).to_be_visible()
    fresh_stack.server.restart()
    # The header says when NATS is back; then Retry loads the list.
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)
    await state.get_by_role("button", name="Retry").click()
    await expect(state).to_have_attribute("data-state", "empty", timeout=10_000)


async def no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    viewport = await page.evaluate("() => window.innerWidth")
    assert width <= viewport, (width, viewport)


async def test_a_long_name_wraps_and_the_outcome_is_in_view_on_a_phone(
    browser: Browser, api_process: Process, reactor_process: Process
) -> None:
    name = LONG[:-10] + unique_name("")[1:10]
    for width, height in ((390, 844), (1280, 800)):
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            locations = await LocationsPage(page, base_url(api_process)).open()
            await locations.create(name + str(width)[:1])
            heading = page.locator("#location h1")
            await expect(heading).to_have_text(name + str(width)[:1])
            await no_sideways_scroll(page)
            box = await heading.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= width  # wrapped, not cut off or under a panel
            await page.goto(base_url(api_process) + "/locations")
            await no_sideways_scroll(page)
            # An outcome far below the top of a phone's page: the toast is in the viewport.
            await page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
            await locations.create(name + str(width)[:1])  # taken: a message, in view
            await expect(page.locator("#name-error")).to_be_visible()
        finally:
            await context.close()


async def test_the_toast_stays_in_view_wherever_the_page_is_scrolled(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    await page.set_viewport_size({"width": 390, "height": 600})
    locations = await LocationsPage(page, base_url(api_process)).open()
    await locations.developer_panel(wait_s=1, slow_s=3)
    await page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    await locations.create(unique_name("Later"))
    toast = page.locator("#notice")
    await expect(toast).to_contain_text("will be available shortly")
    box = await toast.bounding_box()
    assert box is not None
    assert box["y"] >= 0  # in the viewport
    assert box["y"] + box["height"] <= 600
    # A reload mid-wait still shows the pending command, then its outcome.
    await page.reload()
    await expect(toast).to_contain_text("will be ready shortly")
    await expect(toast).to_contain_text("is ready", timeout=15_000)
