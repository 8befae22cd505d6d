"""The model-health page: the stored track record month by month, for leaders only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from web_helpers import sign_in


def _track(months: list[str], model: str = "expansion", seed: int = 3) -> pd.DataFrame:
    from training.monitoring import calibration, realised, track_rows

    rng = np.random.default_rng(seed)
    parts = []
    for i, month in enumerate(months):
        trait = rng.normal(size=400)
        y = (rng.random(400) < 1 / (1 + np.exp(-(-2.0 + 1.2 * trait)))).astype(float)
        rows = pd.DataFrame({"account_id": [f"a{k}" for k in range(400)], "as_of": pd.Timestamp(f"{month}-28"),
                             "csm_owner": [f"c{k % 4}" for k in range(400)],
                             "segment": rng.choice(["smb", "enterprise"], 400), "outcome": y,
                             "champion": 1 / (1 + np.exp(-(-2.0 + trait + rng.normal(scale=0.5, size=400)))),
                             "shadow": 1 / (1 + np.exp(-(-2.0 + trait))), "baseline": rng.random(400)})
        table = realised(rows, replicates=100)
        parts.append(track_rows(month, model, table, calibration(y, rows["champion"].to_numpy()),
                                {"champion": "3", "shadow": "4", "baseline": "rules"}))
    return pd.concat(parts, ignore_index=True)


def test_the_page_shows_each_scored_month_with_intervals_to_leaders_only(client, web_home):
    from serving.store.monitoring import MonitoringStore

    sign_in(client, web_home["tokens"]["leader"])
    empty = client.get("/ui/model-health")
    assert empty.status_code == 200 and "No scored month has reached its horizon yet" in empty.text
    store = MonitoringStore(web_home["store"])
    try:
        track = _track(["2026-01", "2026-02"])
        churn = _track(["2026-02"], "churn", seed=5)
        store.save_track(pd.concat([track, churn], ignore_index=True), dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
        store.record_alarm("k1", "expansion", "calibration_drift", "expansion: calibration drift in 2 runs", "slack:x",
                           dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    finally:
        store.close()
    page = client.get("/ui/model-health")
    assert page.status_code == 200
    html = page.text
    expansion, churned = html[html.index("Expansion model"):html.index("Churn model")], html[html.index("Churn model"):]
    table = expansion[expansion.index("Month by month"):]
    assert table.index("2026-02") < table.index("2026-01")  # newest first
    assert "2026-01" not in churned and "Churns" in churned  # each model's own months, counts and figures
    churn_auc = churn[(churn["scorer"] == "champion") & (churn["metric"] == "roc_auc") & (churn["segment"] == "(all)")].iloc[0]
    assert f"[{churn_auc['low']:.3f}, {churn_auc['high']:.3f}]" in churned
    assert f">{int(churn_auc['positives'])}<" in churned
    auc = track[(track["month"] == "2026-02") & (track["scorer"] == "champion") & (track["metric"] == "roc_auc")
                & (track["segment"] == "(all)")].iloc[0]
    assert f"{auc['value']:.3f}" in expansion and f"[{auc['low']:.3f}, {auc['high']:.3f}]" in expansion
    assert "champion v3" in html and "shadow v4" in html and "calibration drift" in html
    assert "<svg" in html and "Realised ROC-AUC per scored month (expansion)" in html
    assert "Realised ROC-AUC per scored month (churn)" in html
    assert "smb" in html and "enterprise" in html
    client.post("/ui/signout", data={}, follow_redirects=False)


def test_a_csm_is_refused(client, web_home):
    sign_in(client, web_home["tokens"]["csm"])
    assert client.get("/ui/model-health").status_code == 403
