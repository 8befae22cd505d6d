"""CRM import files: a Salesforce Bulk API 2.0 upsert CSV and a HubSpot company-import CSV.

Both are CSV files with CRM field names in the header and values in the CRM's own
formats. Field names are configurable (every CRM org names its custom fields); the
defaults are derived from each row field's CRM name (``ScoreField.crm_name``), spelled the
way a RevOps admin would create the field in each CRM.

Salesforce (Bulk API 2.0 ingest): UTF-8, comma, CRLF line endings (create the job with
``lineEnding=CRLF``), dates ``YYYY-MM-DD``, datetimes ISO 8601 in UTC with ``Z``,
booleans ``true``/``false``, plain decimals. An empty cell is *ignored* on update, so
a null is written as ``#N/A``, which clears the field: otherwise a reason that
disappeared would linger on the record. Probabilities go to Percent fields, which
take 0-100.

HubSpot (company import): UTF-8, comma, LF, dates ``YYYY-MM-DD``, datetimes ISO 8601
with ``Z``, plain decimals, probabilities as 0-1 numbers, nulls blank.
"""

from __future__ import annotations


from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serving.sinks.files import FileSink
from serving.sinks.rows import CRM_NAMES, ROW_FIELDS, RunInfo, empty_score_frame, to_rows


def salesforce_name(name: str) -> str:
    """A Salesforce custom field API name: ``expansion_readiness`` -> ``Expansion_Readiness__c``."""
    return "_".join(word[:1].upper() + word[1:] for word in name.split("_")) + "__c"


def hubspot_name(name: str) -> str:
    """A HubSpot property internal name: the snake-case CRM name as it is."""
    return name


#: Default CRM field names, derived from the row fields (``rows.CRM_NAMES``, itself from
#: ``serving.scoring.score_schema.SCORE_SCHEMA``): a field added to the schema reaches both files.
SALESFORCE_FIELDS: dict[str, str] = {field: salesforce_name(name) for field, name in CRM_NAMES.items()}
HUBSPOT_FIELDS: dict[str, str] = {field: hubspot_name(name) for field, name in CRM_NAMES.items()}

DECIMALS = {"points": 1, "money": 2}


@dataclass(frozen=True)
class CrmFormat:
    """How rows become one CRM's import file."""

    name: str
    fields: Mapping[str, str]  # row field -> CRM field name, in file order
    line_terminator: str
    null_value: str
    probability_scale: float  # 100 for Percent fields, 1 for plain 0-1 numbers
    probability_decimals: int

    @property
    def key_field(self) -> str:
        return self.fields["account_id"]


def _merge(defaults: Mapping[str, str], overrides: Mapping[str, str] | None, crm: str) -> dict[str, str]:
    """Defaults with overrides; an empty name drops a field. Unknown fields and duplicate names are errors."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{crm} field map: unknown row field(s) {unknown}; known: {sorted(defaults)}")
    if overrides.get("account_id", "x") == "":
        raise ValueError(f"{crm} field map: account_id is the upsert key and cannot be dropped")
    merged = {k: overrides.get(k, v) for k, v in defaults.items()}
    merged = {k: v for k, v in merged.items() if v}
    names = list(merged.values())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{crm} field map: CRM field name(s) {dupes} used for more than one row field")
    return merged


def salesforce_format(field_map: Mapping[str, str] | None = None) -> CrmFormat:
    """The Salesforce Bulk API 2.0 upsert format, with field API names overridable."""
    return CrmFormat("salesforce", _merge(SALESFORCE_FIELDS, field_map, "salesforce"), "\r\n", "#N/A", 100.0, 2)


def hubspot_format(field_map: Mapping[str, str] | None = None) -> CrmFormat:
    """The HubSpot company-import format, with property internal names overridable."""
    return CrmFormat("hubspot", _merge(HUBSPOT_FIELDS, field_map, "hubspot"), "\n", "", 1.0, 4)


def _format_number(values: pd.Series, decimals: int, scale: float = 1.0) -> pd.Series:
    """Fixed-point text without thousands separators or exponents; null stays null."""
    numbers = pd.to_numeric(values).astype("float64") * scale
    text = numbers.round(decimals).map(lambda v: f"{v:.{decimals}f}", na_action="ignore")
    return text.astype("string")


def format_rows(rows: pd.DataFrame, fmt: CrmFormat) -> pd.DataFrame:
    """CRM rows as text in the CRM's formats, columns renamed to CRM field names (nulls still null)."""
    out = {}
    for field, crm_name in fmt.fields.items():
        kind, values = ROW_FIELDS[field], rows[field]
        if kind == "probability":
            out[crm_name] = _format_number(values, fmt.probability_decimals, fmt.probability_scale)
        elif kind in DECIMALS:
            out[crm_name] = _format_number(values, DECIMALS[kind])
        elif kind == "date":
            out[crm_name] = values.dt.strftime("%Y-%m-%d").astype("string")
        elif kind == "datetime":
            out[crm_name] = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")
        elif pd.api.types.is_bool_dtype(values):
            out[crm_name] = values.map({True: "true", False: "false"}).astype("string")
        else:
            out[crm_name] = values.astype("string")
    return pd.DataFrame(out, index=rows.index)


def parse_rows(text: pd.DataFrame, fmt: CrmFormat) -> pd.DataFrame:
    """CRM file columns (row field names, text as written) back to row values: numbers, 0-1 probabilities, nulls."""
    out = text.replace(fmt.null_value or "", pd.NA)
    for field in out.columns:
        kind = ROW_FIELDS.get(field)
        if kind == "probability":
            out[field] = pd.to_numeric(out[field]) / fmt.probability_scale
        elif kind in DECIMALS:
            out[field] = pd.to_numeric(out[field])
    return out


class CrmFileSink(FileSink):
    """``salesforce:PATH`` / ``hubspot:PATH``: one import file per run, replaced atomically."""

    def __init__(self, path: Path, fmt: CrmFormat) -> None:
        super().__init__(path)
        self.format = fmt
        self.uri = f"{fmt.name}:{path}"

    def _columns(self) -> list[str]:
        """The row fields the file holds (its header speaks CRM names)."""
        header = set(pd.read_csv(self.path, nrows=0).columns)
        return [field for field, name in self.format.fields.items() if name in header]

    def _read_previous(self, columns: list[str]) -> pd.DataFrame:
        names = {field: self.format.fields[field] for field in columns}
        text = pd.read_csv(self.path, usecols=list(names.values()), dtype="string", keep_default_na=False,
                           encoding="utf-8")
        return parse_rows(text.rename(columns={v: k for k, v in names.items()}), self.format)

    def _write(self, tmp: Path, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        written = 0
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                self._write_chunk(out, format_rows(to_rows(chunk, run), self.format), header=written == 0)
                written += len(chunk)
            if written == 0:
                self._write_chunk(out, format_rows(to_rows(empty_score_frame(), run), self.format), header=True)
        return written

    def _write_chunk(self, out, text: pd.DataFrame, *, header: bool) -> None:  # noqa: ANN001 - a text file
        text.to_csv(
            out, header=header, index=False, na_rep=self.format.null_value, lineterminator=self.format.line_terminator
        )
