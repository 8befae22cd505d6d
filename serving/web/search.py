"""Find an account by part of its name, its id, or a domain-like prefix (``acme``, ``acme-corp.com``).

The index is built once per served snapshot: every account's lower-cased name, id and
"compact" name (letters and digits only) joined into one string, so a query is a handful of
``str.find`` calls over it rather than a Python loop over accounts (100,000 accounts answer
in milliseconds; ``benchmarks/bench_web.py`` measures it). Matches rank an exact id first, then
name prefixes (found by binary search over the sorted names), then word prefixes, then any other
match; ties by name.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_NOT_WORD = re.compile(r"[^0-9a-z]+")
MAX_SCANNED = 2_000  # a one-letter query matches most accounts: rank among the first ones found


def compact(text: str) -> str:
    return _NOT_WORD.sub("", text.lower())


def normalise(query: str) -> tuple[str, str]:
    """The query lower-cased, and its compact form with a web address's scheme, ``www.`` and suffix dropped."""
    q = " ".join(query.lower().replace("\t", " ").split())[:200]
    host = re.sub(r"^[a-z]+://", "", q).removeprefix("www.").split("/")[0]
    if "." in host and " " not in host:
        host = host.rsplit(".", 1)[0]  # acme-corp.com -> acme-corp
    return q, compact(host)


@dataclass
class SearchIndex:
    """Names and ids of every account: sorted for prefix look-ups, joined for substring scans."""

    ids: list[str]
    names: list[str]
    lower: list[str]
    blob: str
    starts: list[int]
    by_name: list[tuple[str, int]]  # (lower-cased name, row), sorted: name prefixes by binary search
    by_compact: list[tuple[str, int]]
    by_id: list[tuple[str, int]]

    @classmethod
    def build(cls, ids: list[str], names: dict[str, str]) -> SearchIndex:
        shown = [names.get(a) or a for a in ids]
        lower = [n.lower() for n in shown]
        compacts = [compact(n) for n in shown]
        lines = [f"{n}\t{a.lower()}\t{c}".replace("\n", " ") for a, n, c in zip(ids, lower, compacts, strict=True)]
        starts, position = [], 0
        for line in lines:
            starts.append(position)
            position += len(line) + 1
        return cls(ids, shown, lower, "\n".join(lines), starts, sorted(zip(lower, range(len(ids)))),
                   sorted(zip(compacts, range(len(ids)))), sorted(zip((a.lower() for a in ids), range(len(ids)))))

    def find(self, query: str, limit: int = 25) -> list[tuple[str, str]]:
        """Up to ``limit`` (account id, name) pairs matching ``query``, best first."""
        q, short = normalise(query)
        if not q:
            return []
        first: dict[int, None] = {}  # an exact id, then name prefixes (binary search), in name order
        for row in _prefixed(self.by_id, q, 1):
            if self.ids[row].lower() == q:
                first[row] = None
        for sorted_keys, key in ((self.by_name, q), (self.by_compact, short)):
            if key:
                first.update(dict.fromkeys(_prefixed(sorted_keys, key, limit)))
        found = list(first)[:limit]
        if len(found) < limit:  # then word prefixes and any other match, from a scan of the joined text
            hits: set[int] = set()
            for needle in {q, short} - {""}:
                position = self.blob.find(needle)
                while position != -1 and len(hits) < MAX_SCANNED:
                    row = bisect.bisect_right(self.starts, position) - 1
                    hits.add(row)
                    nxt = self.starts[row + 1] if row + 1 < len(self.starts) else len(self.blob)
                    position = self.blob.find(needle, nxt)
            rest = sorted(hits - set(first), key=lambda i: (not self._word_prefix(i, q), self.lower[i], self.ids[i]))
            found += rest[:limit - len(found)]
        return [(self.ids[i], self.names[i]) for i in found]

    def _word_prefix(self, row: int, q: str) -> bool:
        return self.ids[row].lower().startswith(q) or any(w.startswith(q) for w in self.lower[row].split())


def _prefixed(keys: list[tuple[str, int]], prefix: str, limit: int) -> list[int]:
    """Rows whose key starts with ``prefix`` (at most ``limit``), in key order."""
    out, i = [], bisect.bisect_left(keys, (prefix, -1))
    while i < len(keys) and len(out) < limit and keys[i][0].startswith(prefix):
        out.append(keys[i][1])
        i += 1
    return out
