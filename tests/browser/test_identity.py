"""Identity and videos in Chromium: sign up, the welcome email, sign out and in, publish,
watch, and a view count that moves live when someone else watches."""

from __future__ import annotations

import asyncio
import re
import uuid

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.pages import sign_up
from tests.conftest import MailStack
from tests.helpers import eventually
from tests.processes import run_module

VIDEO_URL = re.compile(r"/videos/[0-9a-f]{24}$")


async def test_sign_up_get_the_email_sign_out_and_in_publish_and_watch(
    page: Page, browser: Browser, mail_stack: MailStack
) -> None:
    base = mail_stack.stack.url
    email = f"ada.{uuid.uuid4().hex[:8]}@example.org"
    await sign_up(page, base, "Ada Lovelace", email, "analytical engine")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada Lovelace")
    await expect(page.locator("#account-email")).to_have_text(f"Signed in as {email}.")

    async def welcome_listed() -> list[str] | None:
        listed = await asyncio.to_thread(
            run_module,
            mail_stack.stack.server.url,
            "reactor.mailsink",
            "list",
            "--dir",
            str(mail_stack.mail_dir),
        )
        return [line for line in listed.stdout.splitlines() if email in line] or None

    [line] = await eventually(welcome_listed, within=20)  # one line per message
    assert re.match(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  {re.escape(email)}  ", line), line
    assert line.endswith("Welcome to notify-service, Ada Lovelace")

    await page.click("#sign-out")
    await expect(page).to_have_url(base + "/account/signin")
    await expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()
    await page.fill("#email", email)
    await page.fill("#password", "not the password")
    await page.click("#signin")
    await expect(page.locator("#form-error")).to_have_text("Wrong email or password.")
    await page.fill("#password", "analytical engine")
    await page.click("#signin")
    await expect(page.locator("#signed-in-as")).to_have_text("Signed in as Ada Lovelace")
    await expect(page).to_have_url(base + "/videos")

    await page.fill("#title", "Cats on keyboards")
    await page.fill("#url", "https://example.org/cats.mp4")
    await page.fill("#description", "Two cats.\nOne keyboard.")
    await page.click("#publish")
    await expect(page).to_have_url(VIDEO_URL)
    await expect(page.locator("#video-title")).to_have_text("Cats on keyboards")
    await expect(page.locator("#title")).to_have_value("Cats on keyboards")  # the rename's start
    description = page.locator("#video .description")  # its line break kept on screen
    assert await description.evaluate("e => e.innerText") == "Two cats.\nOne keyboard."
    await expect(page.locator("#views")).to_have_text("0")
    await page.click("#watch")
    await expect(page.locator("#views")).to_have_text("1")

    # Someone else, not signed in, watches: the count moves here without a reload.
    other: BrowserContext = await browser.new_context()
    try:
        theirs = await other.new_page()
        await theirs.goto(page.url)
        await expect(theirs.locator("#rename-form")).to_be_hidden()  # not the owner
        await theirs.click("#watch")
        await expect(theirs.locator("#views")).to_have_text("2")
    finally:
        await other.close()
    await expect(page.locator("#views")).to_have_text("2")

    await page.fill("#title", "!!!")
    await page.click("#rename")
    await expect(page.locator("#title-error")).to_have_text(  # named by its label
        "New title must contain a letter or a digit."
    )
    await page.fill("#title", "Cats on pianos")
    await page.click("#rename")
    await expect(page.locator("#video-title")).to_have_text("Cats on pianos")
    await page.get_by_role("navigation").get_by_role("link", name="Account", exact=True).click()
    await page.get_by_role("link", name="Your videos").click()
    await expect(page.locator("#list-title")).to_contain_text("Your videos")  # not "Their"
