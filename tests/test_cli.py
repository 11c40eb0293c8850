"""The command line: flags map onto the configuration; status prints; rotate annotates."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

import pytest

from rotator import cli

NOW = dt.datetime(2026, 11, 26, 5, 0, 0, tzinfo=dt.UTC)


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: rotator" in capsys.readouterr().out


def test_run_flags_become_the_config_the_chart_passes() -> None:
    # The flags charts/rotator/templates/deployment.yaml renders.
    args = cli.build_parser().parse_args(
        [
            "run",
            "--namespace=a",
            "--namespace=b",
            "--leader-elect",
            "--leader-election-id=r-leader",
            "--leader-election-namespace=rotator-system",
            "--leader-election-lease-duration=15s",
            "--leader-election-renew-deadline=10s",
            "--leader-election-retry-period=2s",
            "--liveness=http://0.0.0.0:8080/healthz",
            "--metrics-port=9090",
            "--log-level=INFO",
            "--log-format=json",
            "--event-level=info",
            "--max-concurrent-rotations=8",
            "--graph-writes-per-second=2",
            "--drift-check-interval=1h",
            "--max-rotations-per-hour=6",
            "--no-enforce-policies",
        ]
    )
    config = cli.config_from_args(args)
    assert config.namespaces == ("a", "b") and not config.clusterwide
    assert config.leader_elect and not config.standalone
    assert config.leader_election_id == "r-leader"
    assert config.leader_election_namespace == "rotator-system"
    assert config.election_timing().renew_deadline == dt.timedelta(seconds=10)
    assert config.liveness == "http://0.0.0.0:8080/healthz"
    assert config.log_format == "json"
    assert config.drift_check_interval == dt.timedelta(hours=1)
    assert config.enforce_policies is False
    assert config.graph_writes_per_second == 2.0
    assert config.max_rotations_per_hour == 6


def test_run_defaults_are_standalone_and_enforcing() -> None:
    config = cli.config_from_args(cli.build_parser().parse_args(["run", "-A"]))
    assert config.clusterwide and config.standalone and config.enforce_policies
    assert config.max_rotations_per_hour == 6


def test_run_max_rotations_per_hour_is_bounded() -> None:
    args = cli.build_parser().parse_args(["run", "-A", "--max-rotations-per-hour=2"])
    assert cli.config_from_args(args).max_rotations_per_hour == 2
    for bad in ("0", "101"):
        args = cli.build_parser().parse_args(["run", "-A", f"--max-rotations-per-hour={bad}"])
        with pytest.raises(ValueError, match="--max-rotations-per-hour"):
            cli.config_from_args(args)


def test_run_requires_a_watch_scope() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run"])


class FakeApi:
    def __init__(self, items: dict[str, list[Mapping[str, Any]]]) -> None:
        self.items = items
        self.patched: list[tuple[str, str, str, Mapping[str, str]]] = []

    def list(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        return [
            i for i in self.items.get(plural, []) if namespace in (None, i["metadata"]["namespace"])
        ]

    def patch_annotations(
        self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        self.patched.append((plural, namespace, name, annotations))


def sps(name: str, ready: str, reason: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-11-25T05:00:00Z"},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason}], **status},
    }


def test_status_prints_a_row_per_object_with_stalled_reason_first() -> None:
    api = FakeApi(
        {
            "serviceprincipalsecrets": [
                sps("b", "True", "Issued", current={"expiresAt": "2027-02-24T05:00:00Z"}),
                {
                    **sps("a", "False", "NeverIssued"),
                    "status": {
                        "conditions": [
                            {"type": "Ready", "status": "False", "reason": "NeverIssued"},
                            {
                                "type": "Stalled",
                                "status": "True",
                                "reason": "NotAuthorized",
                                "message": "no RotationPolicy applies",
                            },
                        ]
                    },
                },
            ],
            "databrickssecretbindings": [sps("c", "True", "Synced", syncedVersion="v9")],
        }
    )
    out = io.StringIO()
    assert cli.status(api, "ns", NOW, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["KIND", "NAMESPACE", "NAME", "READY"]
    assert lines[1].split()[:5] == ["sps", "ns", "a", "False", "NotAuthorized"]
    assert lines[2].split()[:6] == ["sps", "ns", "b", "True", "Issued", "2027-02-24T05:00:00Z"]
    assert lines[3].split()[:5] == ["dsb", "ns", "c", "True", "Synced"]
    assert lines[2].split()[7] == "1d"


def test_rotate_sets_a_new_annotation_value() -> None:
    api = FakeApi({})
    assert (
        cli.main(["rotate", "etl-sp", "-n", "data-eng"], api_factory=lambda: api, clock=lambda: NOW)
        == 0
    )
    [(plural, ns, name, annotations)] = api.patched
    assert (plural, ns, name) == ("serviceprincipalsecrets", "data-eng", "etl-sp")
    assert annotations == {"rotator.dev/rotate": "2026-11-26T05:00:00.000000Z"}
