"""Defence in depth: :mod:`rotator.core.models` rejects every manifest the CRDs reject.

The API server validates our kinds against ``crds/``; the operator re-checks the same rules
when it parses a spec, because a CRD can be older than the operator, installed without its
CEL rules, or bypassed. Every file in ``tests/manifests/invalid/`` (each written for one CRD
rule, with the API server's message on its first line) must therefore raise a
:class:`~rotator.core.errors.SpecError` from the matching model's ``from_body``, naming the
field the API server names; every manifest in ``tests/manifests/valid/`` and ``examples/``
must parse. A new invalid manifest is covered the moment it is added.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from rotator.core import errors, models

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "manifests" / "invalid").glob("*.yaml"))
VALID = sorted((ROOT / "tests" / "manifests" / "valid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

SPECS: dict[str, Any] = {
    "ServicePrincipalSecret": models.ServicePrincipalSecretSpec,
    "DatabricksSecretBinding": models.DatabricksSecretBindingSpec,
    "RotationPolicy": models.RotationPolicySpec,
}

# Invalid manifests the models may accept, each with the reason. Only rules about the shape of
# the Kubernetes object itself belong here (metadata.name, apiVersion, kind...): the models
# parse ``spec`` and never see those, and the API server checks them whatever CRD is
# installed. None of today's manifests needs an entry; a spec rule never does.
MODEL_CANNOT_CHECK: dict[str, str] = {}

# The field an API server message starts with: ``spec.jobs[0].env[1]: Duplicate value``.
_FIELD = re.compile(r"^# expect: (spec(?:\.[A-Za-z]+|\[\d+\])*)(?::| in body)")


def load(path: pathlib.Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 1, f"{path.name}: one object per file"
    body = documents[0]
    assert isinstance(body, dict)
    return body


def header(path: pathlib.Path) -> tuple[str, str]:
    """The ``# expect:`` and ``# rule:`` lines every invalid manifest starts with."""
    expect, rule = path.read_text().splitlines()[:2]
    assert expect.startswith("# expect: "), path.name
    assert rule.startswith("# rule: "), path.name
    return expect, rule


def related(a: str, b: str) -> bool:
    """Whether two field paths are the same field, or one contains the other."""
    return a == b or any(a.startswith(b + sep) or b.startswith(a + sep) for sep in ".[")


def test_there_are_manifests_to_check() -> None:
    assert len(INVALID) >= 80
    assert len(VALID) >= 5
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_models_reject_what_the_crds_reject(path: pathlib.Path) -> None:
    expect, rule = header(path)
    if path.name in MODEL_CANNOT_CHECK:
        pytest.skip(MODEL_CANNOT_CHECK[path.name])
    body = load(path)
    with pytest.raises(errors.SpecError) as caught:
        SPECS[body["kind"]].from_body(body)
    # Where the API server names the field, the model names the same one (or a part of it,
    # or the object around it when a model-level rule checks several fields together).
    named = _FIELD.match(expect)
    if named is not None:
        paths = [caught.value.path, *(p for p, _ in caught.value.also)]
        assert any(related(named.group(1), p) for p in paths), (rule, expect, str(caught.value))


def test_allow_list_names_only_manifests_the_models_still_accept() -> None:
    names = {path.name: path for path in INVALID}
    for name, reason in MODEL_CANNOT_CHECK.items():
        assert name in names, f"{name} is allow-listed but no longer exists"
        assert reason.strip(), f"{name}: say why the models cannot check it"
        body = load(names[name])
        try:
            SPECS[body["kind"]].from_body(body)
        except errors.SpecError:
            pytest.fail(f"{name}: the models reject it now; remove it from MODEL_CANNOT_CHECK")


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=lambda p: p.name)
def test_models_accept_what_the_crds_accept(path: pathlib.Path) -> None:
    body = load(path)
    spec = SPECS[body["kind"]].from_body(body)
    assert isinstance(spec, SPECS[body["kind"]])
