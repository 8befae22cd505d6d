"""README screenshots of the pages (docs/img/) from a running demo service.

Usage, after `make demo` and `expansion serve` (with EXPANSION_DATA_DIR set, as the demo prints) and a CSM
added with `expansion users add NAME --role csm --csm-owner OWNER`:
    .venv/bin/python scripts/readme_screenshots.py http://127.0.0.1:PORT CSM_TOKEN LEADER_TOKEN docs/img
Drives Debian's chromium through Playwright; images are cut to 900 px wide, 256 colours.
"""
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright
from PIL import Image

base, csm, leader, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
out.mkdir(parents=True, exist_ok=True)
raw = Path(tempfile.mkdtemp())  # full-size shots; only the small ones go to out

def signin(page, token, start):
    page.goto(base + start)
    page.get_by_label("Sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    ctx = b.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    signin(page, csm, "/ui/book")
    page.screenshot(path=str(raw / "book_raw.png"))
    page.locator("table.book tbody tr th a").first.click(); page.wait_for_load_state()
    page.screenshot(path=str(raw / "account_raw.png"), full_page=True)
    ctx2 = b.new_context(viewport={"width": 1280, "height": 860})
    page2 = ctx2.new_page()
    signin(page2, leader, "/ui/leadership")
    page2.screenshot(path=str(raw / "leadership_raw.png"), full_page=True)
    ctx3 = b.new_context(viewport={"width": 390, "height": 844})
    page3 = ctx3.new_page(); signin(page3, csm, "/ui/book"); page3.screenshot(path=str(raw / "book390_raw.png"))
    b.close()
for name in ("book", "account", "leadership"):
    im = Image.open(raw / f"{name}_raw.png").convert("RGB")
    im = im.resize((900, int(im.height * 900 / im.width)), Image.LANCZOS)
    im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(out / f"{name}.png", optimize=True)
print("ok")
