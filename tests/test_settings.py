"""`rotator run` configuration: validation with the flag's name, and what kopf is told."""

from __future__ import annotations

import datetime as dt
import logging

import kopf
import pytest

from rotator import settings


def test_refuses_watching_nothing_or_everything_and_something() -> None:
    with pytest.raises(ValueError, match="--all-namespaces or --namespace"):
        settings.OperatorConfig()
    with pytest.raises(ValueError, match="not both"):
        settings.OperatorConfig(clusterwide=True, namespaces=("a",))


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("max_concurrent_rotations", 0, "--max-concurrent-rotations"),
        ("graph_writes_per_second", 0.0, "--graph-writes-per-second"),
        ("metrics_port", 70000, "--metrics-port"),
        ("event_level", "loud", "--event-level"),
        ("watch_client_timeout", 10.0, "--watch-client-timeout"),
        ("api_connections", 0, "--api-connections"),
        ("max_rotations_per_hour", 0, "--max-rotations-per-hour"),
        ("max_rotations_per_hour", 101, "--max-rotations-per-hour"),
    ],
)
def test_bad_values_name_their_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        settings.OperatorConfig(clusterwide=True, **{field: value})  # type: ignore[arg-type]


def test_configure_kopf_applies_persistence_timeouts_and_no_peering() -> None:
    config = settings.OperatorConfig(
        namespaces=("a",),
        standalone=False,
        leader_elect=True,
        event_level="warning",
        watch_server_timeout=120,
        watch_client_timeout=150.0,
        connect_timeout=7.0,
        request_timeout=20.0,
        max_workers=3,
    )
    ks = kopf.OperatorSettings()
    settings.configure_kopf(ks, config)
    assert ks.persistence.finalizer == "rotator.dev/finalizer"
    assert isinstance(ks.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert ks.persistence.progress_storage.prefix == "rotator.dev"
    assert isinstance(ks.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert ks.persistence.diffbase_storage.prefix == "rotator.dev"
    assert ks.posting.level == logging.WARNING
    assert (ks.watching.server_timeout, ks.watching.client_timeout) == (120, 150.0)
    assert isinstance(ks.watching.server_timeout, int)  # the API server rejects "120.0"
    assert ks.watching.connect_timeout == 7.0
    assert ks.networking.request_timeout == 20.0
    assert ks.peering.standalone  # the Lease elects who runs kopf; kopf never peers
    assert ks.execution.max_workers == 3


def test_parse_interval_uses_the_spec_grammar() -> None:
    assert settings.parse_interval("1h30m") == dt.timedelta(minutes=90)
