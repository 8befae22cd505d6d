"""Regenerate the model-health page's screenshots in ``docs/img`` (the machinery of ``docs/screenshots.py``).

One command: ``.venv/bin/python docs/health_screenshot.py [--out docs/img]`` (a few minutes).

A generated company (600 accounts, 18 months to 2026-06-30, seed 11, as the tests' company):
two expansion and two churn models fitted on the month ends to 2025-06-30 (v3 with 60
boosting rounds serves, v4 with 15 is the shadow challenger), four month ends scored by the
real batch path (2025-12-31 .. 2026-03-31, each with both shadows' scores), then ``expansion
monitor``'s core (``serving.jobs.monitoring.monitor``) measures both models on every run
whose 90-day horizon passed by 2026-06-30 against the data, with expansion v3's pooled promise. A leader signs in through the
form; ``/ui/model-health`` is shot whole at 1440 and 390 px (``model-health-1440.png``,
``model-health-390.png``, and ``model-health.png`` = the 1440 one, for the docs).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))

from screenshots import run, shoot_leader_page  # noqa: E402 - the shared machinery, beside this file

AS_OF = dt.date(2026, 6, 30)
SCORED = (dt.date(2025, 12, 31), dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31))
NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def build(work: Path) -> dict:
    """The company, two fitted versions, four scored runs with shadow scores, the monitored track record."""
    import pandas as pd

    from features.build import build_features
    from features.config import Settings
    from features.io import open_data
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from features.synth import generate
    from serving.scoring.batch import score_snapshot, shadow_scores
    from serving.cli.users import add_user
    from serving.jobs.monitoring import monitor
    from serving.store.monitoring import MonitoringStore
    from serving.scoring.scorer import Scorer
    from serving.sinks.history import with_history
    from serving.sinks.sql import SqlSink
    from serving.store import Store
    from training.models import fit_model

    data = work / "company"
    generate(data, accounts=600, months=18, seed=11, as_of=AS_OF)
    home = work / "home"
    settings = Settings(_env_file=None, home=home, bootstrap_replicates=200)
    source = open_data(data)
    try:
        first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
        frame = build_features(source, month_ends(first, AS_OF), settings, data_end=AS_OF)
    finally:
        source.close()
    cut = pd.Timestamp("2025-06-30")
    models = {}
    for name, label in (("expansion", "expanded"), ("churn", "churned")):
        labelled = frame[frame[label].notna() & (frame["as_of"] < "2025-09-01")]
        for version, rounds in (("3", 60), ("4", 15)):
            model = fit_model(name, labelled[labelled["as_of"] <= cut], labelled[labelled["as_of"] > cut], label,
                              feature_names(), categorical_features(), num_boost_round=rounds)
            model.version = version
            models[name, version] = model
    snapshot = home / "serving" / "snapshot.parquet"
    snapshot.parent.mkdir(parents=True)
    frame[pd.to_datetime(frame["as_of"]).dt.date == AS_OF].to_parquet(snapshot)
    crm, state = f"sqlite:///{home / 'crm.db'}", f"sqlite:///{home / 'state.db'}"
    sink, store = with_history(SqlSink(crm), Store(state)), MonitoringStore(state)
    try:
        for i, day in enumerate(SCORED):
            rows = frame[frame["as_of"] == pd.Timestamp(day)].reset_index(drop=True)
            scorer = Scorer(expansion=models["expansion", "3"], churn=models["churn", "3"])
            summary = score_snapshot(rows, scorer, sink, day, NOW - dt.timedelta(days=200 - i))
            shadows = {name: models[name, "4"] for name in ("expansion", "churn")}
            store.write_shadow(shadow_scores(rows, shadows, summary.run_id, day))
        source = open_data(data)
        try:
            promise = {"expansion": {"3": {"roc_auc": 0.745, "roc_auc_low": 0.675, "roc_auc_high": 0.811,
                                           "lift_top_decile": 4.093, "lift_top_decile_low": 3.074,
                                           "lift_top_decile_high": 5.216}}}
            result = monitor(store, source, settings, AS_OF, NOW, promise)
        finally:
            source.close()
    finally:
        store.close()
        sink.close()
    print(f"monitored {result.months}; waiting {result.waiting}; alarms {[a.kind for a in result.alarms]}", flush=True)
    return {"home": home, "data": data, "snapshot": snapshot,
            "tokens": {"leader": add_user("Lee", "leader", None, state)}}


def shoot(base: str, world: dict, out: Path) -> list[Path]:
    return shoot_leader_page(base, world["tokens"]["leader"], out, "/ui/model-health", "model-health")


def main() -> None:
    run(__doc__.splitlines()[0], build, shoot, "expansion-health-shots-")


if __name__ == "__main__":
    main()
