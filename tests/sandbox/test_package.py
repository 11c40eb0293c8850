"""``rotator.sandbox`` explains itself where it is not installed, and ``rotator demo`` relays it.

The production-wheel side (the package absent but for its ``__init__``) is e2e/test_wheel.py;
here, the other way in: a source checkout installed without the ``sandbox`` extra.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import rotator.sandbox
from rotator import cli


def test_without_the_extras_dependencies_the_import_names_the_extra() -> None:
    # trustme stands for the extra's dependencies: None in sys.modules makes its import fail.
    code = "import sys; sys.modules['trustme'] = None; import rotator.sandbox"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: rotator.sandbox")
    assert "rotator[sandbox]" in last and "pip install -e '.[sandbox]'" in last


def test_demo_exists_without_the_sandbox_and_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the module were absent, even when another test imported it already.
    monkeypatch.setitem(sys.modules, "rotator.sandbox.demo", None)
    monkeypatch.delattr(rotator.sandbox, "demo", raising=False)
    args = cli.build_parser().parse_args(["demo"])
    err = io.StringIO()
    assert cli._demo(args, err) == 2
    assert err.getvalue().startswith("rotator demo: ")
