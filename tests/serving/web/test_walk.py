"""Every page renders for every account: of the generated company, and of one whose ids, names and owners
hold quotes, angle brackets, ampersands, backslashes, slashes, unicode, formulas and 200-character strings
(a quarter of its accounts without an owner). Nothing from the data reaches a page as markup, charts
included, and no CSV cell is a live formula."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from starlette.testclient import TestClient

from conftest import build_home
from odd_company import MARKERS, maps, rewrite_company, rewrite_features
from web_helpers import asgi_app, serve_env, sign_in

ALLOWED_TAGS = {"html", "head", "meta", "title", "link", "body", "a", "header", "strong", "nav", "form", "input",
                "button", "span", "main", "h1", "h2", "h3", "p", "div", "label", "select", "option", "table",
                "caption", "thead", "tbody", "tr", "th", "td", "section", "figure", "figcaption", "svg", "line",
                "text", "rect", "polyline", "circle", "ol", "ul", "li", "time", "details", "summary", "textarea",
                "code", "br"}


TAG = re.compile(r"<([a-zA-Z][\w-]*)((?:\s+[^\s=>]+(?:=(?:\"[^\"]*\"|'[^']*'|[^\s>]*))?)*)\s*/?>")
ATTR = re.compile(r"([^\s=]+)(?:=(\"[^\"]*\"|'[^']*'|[^\s>]*))?")


def assert_inert(html: str, where: str) -> None:
    """No tag, attribute or link on the page that the data could have put there: data reaches a page escaped,
    so every ``<`` in it opens a tag of the templates."""
    bad = []
    for match in TAG.finditer(html):
        tag = match.group(1).lower()
        if tag not in ALLOWED_TAGS:
            bad.append(match.group(0)[:80])
        for name, value in ATTR.findall(match.group(2)):
            value = value.strip("\"'")
            if name.lower().startswith("on") or name.lower() in ("http-equiv", "style", "srcdoc"):
                bad.append(match.group(0)[:80])
            if name.lower() in ("href", "action", "src") and re.match(r"\s*(javascript:|https?:|//)", value, re.I):
                bad.append(match.group(0)[:80])
    assert "<!--" not in html and bad == [], f"{where}: {bad[:5]}"
    assert len(re.findall(r"<(?![/!a-zA-Z])", html)) == 0, f"{where}: a bare '<' on the page"


@pytest.fixture(scope="module")
def odd_home(tmp_path_factory: pytest.TempPathFactory, generated_company: Path, feature_frame: pd.DataFrame) -> dict:
    ids, names = maps(feature_frame["account_id"].astype(str).tolist() +
                      pd.read_parquet(generated_company / "accounts.parquet")["account_id"].astype(str).tolist())
    data = tmp_path_factory.mktemp("oddcompany")
    owners = rewrite_company(generated_company, data, ids, names)
    web = build_home(tmp_path_factory.mktemp("oddhome"), data, rewrite_features(feature_frame, ids, owners))
    web["names"] = {ids[a]: names[a] for a in ids}
    return web


@pytest.fixture(params=["generated", "odd"])
def walked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict]]:
    web = request.getfixturevalue("web_home" if request.param == "generated" else "odd_home")
    serve_env(monkeypatch, web)
    with TestClient(asgi_app(), base_url="http://testserver") as client:
        sign_in(client, web["tokens"]["leader"])
        # reasons of every account in one batch (the service precomputes them in the background when it serves)
        assert client.get("/ui/book?format=csv").status_code == 200
        yield client, web


def _get(client: TestClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
    assert_inert(answer.text, path)
    shown = re.findall(r">([^<]*)<", answer.text)  # the text between tags: no missing marker or raw timestamp
    raw = [t for t in shown if re.search(r"\b(nan|NaN|NaT|None|<NA>)\b|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t)]
    assert raw == [], f"{path}: {raw[:3]}"
    return answer.text


def test_every_account_page_renders_and_stays_inert(walked: tuple[TestClient, dict]) -> None:
    client, web = walked
    for account in web["accounts"]:
        html = _get(client, f"/ui/account/{quote(account, safe='')}")
        assert 'id="timeline-h"' in html and "<svg" in html
        assert "Account not found" not in html


def test_every_list_page_renders_and_stays_inert(walked: tuple[TestClient, dict]) -> None:
    client, web = walked
    paths = ["/ui/book", "/ui/book?page=-1", "/ui/book?page=99999", "/ui/leadership", "/ui/portfolio", "/ui/unowned",
             *[f"/ui/renewals?days={d}" for d in (30, 60, 90)],
             *[f"/ui/book?order={o}" for o in ("value", "readiness", "churn", "arr", "whitespace", "renewal",
                                               "change", "name")], "/ui/book?order=arr&dir=asc",
             *[f"/ui/leadership/line/{k}" for k in ("nrr", "grr", "expansion_rate", "target_pace", "coverage")]]
    pages = int(re.search(r"page 1 of (\d+)", _get(client, "/ui/book")).group(1))
    paths += [f"/ui/book?page={n}" for n in range(2, pages + 1)]
    owners = sorted({o for o in pd.read_parquet(web["snapshot"])["csm_owner"].dropna().astype(str)})[:3]
    paths += [f"/ui/book?csm={quote(o, safe='')}" for o in owners]
    for path in paths:
        html = _get(client, path)
        if "page=-1" in path:
            assert "page 1 of" in html and '<td class="rank">1</td>' in html  # clamped: no negative ranks
    for q in ["a", "corp", "#1", "<img", "名前", "o'brien", "acme-corp.com", "\\", "x" * 150]:
        _get(client, f"/ui/search?q={quote(q, safe='')}")


def test_search_finds_an_account_by_part_of_its_name_and_by_id(walked: tuple[TestClient, dict]) -> None:
    client, web = walked
    snapshot = pd.read_parquet(web["snapshot"])
    account = str(snapshot["account_id"].iloc[7])
    accounts = pd.read_parquet(web["data"] / "accounts.parquet")
    name = accounts.set_index("account_id").loc[account, "name"]
    part = name[3:12]
    html = _get(client, f"/ui/search?q={quote(part, safe='')}")
    assert f'href="/ui/account/{quote(account, safe="")}"' in html
    html = _get(client, f"/ui/search?q={quote(account, safe='')}")
    first = re.search(r'<a class="name" href="/ui/account/([^"]+)"', html).group(1)
    assert first == quote(account, safe="")  # an exact id ranks first


def test_the_odd_ids_reach_the_pages_as_text(odd_home: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_env(monkeypatch, odd_home)
    with TestClient(asgi_app()) as client:
        sign_in(client, odd_home["tokens"]["leader"])
        account = next(a for a in odd_home["accounts"] if a.startswith('"><img'))
        html = _get(client, f"/ui/account/{quote(account, safe='')}")
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html or "&quot;&gt;&lt;img src=x" in html
        assert not any(m in html for m in MARKERS)
        # the chart titles hold the name: escaped inside the SVG too
        svg = html[html.index("<svg"):html.index("</svg>")]
        assert "<title>" in svg and not any(m in svg for m in MARKERS)
        exported = client.get("/ui/book?format=csv")
        assert exported.status_code == 200
        rows = list(csv.reader(io.StringIO(exported.text)))
        header, body = rows[0], rows[1:]
        assert len(body) == len(odd_home["accounts"])
        text_columns = [header.index(c) for c in ("account_id", "name", "csm_owner", "reason_1")]
        for row in body:
            for i in text_columns:
                assert not row[i].startswith(("=", "+", "-", "@")), row[i]
        assert any(row[header.index("account_id")].startswith("'=HYPERLINK") for row in body)
        for row in body:  # numbers stay numbers, readable
            for column in ("readiness_score", "arr", "whitespace_usd"):
                value = row[header.index(column)]
                assert "." not in value or len(value.split(".")[1]) <= 4, value


def test_templates_mark_only_the_charts_safe() -> None:
    folder = Path(__file__).parents[3] / "serving" / "web" / "templates"
    uses = re.findall(r"\{\{\s*([\w.]+)\s*\|\s*safe", "".join(p.read_text() for p in folder.glob("*.html")))
    assert set(uses) == {"history_chart", "usage_chart", "trend_chart"}
