"""Find an account by part of its name, its id, or a domain-like prefix (``acme``, ``acme-corp.com``).

The index is built once per served snapshot: every account's lower-cased name, id and
"compact" name (letters and digits only) joined into one string, so a query is a handful of
``str.find`` calls over it rather than a Python loop over accounts (100,000 accounts answer
in a few milliseconds; ``benchmarks/bench_web.py`` measures it). Matches rank name prefixes
first, then word prefixes, then any other match; ties by name.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_NOT_WORD = re.compile(r"[^0-9a-z]+")
MAX_SCANNED = 5_000  # a one-letter query matches most accounts: rank among the first ones found


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
    """Names and ids of every account, searchable by substring."""

    ids: list[str]
    names: list[str]
    blob: str
    starts: list[int]

    @classmethod
    def build(cls, ids: list[str], names: dict[str, str]) -> SearchIndex:
        shown = [names.get(a) or a for a in ids]
        lines = [f"{n.lower()}\t{a.lower()}\t{compact(n)}".replace("\n", " ") for a, n in zip(ids, shown, strict=True)]
        starts, position = [], 0
        for line in lines:
            starts.append(position)
            position += len(line) + 1
        return cls(ids, shown, "\n".join(lines), starts)

    def find(self, query: str, limit: int = 25) -> list[tuple[str, str]]:
        """Up to ``limit`` (account id, name) pairs matching ``query``, best first."""
        q, short = normalise(query)
        if not q:
            return []
        hits: set[int] = set()
        for needle in {q, short} - {""}:
            position = self.blob.find(needle)
            while position != -1 and len(hits) < MAX_SCANNED:
                row = bisect.bisect_right(self.starts, position) - 1
                hits.add(row)
                nxt = self.starts[row + 1] if row + 1 < len(self.starts) else len(self.blob)
                position = self.blob.find(needle, nxt)
        ranked = sorted(hits, key=lambda i: (self._rank(i, q, short), self.names[i].lower(), self.ids[i]))
        return [(self.ids[i], self.names[i]) for i in ranked[:limit]]

    def _rank(self, row: int, q: str, short: str) -> int:
        name, account = self.names[row].lower(), self.ids[row].lower()
        if account == q or name.startswith(q) or (short and compact(name).startswith(short)):
            return 0
        if any(word.startswith(q) for word in name.split()) or account.startswith(q):
            return 1
        return 2
