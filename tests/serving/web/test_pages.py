"""The pages at HTML level, through the real scoring service: routes, sign-in, CSRF, roles and empty states."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from web_helpers import API_KEY, asgi_app, csrf_of, serve_env, sign_in

ROW = re.compile(r'<th scope="row"><a class="name" href="/ui/account/([^"]+)">')


def _ids(html: str) -> list[str]:
    return ROW.findall(html.split('<table class="book">', 1)[1].split("</table>", 1)[0]) if 'class="book"' in html else []


@pytest.mark.parametrize("path", ["/ui/book", "/ui/account/x", "/ui/leadership", "/ui/", "/ui/book?format=csv",
                                  "/ui/search?q=a", "/ui/renewals", "/ui/portfolio", "/ui/unowned",
                                  "/ui/leadership/line/nrr"])
def test_nothing_renders_without_a_session(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/signin") or answer.headers["location"] == "/ui/book"
    assert "<table" not in answer.text


def test_a_post_without_a_session_is_redirected_and_writes_nothing(client: TestClient, web_home: dict) -> None:
    answer = client.post("/ui/account/x/plays", data={"play": "cross_sell", "outcome": "won"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/signin")


def test_sign_in_refuses_an_unknown_token_and_a_missing_csrf(client: TestClient) -> None:
    page = client.get("/ui/signin")
    assert page.status_code == 200 and 'type="password"' in page.text
    wrong = client.post("/ui/signin", data={"csrf": csrf_of(page.text), "token": "not-a-token"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not known" in wrong.text
    no_csrf = client.post("/ui/signin", data={"token": "x"}, follow_redirects=False)
    assert no_csrf.status_code == 403


def test_session_cookie_is_signed_httponly_samesite(client: TestClient, web_home: dict) -> None:
    page = client.get("/ui/signin")
    answer = client.post("/ui/signin", data={"csrf": csrf_of(page.text), "token": web_home["tokens"]["csm"]},
                         follow_redirects=False)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    value = client.cookies.get("expansion_session")
    client.cookies.set("expansion_session", value[:-2] + ("00" if value[-2:] != "00" else "11"), path="/ui")
    assert client.get("/ui/book", follow_redirects=False).status_code == 303  # tampered: signed out


def test_a_csm_sees_their_own_book_ranked_with_reasons(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    page = client.get("/ui/book?csm=someone-else")  # a CSM cannot switch books
    assert page.status_code == 200
    ids = _ids(page.text)
    assert ids and set(ids) <= web_home["csm_accounts"]
    assert f"Book of {web_home['csm_owner']}" in page.text
    assert "No trained model is serving" in page.text  # baseline scores say so
    scores = [float(s) for s in re.findall(r'class="band band-\w+">(\d+) ', page.text.split('<table class="book">')[1])]
    assert scores == sorted(scores, reverse=True)  # without a model, readiness ranks
    assert 'data-label="Why"><div>' in page.text
    assert "Leadership" not in page.text.split("<main", 1)[0]  # no link for a CSM


def test_filters_and_csv_export_show_the_same_accounts(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    page = client.get("/ui/book?health=green")
    shown = _ids(page.text)
    assert shown
    assert all("dot-green" in row for row in page.text.split("<tbody>", 1)[1].split("</tbody>")[0].split("<tr>")[1:])
    exported = client.get("/ui/book?health=green&format=csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["account_id"] for r in rows][:len(shown)] == shown
    assert {r["health"] for r in rows} == {"green"} and all(r["csm_owner"] == web_home["csm_owner"] for r in rows)


def test_account_page_charts_reasons_and_logging_a_play(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    account = sorted(web_home["csm_accounts"])[0]
    page = client.get(f"/ui/account/{account}")
    assert page.status_code == 200
    assert page.text.count("<svg") == 2  # score history and usage against the plan limit
    assert "3 scoring runs" in page.text and "Whitespace by kind" in page.text
    play = re.search(r'name="play"><option value="([^"]+)"', page.text).group(1)
    forged = client.post(f"/ui/account/{account}/plays", data={"csrf": "forged", "play": play, "outcome": "won"},
                         follow_redirects=False)
    assert forged.status_code == 403
    bad = client.post(f"/ui/account/{account}/plays", data={"csrf": csrf_of(page.text), "play": play,
                                                             "outcome": "sold-the-moon"}, follow_redirects=False)
    assert bad.status_code == 400 and "outcome: must be one of" in bad.text
    saved = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                        data={"csrf": csrf_of(page.text), "play": play, "outcome": "meeting_booked", "note": "QBR set"})
    assert saved.status_code == 303
    after = client.get(saved.headers["location"])
    assert "Play logged." in after.text and "QBR set" in after.text
    engine = sa.create_engine(web_home["store"])
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT account_id, csm_owner, logged_by, outcome FROM play_log "
                                      "WHERE note = 'QBR set'")).all()
    engine.dispose()
    assert logged == [(account, web_home["csm_owner"], "Casey", "meeting_booked")]
    book = client.get("/ui/book").text
    activity = book.split('id="act"', 1)[1]
    assert re.search(r'Casey</th><td class="num">\d+</td><td class="num">[1-9]', activity)  # the logger is credited


def test_unknown_account_is_a_404_page(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    answer = client.get("/ui/account/no-such-account")
    assert answer.status_code == 404 and "Account not found" in answer.text


def test_leadership_is_for_leaders_only(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    assert client.get("/ui/leadership").status_code == 403


def test_leadership_page_lines_status_and_thresholds(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["leader"])
    page = client.get("/ui/leadership")
    assert page.status_code == 200
    for line in ("NRR, trailing 12 months", "GRR, trailing 12 months", "expansion rate, last month",
                 "expansion ARR added, quarter to date", "next-quarter forecast", "Largest risks",
                 "Largest opportunities", "How the status colours are set"):
        assert line in page.text
    assert re.search(r'pill pill-(green|yellow|red)">\w+</span></td><th scope="row"><a href="/ui/leadership/line/nrr">NRR', page.text)
    assert "not available: no forecast has been stored" in page.text
    # the generated company has opportunities: the pipeline line replaces the "no table" note
    assert "no opportunities table in the data" not in page.text
    assert "<svg" in page.text  # the NRR trend
    # a leader picks any CSM's book, or all
    everyone = client.get("/ui/book")
    assert "Open deals" in everyone.text  # the generated company has opportunities
    assert "All accounts" in everyone.text and "<option value=\"" + web_home["csm_owner"] in everyone.text
    one = client.get(f"/ui/book?csm={web_home['csm_owner']}")
    assert set(_ids(one.text)) <= web_home["csm_accounts"]


def test_a_csm_without_accounts_sees_why(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["newcomer"])
    page = client.get("/ui/book")
    assert page.status_code == 200 and "No accounts are owned by owner-with-no-accounts" in page.text


def test_no_snapshot_says_so(monkeypatch: pytest.MonkeyPatch, web_home: dict) -> None:
    serve_env(monkeypatch, web_home, EXPANSION_SNAPSHOT_PATH=str(web_home["home"] / "absent.parquet"))
    with TestClient(asgi_app()) as client:
        sign_in(client, web_home["tokens"]["leader"])
        assert "No feature snapshot is served yet" in client.get("/ui/book").text
        lead = client.get("/ui/leadership")
        assert lead.status_code == 200 and "No accounts in the served snapshot" in lead.text


def test_no_raw_data_leaves_the_panels_saying_what_they_need(monkeypatch: pytest.MonkeyPatch, web_home: dict) -> None:
    serve_env(monkeypatch, web_home)
    monkeypatch.delenv("EXPANSION_DATA_DIR")
    with TestClient(asgi_app()) as client:
        sign_in(client, web_home["tokens"]["leader"])
        assert "Recent wins need the raw data folder" in client.get("/ui/book").text
        assert "set EXPANSION_DATA_DIR" in client.get("/ui/leadership").text
        account = sorted(web_home["csm_accounts"])[0]
        assert "The usage chart needs the raw data folder" in client.get(f"/ui/account/{account}").text


def test_with_open_deals_the_pipeline_panels_appear(monkeypatch: pytest.MonkeyPatch, web_home: dict,
                                                    tmp_path) -> None:  # noqa: ANN001
    """Deals in the contract's ``opportunities`` / ``opportunity_stages`` tables reach the book and leadership."""
    for table in web_home["data"].iterdir():
        if not table.name.startswith("opportunit"):
            (tmp_path / table.name).symlink_to(table)
    account = sorted(web_home["csm_accounts"])[0]
    ts = pd.Timestamp
    pd.DataFrame({
        "opportunity_id": ["o1", "o2", "o3"], "account_id": [account, account, "other"],
        "kind": ["upsell", "renewal", "cross_sell"], "amount": [24_000.0, 90_000.0, 12_000.0],
        "created_at": [ts("2026-05-02"), ts("2026-05-02"), ts("2026-04-01")],
        "expected_close_date": [pd.Timestamp("2026-06-30").date()] * 3,
        "closed_at": [pd.NaT, pd.NaT, ts("2026-06-10")], "outcome": ["open", "open", "won"],
        "owner": [web_home["csm_owner"]] * 3,
    }).to_parquet(tmp_path / "opportunities.parquet")
    pd.DataFrame({"opportunity_id": ["o1", "o1"], "stage": ["identified", "proposal"],
                  "entered_at": [ts("2026-05-02"), ts("2026-06-01")]}).to_parquet(tmp_path / "opportunity_stages.parquet")
    serve_env(monkeypatch, web_home, EXPANSION_DATA_DIR=str(tmp_path), EXPANSION_EXPANSION_TARGET_ARR_QUARTER="2000000")
    with TestClient(asgi_app()) as client:
        sign_in(client, web_home["tokens"]["leader"])
        lead = client.get("/ui/leadership").text
        assert re.search(r'pill pill-red">red</span></td><th scope="row"><a href="/ui/leadership/line/coverage">pipeline coverage', lead)
        assert "$24.0k open expansion pipeline due this quarter, 1 deals" in lead  # the renewal is not expansion
        book = client.get(f"/ui/book?csm={web_home['csm_owner']}").text
        assert "Open deals" in book and "upsell $24.0k · proposal" in book
        assert "won expansion deals" in book and ">other</a>" in book  # the won cross-sell is a recent win
        rows = list(csv.DictReader(io.StringIO(client.get(f"/ui/book?csm={web_home['csm_owner']}&format=csv").text)))
        assert {r["account_id"]: r["open_pipeline_arr"] for r in rows}[account] == "24000"


