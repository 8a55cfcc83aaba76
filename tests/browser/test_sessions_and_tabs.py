"""The page's commands across the session's changes: a sign-up while a command is
pending, a sign-in in another tab, a sign-out that fails, a stream that starts after
a command's notice was stored (while the form was sent, or while it was answered)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import Page, Route, expect

from tests.browser.pages import (
    LOCATION_URL,
    LocationsPage,
    answer_unavailable,
    sign_up,
    sign_up_from_the_header,
)
from tests.helpers import eventually, unique_name
from tests.processes import Process, base_url


def email() -> str:
    return f"tab.{uuid.uuid4().hex[:8]}@example.org"


async def test_a_command_pending_across_a_sign_up_is_still_told_ready(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Its notice goes to the session it was sent in, which the page's stream has left:
    the page follows it by its status until it has an outcome."""
    locations = await LocationsPage(page, base_url(api_process)).open()
    await locations.developer_panel(wait_s=1, slow_s=6)
    name = unique_name("Across")
    await locations.create(name)
    notice = page.locator("#notice")
    await expect(notice).to_contain_text(f"“{name}” will be available shortly")
    await locations.developer_panel(wait_s=10)  # the sign-up itself is not slowed
    await sign_up_from_the_header(page, "Ada", email(), "correct horse")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada")
    await expect(notice).to_contain_text(f"“{name}” is ready", timeout=20_000)
    pending = await page.evaluate("sessionStorage.pending")
    assert pending == "{}"


async def test_a_sign_up_in_another_tab_moves_this_tab_to_the_new_session(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The tabs share the cookie: after the other tab signs up, this one's header names
    the user, and its commands' notices come on its stream (its new session's)."""
    url = base_url(api_process)
    here = await LocationsPage(page, url).open()
    there = await page.context.new_page()
    await sign_up(there, url, "Grace", email(), "correct horse")
    await expect(there.locator("#signed-in-as")).to_have_text("Signed in as Grace")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Grace")
    await here.live()
    await here.developer_panel(wait_s=30)  # the page's own status check is not what ends it
    name = unique_name("Tab")
    await here.create(name)
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)


async def test_a_sign_out_in_another_tab_takes_this_tabs_own_forms_away(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Only the header followed: the profile's forms (yours) stayed on screen after the
    other tab signed out, and sending one answered "Sign in first"."""
    url = base_url(api_process)
    await sign_up(page, url, "Hedy", email(), "frequency hop")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Hedy")
    await page.get_by_role("navigation").get_by_role("link", name="Profile").click()
    await expect(page.locator("#post-form")).to_be_visible()
    there = await page.context.new_page()
    await there.goto(url + "/")
    await there.click("#sign-out")
    await expect(there.locator("#notice")).to_contain_text("You are signed out.")
    await expect(page.locator("#post-form")).to_have_count(0)  # this tab's page follows
    await expect(page.locator("#profile-view")).to_contain_text("to see your profile")


async def test_a_sign_out_that_fails_says_so_and_stays_signed_in(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    base = base_url(api_process)
    await sign_up(page, base, "Ada", email(), "correct horse")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada")

    async def unavailable(route: Route) -> None:
        if route.request.method != "DELETE":
            await route.continue_()
            return
        await answer_unavailable(route)

    await page.route("**/api/sessions/current", unavailable)
    await page.click("#sign-out")
    notice = page.locator("#notice")
    await expect(notice).to_have_class(re.compile(r"\berr\b"))
    await expect(notice).to_contain_text("Could not sign out")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada")
    await expect(page.locator("#sign-out")).to_be_enabled()
    await page.unroute("**/api/sessions/current")
    await page.click("#sign-out")
    await expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()
    await expect(notice).to_contain_text("You are signed out.")


async def open_with_the_stream_held(page: Page, url: str) -> asyncio.Event:
    """The locations page, its session stream held until the event returned is set, and
    the page's own wait long (what ends a wait in these tests is not its running out)."""
    release = asyncio.Event()

    async def hold_the_stream(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/api/events*", hold_the_stream)
    await page.goto(url + "/locations")
    await expect(page.locator("#name")).to_be_visible()
    await LocationsPage(page, url).developer_panel(wait_s=30)
    return release


async def succeeded(url: str, command_id: Callable[[], Awaitable[str | None]]) -> None:
    """Once the command (its id, when known) has its notice stored."""
    async with httpx.AsyncClient(base_url=url) as client:

        async def done() -> bool | None:
            if (known := await command_id()) is None:
                return None
            status = (await client.get(f"/api/commands/{known}")).json()
            return True if status["status"] == "succeeded" else None

        await eventually(done)


async def test_a_command_done_before_the_stream_connects_still_shows_its_location(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The form is sent while the session stream is still opening, and its notice is
    stored before the stream connects: the stream starts after it and never sends it,
    so the page asks for the status of what it awaits once the stream is connected."""
    url = base_url(api_process)
    release = await open_with_the_stream_held(page, url)
    name = unique_name("Early")
    await LocationsPage(page, url).create(name)

    async def pending() -> str | None:
        ids = await page.evaluate("Object.keys(JSON.parse(sessionStorage.pending || '{}'))")
        return ids[0] if ids else None

    await succeeded(url, pending)  # its notice is stored; the stream has not connected
    release.set()
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)


async def test_a_sign_up_whose_sign_in_fails_says_the_account_is_ready_to_sign_in(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The account is made, then signing in answers 503: the page says so and leads to
    the sign-in form (signing up again would say the email is taken)."""
    base = base_url(api_process)
    address = email()

    await page.route("**/api/sessions", answer_unavailable)
    await sign_up(page, base, "Ada", address, "correct horse")
    await expect(page).to_have_url(base + "/account/signin")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("Your account is ready")
    await expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()
    await page.unroute("**/api/sessions")
    await page.fill("#email", address)
    await page.fill("#password", "correct horse")
    await page.click("#signin")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada")


async def test_a_form_answered_after_the_stream_connected_still_shows_its_location(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The POST is out while the stream opens; the command is done, the stream connects
    after its notice (so never sends it) and asks for the pending commands before the
    202 arrives, which names one: the page asks for its status at once."""
    url = base_url(api_process)
    answer = asyncio.Event()
    accepted: list[str] = []

    async def hold_the_answer(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()  # the API has it and answers 202
        accepted.append((await response.json())["command_id"])
        await answer.wait()
        await route.fulfill(response=response)

    await page.route("**/api/locations", hold_the_answer)
    release = await open_with_the_stream_held(page, url)
    name = unique_name("Crossed")
    await LocationsPage(page, url).create(name)

    async def the_accepted() -> str | None:
        return accepted[0] if accepted else None

    await succeeded(url, the_accepted)  # its notice is stored; the stream has not connected
    release.set()

    async def connected() -> bool | None:  # `connected` came, and the pending were asked
        return True if await page.evaluate("sessionStorage['events.cursor']") else None

    await eventually(connected)
    answer.set()
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)
