"""The pages in a real browser (Debian's chromium driven by Playwright): sign in, filter, open an account,
log a play and see it in the book; the leadership page as a leader and refused as a CSM; no console
error anywhere; screenshots at 1280 and 390 px under the run's output folder (``<basetemp>/screenshots``)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from web_helpers import asgi_app, serve_env

CHROMIUM = "/usr/bin/chromium"
WIDTHS = (1280, 390)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(web_home: dict) -> Iterator[str]:
    """The real scoring service (pages mounted) on a free loopback port, in this process."""
    import uvicorn

    with pytest.MonkeyPatch.context() as patch:
        serve_env(patch, web_home)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        srv = uvicorn.Server(uvicorn.Config(asgi_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not srv.started:
            assert time.monotonic() < deadline, "the service did not start within 60 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), \
        f"{CHROMIUM} is missing: make test installs Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def _page(browser: object, errors: list[str]) -> object:
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return page


def _sign_in(page: object, base: str, token: str, start: str = "/ui/book") -> None:
    page.goto(base + start)
    assert "/ui/signin" in page.url  # nothing renders without a session
    page.get_by_label("Sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _screens(page: object, shots: Path, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=False)
        assert (shots / f"{name}-{width}.png").stat().st_size > 5_000
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def _fits(page: object, width: int = 390) -> None:
    """The page needs no horizontal scrolling at ``width`` px."""
    page.set_viewport_size({"width": width, "height": 844})
    scroll = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(f"[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > {width})"
                         ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
                         ".slice(0, 8)") if scroll > width else []
    assert scroll <= width, f"{page.url}: {scroll} px wide at {width} px: {wide}"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_a_csm_searches_opens_an_account_logs_and_updates_a_play_and_signs_out(
        server: str, browser: object, web_home: dict, shots: Path) -> None:
    import pandas as pd

    errors: list[str] = []
    page = _page(browser, errors)
    _sign_in(page, server, web_home["tokens"]["csm"])
    assert page.get_by_role("heading", level=1).inner_text() == f"Book of {web_home['csm_owner']}"
    _screens(page, shots, "book")
    _fits(page)
    names = pd.read_parquet(web_home["data"] / "accounts.parquet").set_index("account_id")["name"]
    account = sorted(web_home["csm_accounts"])[2]
    name = names[account]
    page.get_by_label("Search accounts").fill(name[2:9].lower())  # part of the name, any case
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert "/ui/search?q=" in page.url
    page.get_by_role("link", name=name, exact=True).first.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == name
    assert page.get_by_role("heading", name="Timeline").is_visible()
    assert page.locator("ol.timeline li").count() >= 1 and page.locator("ol.timeline li").first.is_visible()
    assert page.locator("figure.chart svg").count() == 2
    _screens(page, shots, "account")
    _fits(page)
    page.get_by_label("Outcome so far").select_option("planned")
    page.get_by_label("Note", exact=True).first.fill("Call the champion on Monday")
    page.get_by_role("button", name="Log play").click()
    page.wait_for_load_state()
    assert page.get_by_text("Play logged.").is_visible()
    update = page.locator("form.update").first
    update.get_by_label("New outcome").select_option("contacted")
    update.get_by_label("Note").fill("Spoke to the VP; demo next week")
    update.get_by_role("button", name="Update play").click()
    page.wait_for_load_state()
    assert page.get_by_text("Play updated.").is_visible()
    assert page.get_by_text("Spoke to the VP; demo next week").first.is_visible()
    assert page.get_by_text("1 earlier state").is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "expansion_session")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert "/ui/signin" in page.url
    thief = browser.new_context()
    thief.add_cookies([cookie])  # the cookie copied before signing out
    stolen = thief.new_page()
    stolen.goto(server + f"/ui/account/{account}")
    assert "/ui/signin" in stolen.url and stolen.get_by_role("heading", level=1).inner_text() == "Sign in"
    thief.close()
    assert errors == []


def test_a_leader_sees_leadership_portfolio_renewals_and_the_unowned_queue(
        server: str, browser: object, web_home: dict, shots: Path) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    _sign_in(page, server, web_home["tokens"]["leader"], start="/ui/leadership")
    assert page.url.endswith("/ui/leadership")
    assert page.locator("table.status .pill").count() >= 4
    assert page.locator("figure.chart svg").count() == 1
    _screens(page, shots, "leadership")
    _fits(page)
    page.keyboard.press("Tab")  # the skip link is the first stop: the page is usable from the keyboard
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for path, heading in (("/ui/portfolio", "Portfolio by CSM"), ("/ui/renewals?days=90", "Renewals in the next 90 days"),
                          ("/ui/unowned", "Accounts without an owner")):
        page.goto(server + path)
        assert page.get_by_role("heading", level=1).inner_text().startswith(heading)
        _fits(page)
    page.goto(server + "/ui/leadership")
    page.get_by_role("link", name="GRR, trailing 12 months").click()
    page.wait_for_load_state()
    assert "/ui/leadership/line/grr" in page.url and page.locator("table.list tbody tr").count() >= 1
    assert errors == []
