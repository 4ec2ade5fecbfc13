"""The /admin page in a real browser (Debian's chromium through Playwright; Playwright never
downloads one here): after some chat traffic its charts and top-rooms table show it, it asks
nothing of any other origin, and screenshots are saved under artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.serve.admin_client import analytics_when, total
from tests.serve.client import Client

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = [pytest.mark.one_backend, pytest.mark.browser, pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium "
    "chromium-driver (.ci/run does it) to run the browser tests")]


async def test_the_admin_page_charts_the_traffic_and_lists_the_top_rooms(hub):
    browsers = pytest.importorskip("playwright.async_api")
    admin = hub.token("boss", scopes="admin")
    ana = await Client.connect(hub.url, hub.token("ana"))
    for room, messages in (("lobby", 5), ("side", 2)):
        await ana.ask("room.create", {"room_id": room, "name": room.title()})
        for n in range(messages):
            await ana.ask("chat.send", {"room": room, "text": f"hi {n}",
                                        "client_msg_id": f"{room}{n}"})
    await analytics_when(hub, admin, lambda d: total(d, lambda m: m["messages"]["room"]) == 7)

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(hub.http))
    elsewhere: list[str] = []
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with browsers.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM),
                                               args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: None if r.url.startswith(origin)
                    else elsewhere.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                    else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            await page.goto(f"{hub.http}/admin?token={admin}")
            expect = browsers.expect
            first = page.locator("#t-rooms tbody tr").first
            await expect(first).to_contain_text("lobby", timeout=15_000)
            await expect(first.locator("td").nth(1)).to_have_text("5")
            await expect(page.locator("#t-rooms tbody tr").nth(1)).to_contain_text("side")
            messages = page.locator("#c-messages")
            await expect(messages.locator("polyline").first).to_be_attached()
            assert float(await messages.get_attribute("data-total")) == 7
            assert float(await page.locator("#c-connections").get_attribute("data-total")) >= 1
            latency = page.locator("#c-latency")
            assert float(await latency.get_attribute("data-total")) > 0
            await expect(latency.locator("circle, polyline").first).to_be_attached()
            assert "token=" not in page.url  # dropped from the address bar and history
            await expect(page.locator("#summary")).to_contain_text(hub.tenant)
            await page.screenshot(path=str(SCREENSHOTS / "admin-page.png"), full_page=True)

            # the token typed into the labelled field instead; a wrong one is refused plainly
            login = await browser.new_page(viewport={"width": 1280, "height": 900})
            await login.goto(f"{hub.http}/admin")
            await login.get_by_label("Admin token").fill(hub.token("ana"))
            await login.get_by_role("button", name="Show").click()
            await expect(login.locator("#status")).to_contain_text("403")
            await login.get_by_label("Admin token").fill(admin)
            await login.get_by_role("button", name="Show").click()
            await expect(login.locator("#t-rooms tbody tr").first).to_contain_text("lobby")
            await login.screenshot(path=str(SCREENSHOTS / "admin-login.png"), full_page=True)
        finally:
            await browser.close()
    await ana.close()
    assert elsewhere == []
    assert [p for p in problems if "403" not in p] == []
