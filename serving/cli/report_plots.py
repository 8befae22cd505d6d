"""PNG charts for the metrics report: NRR trend with its components, cohort expansion curves.

Matplotlib runs on the Agg backend (no display); each function takes the frame that
``features.metrics`` / ``features.cohorts`` returned and writes one file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

BAND_LINES = ((120.0, "world class"), (100.0, "strong"), (90.0, "needs improvement"))


def _pyplot():  # noqa: ANN202 - imported lazily so the CLI starts fast and the backend is set first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def nrr_trend_chart(periods: pd.DataFrame, path: Path, title: str = "Net revenue retention") -> Path:
    """NRR and GRR lines over periods, with expansion / contraction / churn bars (% of starting MRR).

    With several groups only the NRR lines are drawn, one per group.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    frame = periods.sort_values("period_start")
    groups = list(dict.fromkeys(frame["group"]))
    if len(groups) == 1:
        x = pd.to_datetime(frame["period_start"])
        width = max(5.0, (x.diff().dt.days.median() if len(x) > 1 else 30) * 0.7)
        ax2 = ax.twinx()
        ax2.bar(x, frame["expansion_rate_pct"], width=width, color="#4caf50", alpha=0.5, label="expansion")
        ax2.bar(x, -frame["contraction_rate_pct"], width=width, color="#ff9800", alpha=0.5, label="contraction")
        ax2.bar(x, -frame["churn_rate_pct"], width=width, bottom=-frame["contraction_rate_pct"],
                color="#f44336", alpha=0.5, label="churn")
        ax2.set_ylabel("% of starting MRR")
        ax2.axhline(0, color="grey", linewidth=0.5)
        ax2.legend(loc="lower right")
        ax.plot(x, frame["nrr_pct"], marker="o", color="#1a237e", label="NRR")
        ax.plot(x, frame["grr_pct"], marker=".", color="#5c6bc0", linestyle="--", label="GRR")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    else:
        for name in groups:
            g = frame[frame["group"] == name]
            ax.plot(pd.to_datetime(g["period_start"]), g["nrr_pct"], marker="o", label=str(name))
    for level, label in BAND_LINES:
        ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
        ax.annotate(label, (0, level), xycoords=("axes fraction", "data"), fontsize=7, color="grey")
    ax.set_ylabel("%")
    ax.set_xlabel("period start")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cohort_curve_chart(curve: pd.DataFrame, path: Path, title: str = "Share of accounts expanded by tenure") -> Path:
    """One line per group: % of accounts expanded within k months of signup."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for name, g in curve.groupby("group", sort=True):
        ax.plot(g["months"], g["expanded_pct"], marker=".", label=str(name))
    ax.set_xlabel("months since signup")
    ax.set_ylabel("% of accounts expanded")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
