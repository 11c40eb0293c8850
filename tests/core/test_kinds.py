"""The API names in :mod:`rotator.core.kinds` are the ones the CRDs in ``crds/`` declare."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from rotator.core import kinds

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


def _crd(plural: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((CRDS / f"{kinds.GROUP}_{plural}.yaml").read_text())
    return found


@pytest.mark.parametrize("plural", [kinds.SPS, kinds.DSB, kinds.RPOL])
def test_each_plural_is_a_crd_of_our_group_serving_our_version(plural: str) -> None:
    crd = _crd(plural)
    assert crd["metadata"]["name"] == f"{plural}.{kinds.GROUP}"
    assert crd["spec"]["group"] == kinds.GROUP
    assert crd["spec"]["names"]["plural"] == plural
    served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
    assert kinds.VERSION in served
    assert f"{crd['spec']['group']}/{kinds.VERSION}" == kinds.API_VERSION


@pytest.mark.parametrize(("kind", "plural"), sorted(kinds.PLURALS.items()))
def test_the_kind_names_match_the_crds(kind: str, plural: str) -> None:
    assert _crd(plural)["spec"]["names"]["kind"] == kind


def test_every_crd_is_named_here() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(
        f"{kinds.GROUP}_{plural}.yaml" for plural in (kinds.SPS, kinds.DSB, kinds.RPOL)
    )


def test_index_names_are_distinct() -> None:
    names = [
        kinds.POLICY_INDEX,
        kinds.NAMESPACE_INDEX,
        kinds.CONSUMERS_INDEX,
        kinds.SECRETS_INDEX,
    ]
    assert len(set(names)) == len(names)
