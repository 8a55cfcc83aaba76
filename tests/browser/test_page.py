"""The page in Chromium: what a person sees and does."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from tests.browser.pages import LOCATION_URL, LocationsPage
from tests.helpers import unique_name
from tests.processes import Process, base_url, restart_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def locations(page: Page, api_process: Process, reactor_process: Process) -> LocationsPage:
    return await LocationsPage(page, base_url(api_process)).open()


async def test_create_shows_the_new_location_at_its_own_url(locations: LocationsPage) -> None:
    name = unique_name("Leeds")
    await locations.create(name, "Town", "By the Aire")
    page = locations.page
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)
    await expect(page.locator("#location")).to_contain_text("By the Aire")
    await expect(page.locator("#location h1")).to_be_focused()
    await page.get_by_role("link", name="All locations").click()
    await expect(page.locator("#locations li").first).to_contain_text(name)


async def test_a_validation_error_is_shown_at_its_field(locations: LocationsPage) -> None:
    await locations.create("   ")
    page = locations.page
    await expect(page.locator("#name-error")).to_have_text("Name must not be empty.")
    await expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#name")).to_be_focused()
    await expect(page).to_have_url(locations.base_url + "/locations")


async def test_a_taken_name_is_explained_next_to_the_name(locations: LocationsPage) -> None:
    name = unique_name("Whitby")
    await locations.create(name)
    await expect(locations.page).to_have_url(LOCATION_URL)
    await locations.open()
    await locations.create(name.upper())
    error = locations.page.locator("#name-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("already exists")
    # A screen reader reads the reason with the field, as for a validation error.
    field = locations.page.locator("#name")
    await expect(field).to_have_attribute("aria-describedby", "name-error")


def spoil_the_first_answer(
    spoil: Callable[[Route], Awaitable[None]],
) -> tuple[list[int], Callable[[Route], Awaitable[None]]]:
    """A route handler: the first POST reaches the API, which accepts it (and publishes
    the command), and `spoil` answers the page instead; and the API's statuses."""
    accepted: list[int] = []

    async def handler(route: Route) -> None:
        if route.request.method != "POST" or accepted:
            await route.continue_()
            return
        accepted.append((await route.fetch()).status)
        await spoil(route)

    return accepted, handler


@pytest.mark.parametrize("again", ["at-once", "a-minute-later", "after-a-reload"])
async def test_submitting_again_after_a_lost_answer_is_the_same_command(
    page: Page, api_process: Process, reactor_process: Process, again: str
) -> None:
    """The API accepts the POST but its answer never reaches the page: the person
    submits the form again (at once; a minute later, when the page no longer holds
    the first command's notice; or after reloading the page and typing it again),
    and gets their location, not "already exists"."""
    lost, lose_the_first_answer = spoil_the_first_answer(
        lambda route: route.abort("connectionreset")  # the page never hears back
    )
    await page.clock.install()
    locations = await LocationsPage(page, base_url(api_process)).open()
    await page.route("**/api/locations", lose_the_first_answer)
    name = unique_name("Again")
    await locations.create(name)
    await expect(page.locator("#page")).to_contain_text("Could not reach the server")
    assert lost == [202]
    if again == "a-minute-later":
        # Its notice came on the session stream meanwhile, then is dropped after 60 s.
        await expect(page.locator("#log")).to_contain_text("SSE succeeded")
        await page.clock.fast_forward(61_000)
    if again == "after-a-reload":
        await page.reload()
        await locations.live()
        await locations.create(name)  # the same form, typed again
    else:
        await page.click("#submit")  # the form still holds what was typed
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)


async def test_a_proxys_error_page_is_named_and_the_retry_is_the_same_command(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """An answer that is not the service's (a proxy's 502 page) was "Could not reach the
    server"; it is now named, and its key kept: the retry is the same command."""
    replaced, a_proxy_fails = spoil_the_first_answer(
        lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>Bad</h1>")
    )
    locations = await LocationsPage(page, base_url(api_process)).open()
    await page.route("**/api/locations", a_proxy_fails)
    name = unique_name("Proxied")
    await locations.create(name)
    await expect(page.locator("#form-error")).to_contain_text(
        "The server answered 502 Bad Gateway without saying why"
    )
    assert replaced == [202]
    await page.click("#submit")
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)


async def test_a_lost_answers_key_is_kept_for_a_reload_but_never_with_a_secret(
    locations: LocationsPage,
) -> None:
    """A form whose answer was lost keeps its Idempotency-Key in sessionStorage, keyed
    by what was sent; one whose body holds a password keeps it in memory only."""
    page = locations.page
    await page.route("**/api/*", lambda route: route.abort("connectionreset"))
    kept = await page.evaluate(
        """async () => {
          const { submit } = await import("/static/commands.js");
          await submit("/api/locations", { name: "Kept", category: "Town" });
          await submit("/api/users", { email: "a@b.c", password: "hunter two" });
          return sessionStorage.getItem("unanswered");
        }"""
    )
    assert "Kept" in kept
    assert "a@b.c" not in kept
    assert "hunter two" not in kept


