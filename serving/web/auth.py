"""Sign-in tokens, session ids and CSRF tokens for the pages (pure: no I/O, no clock).

A person's sign-in token is random (32 bytes, URL-safe) and only its SHA-256 is stored:
the token has full entropy, so a slow salted hash would add nothing against guessing.
The session cookie holds nothing but a random session id; the store keeps its SHA-256 with
who it belongs to, until when, and the CSRF token every form must send back
(:meth:`serving.web.store.WebStore.session`). Ending the stored row ends the session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ROLES = ("csm", "leader")
SESSION_COOKIE = "expansion_session"
SIGNIN_CSRF_COOKIE = "expansion_signin_csrf"


@dataclass(frozen=True)
class Session:
    """Who is signed in, their book, until when (Unix seconds), and the CSRF token of their forms."""

    name: str
    role: str
    csm_owner: str | None
    expires: float
    csrf: str

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


def new_token() -> str:
    """A fresh sign-in token or session id (shown once, never stored)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps of a token or session id."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens; False when either is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
