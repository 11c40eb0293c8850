"""``rotator demo``: its preconditions, and that what it prints about the systems it shows
never includes a secret value (the end-to-end run itself is ``make demo``)."""

from __future__ import annotations

import argparse
import pathlib

import pytest

from rotator import cli
from rotator.sandbox import demo, stack


def args(**overrides: object) -> argparse.Namespace:
    parsed = cli.build_parser().parse_args(["demo"])
    for key, value in overrides.items():
        setattr(parsed, key, value)
    return parsed


def test_without_a_cluster_it_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert demo.main(args(kubeconfig=None)) == 2
    assert "make demo" in capsys.readouterr().err


def test_without_kubectl_it_stops_before_starting_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(demo.shutil, "which", lambda _name: None)
    assert demo.main(args(kubeconfig=str(tmp_path / "kubeconfig"))) == 2
    assert "kubectl" in capsys.readouterr().err


async def test_what_it_prints_about_graph_and_databricks_holds_no_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    async with stack.Stack.start(tmp_path) as running:
        shown = demo.Demo(args(kubeconfig=str(tmp_path / "kubeconfig")))
        shown.stack = running
        jobs = shown.seed_jobs()
        assert set(jobs) == {"nightly-etl", "stream"}
        assert shown.active_runs(jobs["stream"]), "the continuous job runs from creation"
        shown.show_graph()
        texts = [
            p.secret_text
            for tenant in running.directory.tenants.values()
            for kind in ("application", "servicePrincipal")
            for obj in tenant.collection(kind).values()  # type: ignore[arg-type]
            for p in obj.password_credentials
        ]
    out = capsys.readouterr().out
    assert "initial (not rotator's)" in out
    assert texts and not any(text in out for text in texts)
