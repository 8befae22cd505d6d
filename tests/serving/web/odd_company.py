"""A generated company whose ids, names and owners hold everything a CRM text field may: quotes, angle
brackets, ampersands, backslashes, slashes, unicode, spreadsheet formulas and 200-character strings;
a quarter of its accounts have no owner. Built by rewriting a generated company's tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Pieces an id or name is made of, cycled over the accounts; each is a known way in for markup.
ODD = [
    '"><img src=x onerror=alert(1)>',
    "<meta http-equiv=refresh content=\"0;url=http://evil.example/\">",
    "<script>alert('x')</script>",
    "a&b&amp;c \\ back\\slash",
    "../path/with/slashes/",
    "O'Brien \"quoted\" & sons",
    "ünïcødé 名前 émoji 🚀",
    "=HYPERLINK(\"http://evil.example\",\"x\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "regex (.*)[\\d]+ $1 \\1 \\g<0>",
]
MARKERS = ("<img", "<meta http-equiv", "<script")


def odd_id(i: int) -> str:
    if i % 13 == 12:
        return (f"long-{i}-" + "x" * 200)[:200]
    return f"{ODD[i % len(ODD)]}#{i}"


def odd_name(i: int) -> str:
    if i % 11 == 10:
        return (f"Very long name {i} " + "ab" * 100)[:200]
    return f"{ODD[(i + 5) % len(ODD)]} Corp {i}"


def odd_owner(owner: object, i: int) -> object:
    if pd.isna(owner) or i % 4 == 3:
        return None
    return f"<b>{owner}</b> & \"co\"" if i % 2 else owner


def maps(account_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    ids = sorted(set(account_ids))
    return {a: odd_id(i) for i, a in enumerate(ids)}, {a: odd_name(i) for i, a in enumerate(ids)}


def rewrite_company(src: Path, dst: Path, ids: dict[str, str], names: dict[str, str]) -> dict[str, object]:
    """Copy ``src``'s tables into ``dst`` with ids, names and owners rewritten; returns the owner of each new id."""
    dst.mkdir(parents=True, exist_ok=True)
    owners: dict[str, object] = {}
    for path in sorted(src.glob("*.parquet")):
        frame = pd.read_parquet(path)
        if "account_id" in frame.columns:
            frame["account_id"] = frame["account_id"].astype(str).map(ids)
        if path.stem == "accounts":
            order = {new: i for i, new in enumerate(sorted(ids.values()))}
            back = {v: k for k, v in ids.items()}
            frame["name"] = [names[back[a]] for a in frame["account_id"]]
            frame["csm_owner"] = [odd_owner(o, order[a]) for o, a in zip(frame["csm_owner"], frame["account_id"],
                                                                         strict=True)]
            frame["csm_owner"] = frame["csm_owner"].astype("string")
            owners = dict(zip(frame["account_id"], frame["csm_owner"], strict=True))
        frame.to_parquet(dst / path.name)
    return owners


def rewrite_features(frame: pd.DataFrame, ids: dict[str, str], owners: dict[str, object]) -> pd.DataFrame:
    out = frame.copy()
    out["account_id"] = out["account_id"].astype(str).map(ids)
    out["csm_owner"] = pd.Series([owners.get(a) for a in out["account_id"]], index=out.index, dtype="string")
    return out
