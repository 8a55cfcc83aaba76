"""The profile page in Chromium: write, edit and delete posts and change the name; the
summary on the page is right after each notice, without a reload."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Page, expect

from tests.browser.pages import sign_up
from tests.processes import Process, base_url


async def test_the_summary_is_right_after_each_change_without_a_reload(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    base = base_url(api_process)
    await sign_up(page, base, "Grace", f"grace.{uuid.uuid4().hex[:8]}@example.org", "cobol rules")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Grace")
    await page.get_by_role("navigation").get_by_role("link", name="Profile").click()
    await expect(page.locator("#summary-name")).to_have_text("Grace")
    await expect(page.locator("#post-count")).to_have_text("0")
    loads = []
    page.on("load", lambda _: loads.append(1))

    await page.fill("#title", "Hello")
    await page.fill("#body", "one two three")
    await page.click("#save")
    await expect(page.locator("#post-count")).to_have_text("1")
    await expect(page.locator("#total-words")).to_have_text("3")
    await expect(page.locator("#latest-post")).to_contain_text("Hello")

    await page.fill("#title", "Second")
    await page.fill("#body", "four five")
    await page.click("#save")
    await expect(page.locator("#post-count")).to_have_text("2")
    await expect(page.locator("#total-words")).to_have_text("5")

    first = page.locator("li.post", has_text="Hello")
    await first.locator("button.edit").click()
    await page.fill("#body", "now it has five words")
    await page.click("#save")
    await expect(page.locator("#total-words")).to_have_text("7")

    delete = page.locator("li.post", has_text="Second").locator("button.delete")
    await delete.click()
    await expect(delete).to_have_text("Really delete?")  # asked first, nothing sent yet
    await expect(page.locator("li.post")).to_have_count(2)
    await delete.click()
    await expect(page.locator("#post-count")).to_have_text("1")
    await expect(page.locator("#total-words")).to_have_text("5")
    await expect(page.locator("#latest-post")).to_contain_text("Hello")
    await expect(page.locator("li.post")).to_have_count(1)

    await page.fill("#profile-display_name", "Grace H.")
    await page.click("#save-profile")
    await expect(page.locator("#summary-name")).to_have_text("Grace H.")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Grace H.")
    assert loads == []  # all of it without a reload


async def test_saving_the_name_keeps_the_bio_and_the_bio_is_shown(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The form was filled with the name alone: after a reload, saving a new name sent
    an empty bio and erased it; and the bio was shown nowhere."""
    base = base_url(api_process)
    await sign_up(page, base, "Ada", f"ada.{uuid.uuid4().hex[:8]}@example.org", "engine notes")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada")
    await page.get_by_role("navigation").get_by_role("link", name="Profile").click()
    await expect(page.locator("#summary-name")).to_have_text("Ada")
    await expect(page.locator("#bio")).to_be_hidden()  # none yet
    await page.fill("#profile-bio", "I write programs.")
    await page.click("#save-profile")
    await expect(page.locator("#bio")).to_have_text("I write programs.")

    await page.reload()
    await expect(page.locator("#profile-bio")).to_have_value("I write programs.")
    await page.fill("#profile-display_name", "Ada L.")
    await page.click("#save-profile")
    await expect(page.locator("#summary-name")).to_have_text("Ada L.")
    await expect(page.locator("#bio")).to_have_text("I write programs.")
    me = await (await page.context.request.get(f"{base}/api/sessions/current")).json()
    async with httpx.AsyncClient(base_url=base) as client:
        user = (await client.get(f"/api/users/{me['user_id']}")).json()
    assert (user["display_name"], user["bio"]) == ("Ada L.", "I write programs.")
