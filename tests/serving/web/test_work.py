"""What a CSM and a leader do all day, through the real service: sessions that end, bounded forms, sorting,
renewals, what changed, the timeline, updating a play, the unowned queue, the portfolio and the lines."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa
from starlette.testclient import TestClient

from web_helpers import asgi_app, csrf_of, serve_env, sign_in


def _csv(client: TestClient, query: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(client.get(f"/ui/book?format=csv&{query}").text)))


def test_sign_out_ends_the_session_at_once_and_the_old_cookie_is_refused(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    page = client.get("/ui/book")
    cookie = client.cookies.get("expansion_session")
    assert client.post("/ui/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    client.cookies.set("expansion_session", cookie, path="/ui")  # a copy of the cookie kept from before
    assert client.get("/ui/book", follow_redirects=False).status_code == 303
    account = sorted(web_home["csm_accounts"])[0]
    answer = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                         data={"csrf": csrf_of(page.text), "play": "cross_sell", "outcome": "won", "note": "after"})
    assert answer.status_code == 303 and "/signin" in answer.headers["location"]
    engine = sa.create_engine(web_home["store"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM play_log WHERE note = 'after'")).scalar() == 0
    engine.dispose()


def test_disabling_a_person_ends_their_session(client: TestClient, web_home: dict) -> None:
    from serving.cli.users import add_user, change_user

    sign_in(client, add_user("Dana", "csm", web_home["csm_owner"], web_home["store"]))
    assert client.get("/ui/book", follow_redirects=False).status_code == 200
    change_user("Dana", "disable", web_home["store"])
    assert client.get("/ui/book", follow_redirects=False).status_code == 303


def test_bodies_over_64_kb_are_refused_before_they_are_read(client: TestClient, web_home: dict) -> None:
    page = client.get("/ui/signin")
    big = {"csrf": csrf_of(page.text), "token": "x" * 70_000}
    assert client.post("/ui/signin", data=big, follow_redirects=False).status_code == 413
    chunks = (b"token=" + b"x" * 10_000 for _ in range(10))  # no content-length: counted while streaming
    assert client.post("/ui/signin", content=chunks, headers={"content-type": "application/x-www-form-urlencoded"},
                       follow_redirects=False).status_code == 413
    sign_in(client, web_home["tokens"]["csm"])
    account = sorted(web_home["csm_accounts"])[0]
    form = client.get(f"/ui/account/{account}")
    answer = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                         data={"csrf": csrf_of(form.text), "play": "cross_sell", "outcome": "won", "note": "n" * 70_000})
    assert answer.status_code == 413 and "Form too large" in answer.text
    long_note = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                            data={"csrf": csrf_of(form.text), "play": "cross_sell", "outcome": "won", "note": "n" * 2_001})
    assert long_note.status_code == 400 and "note: at most 2000 characters" in long_note.text


def test_the_book_sorts_by_any_column_both_ways(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    for order, column in (("arr", "arr"), ("readiness", "readiness_score"), ("whitespace", "whitespace_usd")):
        down = [float(r[column] or "nan") for r in _csv(client, f"order={order}&dir=desc")]
        up = [float(r[column] or "nan") for r in _csv(client, f"order={order}&dir=asc")]
        known = [v for v in down if v == v]
        assert known == sorted(known, reverse=True) and [v for v in up if v == v] == sorted(known)
    renewals = [r["renewal_date"] for r in _csv(client, "order=renewal") if r["renewal_date"]]
    assert renewals == sorted(renewals)
    page = client.get("/ui/book?order=arr").text
    assert 'aria-sort="descending"><a class="sort"' in page and ">ARR ▼</a>" in page


def test_renewals_of_a_csm_and_across_books(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    page = client.get("/ui/renewals?days=90").text
    assert "Renewals in the next 90 days · " + web_home["csm_owner"] in page
    shown = re.findall(r'<a class="name" href="/ui/account/([^"]+)"', page)
    assert set(shown) <= web_home["csm_accounts"]
    days = [int(d) for d in re.findall(r"in (\d+) days</span>", page)]
    assert days == sorted(days) and all(0 <= d <= 91 for d in days)
    sign_in(client, web_home["tokens"]["leader"])
    every = client.get("/ui/renewals?days=30").text
    assert "all books" in every and "30 days (" in every


def test_what_changed_and_the_timeline(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["leader"])
    book = client.get("/ui/book").text
    assert "What changed since the previous scoring run" in book
    assert "Readiness rose most" in book and re.search(r"readiness \+\d+ to \d+", book)
    account = sorted(web_home["csm_accounts"])[0]
    page = client.get(f"/ui/account/{account}").text
    timeline = page.split('id="timeline-h"', 1)[1].split("</section>", 1)[0]
    dates = re.findall(r'<time datetime="([\d-]+)">', timeline)
    assert len(dates) >= 3 and dates == sorted(dates, reverse=True)  # newest first
    kinds = set(re.findall(r'class="kind kind-(\w+)"', timeline))
    assert kinds & {"ticket", "survey", "touch", "payment", "deal", "stage"}
    assert max(dates) <= "2026-06-30"  # nothing after the snapshot date


def test_a_play_is_updated_by_its_author_not_by_another_csm(client: TestClient, web_home: dict) -> None:
    from serving.cli.users import add_user

    sign_in(client, web_home["tokens"]["csm"])
    account = sorted(web_home["csm_accounts"])[1]
    page = client.get(f"/ui/account/{account}")
    client.post(f"/ui/account/{account}/plays", data={"csrf": csrf_of(page.text), "play": "cross_sell",
                                                      "outcome": "planned", "note": "call on Monday"})
    page = client.get(f"/ui/account/{account}").text
    play_id = re.search(rf'action="/ui/account/{re.escape(account)}/plays/(\d+)"', page).group(1)
    moved = client.post(f"/ui/account/{account}/plays/{play_id}", follow_redirects=False,
                        data={"csrf": csrf_of(page), "outcome": "contacted", "note": "spoke to the VP"})
    assert moved.status_code == 303 and "saved=updated" in moved.headers["location"]
    after = client.get(moved.headers["location"]).text
    assert "Play updated." in after and "1 earlier state" in after and "call on Monday" in after
    other = TestClient(asgi_app())
    with other:
        sign_in(other, add_user("Sam", "csm", "csm-else", web_home["store"]))
        theirs = other.get(f"/ui/account/{account}").text
        assert f"/plays/{play_id}\"" not in theirs  # no update form for someone else's play
        refused = other.post(f"/ui/account/{account}/plays/{play_id}", data={"csrf": csrf_of(theirs), "outcome": "won"})
        assert refused.status_code == 400 and "only Casey (who logged it) or a leader" in refused.text


def test_a_leader_assigns_an_unowned_account_and_it_joins_that_book(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["leader"])
    queue = client.get("/ui/unowned").text
    assert "Accounts without an owner" in queue
    account = re.search(r'<a class="name" href="/ui/account/([^"]+)"', queue).group(1)
    answer = client.post(f"/ui/unowned/{account}", data={"csrf": csrf_of(queue), "owner": web_home["csm_owner"],
                                                         "back": "/ui/unowned"}, follow_redirects=False)
    assert answer.status_code == 303
    page = client.get(f"/ui/account/{account}").text
    assert f"none in the data, assigned to {web_home['csm_owner']} by Lee" in page
    assert account in {r["account_id"] for r in _csv(client, f"csm={quote(web_home['csm_owner'])}")}
    data = pd.read_parquet(web_home["data"] / "accounts.parquet")
    assert data.loc[data["account_id"] == account, "csm_owner"].isna().all()  # the data folder is untouched
    owned = sorted(web_home["csm_accounts"])[0]
    refused = client.post(f"/ui/unowned/{owned}", data={"csrf": csrf_of(queue), "owner": "someone"})
    assert refused.status_code == 400 and "has an owner in the data" in refused.text
    client.post(f"/ui/unowned/{account}", data={"csrf": csrf_of(queue), "owner": ""})


def test_portfolio_and_lines_link_to_the_accounts_behind_them(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["leader"])
    portfolio = client.get("/ui/portfolio").text
    assert f'<a href="/ui/book?csm={quote(web_home["csm_owner"], safe="")}">{web_home["csm_owner"]}</a>' in portfolio
    assert '<a href="/ui/unowned">no owner</a>' in portfolio
    grr = client.get("/ui/leadership/line/grr").text
    assert "contractions and churn of the trailing 12 months" in grr
    assert re.search(r"<td data-label=\"What\">(contraction|churn)</td>", grr)
    assert client.get("/ui/leadership/line/nope").status_code == 404
    sign_in(client, web_home["tokens"]["csm"])
    assert client.get("/ui/portfolio").status_code == 403 and client.get("/ui/unowned").status_code == 403


def test_users_disable_remove_and_warn_about_an_owner_with_no_account(web_home: dict, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from serving.cli import app

    serve_env(monkeypatch, web_home)
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "Pat", "--role", "csm", "--csm-owner", "nobody-owns-this"])
    assert added.exit_code == 0 and "owns no account" in added.output
    quiet = runner.invoke(app, ["users", "add", "Pia", "--role", "csm", "--csm-owner", web_home["csm_owner"]])
    assert quiet.exit_code == 0 and "owns no account" not in quiet.output
    assert runner.invoke(app, ["users", "disable", "Pat"]).exit_code == 0
    assert re.search(r"Pat\s+csm\s+nobody-owns-this\s+disabled", runner.invoke(app, ["users", "list"]).output)
    assert runner.invoke(app, ["users", "remove", "Pat"]).exit_code == 0
    missing = runner.invoke(app, ["users", "remove", "Pat"])
    assert missing.exit_code != 0 and "no person named 'Pat'" in missing.output
