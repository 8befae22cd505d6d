"""Lake URIs stay URIs on the command line: a remote one is never turned into a local path."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from serving.cli import app
from serving.cli.common import is_uri


@pytest.mark.parametrize("uri", ["s3a://lake/saas/", "gs://lake/saas", "abfss://c@acct.dfs.core.windows.net/saas"])
def test_a_remote_lake_uri_is_named_as_given_and_needs_spark(uri: str, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    for command in ("score", "retrain", "validate", "metrics", "backtest"):
        out = CliRunner().invoke(app, [command, "--data", uri])
        assert out.exit_code == 2, out.output
        assert uri in out.output.replace("\n", "") and "--engine spark" in out.output, command


def test_uri_detection_keeps_paths_paths() -> None:
    assert is_uri("s3a://lake/saas") and is_uri("file:///data/saas") and is_uri("abfss://c@a.dfs.core.windows.net/x")
    assert not is_uri("/data/saas") and not is_uri("data/saas") and not is_uri("C:/data")


def test_train_names_a_missing_partitioned_folder_or_uri(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    out = CliRunner().invoke(app, ["train", "--features", f"file://{tmp_path}/lake/features"])
    assert out.exit_code == 2 and "lake/features" in out.output
