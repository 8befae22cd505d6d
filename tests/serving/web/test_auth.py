"""Tokens and session ids: random, stored only as hashes, compared in constant time."""

from __future__ import annotations

from serving.web.auth import Session, hash_token, new_token, same


def test_tokens_are_random_and_compared_in_constant_time() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40 and hash_token(a) != hash_token(b) and len(hash_token(a)) == 64
    assert same(a, a) and not same(a, b) and not same(None, None) and not same("", "")


def test_only_a_leader_session_is_a_leader() -> None:
    assert Session("Lee", "leader", None, 1.0, "c").is_leader and not Session("Casey", "csm", "x", 1.0, "c").is_leader
