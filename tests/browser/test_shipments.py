"""Shipments and accounts in Chromium: open, create, ship, deliver, and see the charge."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.browser.pages import LocationsPage, answer_unavailable
from tests.helpers import unique_name
from tests.processes import Process, base_url

SHIPMENT_URL = re.compile(r"/shipments/[0-9a-f]{24}$")
ACCOUNT_URL = re.compile(r"/accounts/[0-9a-f]{24}$")
WAIT = {"Prefer": "wait=10"}


async def test_open_create_ship_deliver_then_the_charge_and_the_ledger(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    holder = unique_name("Ada")
    await page.goto(url + "/accounts")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.fill("#holder", holder)
    await page.click("#open")
    await expect(page).to_have_url(ACCOUNT_URL)
    await expect(page.locator("#account h1")).to_have_text(holder)
    await expect(page.locator("#balance")).to_contain_text("0.00")

    await page.get_by_role("navigation").get_by_role("link", name="Shipments").click()
    await expect(page).to_have_url(url + "/shipments")
    await page.select_option("#account_id", label=holder)
    await page.fill("#origin", "gb")
    await page.fill("#destination", "fr")
    await page.fill("#weight_grams", "1200")
    await page.click("#submit")
    await expect(page).to_have_url(SHIPMENT_URL)
    await expect(page.locator("#status")).to_have_text("created")
    await expect(page.locator("#shipment")).to_contain_text("17.00")  # 350 + 3 x 450
    await expect(page.locator("#billed-to a")).to_have_attribute("href", ACCOUNT_URL)

    await page.click("#do-ship")
    await expect(page.locator("#status")).to_have_text("shipped")
    await page.click("#do-deliver")
    await expect(page.locator("#status")).to_have_text("delivered")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text(f"{holder}'s account was charged 17.00")
    await expect(page.locator("#history li")).to_have_count(3)
    await expect(page.locator("#actions button")).to_have_count(0)

    await notice.get_by_role("link", name="see the account").click()
    await expect(page).to_have_url(ACCOUNT_URL)
    await expect(page.locator("#balance")).to_contain_text("17.00")
    rows = page.locator("#ledger tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("charge")
    await expect(rows.first).to_contain_text("17.00")


async def test_an_action_said_shortly_keeps_the_others_until_its_notice(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Ship is slow: "shortly". Cancel stays disabled (clicked, it would be decided after
    the ship and refused) until the ship's notice, which shows the shipped state."""
    url = base_url(api_process)
    holder = unique_name("Cy")
    await page.goto(url + "/accounts")
    await page.fill("#holder", holder)
    await page.click("#open")
    await expect(page).to_have_url(ACCOUNT_URL)
    await page.get_by_role("navigation").get_by_role("link", name="Shipments").click()
    await page.select_option("#account_id", label=holder)
    await page.fill("#origin", "gb")
    await page.fill("#destination", "de")
    await page.fill("#weight_grams", "500")
    await page.click("#submit")
    await expect(page.locator("#status")).to_have_text("created")
    await LocationsPage(page, url).developer_panel(wait_s=1, slow_s=3)  # the shell's panel
    await page.click("#do-ship")
    await expect(page.locator("#notice")).to_contain_text("Ship: it will be done shortly.")
    await expect(page.locator("#do-cancel")).to_be_disabled()
    await expect(page.locator("#status")).to_have_text("shipped", timeout=15_000)
    await expect(page.locator("#do-deliver")).to_be_enabled()


