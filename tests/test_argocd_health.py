"""The Argo CD health check (deploy/argocd/health.lua), run in a real Lua interpreter."""

from __future__ import annotations

import pathlib
from typing import Any

import lupa
import pytest

SCRIPT = (pathlib.Path(__file__).parents[1] / "deploy" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    run = lua.eval(
        "function(obj, script) local f = load(script, 'health', 't', "
        "setmetatable({obj = obj}, {__index = _G})); return f() end"
    )
    result = run(to_lua(obj), SCRIPT)
    return str(result["status"]), str(result["message"])


def cond(type_: str, status: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": "R", "message": message}


def obj(
    generation: int = 2, observed: int | None = 2, *conditions: dict[str, str]
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)} if conditions else {}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"metadata": {"generation": 1}}, "Progressing"),
        (obj(2, 2, cond("Ready", "True", "secret abc is current")), "Healthy"),
        (obj(2, 1, cond("Ready", "True")), "Progressing"),
        (
            obj(2, 2, cond("Ready", "False", "x"), cond("Reconciling", "True", "rotating")),
            "Progressing",
        ),
        (
            obj(2, 2, cond("Ready", "False", "x"), cond("Stalled", "True", "no policy allows")),
            "Degraded",
        ),
        (obj(2, 1, cond("Stalled", "True", "bad spec")), "Degraded"),
        (obj(2, 2, cond("Ready", "False", "expired")), "Degraded"),
    ],
    ids=[
        "no-status",
        "ready",
        "stale-generation",
        "reconciling",
        "stalled",
        "stalled-stale",
        "not-ready",
    ],
)
def test_health_follows_conditions(resource: dict[str, Any], expected: str) -> None:
    assert health(resource)[0] == expected


def test_stalled_message_reaches_argo() -> None:
    status, message = health(obj(1, 1, cond("Stalled", "True", "no RotationPolicy allows it")))
    assert (status, message) == ("Degraded", "no RotationPolicy allows it")
