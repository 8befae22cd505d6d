"""What a caller may supply as a feature value: one rule per feature, derived from the registry and the contract.

A feature the service is given must be one the pipeline could have produced: a finite
number within the range its unit implies (a count is never negative, a share lies in
0-100, a score in its scale), or for a categorical feature a value of the contract's
allowed set. Rules are derived from each :class:`features.registry.FeatureSpec`'s unit,
window and kind and from :mod:`features.contract`, so a new feature gets its rule from the
declaration it already has. :func:`openapi_features` publishes the same rules in the
OpenAPI document, so clients can validate before sending.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from features import contract
from serving.scoring.reasons import is_change
from serving.api.schemas import json_objects

# Units counting things: what the pipeline produces is a count or a sum of non-negative amounts.
COUNT_UNITS = frozenset({"events", "users", "features", "products", "tickets", "meetings", "invoices",
                         "movements", "seats", "people", "hours", "months", "currency / year", "currency / month"})
# A utilisation above 10x the licence or quota is a unit error (a ratio sent as %, or cents), not usage.
MAX_UTILIZATION_PCT = 1000.0
# Bounds the unit does not carry, each derived from the contract column it comes from.
_FISCAL = contract.ACCOUNTS.column("fiscal_year_start_month")
_TIER = contract.PRODUCTS.column("tier_rank")
EXTRA_BOUNDS: dict[str, tuple[float | None, float | None, str]] = {
    "months_to_fiscal_year_start": (0.0, float(_FISCAL.max - _FISCAL.min), "months to a month of the year"),
    "plan_tier_rank": (_TIER.min, None, "a plan's tier_rank (1 = entry tier)"),
}
FREE_TEXT_MAX_LENGTH = 200
_SCALE = re.compile(r"^(?:score|ratio) (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
_DAYS_WINDOW = re.compile(r"^(\d+)d$")


@dataclass(frozen=True)
class FeatureRule:
    """The values one feature accepts: a number in [minimum, maximum] or a string of ``allowed``."""

    name: str
    kind: str  # "numeric" or "categorical"
    rule: str  # the rule in words, as an error and the OpenAPI document state it
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    integral: bool = False  # flags: only the listed whole numbers

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule, or None when it is acceptable (None = unknown is always fine)."""
        if value is None:
            return None
        if self.kind == "categorical":
            if not isinstance(value, str):
                return f"expected a string, got {type(value).__name__}"
            if self.allowed is not None and value not in self.allowed:
                return "not an allowed value"
            if self.allowed is None and not 0 < len(value) <= FREE_TEXT_MAX_LENGTH:
                return f"text must have 1 to {FREE_TEXT_MAX_LENGTH} characters"
            return None
        if isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
            return f"expected a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return "not a finite number"
        if self.minimum is not None and value < self.minimum:
            return f"below the minimum of {_num(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return f"above the maximum of {_num(self.maximum)}"
        if self.integral and value != int(value):
            return "not a whole number"
        return None

    def json_schema(self) -> dict[str, Any]:
        """The OpenAPI (JSON Schema) of one supplied value; null (unknown) is always allowed."""
        if self.kind == "categorical":
            value: dict[str, Any] = {"type": "string"}
            if self.allowed is not None:
                value["enum"] = list(self.allowed)
            else:
                value.update(minLength=1, maxLength=FREE_TEXT_MAX_LENGTH)
        else:
            value = {"type": "integer" if self.integral else "number"}
            if self.minimum is not None:
                value["minimum"] = self.minimum
            if self.maximum is not None:
                value["maximum"] = self.maximum
        return {"anyOf": [value, {"type": "null"}], "description": self.rule}


def rule_for(spec: Any, specs: Mapping[str, Any] | None = None) -> FeatureRule:
    """The rule of one registry feature, from its kind, unit and window (and the contract for categories)."""
    name, unit = spec.name, str(getattr(spec, "unit", "") or "")
    if getattr(spec, "kind", "numeric") == "categorical":
        allowed = _contract_allowed(name)
        if allowed is None:
            return FeatureRule(name, "categorical", f"free text (1-{FREE_TEXT_MAX_LENGTH} characters)")
        return FeatureRule(name, "categorical", f"one of {', '.join(allowed)}", allowed=allowed)
    if name in EXTRA_BOUNDS:
        lo, hi, what = EXTRA_BOUNDS[name]
        return _numeric(name, what, lo, hi)
    return _numeric_by_unit(spec, unit, specs or {})


