"""Finding an account by part of its name, its id or a domain-like prefix, fast at 100,000 accounts."""

from __future__ import annotations

from serving.web.search import SearchIndex, normalise


def _index() -> SearchIndex:
    ids = ["ACC-1", "ACC-2", "ACC-3", "ACC-4", "x\\y/<z>"]
    names = {"ACC-1": "Acme Corp", "ACC-2": "Northwind Traders", "ACC-3": "The Acme-Corp Group",
             "ACC-4": "Zeta 名前 GmbH", "x\\y/<z>": "Odd & Co"}
    return SearchIndex.build(ids, names)


def test_name_prefixes_rank_before_other_matches() -> None:
    index = _index()
    assert [a for a, _ in index.find("acme")] == ["ACC-1", "ACC-3"]
    assert [a for a, _ in index.find("corp")] == ["ACC-1", "ACC-3"]  # a word prefix, then a substring
    assert index.find("wind") == [("ACC-2", "Northwind Traders")]
    assert index.find("名前") == [("ACC-4", "Zeta 名前 GmbH")]


def test_ids_and_domain_like_queries_match() -> None:
    index = _index()
    assert index.find("acc-2")[0] == ("ACC-2", "Northwind Traders")
    assert [a for a, _ in index.find("https://www.acme-corp.com/about")][:2] == ["ACC-1", "ACC-3"]
    assert index.find("x\\y/<z")[0][0] == "x\\y/<z>"
    assert index.find("") == [] and index.find("nothing-like-it") == []
    assert normalise("WWW.Acme-Corp.COM") == ("www.acme-corp.com", "acmecorp")
