"""The CRM import files carry every score field the schema marks for the CRM, under names derived from it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from features.config import Settings
from serving.scoring.score_schema import SCORE_SCHEMA
from serving.sinks import RunInfo, open_sink
from serving.sinks.crm_formats import HUBSPOT_FIELDS, SALESFORCE_FIELDS, salesforce_name
from serving.sinks.rows import CRM_NAMES, ROW_FIELDS

RUN = RunInfo(dt.date(2024, 6, 30), dt.datetime(2024, 7, 1, 5, 30, tzinfo=dt.UTC), {"expansion": "3", "churn": "2"})
CRM_FIELDS = [f for f in SCORE_SCHEMA if f.crm]

# A value of each kind that no format turns into a null.
_VALUES = {"probability": 0.4321, "points": 61.5, "money": 1234.5, "band": "nurture", "health": "yellow",
           "text": "text of {name}", "change": -3.5, "json": json.dumps({"expansion": {"usage": 0.25}})}


def full_frame(accounts: int = 4) -> pd.DataFrame:
    """A scorer frame in which every CRM field of the schema holds a value (required and optional alike)."""
    frame = pd.DataFrame({"account_id": [f"acc-{i}" for i in range(accounts)]})
    for f in CRM_FIELDS:
        value = _VALUES[f.kind]
        frame[f.name] = [value.replace("{name}", f.name) if isinstance(value, str) else value] * accounts
    frame["reasons"] = [["usage up 45 %", "3 urgent tickets"]] * accounts
    frame["model_versions"] = [{"expansion": "3", "churn": "2"}] * accounts
    return frame


def read_file(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype="string", keep_default_na=False)


@pytest.mark.parametrize("crm, names", [("salesforce", SALESFORCE_FIELDS), ("hubspot", HUBSPOT_FIELDS)])
def test_every_crm_field_of_the_schema_reaches_both_files_with_its_value(crm: str, names: dict, tmp_path: Path) -> None:
    path = tmp_path / f"{crm}.csv"
    sink = open_sink(f"{crm}:{path}", Settings())
    assert sink.write(RUN, [full_frame()]) == 4
    written = read_file(path)
    null = "#N/A" if crm == "salesforce" else ""
    for f in CRM_FIELDS:
        assert names.get(f.name) in written.columns, f"{crm}: crm=True field {f.name} has no column"
        values = written[names[f.name]]
        assert (values != null).all() and (values != "").all(), f"{crm}: field {f.name} written as null"
    assert list(written.columns) == [names[field] for field in ROW_FIELDS]  # every row field, in row order


def test_crm_names_come_from_the_schema_and_are_unique() -> None:
    declared = {f.name: f.crm_name or f.name for f in SCORE_SCHEMA}
    for field, name in CRM_NAMES.items():
        if field in declared:
            assert name == declared[field]
    for names in (SALESFORCE_FIELDS, HUBSPOT_FIELDS, CRM_NAMES):
        assert len(set(names.values())) == len(names)
    # One rule spells every name per CRM: nothing typed by hand that a new schema field could miss.
    assert all(SALESFORCE_FIELDS[f] == salesforce_name(CRM_NAMES[f]) for f in ROW_FIELDS)
    assert all(HUBSPOT_FIELDS[f] == CRM_NAMES[f] for f in ROW_FIELDS)


def test_salesforce_names_keep_the_api_names_an_org_already_created() -> None:
    # The fields a RevOps admin created for an earlier release keep their API names.
    assert SALESFORCE_FIELDS["account_id"] == "External_Account_Id__c"
    assert SALESFORCE_FIELDS["run_id"] == "Expansion_Score_Run_Id__c"
    assert SALESFORCE_FIELDS["readiness_score"] == "Expansion_Readiness__c"
    assert SALESFORCE_FIELDS["reason_3"] == "Expansion_Reason_3__c"
    assert HUBSPOT_FIELDS["health"] == "customer_health"
    assert salesforce_name("churn_risk_change") == "Churn_Risk_Change__c"


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_crm_file_gives_the_next_run_what_it_needs_to_say_what_changed(crm: str, tmp_path: Path) -> None:
    sink = open_sink(f"{crm}:{tmp_path / 'scores.csv'}", Settings())
    sink.write(RUN, [full_frame()])
    previous = sink.previous_scores(before=RUN.as_of + dt.timedelta(days=31))
    assert set(previous.columns) == {"account_id", "readiness_score", "readiness_band", "as_of", "churn_probability",
                                     "concept_contributions"}
    assert previous["churn_probability"].tolist() == pytest.approx([0.4321] * 4, abs=1e-4)  # 0-1 again, not percent
    assert previous["readiness_score"].tolist() == [61.5] * 4
    assert json.loads(previous["concept_contributions"].iloc[0]) == {"expansion": {"usage": 0.25}}
    # A file keeps one run: it is not the previous run of an older snapshot, which also leaves it in place.
    assert sink.previous_scores(before=RUN.as_of - dt.timedelta(days=1)) is None
    older = RunInfo(RUN.as_of - dt.timedelta(days=30), RUN.scored_at, RUN.model_versions)
    before = (tmp_path / "scores.csv").read_bytes()
    assert sink.write(older, [full_frame()]) == 4 and sink.kept_newer == RUN.as_of
    assert (tmp_path / "scores.csv").read_bytes() == before