async def test_a_slow_reactor_gives_shortly_then_ready_even_after_a_reload(
    locations: LocationsPage,
) -> None:
    await locations.developer_panel(wait_s=1, slow_s=3)
    name = unique_name("Slow")
    await locations.create(name)
    page = locations.page
    notice = page.locator("#notice")
    await expect(notice).to_have_class(re.compile(r"\bwarn\b"))
    await expect(notice).to_contain_text(f"“{name}” will be available shortly")
    # Said to a screen reader by a live region that was there before the words came.
    await expect(page.get_by_role("status").filter(has_text="available shortly")).to_have_id(
        "announce"
    )
    await page.reload()  # the person wanders off; the session stream resumes from its cursor
    await expect(notice).to_have_class(re.compile(r"\bok\b"), timeout=15_000)
    await expect(notice).to_contain_text(f"“{name}” is ready")
    await notice.locator("a").click()
    await expect(page).to_have_url(LOCATION_URL)
    await expect(page.locator("#location h1")).to_have_text(name)


async def test_the_message_bar_shows_only_with_a_message_and_closes(
    locations: LocationsPage,
) -> None:
    """The bar's `hidden` was overridden by its CSS (`display: flex`): an empty bar sat at
    the bottom of every page, over what was under it, and its close button closed nothing."""
    page = locations.page
    notice = page.locator("#notice")
    await expect(notice).to_be_hidden()  # nothing to say yet
    await locations.developer_panel(wait_s=1, slow_s=2)
    name = unique_name("Closed")
    await locations.create(name)
    await expect(notice).to_contain_text(f"“{name}” will be available shortly")
    await expect(notice).to_be_visible()
    await notice.get_by_role("button", name="Close the message").click()
    await expect(notice).to_be_hidden()
    await expect(notice).to_contain_text(f"“{name}” is ready", timeout=15_000)  # a new one
    await expect(notice).to_be_visible()


async def test_the_developer_panel_keeps_its_settings_across_a_reload(
    locations: LocationsPage,
) -> None:
    await locations.developer_panel(wait_s=2, slow_s=4, server_wait=True)
    page = locations.page
    await page.reload()
    await locations.live()
    assert await page.input_value("#timeout") == "2"
    assert await page.input_value("#slow-seconds") == "4"
    assert await page.is_checked("#slow")
    assert await page.is_checked("#server-wait")


async def test_waiting_on_the_server_shows_the_location_too(locations: LocationsPage) -> None:
    await locations.developer_panel(server_wait=True)
    name = unique_name("Ripon")
    await locations.create(name)
    await expect(locations.page).to_have_url(LOCATION_URL)
    await expect(locations.page.locator("#location h1")).to_have_text(name)
    assert any(line.split(" ")[1:3] == ["POST", "201"] for line in await locations.log_lines())


async def test_the_page_reconnects_after_the_api_restarts(
    locations: LocationsPage, api_process: Process
) -> None:
    page = locations.page
    conn = page.locator("#conn")
    await asyncio.to_thread(restart_api, api_process)  # returns once the new process is ready
    await locations.live()
    assert "SSE error" in "\n".join(await locations.log_lines())  # it did lose the stream
    name = unique_name("After")
    await locations.create(name)
    await expect(page).to_have_url(LOCATION_URL)
    await expect(conn).to_have_text("live")


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("**/domains/locations/**/*.js", "Could not load this page."),  # the page's module
        ("**/app/manifest.json", "Could not load the application."),  # the shell's start
    ],
    ids=["page", "application"],
)
async def test_a_page_that_fails_to_load_says_so_and_loads_on_retry(
    page: Page, api_process: Process, reactor_process: Process, what: str, said: str
) -> None:
    failed: list[str] = []

    async def fail_once(route: Route) -> None:
        if not failed:
            failed.append(route.request.url)
            await route.abort("connectionreset")  # as if the API restarted meanwhile
        else:
            await route.continue_()

    await page.route(what, fail_once)
    await page.goto(base_url(api_process) + "/locations")
    state = page.locator("#page .state")
    await expect(state).to_have_attribute("data-state", "error")
    await expect(state).to_contain_text(said)
    assert failed
    await state.get_by_role("button", name="Retry").click()
    await expect(page.locator("#name")).to_be_visible()