async def test_a_shipment_form_whose_accounts_cannot_be_read_says_so(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Its account choice would be empty, as with no account at all: it says which."""
    await page.route("**/api/accounts?*", answer_unavailable)
    await page.goto(base_url(api_process) + "/shipments")
    error = page.locator("#account_id-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("The accounts could not be read: NATS is unreachable.")


async def test_an_empty_shipment_form_says_what_is_wrong_in_its_own_words(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Errors said the API's field names and schema ("Account id Expected `str` matching
    regex ..."); now the field's label and plain words, and focus on the first field at
    fault in the form's order."""
    await page.goto(base_url(api_process) + "/shipments")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.click("#submit")
    await expect(page.locator("#account_id-error")).to_have_text(
        "Account must be one of the accounts."
    )
    await expect(page.locator("#origin-error")).to_have_text(
        "From must be a two-letter country code such as GB."
    )
    await expect(page.locator("#weight_grams-error")).to_have_text("Weight must be at least 1.")
    await expect(page.locator("#account_id")).to_be_focused()


async def test_a_payment_amount_is_checked_then_recorded(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    await page.goto(url + "/accounts")
    await page.fill("#holder", unique_name("Bo"))
    await page.click("#open")
    await expect(page).to_have_url(ACCOUNT_URL)
    await page.fill("#amount", "abc")
    await page.click("#pay")
    await expect(page.locator("#amount-error")).to_contain_text("must be an amount")
    await page.fill("#amount", "5.25")
    await page.fill("#reference", "bank-1")
    await page.click("#pay")
    await expect(page.locator("#balance")).to_contain_text("-5.25")
    await expect(page.locator("#ledger tbody tr")).to_have_count(1)


async def test_an_account_shows_its_latest_entries_and_every_entry_on_asking(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """Then a payment keeps every entry open, itself on top (it put the table back to the
    latest 20 entries, as a notice did every list)."""
    url = base_url(api_process)
    paid = 105  # more than the record keeps (20), and than a page of the ledger (100)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        opened = await client.post("/api/accounts", json={"holder": "Hopper"}, headers=WAIT)
        account_id = opened.json()["id"]
        payments = f"/api/accounts/{account_id}/payments"
        for n in range(paid):
            body = {"amount": 100, "reference": f"bank-{n:03d}"}
            answer = await client.post(payments, json=body, headers=WAIT)
            assert answer.status_code == 200, answer.text
    await page.goto(f"{url}/accounts/{account_id}")
    table = page.locator("#ledger")
    await expect(table.locator("caption")).to_have_text(f"Ledger: the latest 20 of {paid} entries")
    rows = table.locator("tbody tr")
    await expect(rows).to_have_count(20)
    await expect(rows.first).to_contain_text(f"bank-{paid - 1:03d}")  # newest first
    await page.click("#ledger-more")
    await expect(rows).to_have_count(100)
    await expect(table.locator("caption")).to_have_text(
        f"Ledger: 100 of {paid} entries, newest first"
    )
    await page.click("#ledger-more")
    await expect(rows).to_have_count(paid)
    await expect(rows.last).to_contain_text("bank-000")
    await expect(page.locator("#ledger-more")).to_be_hidden()
    await page.fill("#amount", "2.00")
    await page.fill("#reference", "bank-new")
    await page.click("#pay")
    await expect(rows).to_have_count(paid + 1)
    await expect(rows.first).to_contain_text("bank-new")
    await expect(rows.last).to_contain_text("bank-000")
    await expect(table.locator("caption")).to_have_text(
        f"Ledger: {paid + 1} of {paid + 1} entries, newest first"
    )


async def test_the_accounts_list_pages_and_a_notice_keeps_it_open_that_far(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The list stopped at 100 accounts with no way on; and on every page, a notice of
    the session (another tab's change) put a list opened past its first page back to it."""
    url = base_url(api_process)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in range(55):
            opened = await client.post("/api/accounts", json={"holder": f"Many {n}"}, headers=WAIT)
            assert opened.status_code == 201, opened.text
    await page.goto(url + "/accounts")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    rows = page.locator("#accounts li")
    await expect(rows).to_have_count(50)
    await page.get_by_role("button", name="Show more").click()
    await expect(rows.nth(54)).to_be_attached()
    shown = await rows.count()
    holder = unique_name("Newest")
    # Opened in another tab of this session: its notice reaches this one.
    newest = await page.context.request.post(
        url + "/api/accounts", data={"holder": holder}, headers=WAIT
    )
    assert newest.status == 201
    await expect(rows.first).to_contain_text(holder)
    await expect(rows).to_have_count(shown + 1)  # still open that far, the new one on top


async def test_the_keyboard_focus_goes_on_after_each_action(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """The busy state disabled the focused button and nothing gave the focus back: after
    opening an account, creating a shipment or shipping it, it fell to the page's body."""
    url = base_url(api_process)
    holder = unique_name("Kay")
    await page.goto(url + "/accounts")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.fill("#holder", holder)
    await page.press("#holder", "Enter")
    await expect(page).to_have_url(ACCOUNT_URL)
    await expect(page.locator("#account h1")).to_be_focused()  # the new page's heading

    await page.goto(url + "/shipments")
    await page.select_option("#account_id", label=holder)
    await page.fill("#origin", "gb")
    await page.fill("#destination", "fr")
    await page.fill("#weight_grams", "800")
    await page.press("#weight_grams", "Enter")
    await expect(page).to_have_url(SHIPMENT_URL)
    await expect(page.locator("#shipment h1")).to_be_focused()
    await page.focus("#do-ship")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("shipped")
    await expect(page.locator("#do-deliver")).to_be_focused()  # the next action

    await page.goto(url + "/accounts")
    await page.press("#open", "Enter")  # an empty holder: the field at fault
    await expect(page.locator("#holder")).to_be_focused()


async def test_the_pages_fit_a_phones_width(
    page: Page, api_process: Process, reactor_process: Process
) -> None:
    """At 375 px an account's ledger (an unbroken reference) made its page 554 px wide and
    the chat table 505 px: the page scrolled sideways."""
    url = base_url(api_process)
    reference = "bank-transfer-" + "0123456789" * 8
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        account = await client.post("/api/accounts", json={"holder": "Narrow"}, headers=WAIT)
        paid = await client.post(
            f"/api/accounts/{account.json()['id']}/payments",
            json={"amount": 1250, "reference": reference},
            headers=WAIT,
        )
        assert paid.status_code == 200, paid.text
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.goto(f"{url}/accounts/{account.json()['id']}")
    await expect(page.locator("#ledger tbody tr").first).to_contain_text("bank-transfer")
    for path in ("", "/shipments", "/chat", "/locations"):
        if path:
            await page.goto(url + path)
            await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        wide = await page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 375, (path or "the account", wide)
