"""The Helm chart ships exactly the CRDs in crds/ (one source of truth), nothing else."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]
SOURCE = sorted((ROOT / "crds").glob("*.yaml"))


def test_there_are_crds_to_ship() -> None:
    assert len(SOURCE) == 3


@pytest.mark.parametrize("crd", SOURCE, ids=[p.name for p in SOURCE])
def test_chart_copy_is_identical(crd: pathlib.Path) -> None:
    copy = ROOT / "charts" / "rotator" / "crds" / crd.name
    assert copy.exists(), f"run `make chart-crds`: {copy.name} is missing from the chart"
    assert copy.read_bytes() == crd.read_bytes(), f"run `make chart-crds`: {crd.name} differs"


def test_chart_ships_no_stale_crds() -> None:
    shipped = {p.name for p in (ROOT / "charts" / "rotator" / "crds").glob("*.yaml")}
    # No kopf peering CRDs: leader election uses a Lease, nothing shared cluster-wide.
    assert shipped == {p.name for p in SOURCE}
