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


def test_a_csm_signs_in_filters_opens_an_account_and_logs_a_play(server: str, browser: object, web_home: dict,
                                                                 shots: Path) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    _sign_in(page, server, web_home["tokens"]["csm"])
    assert page.get_by_role("heading", level=1).inner_text() == f"Book of {web_home['csm_owner']}"
    _screens(page, shots, "book")
    page.get_by_label("Health").select_option("green")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    assert "health=green" in page.url
    healths = page.locator("table.book tbody tr td:nth-child(4)").all_inner_texts()
    assert healths and all(h.startswith("green") for h in healths)
    first = page.locator("table.book tbody tr th a").first
    account = first.inner_text()
    first.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == account
    assert page.locator("figure.chart svg").count() == 2
    _screens(page, shots, "account")
    page.get_by_label("Outcome so far").select_option("contacted")
    page.get_by_label("Note").fill("Called the champion; demo next week")
    page.get_by_role("button", name="Log play").click()
    page.wait_for_load_state()
    assert page.get_by_text("Play logged.").is_visible()
    assert page.get_by_text("Called the champion; demo next week").is_visible()
    page.get_by_role("link", name="My book").first.click()
    page.wait_for_load_state()
    done = page.locator("#act ~ table tbody tr td:nth-child(3)").first.inner_text()
    assert int(done) >= 1
    assert errors == []
    page.goto(server + "/ui/leadership")
    assert page.get_by_role("heading", level=1).inner_text() == "Leaders only"
    # the refusal is a 403 page; the browser logs its status and nothing else
    assert all("status of 403" in e for e in errors), errors


def test_a_leader_sees_the_leadership_page(server: str, browser: object, web_home: dict, shots: Path) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    _sign_in(page, server, web_home["tokens"]["leader"], start="/ui/leadership")
    assert page.url.endswith("/ui/leadership")
    assert page.locator("table.status .pill").count() >= 4
    assert page.locator("figure.chart svg").count() == 1
    _screens(page, shots, "leadership")
    page.keyboard.press("Tab")  # the skip link is the first stop: the page is usable from the keyboard
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert errors == []
