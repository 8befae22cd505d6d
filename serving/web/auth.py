"""Sign-in tokens, signed session cookies and CSRF tokens for the pages (pure: no I/O, no clock).

A person's sign-in token is random (32 bytes, URL-safe) and only its SHA-256 is stored:
the token has full entropy, so a slow salted hash would add nothing against guessing.
The session cookie is ``base64(json).hmac-sha256``, signed with ``Settings.session_secret``;
it carries the person's name, role, CSM owner, an expiry and a CSRF token that every
form must send back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

ROLES = ("csm", "leader")
SESSION_COOKIE = "expansion_session"
SIGNIN_CSRF_COOKIE = "expansion_signin_csrf"


@dataclass(frozen=True)
class Session:
    """Who is signed in, until when (Unix seconds), the CSRF token of their forms, and which of their
    tokens signed them in (``token_id``: a new token from ``expansion users add`` ends older sessions)."""

    name: str
    role: str
    csm_owner: str | None
    expires: float
    csrf: str
    token_id: str = ""

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


def new_token() -> str:
    """A fresh sign-in token (shown once to the person, never stored)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def token_id(token_sha256: str) -> str:
    """What a session keeps of the token that opened it (a prefix of its hash: enough to tell tokens apart)."""
    return token_sha256[:16]


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens; False when either is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def _sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def encode_session(session: Session, secret: str) -> str:
    """The cookie value for ``session``."""
    payload = base64.urlsafe_b64encode(json.dumps(asdict(session), sort_keys=True).encode())
    return f"{payload.decode()}.{_sign(secret, payload)}"


def decode_session(value: str | None, secret: str, now: float) -> Session | None:
    """The session a cookie carries, or None when it is absent, tampered with, malformed or expired."""
    if not value or "." not in value:
        return None
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(secret, payload.encode())):
        return None
    try:
        session = Session(**json.loads(base64.urlsafe_b64decode(payload.encode())))
    except (ValueError, TypeError):
        return None
    if session.expires <= now or session.role not in ROLES:
        return None
    return session
