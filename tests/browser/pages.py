"""The pages as a test drives them: the locations page object, signing up, and the API's
answer while NATS is away."""

from __future__ import annotations

import re

from playwright.async_api import Page, Route, expect

LOCATION_URL = re.compile(r"/locations/[0-9a-f]{24}$")


class LocationsPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    async def open(self, path: str = "/locations") -> LocationsPage:
        await self.page.goto(self.base_url + path)
        await self.live()
        # Rendered too (its module imported): the stream can be live before that, and
        # a test that then stops the API would leave the page without its form.
        await expect(self.page.locator("#page > *").first).to_be_attached()
        await expect(self.page.locator("#page > .state[data-state=error]")).to_have_count(0)
        return self

    async def live(self) -> None:
        """The session event stream is connected."""
        await expect(self.page.locator("#conn")).to_have_attribute("data-state", "live")

    async def create(self, name: str, category: str = "City", description: str = "") -> None:
        await self.page.fill("#name", name)
        await self.page.select_option("#category", category)
        await self.page.fill("#description", description)
        await self.page.click("#submit")

    async def developer_panel(
        self, *, wait_s: int | None = None, slow_s: int | None = None, server_wait: bool = False
    ) -> None:
        panel = self.page.locator("#dev")
        if await panel.get_attribute("open") is None:
            await self.page.click("#dev summary")
        if wait_s is not None:
            await self.page.fill("#timeout", str(wait_s))
        await self.page.set_checked("#slow", slow_s is not None)
        if slow_s is not None:
            await self.page.fill("#slow-seconds", str(slow_s))
        await self.page.set_checked("#server-wait", server_wait)

    async def log_lines(self) -> list[str]:
        return await self.page.locator("#log li").all_text_contents()

    async def notices_logged(self) -> list[str]:
        """The SSE notices this page received, oldest first."""
        return [
            line
            for line in reversed(await self.log_lines())
            if re.search(r"SSE (succeeded|failed)", line)
        ]


async def sign_up(page: Page, base: str, name: str, email: str, password: str) -> None:
    await page.goto(base + "/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await sign_up_from_the_header(page, name, email, password)


async def sign_up_from_the_header(page: Page, name: str, email: str, password: str) -> None:
    """Sign up from the header's link, without loading the page again (as a person does)."""
    await page.get_by_role("banner").get_by_role("link", name="Sign up").click()
    await page.fill("#display_name", name)
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("#signup")


async def answer_unavailable(route: Route) -> None:
    """The API's answer while NATS is away."""
    await route.fulfill(
        status=503,
        content_type="application/problem+json",
        body='{"type":"/problems/service-unavailable","title":"Service unavailable",'
        '"status":503,"detail":"NATS is unreachable."}',
    )
