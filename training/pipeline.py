"""Train both models, then register and gate each: the one sequence the CLI and the notebooks share."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.config import Settings
from features.registry import categorical_features, feature_names
from training.datasets import rows
from training.registry import GateDecision, register_and_gate
from training.models import DEFAULT_ROUNDS
from training.train import ModelResult, train_all


@dataclass
class Registered:
    """One model's backtest result, the version it was registered as, and the gate's decision."""

    result: ModelResult
    version: str
    decision: GateDecision


def train_and_register(
    frame: pd.DataFrame, settings: Settings, *, n_cutoffs: int = 3, num_boost_round: int = DEFAULT_ROUNDS
) -> dict[str, Registered]:
    """Backtest both models on ``frame``, register the newest fold's model of each, and gate it.

    Raises ValueError (naming the column or window) when the frame cannot be trained on.
    """
    results = train_all(
        frame, feature_names(), categorical_features(), settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round
    )
    registered = {}
    for name, result in results.items():
        test = rows(frame, result.newest.split.test, result.label)
        version, decision = register_and_gate(result, test, settings)
        registered[name] = Registered(result, version, decision)
    return registered
