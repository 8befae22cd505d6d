"""Session cookies and tokens: signed, expiring, tamper-evident."""

from __future__ import annotations

from serving.web.auth import Session, decode_session, encode_session, hash_token, new_token, same


def test_a_session_round_trips_until_it_expires() -> None:
    session = Session("Casey", "csm", "csm-1", expires=1_000.0, csrf="c")
    cookie = encode_session(session, "k")
    assert decode_session(cookie, "k", now=999.0) == session
    assert decode_session(cookie, "k", now=1_000.0) is None  # expired
    assert decode_session(cookie, "other-key", now=0.0) is None


def test_a_tampered_or_forged_cookie_is_no_session() -> None:
    cookie = encode_session(Session("Casey", "csm", "csm-1", 1e12, "c"), "k")
    payload, signature = cookie.rsplit(".", 1)
    forged = encode_session(Session("Casey", "leader", None, 1e12, "c"), "k").rsplit(".", 1)[0]
    assert decode_session(f"{forged}.{signature}", "k", 0.0) is None  # a promoted role without the key
    assert decode_session(payload, "k", 0.0) is None and decode_session(None, "k", 0.0) is None
    assert decode_session("bm90IGpzb24=." + "0" * 64, "k", 0.0) is None


def test_tokens_are_random_and_compared_in_constant_time() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40 and hash_token(a) != hash_token(b) and len(hash_token(a)) == 64
    assert same(a, a) and not same(a, b) and not same(None, None) and not same("", "")
