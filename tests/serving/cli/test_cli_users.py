"""``expansion users``: a token printed once, only its hash stored, bad roles refused with exit 2."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from serving.cli import app


def test_users_add_prints_a_token_that_signs_in(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["users", "add", "Casey", "--role", "csm", "--csm-owner", "csm-1"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    from serving.web.store import WebStore

    store = WebStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.user_by_token(token)["csm_owner"] == "csm-1"
    with store.engine.connect() as conn:
        assert token not in str(conn.execute(sa.text("SELECT * FROM web_users")).all())
    store.close()
    listed = CliRunner().invoke(app, ["users", "list"])
    assert listed.output.split() == ["Casey", "csm", "csm-1"]  # never the token


def test_users_add_refuses_an_unknown_role(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["users", "add", "Ann", "--role", "admin"])
    assert result.exit_code == 2 and "role must be one of csm, leader" in result.output


def test_the_demo_ends_with_the_pages_url_and_a_token_that_signs_in(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from serving.cli.users import print_demo_sign_in
    from serving.web.store import WebStore

    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    token = print_demo_sign_in(tmp_path, tmp_path / "demo" / "data")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].strip() == "URL:   http://127.0.0.1:3000/ui/signin" and token in lines[-1]
    assert f"EXPANSION_DATA_DIR={tmp_path / 'demo' / 'data'}" in "\n".join(lines)
    store = WebStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.user_by_token(token)["role"] == "leader"
    store.close()