def _numeric_by_unit(spec: Any, unit: str, specs: Mapping[str, Any]) -> FeatureRule:
    name, window = spec.name, str(getattr(spec, "window", "") or "")
    if (scale := _SCALE.match(unit)) is not None:
        return _numeric(name, unit, float(scale[1]), float(scale[2]))
    if unit == "flag 0/1":
        return FeatureRule(name, "numeric", "a flag: 0 or 1", 0.0, 1.0, integral=True)
    if unit == "%":
        if is_change(name, spec):  # a change of something non-negative cannot fall more than 100 %
            return _numeric(name, "a change in %", -100.0, None)
        if "utilization" in name:
            return _numeric(name, "a utilisation in % (over 100 when above the licence or quota)", 0.0,
                            MAX_UTILIZATION_PCT)
        return _numeric(name, "a share in %", 0.0, 100.0)
    if unit == "points" and (level := specs.get(name.replace("_change", "_latest"))) is not None:
        level_scale = _SCALE.match(str(level.unit))
        if level_scale is not None:  # the difference of two answers on the level's scale
            width = float(level_scale[2]) - float(level_scale[1])
            return _numeric(name, f"a change of {level.name} in points", -width, width)
    if unit == "days":
        days = _DAYS_WINDOW.match(window)
        return _numeric(name, f"days within a {window} window" if days else "days", 0.0,
                        float(days[1]) if days else None)
    if unit in COUNT_UNITS:
        what = f"an amount in {unit}" if unit.startswith("currency") else f"a count of {unit}"
        return _numeric(name, what, 0.0, None)
    return _numeric(name, f"a number ({unit or 'no unit'})", None, None)


def _numeric(name: str, what: str, lo: float | None, hi: float | None) -> FeatureRule:
    if lo is not None and hi is not None:
        bounds = f"from {_num(lo)} to {_num(hi)}"
    elif lo is not None:
        bounds = f"at least {_num(lo)}"
    elif hi is not None:
        bounds = f"at most {_num(hi)}"
    else:
        bounds = "any value"
    return FeatureRule(name, "numeric", f"{what}: a finite number, {bounds}", lo, hi)


def _contract_allowed(column: str) -> tuple[str, ...] | None:
    """The allowed set of the contract column of the same name (accounts first), None for free text."""
    for table in contract.TABLES.values():
        if column in table.column_names:
            return table.column(column).allowed
    return None


def _num(v: float) -> str:
    return f"{v:g}"


def feature_rules(specs: Mapping[str, Any], model_features: Iterable[tuple[str, bool]] = ()) -> dict[str, FeatureRule]:
    """A rule per feature a caller may supply: every registry feature, plus any model feature
    the registry lacks (``(name, categorical)``), which must be a finite number or a string."""
    rules = {name: rule_for(spec, specs) for name, spec in specs.items()}
    for name, categorical in model_features:
        if name not in rules:
            rules[name] = (FeatureRule(name, "categorical", "free text") if categorical
                           else _numeric(name, "a model feature", None, None))
    return rules


def json_value(value: Any) -> Any:
    """``value`` as JSON can carry it: a non-finite number becomes its name ("inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def check_features(features: Mapping[str, Any], rules: Mapping[str, FeatureRule]) -> list[tuple[str, Any, str]]:
    """Every (feature, value, rule broken) in one supplied feature dict; empty rules accept anything."""
    if not rules:
        return []
    problems = []
    for name, value in features.items():
        rule = rules.get(name)
        if rule is None:
            problems.append((name, value, "unknown feature: not in the feature registry"))
        elif (why := rule.problem(value)) is not None:
            problems.append((name, value, f"{why}; allowed: {rule.rule}"))
    return problems


#: Request fields bounded by the batch size limit, a runtime setting the request models cannot declare.
BATCH_FIELDS = {"accounts": "maxItems", "account_ids": "maxItems", "limit": "maximum"}


def openapi_features(spec: dict[str, Any], rules: Mapping[str, FeatureRule],
                     max_batch_size: int | None = None) -> dict[str, Any]:
    """The OpenAPI document with each request's ``features`` object listing every feature's allowed values,
    and, given ``max_batch_size``, the largest batch (``accounts``, ``account_ids``) and ``limit`` it accepts."""
    schema = {"type": "object", "additionalProperties": False,
              "description": "Feature values by registry name; left-out features are unknown (null).",
              "properties": {name: rule.json_schema() for name, rule in sorted(rules.items())}}
    for model in spec.get("components", {}).get("schemas", {}).values():
        _replace_features(model, schema)
        if max_batch_size is not None:
            _bound_batches(model, max_batch_size)
    return spec


def _bound_batches(model: Any, max_batch_size: int) -> None:
    """Set the batch size limit on a request model's batch fields (arrays get maxItems, ``limit`` a maximum)."""
    props = model.get("properties") if isinstance(model, dict) else None
    if not isinstance(props, dict):
        return
    for name, keyword in BATCH_FIELDS.items():
        field = props.get(name)
        if not isinstance(field, dict):
            continue
        for variant in [field, *field.get("anyOf", [])]:  # an optional field is anyOf [its type, null]
            if variant.get("type") == ("array" if keyword == "maxItems" else "integer"):
                variant[keyword] = max_batch_size


def _replace_features(node: Any, schema: dict[str, Any]) -> None:
    """Replace, wherever an AccountInput is declared (top level or nested $defs), its ``features`` property."""
    for found in json_objects(node):
        props = found.get("properties")
        if isinstance(props, dict) and "features" in props and "account_id" in props:
            props["features"] = {"anyOf": [schema, {"type": "null"}], "default": None,
                                 "description": schema["description"]}
