"""What followed each play episode in the data: the label definitions read over the episode's window.

An episode starts on the scoring run that assigned the account (``episode_start``); its
outcome is read over ``(episode_start, episode_start + window_days]`` from the revenue
movements, with exactly the definitions the models are trained on (:func:`features.labels.labels`):
``expanded``, ``churned``, ``contracted`` (0/1) and ``expansion_mrr`` (the sum of the
expansion deltas). ``renewed`` reads the renewal: when the account's next renewal date at the
episode's start (``months_to_renewal``'s definition, :func:`features.account.next_renewal`)
falls inside the window, 1 if the account did not churn in the window and 0 if it did; it is
null when no renewal fell due in the window (the episode says nothing about renewing). A window
that runs past the data's end is not read yet: its outcomes are null.
"""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
from ibis.expr.types import Table

from features.account import next_renewal
from features.io import DataSource
from features.labels import LABELS, labels
from features.spine import active_periods, day_number

OUTCOMES = (*LABELS, "renewed")


def _renewed(subscriptions: Table, keys: pd.DataFrame, read: Table, window_days: int) -> Table:
    """``read`` (the labels per ``account_id, as_of``) with ``renewed``: null unless a renewal fell due in the window."""
    snaps = ibis.memtable(keys[["as_of"]].drop_duplicates(), schema={"as_of": "date"})
    snaps = snaps.mutate(as_of_day=day_number(snaps.as_of), as_of_month=snaps.as_of.month())
    due = next_renewal(active_periods(subscriptions, snaps))
    t = read.mutate(as_of_day=day_number(read.as_of)).left_join(due, ["account_id", "as_of_day"])
    in_window = (t.next_renewal_day > t.as_of_day) & (t.next_renewal_day <= t.as_of_day + window_days)
    renewed = ibis.ifelse(in_window.fill_null(False), 1.0 - t.churned, ibis.null("float64"))
    return t.select(*(c for c in read.columns), renewed=renewed.cast("float64"))


def episode_outcomes(source: DataSource, episodes: pd.DataFrame, window_days: int,
                     data_end: dt.date | None = None) -> pd.DataFrame:
    """``episodes`` (``account_id``, ``episode_start`` and any other columns) with the outcome columns added.

    ``data_end`` defaults to the data's last complete day.
    """
    missing = [c for c in ("account_id", "episode_start") if c not in episodes.columns]
    if missing:
        raise ValueError(f"play episodes: column(s) {', '.join(missing)} required")
    if not source.has("subscriptions"):
        raise ValueError(f"{source.data_dir}: table subscriptions is required to read play outcomes")
    out = episodes.reset_index(drop=True).copy()
    if not len(out):
        for c in OUTCOMES:
            out[c] = pd.Series([], dtype="float64")
        return out
    end = data_end or source.data_end().day
    keys = pd.DataFrame({"account_id": out["account_id"].astype(str),
                         "as_of": pd.to_datetime(out["episode_start"]).dt.date}).drop_duplicates()
    tables = source.tables()
    spine = ibis.memtable(keys, schema={"account_id": "string", "as_of": "date"})
    spine = spine.mutate(as_of_day=day_number(spine.as_of))
    read = labels(tables["subscriptions"], spine, window_days, end, tables.get("products"))
    found = source.ibis().execute(_renewed(tables["subscriptions"], keys, read, window_days))
    found["as_of"] = pd.to_datetime(found["as_of"])
    out["_as_of"] = pd.to_datetime(out["episode_start"])
    out["_id"] = out["account_id"].astype(str)
    joined = out.merge(found.rename(columns={"account_id": "_id", "as_of": "_as_of"}), on=["_id", "_as_of"],
                       how="left", validate="many_to_one")
    return joined.drop(columns=["_id", "_as_of"])


def with_features(source: DataSource, episodes: pd.DataFrame, settings) -> pd.DataFrame:
    """``episodes`` joined to the account's features on the episode's start (the scoring run that assigned it);
    episodes of an account without features then (no MRR) are dropped. ``settings``: ``features.config.Settings``."""
    from features.build import build_features

    starts = sorted(set(pd.to_datetime(episodes["episode_start"]).dt.date))
    if not starts:
        return episodes.iloc[:0]
    frame = build_features(source, starts, settings, data_end=source.data_end().day)
    frame = frame.drop(columns=[c for c in LABELS if c in frame.columns])
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    frame["account_id"] = frame["account_id"].astype(str)
    out = episodes.assign(account_id=episodes["account_id"].astype(str),
                          episode_start=pd.to_datetime(episodes["episode_start"]).astype("datetime64[ns]"))
    out = out.sort_values("episode_start", kind="stable")
    joined = pd.merge_asof(out, frame.sort_values("as_of"), left_on="episode_start", right_on="as_of",
                           by="account_id", direction="backward")
    return joined.dropna(subset=["as_of"]).reset_index(drop=True)
