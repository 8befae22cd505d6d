"""Helpers of the page tests: the service's environment, a fresh app, signing in through the form."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

API_KEY = "web-test-key-0123456789abcdef"


def serve_env(monkeypatch: pytest.MonkeyPatch, web: dict, **extra: str) -> None:
    """The service's settings for these tests (an API key too, so both kinds of auth are in force)."""
    monkeypatch.setenv("EXPANSION_HOME", str(web["home"]))
    monkeypatch.setenv("EXPANSION_SNAPSHOT_PATH", str(web["snapshot"]))
    monkeypatch.setenv("EXPANSION_MODEL_SOURCE", "none")
    monkeypatch.setenv("EXPANSION_PRECOMPUTE_REASONS", "false")
    monkeypatch.setenv("EXPANSION_DATA_DIR", str(web["data"]))
    monkeypatch.setenv("EXPANSION_API_KEY", API_KEY)
    monkeypatch.setenv("EXPANSION_EXPANSION_TARGET_ARR_QUARTER", "250000")
    monkeypatch.delenv("EXPANSION_INSECURE", raising=False)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def asgi_app() -> object:
    """A fresh ASGI app of the real service (BentoML registers request metrics once per process)."""
    from serving.scoring.bento_adapter import reset_request_metrics
    from serving.api.service import ExpansionScoring

    reset_request_metrics()
    return ExpansionScoring.to_asgi()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, token: str) -> None:
    """Sign in through the form, as a person does."""
    page = client.get("/ui/signin")
    answer = client.post("/ui/signin", data={"csrf": csrf_of(page.text), "token": token, "next": ""},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
