"""Money in one currency: amounts in several currencies are converted to a reporting currency with a rates file,
or refused naming the accounts; two currencies are never summed.

The rates file (CSV: ``date, currency, rate``) gives the units of the reporting currency one unit of
``currency`` was worth from ``date`` on; an amount dated ``d`` uses the latest rate on or before ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.importers.errors import ImportFailed, ImportProblem, Problems, first_ids
from features.importers.parse import CURRENCY_EXPONENT, numbers, text, timestamps


@dataclass(frozen=True)
class Currency:
    """The reporting currency and its rates (empty: no conversion, one currency required)."""

    to: str | None = None
    rates: pd.DataFrame | None = None


def load(to: str | None, rates_file: str | Path | None) -> Currency:
    """The reporting currency and rates file named by ``--currency`` / ``--rates``; a clear error when unusable."""
    if to is None and rates_file is None:
        return Currency()
    if to is None:
        raise ImportFailed([ImportProblem("import", "rates", "*", "--rates needs --currency (the currency the rates convert to)")])
    code = to.strip().lower()
    if code not in CURRENCY_EXPONENT:
        raise ImportFailed([ImportProblem("import", "currency", "*", f"unknown reporting currency {to}")])
    if rates_file is None:
        return Currency(code, pd.DataFrame(columns=["date", "currency", "rate"]))
    path = Path(rates_file)
    try:
        raw = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise ImportFailed([ImportProblem("import", "rates", "*", f"cannot read {path}: {exc}")]) from exc
    raw.columns = [c.strip().lower() for c in raw.columns]
    missing = [c for c in ("date", "currency", "rate") if c not in raw]
    if missing:
        raise ImportFailed([ImportProblem("import", "rates", c, "required column is missing") for c in missing])
    rates = pd.DataFrame({"date": timestamps(raw["date"]).dt.floor("D"), "currency": text(raw["currency"]).str.lower(),
                          "rate": numbers(raw["rate"]).astype(float)})
    bad = rates["date"].isna() | rates["currency"].isna() | ~(rates["rate"] > 0)
    if bad.any():
        raise ImportFailed([ImportProblem("import", "rates", "date, currency, rate",
                                          f"not a date, currency and positive rate (lines {first_ids((bad[bad].index + 2).tolist())})",
                                          int(bad.sum()))])
    return Currency(code, rates.sort_values("date").reset_index(drop=True))


def to_reporting(problems: Problems, table: str, amounts: pd.Series, currency: pd.Series, dates: pd.Series,
                 accounts: pd.Series, money: Currency) -> pd.Series:
    """``amounts`` in the reporting currency; without one, a problem naming the accounts when currencies differ."""
    codes = text(currency).str.lower()
    if money.to is None:
        found = codes.dropna().value_counts()
        if len(found) > 1:
            main = found.index[0]
            others = "; ".join(f"{c}: {first_ids(sorted(set(accounts[codes == c].astype(str))))}" for c in found.index[1:])
            problems.add(table, "currency", f"several currencies ({', '.join(sorted(found.index))}); accounts not in {main}: "
                         f"{others} (give --currency and --rates to convert; currencies are never summed)",
                         int((codes.notna() & (codes != main)).sum()))
        return amounts.astype(float)
    rate = pd.Series(1.0, index=amounts.index)
    foreign = codes.notna() & (codes != money.to)
    if foreign.any():
        want = pd.DataFrame({"date": dates[foreign].dt.floor("D").astype("datetime64[us]"),
                             "currency": codes[foreign].astype(object), "row": amounts.index[foreign]}).sort_values("date")
        rates = money.rates.assign(date=money.rates["date"].astype("datetime64[us]"),  # type: ignore[union-attr]
                                   currency=money.rates["currency"].astype(str).str.lower().astype(object))
        got = pd.merge_asof(want, rates, on="date", by="currency", direction="backward")
        none = got["rate"].isna()
        if none.any():
            missing = got[none]
            problems.add(table, "currency", f"no rate to {money.to} on or before the date for "
                         + "; ".join(f"{c} (first {missing.loc[missing['currency'] == c, 'date'].min().date()})"
                                     for c in sorted(set(missing["currency"])))
                         + f"; accounts: {first_ids(sorted(set(accounts[got.loc[none, 'row']].astype(str))))}", int(none.sum()))
        rate.loc[got["row"].to_numpy()] = got["rate"].to_numpy()
    converted = int(foreign.sum())
    if converted:
        problems.ledger.say(f"{table}: {converted} amount(s) converted to {money.to} at the rate of their date")
    return amounts.astype(float) * rate
