"""The production wheel: ``pip install .`` (no extras) into a fresh virtualenv brings none of the
sandbox's dependencies, and the sandbox and ``rotator demo`` say which extra they need.

The wheel is built from a copy of the package sources (what the Dockerfile copies), its
dependencies are downloaded once into the user cache (``~/.cache/rotator/wheels``, from PyPI
with the pinned constraints), and the fresh virtualenv installs from there with ``--no-index``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.testbed import controlplane as cp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = cp.REPO
WHEELS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rotator" / "wheels"
SOURCES = ("pyproject.toml", "setup.py", "constraints.txt", "README.md")


def pip(python: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, no extras; its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "operator",
        src / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    dist = tmp / "dist"
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(dist), str(src))
    (wheel,) = dist.glob("rotator-*.whl")
    WHEELS.mkdir(parents=True, exist_ok=True)
    pip(sys.executable, "download", "--quiet", "-c", str(REPO / "constraints.txt"),
        "--find-links", str(WHEELS), "--dest", str(WHEELS), str(wheel))  # fmt: skip
    for stale in WHEELS.glob("rotator-*.whl"):  # pip download copies the wheel itself too
        stale.unlink()
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip(venv / "bin" / "python", "install", "--quiet", "--no-index",
        "--find-links", str(WHEELS), str(wheel))  # fmt: skip
    return venv / "bin"


def run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, cwd="/"
    )


def test_the_wheel_brings_no_sandbox_or_test_dependency(production: Path) -> None:
    listed = json.loads(pip(production / "python", "list", "--format=json").stdout)
    installed = {p["name"].lower() for p in listed}
    assert "rotator" in installed and "msgraph-sdk" in installed
    for name in ("trustme", "pytest", "hypothesis", "mypy", "ruff", "lupa", "dockerfile"):
        assert name not in installed, f"{name} came with the production wheel"
    # PyJWT and cryptography are there, but for msal (Entra tokens), not for the sandbox.
    shown = pip(production / "python", "show", "msal").stdout
    requires = next(line for line in shown.splitlines() if line.startswith("Requires:"))
    assert "PyJWT" in requires and "cryptography" in requires


def test_the_wheel_carries_no_emulator(production: Path) -> None:
    shown = pip(production / "python", "show", "--files", "rotator").stdout
    files = [line.strip() for line in shown.splitlines() if line.startswith("  rotator/")]
    assert "rotator/cli.py" in files
    sandbox = [f for f in files if f.startswith("rotator/sandbox/") and f.endswith(".py")]
    assert sandbox == ["rotator/sandbox/__init__.py"]  # the file that explains the extra
    assert not any(f.startswith("rotator/demo") for f in files)


def test_the_sandbox_and_the_demo_name_the_extra(production: Path) -> None:
    imported = run(production / "python", "-c", "import rotator.sandbox")
    assert imported.returncode == 1
    assert "ModuleNotFoundError" in imported.stderr and "rotator[sandbox]" in imported.stderr
    helped = run(production / "rotator", "--help")
    assert helped.returncode == 0 and "demo" in helped.stdout
    demo = run(production / "rotator", "demo")
    assert demo.returncode == 2
    assert demo.stderr.startswith("rotator demo: ") and "rotator[sandbox]" in demo.stderr