def test_the_api_bearer_key_keeps_working_beside_the_pages(client: TestClient, web_home: dict) -> None:
    body = {"csm_owner": web_home["csm_owner"], "limit": 3}
    assert client.post("/rank", json=body).status_code == 401
    ranked = client.post("/rank", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
    assert ranked.status_code == 200 and len(ranked.json()["results"]) == 3
    assert client.get("/ui/signin").status_code == 200  # the pages never ask for the API key


def test_pages_send_security_headers_and_no_script(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    page = client.get("/ui/book")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' forbids scripts
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert client.get("/ui/static/style.css").status_code == 200


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory, make_frame, train_models) -> Iterator[Path]:  # noqa: ANN001
    """A BentoML home holding expansion and churn models, as ``expansion deploy`` leaves it."""
    from serving.scoring.models import save_to_store

    home = tmp_path_factory.mktemp("bentoml_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(home))
        for model in train_models(make_frame()):
            save_to_store(model)
        yield home


def test_with_models_the_book_ranks_by_expected_value(monkeypatch: pytest.MonkeyPatch, web_home: dict,
                                                       model_store: Path) -> None:
    serve_env(monkeypatch, web_home, EXPANSION_MODEL_SOURCE="store", BENTOML_HOME=str(model_store))
    with TestClient(asgi_app()) as client:
        sign_in(client, web_home["tokens"]["csm"])
        page = client.get("/ui/book")
        assert "No trained model is serving" not in page.text and "Accounts sorted by value" in page.text
        rows = list(csv.DictReader(io.StringIO(client.get("/ui/book?format=csv").text)))
        values = [float(r["expected_expansion_usd"]) for r in rows]
        assert values == sorted(values, reverse=True) and all(r["churn_probability"] for r in rows)
        by_readiness = list(csv.DictReader(io.StringIO(client.get("/ui/book?order=readiness&format=csv").text)))
        scores = [float(r["readiness_score"]) for r in by_readiness]
        assert scores == sorted(scores, reverse=True)


def test_a_new_token_ends_the_sessions_of_the_old_one(client: TestClient, web_home: dict) -> None:
    from serving.cli.users import add_user

    sign_in(client, add_user("Robin", "csm", web_home["csm_owner"], web_home["store"]))
    assert client.get("/ui/book", follow_redirects=False).status_code == 200
    add_user("Robin", "csm", web_home["csm_owner"], web_home["store"])  # e.g. the old token leaked
    assert client.get("/ui/book", follow_redirects=False).status_code == 303


def test_leadership_shows_the_newest_stored_forecast(client: TestClient, web_home: dict) -> None:
    import datetime as dt

    import pandas as pd
    import sqlalchemy as sa

    from serving.store.forecasts import ForecastStore
    from training.forecast import MEASURES

    figures = {"expansion_arr": 1_250_000.0, "contraction_arr": 90_000.0, "churned_arr": 300_000.0, "nrr_pct": 102.4}
    row = {"group": "all", "starting_arr": 40_000_000.0}
    for m, v in figures.items():
        row |= {m: v, f"{m}_low80": v * 0.9, f"{m}_high80": v * 1.1, f"{m}_low95": v * 0.8, f"{m}_high95": v * 1.2,
                f"{m}_method": "naive_mean4", f"{m}_past_error_pts": 1.25, f"{m}_past_cutoffs": 9}
    row["nrr_pct_method"] = "model"
    assert set(figures) == set(MEASURES)
    store = ForecastStore(web_home["store"])
    try:
        store.write("run-test", dt.date(2026, 1, 31), 90, pd.DataFrame([row]), {"m": "1"},
                    dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        sign_in(client, web_home["tokens"]["leader"])
        page = client.get("/ui/leadership")
        assert page.status_code == 200
        assert "NRR over the next 90 days from 2026-01-31, 80 % interval 92.2 % to 112.6 %" in page.text
        assert "expansion ARR $1.2M ($1.1M to $1.4M)" in page.text
        assert ("Forecast in force: NRR from the model (past error 1.2 NRR points over 9 cut-offs); expansion ARR from "
                "mean of the last four periods&#39; rates (past error 1.2 points of starting ARR over 9 cut-offs)") in page.text
    finally:
        with store.engine.begin() as conn:
            conn.execute(sa.delete(store.table))
        store.close()


def test_an_account_held_out_of_a_play_says_until_when(client: TestClient, web_home: dict) -> None:
    import datetime as dt

    from features.play_assignment import HOLD_OUT, Assignment
    from serving.store.plays import PlayStore

    sign_in(client, web_home["tokens"]["csm"])
    account = sorted(web_home["csm_accounts"])[1]
    start, end = dt.date(2026, 6, 1), dt.date(2026, 8, 30)
    store = PlayStore(web_home["store"])
    store.save([Assignment(account, "cross_sell", start, end, HOLD_OUT, 0.1, 1)], dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    store.close()
    page = client.get(f"/ui/account/{account}").text
    line = page.split('class="meta control">', 1)[1].split("</p>", 1)[0].replace("&#39;", "'")
    assert line.startswith("In the cross sell play's control group until ") and "Aug" in line and "30" in line
    other = client.get(f"/ui/account/{sorted(web_home['csm_accounts'])[0]}").text
    assert "control group until" not in other


def test_a_won_play_is_logged_with_its_amount_and_a_lost_one_with_its_reason(client: TestClient, web_home: dict) -> None:
    sign_in(client, web_home["tokens"]["csm"])
    account = sorted(web_home["csm_accounts"])[2]
    page = client.get(f"/ui/account/{account}").text
    bad = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                      data={"csrf": csrf_of(page), "play": "cross_sell", "outcome": "won", "amount": "lots"})
    assert bad.status_code == 400 and "amount: a number" in bad.text
    saved = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                        data={"csrf": csrf_of(page), "play": "cross_sell", "outcome": "won", "amount": "1,250",
                              "reason_code": "price", "planned_for": ""})  # the reason of a won play is not kept
    assert saved.status_code == 303
    after = client.get(saved.headers["location"]).text
    assert "cross sell</strong> · won · $1.2k MRR" in after
    lost = client.post(f"/ui/account/{account}/plays", follow_redirects=False,
                       data={"csrf": csrf_of(page), "play": "cross_sell", "outcome": "lost", "reason_code": "no_budget"})
    assert lost.status_code == 303 and "no budget" in client.get(lost.headers["location"]).text


def test_leadership_shows_each_plays_effect_against_its_control_group(client: TestClient, web_home: dict) -> None:
    import datetime as dt

    from features.play_assignment import HOLD_OUT, RECOMMEND, Assignment
    from serving.store.plays import PlayStore

    ids = pd.read_parquet(Path(web_home["data"]) / "accounts.parquet")["account_id"].astype(str).tolist()[:80]
    start = dt.date(2026, 1, 31)
    store = PlayStore(web_home["store"])
    store.save([Assignment(a, "seat_expansion", start, start + dt.timedelta(days=90), (HOLD_OUT, RECOMMEND)[i % 2],
                           0.5, 1) for i, a in enumerate(ids)], dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    store.close()
    sign_in(client, web_home["tokens"]["leader"])
    # the page reads what the job stored; it never measures in a request (features, perhaps uplift models)
    before = client.get("/ui/leadership").text.split('id="effects"', 1)[1].split("</section>", 1)[0]
    assert "has not run in this home yet" in before and "<th scope=\"row\">seat expansion</th>" not in before
    from typer.testing import CliRunner

    from serving.cli import app

    ran = CliRunner().invoke(app, ["plays", "effect", "--data", str(web_home["data"])])  # the client's environment
    assert ran.exit_code == 0, ran.output
    assert (Path(web_home["home"]) / "plays" / "effects.json").is_file()
    page = client.get("/ui/leadership").text
    panel = page.split('id="effects"', 1)[1].split("</section>", 1)[0]
    assert re.search(r"Measured on data up to \d{4}-\d{2}-\d{2} by <code>expansion plays effect</code> at "
                     r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\.", panel)
    row = panel.split("<th scope=\"row\">seat expansion</th>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">40 / 40</td>' in row  # both arms' windows closed by the data end
    assert re.search(r'<td class="num">[+-]\d+\.\d \([+-]\d+\.\d to [+-]\d+\.\d\)</td>', row)  # effect and interval
    assert "0 %" in row  # no play logged done
    assert re.search(r"(too early to tell|\)); \d+ / \d+</td>", row)  # renewal: its effect or why not, renewals due
    assert "eligible accounts a month" in panel and "CSMs choose whom they call" in panel
    # one month of 40 / 40 episodes: nothing to test an uplift model on, so readiness stays, and the panel says why
    assert "seat expansion: readiness: too few outcomes (40 training recommend, 40 training hold_out, 0 test" in panel
    stored = Path(web_home["home"]) / "plays" / "effects.json"
    good = stored.read_text(encoding="utf-8")
    try:  # a damaged report: the page says so and stays up
        stored.write_text('{"rows": [', encoding="utf-8")
        broken = client.get("/ui/leadership")
        assert broken.status_code == 200 and "The stored play effects could not be read" in broken.text
    finally:
        stored.write_text(good, encoding="utf-8")


def test_the_service_never_recommends_a_play_the_account_is_held_out_of(monkeypatch: pytest.MonkeyPatch,
                                                                         web_home: dict) -> None:
    import datetime as dt

    from features.play_assignment import HOLD_OUT, Assignment
    from serving.store.plays import PlayStore

    serve_env(monkeypatch, web_home)
    account = sorted(web_home["csm_accounts"])[3]
    shown = re.compile(r'<h2 id="play">Recommended play: ([^<]+)</h2>')
    with TestClient(asgi_app(), base_url="http://testserver") as c:
        sign_in(c, web_home["tokens"]["csm"])
        before = shown.search(c.get(f"/ui/account/{account}").text).group(1)
    play = before.replace(" ", "_")
    assert play != "nurture_value_content"  # the fallback is never held out: pick an account with another play
    store = PlayStore(web_home["store"])
    store.save([Assignment(account, play, dt.date(2026, 6, 1), dt.date(2026, 9, 1), HOLD_OUT, 0.1, 1)],
               dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    store.close()
    with TestClient(asgi_app(), base_url="http://testserver") as c:
        sign_in(c, web_home["tokens"]["csm"])
        page = c.get(f"/ui/account/{account}").text
        api = c.post("/score", json={"accounts": [{"account_id": account}], "with_reasons": True},
                     headers={"Authorization": f"Bearer {API_KEY}"})
    after = shown.search(page).group(1)
    assert after != before and f"In the {before} play" in page.replace("&#39;", "'")
    assert api.status_code == 200 and api.json()["results"][0]["recommended_play"] not in (play, None)
    assert api.json()["results"][0]["control_group_plays"] == play  # the API says why the play is not offered
