"""Real error answers of Entra, Graph, Key Vault and Databricks, each with its public source.

Loaded by :func:`rows`; used by ``tests/core/test_failures.py`` (the table) and
``e2e/contract/test_failures_contract.py`` (every adapter, through the real SDKs).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
SERVICES = ("entra", "graph", "keyvault", "databricks")


def rows(service: str | None = None) -> list[dict[str, Any]]:
    """Every row (of one service), each with its ``service`` filled in."""
    found: list[dict[str, Any]] = []
    for name in SERVICES if service is None else (service,):
        data = json.loads((HERE / f"{name}.json").read_text())
        found.extend({**row, "service": name} for row in data["rows"])
    return found


def body_text(row: dict[str, Any]) -> str:
    """The body exactly as the service sent it."""
    return row["text"] if "text" in row else json.dumps(row["body"])


def header(row: dict[str, Any], name: str) -> str | None:
    for key, value in row.get("headers", {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None
