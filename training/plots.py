"""Evaluation plots logged with each training run: lift, calibration, importance, baseline comparison.

Each function returns a matplotlib Figure drawn on the non-interactive Agg canvas, so
nothing here needs a display; the caller saves and closes it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.evaluate import HEADLINE, Evaluation, calibration_curve


def _figure(width: float = 6.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def lift_chart(model: Evaluation, baseline: Evaluation, title: str) -> Figure:
    """Positive rate per score decile (10 = highest scores) over the base rate, model next to baseline."""
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.4
    for offset, (label, ev) in zip((-width / 2, width / 2), (("model", model), ("baseline", baseline))):
        order = np.argsort(ev.scores, kind="stable")
        deciles = np.array_split(ev.y_true[order], 10)
        base = ev.y_true.mean() or np.nan
        ax.bar(np.arange(1, 11) + offset, [d.mean() / base for d in deciles], width, label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set(xlabel="score decile", ylabel="lift over base rate", title=title)
    ax.legend()
    return fig


def calibration_plot(model: Evaluation, baseline: Evaluation, title: str) -> Figure:
    """Observed positive rate against mean score per bin; the diagonal is perfect calibration."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    for label, ev in (("model", model), ("baseline", baseline)):
        curve = calibration_curve(ev.y_true, ev.scores)
        ax.plot(curve["mean_score"], curve["observed_rate"], marker="o", label=label)
    ax.set(xlabel="mean predicted", ylabel="observed rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return fig


def importance_plot(features: list[str], gain: np.ndarray, title: str, top: int = 20) -> Figure:
    """Horizontal bars of the ``top`` features by total gain."""
    order = np.argsort(gain)[-top:]
    fig = _figure(6.0, max(3.0, 0.25 * len(order) + 1))
    ax = fig.add_subplot()
    ax.barh([features[i] for i in order], gain[order])
    ax.set(xlabel="total gain", title=title)
    fig.tight_layout()
    return fig


def baseline_comparison(model: dict[str, float], baseline: dict[str, float], title: str) -> Figure:
    """Headline metrics of the model and the baseline side by side."""
    keys = [k for k in HEADLINE if k in model]
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [model[k] for k in keys], 0.4, label="model")
    ax.bar(x + 0.2, [baseline[k] for k in keys], 0.4, label="baseline")
    ax.set_xticks(x, keys, rotation=30, ha="right")
    ax.set(title=title)
    ax.legend()
    fig.tight_layout()
    return fig
