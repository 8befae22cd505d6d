"""The scorer's output, declared once: every schema of a score (scorer frame, CRM row, Arrow and Spark, the API) derives from it.

:data:`SCORE_SCHEMA` lists each field with its kind; :mod:`serving.api.schemas` builds the HTTP
answer from it, :mod:`serving.sinks.rows` the CRM row, :mod:`serving.scoring.spark_batch` the
Spark schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.names import MODEL_NAMES


@dataclass(frozen=True)
class ScoreField:
    """One field of the scorer's output. Its ``kind`` drives every schema derived from it.

    ``api``: part of the HTTP answer (under ``api_name`` when given); ``crm``: a typed
    score column of the CRM row (reasons and model versions reach the row their own way);
    ``required``: a scorer frame must carry it (an optional field left out is null);
    ``crm_name``: the field's name in the CRM import files, snake case (default: ``name``);
    ``serving.sinks.crm_formats`` spells it per CRM (HubSpot as is, Salesforce ``Title_Case__c``).
    """

    name: str
    kind: str
    description: str
    api: bool = True
    crm: bool = True
    api_name: str | None = None
    required: bool = True
    crm_name: str | None = None


#: The scorer's output, declared once: scorer frame columns, CRM columns, Arrow and Spark
#: types and the API model are all derived from this tuple, in this order.
SCORE_SCHEMA: tuple[ScoreField, ...] = (
    ScoreField("account_id", "id", "The account's id in the canonical `accounts` table.", crm=False,
               crm_name="external_account_id"),
    ScoreField("as_of", "date", "Snapshot date of the features (ISO), null for supplied features.", crm=False,
               crm_name="expansion_snapshot_date"),
    ScoreField("expansion_probability", "probability", "Calibrated probability of expanding within the horizon."),
    ScoreField("churn_probability", "probability", "Calibrated probability of churning within the horizon."),
    ScoreField("readiness_score", "points", "Expansion readiness, 0-100 (the baseline's when no model is available).",
               crm_name="expansion_readiness"),
    ScoreField("readiness_band", "band", "outreach above 70, nurture 40-70, adoption below 40.",
               crm_name="expansion_readiness_band"),
    ScoreField("health", "health", "Churn-risk colour: red, yellow or green.", crm_name="customer_health"),
    ScoreField("reasons", "reason_texts", "Readable reasons, strongest first.", api=False, crm=False),
    ScoreField("reason_details", "reason_details", "The reasons with their feature, effect and contribution.",
               crm=False, api_name="reasons"),
    ScoreField("why_high", "text", "'What lifts it': the reasons that lift readiness, strongest first, joined "
               "by ' · ' (the reasons' side 'lifts').", required=False, crm_name="expansion_why_high"),
    ScoreField("holds_back", "text", "'What holds it back': the reasons that hold readiness back or raise churn "
               "risk, strongest first, joined by ' · ' (side 'holds_back').", required=False,
               crm_name="expansion_holds_back"),
    ScoreField("caution", "text", "Churn-side warnings that hold (usage falling, a failed payment, a detractor, "
               "executive silence), '; '-joined; an expansion play's talk track opens with them.", required=False,
               crm_name="expansion_caution"),
    ScoreField("whitespace_usd", "money", "What the account could still buy, in the dataset's currency.",
               crm_name="whitespace_amount"),
    ScoreField("expected_expansion_usd", "money", "Expansion probability x expected deal size.",
               crm_name="expected_expansion_amount"),
    ScoreField("recommended_play", "text", "The play a CSM should run next."),
    ScoreField("recommended_play_text", "text", "The play's talk track, in the account's own figures.", crm=False),
    ScoreField("control_group_plays", "text", "The plays this account is held out of for the current episode (in "
               "their control group, so never recommended them), ', '-joined; null when none.", required=False,
               crm_name="expansion_control_group_plays"),
    ScoreField("play_uplift", "change", "Expected gain in the chance of expanding from the recommended play (uplift "
               "model, recommended minus held out): set only when that play's uplift ranking is in force, and then "
               "its accounts are ordered by it; null when readiness ranks them.", required=False,
               crm_name="expansion_play_uplift"),
    ScoreField("context", "text", "Segment, industry, region, channel and tenure in one line: shown beside the "
               "reasons, never one of them.", required=False, crm_name="expansion_context"),
    ScoreField("readiness_change", "change", "Readiness points gained (+) or lost (-) since the previous run; "
               "null for an account new since then.", required=False, crm_name="expansion_readiness_change"),
    ScoreField("churn_risk_change", "change", "Churn probability change since the previous run, in percentage points.",
               required=False),
    ScoreField("change_reason", "text", "How readiness and churn risk moved since the previous run, and the "
               "concepts whose contributions moved most.", required=False, crm_name="expansion_change_reason"),
    ScoreField("concept_contributions", "json", "Each model's contributions summed per concept (JSON), kept so "
               "that the next run can say what moved.", api=False, required=False,
               crm_name="expansion_concept_contributions"),
    ScoreField("baseline_score", "points", "Rule-based readiness, 0-100.", crm_name="baseline_readiness"),
    ScoreField("baseline_band", "band", "Band of the rule-based readiness.", crm_name="baseline_readiness_band"),
    ScoreField("baseline_health", "health", "Rule-based health colour.", crm=False),
    ScoreField("baseline_risk", "points", "Rule-based churn risk, 0-100 (100 - health points): the churn model's "
               "baseline, kept in the score history so that its realised record can be compared.", api=False,
               required=False, crm_name="baseline_churn_risk"),
    *(ScoreField(f"{name}_model_version", "version", f"Registry version of the {name} model, null without one.",
                 api=False, crm=False) for name in MODEL_NAMES),
    *(ScoreField(f"{name}_model_run_id", "run_id", f"MLflow run of the {name} model, null without one.",
                 api=False, crm=False) for name in MODEL_NAMES),
    ScoreField("model_available", "flag", "True when at least one trained model scored.", api=False, crm=False,
               crm_name="expansion_model_available"),
)
SCORE_COLUMNS: tuple[str, ...] = tuple(f.name for f in SCORE_SCHEMA)
VERSION_COLUMNS: tuple[str, ...] = tuple(f.name for f in SCORE_SCHEMA if f.kind == "version")
RUN_ID_COLUMNS: tuple[str, ...] = tuple(f.name for f in SCORE_SCHEMA if f.kind == "run_id")