async def test_a_page_left_before_it_rendered_stops_what_it_starts(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The chat dashboard polls its channels every second once its first read is back;
    left while that read is out, it stops the poll it then starts (it went on for as
    long as the tab stayed open, under the next page)."""
    url = base_url(api_process)
    first, release = asyncio.Event(), asyncio.Event()
    reads: list[str] = []

    async def hold_the_first(route: Route) -> None:
        reads.append(route.request.url)
        if not first.is_set():
            first.set()
            await release.wait()
        await route.continue_()

    await page.route("**/api/chat/channels?*", hold_the_first)
    await page.goto(url + "/chat")
    await asyncio.wait_for(first.wait(), 10)
    await page.get_by_role("navigation").get_by_role("link", name="Locations").click()
    await expect(page.locator("#name")).to_be_visible()
    release.set()
    await page.wait_for_timeout(2500)  # the dashboard's poll would have read twice by now
    assert len(reads) == 1


async def test_another_tab_of_the_session_sees_the_list_update(
    context: BrowserContext, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    first = await LocationsPage(await context.new_page(), url).open()
    second = await LocationsPage(await context.new_page(), url).open()
    name = unique_name("Tab")
    await first.create(name)
    await expect(second.page.locator("#locations")).to_contain_text(name)


async def test_two_sessions_never_see_each_others_notices(
    browser: Browser, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    ctx_a, ctx_b = await browser.new_context(), await browser.new_context()
    try:
        alice = await LocationsPage(await ctx_a.new_page(), url).open()
        bob = await LocationsPage(await ctx_b.new_page(), url).open()
        await alice.create(unique_name("Alice"))
        await expect(alice.page).to_have_url(LOCATION_URL)
        # Bob's own notice comes after Alice's: had hers leaked, it would be logged first.
        await bob.create(unique_name("Bob"))
        await expect(bob.page).to_have_url(LOCATION_URL)
        alice_notices, bob_notices = await alice.notices_logged(), await bob.notices_logged()
        assert len(alice_notices) == 1
        assert "Alice" in alice_notices[0]
        assert len(bob_notices) == 1
        assert "Bob" in bob_notices[0]
    finally:
        await ctx_a.close()
        await ctx_b.close()


async def test_dark_theme_follows_the_system(browser: Browser, api_process: Process) -> None:
    ctx = await browser.new_context(color_scheme="dark")
    try:
        page = await ctx.new_page()
        await page.goto(base_url(api_process))
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 20, 22)"
    finally:
        await ctx.close()


async def test_the_main_flow_screenshot(locations: LocationsPage, tmp_path: Path) -> None:
    """Takes the README's screenshot; `task docs:screenshot` writes it to docs/."""
    async with httpx.AsyncClient(base_url=locations.base_url) as client:
        for name, category in (
            ("York", "City"),
            ("Yorkshire", "County/Region"),
            ("Whitby", "Town"),
        ):
            body = {"name": unique_name(name), "category": category}
            response = await client.post("/api/locations", json=body, headers={"Prefer": "wait=10"})
            assert response.status_code == 201
    await locations.developer_panel(wait_s=5)
    await locations.create(unique_name("Harrogate"), "Town", "Spa town in North Yorkshire")
    await expect(locations.page).to_have_url(LOCATION_URL)
    await locations.page.get_by_role("link", name="All locations").click()
    await expect(locations.page.locator("#locations li").first).to_contain_text("Harrogate")
    await locations.page.set_viewport_size({"width": 1280, "height": 860})
    target = ROOT / "docs" if os.environ.get("UPDATE_DOCS_SCREENSHOT") else tmp_path
    path = target / "screenshot.png"
    await locations.page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


async def test_the_home_page_leads_to_each_domains_page(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    await page.goto(base_url(api_process) + "/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.locator("#page").get_by_role("link", name="Locations").click()
    await expect(page).to_have_url(base_url(api_process) + "/locations")
    await expect(page.locator("#create-form")).to_be_visible()
    current = page.locator("#nav a[aria-current='page']")
    await expect(current).to_have_text("Locations")


async def test_the_api_docs_render_the_openapi_document(page: Page, api_process: Process) -> None:
    await page.goto(base_url(api_process) + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("notify-service")
    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    paths = await page.locator(".opblock-summary-path").all_text_contents()
    assert any(p.replace("\u200b", "") == "/api/locations" for p in paths), paths


async def test_every_page_works_under_the_security_headers(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    response = await page.goto(url + "/")
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    pages = (
        "/locations",
        "/shipments",
        "/accounts",
        "/account/signup",
        "/videos",
        "/profile",
        "/chat",
    )
    for path in pages:
        await page.goto(url + path)
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.goto(url + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("notify-service")
    # An inline script is refused: the policy is enforced, not only sent.
    await page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = 1'; document.body.append(s); }"
    )
    assert await page.evaluate("() => window.injected") is None
    assert len(violations) == 1, violations  # the one we provoked, and no page tripped it
    assert "inline script" in violations[0]
