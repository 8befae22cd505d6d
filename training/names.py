"""Names several layers share, declared once: the two models and where their models come from.

Kept free of heavy imports so that the command line can use them in its option types.
"""

from __future__ import annotations

from enum import StrEnum


class ModelName(StrEnum):
    """The two models, by the name they are registered, stored and reported under."""

    expansion = "expansion"
    churn = "churn"


MODEL_NAMES: tuple[str, ...] = tuple(ModelName)
