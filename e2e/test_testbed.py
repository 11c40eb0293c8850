"""The testbed's own guarantees: it starts, it stops completely, and its helpers are right.

``make testbed`` / ``make testbed-down`` are run here as users run them (a subprocess of
``python -m e2e.testbed``), with their state in a temp folder so a developer's own testbed
in ``.testbed/`` is never touched. The pure helpers (env-file parsing, the apiserver's
defaulting algorithm the API tests rely on) are checked table-style.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.testbed import controlplane as cp
from e2e.testbed import envfiles, manifests, processes
from e2e.testbed.kubectl import Kubectl

pytestmark = pytest.mark.e2e


def _testbed(folder: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.testbed", command, "--dir", str(folder)],
        cwd=cp.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_writes_a_sourceable_env_and_down_leaves_no_process(
    tmp_path: Path, controlplane_binaries: tuple[Path, Path]
) -> None:
    folder = tmp_path / "testbed"
    env = dict(os.environ, ROTATOR_CONTROLPLANE_DIR=str(controlplane_binaries[0].parent))
    try:
        up = _testbed(folder, "up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        records = json.loads((folder / "state.json").read_text())["children"]
        children = [processes.Child.from_record(r) for r in records]
        assert {"etcd", "kube-apiserver"} <= {c.name for c in children}
        assert all(c.running() for c in children)

        # What `source .testbed/env` would export, as a shell really parses it.
        sourced = subprocess.run(
            ["bash", "-c", f"source {folder / 'env'} && env -0"],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        ).stdout
        exported = dict(item.split("=", 1) for item in sourced.split("\0") if "=" in item)
        assert exported == {**exported, **envfiles.read(folder / "env")}
        admin = Kubectl(Path(exported["KUBECONFIG"]), Path(exported["KUBECACHEDIR"]))
        operator = Kubectl(Path(exported["ROTATOR_OPERATOR_KUBECONFIG"]))
        assert "namespace/default" in admin("get", "namespaces", "-o", "name").stdout
        assert operator("auth", "whoami", "-o", "name", check=False).returncode == 0
        if any(c.name == "sandbox" for c in children):
            # The emulator stack's variables are merged in; its URLs are live.
            for name in ("ROTATOR_AUTHORITY_HOST", "ROTATOR_GRAPH_URL", "ROTATOR_CA_BUNDLE"):
                assert exported.get(name), name

        again = _testbed(folder, "up", env)
        assert again.returncode == 0
        assert "already up" in again.stdout
    finally:
        down = _testbed(folder, "down", env)
    assert down.returncode == 0, down.stderr
    assert all(not processes.is_same_process(c.pid, c.start_ticks) for c in children)
    assert not (folder / "env").exists()
    twice = _testbed(folder, "down", env)
    assert (twice.returncode, "nothing to stop" in twice.stdout) == (0, True)
    assert _testbed(folder, "status", env).returncode == 1


def test_start_retries_when_a_picked_port_is_taken(
    tmp_path: Path, controlplane_binaries: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = cp.free_ports
    calls: list[list[int]] = []

    def first_one_taken(count: int) -> list[int]:
        ports = real(count)
        if not calls:
            ports[0] = taken  # etcd's client port
        calls.append(ports)
        return ports

    monkeypatch.setattr(cp, "free_ports", first_one_taken)
    plane = cp.ControlPlane(tmp_path / "cp", binaries=controlplane_binaries)
    try:
        plane.start()
        assert len(calls) == 2
        assert plane.etcd_url != f"http://127.0.0.1:{taken}"
        assert "address already in use" in (plane.logs / "etcd.log").read_text()
        pids = [(c.pid, c.start_ticks) for c in plane.children]
    finally:
        plane.stop()
        squatter.close()
    assert all(not processes.is_same_process(pid, ticks) for pid, ticks in pids)


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    stubborn = processes.spawn(
        "stubborn", [sys.executable, "-c", code], log=tmp_path / "stubborn.log"
    )
    deadline = time.monotonic() + 10
    # The child prints once SIGTERM is ignored; before that a TERM would simply work.
    while not (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.stop(stubborn, timeout=0.5)
    assert stubborn.returncode() == -9


def test_children_die_with_a_killed_owner(tmp_path: Path) -> None:
    # An owner that spawns a child, reports it, and is then SIGKILLed: no teardown, no atexit.
    owner_code = (
        "import sys, time; from pathlib import Path; from e2e.testbed import processes; "
        f"c = processes.spawn('sleeper', ['sleep', '60'], log=Path({str(tmp_path)!r}) / 's.log'); "
        "print(c.pid, c.start_ticks, flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code], cwd=cp.REPO, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    pid, ticks = owner.stdout.readline().split()
    assert processes.is_same_process(int(pid), ticks)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while processes.is_same_process(int(pid), ticks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.is_same_process(int(pid), ticks)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("export A=1\nB='two words'\n", {"A": "1", "B": "two words"}),
        ('# comment\n\nexport C="x\'y"  # trailing\n', {"C": "x'y"}),
        ("export D=/a/b=c\n", {"D": "/a/b=c"}),
        ("not-an-assignment\n", {}),
    ],
)
def test_env_files_parse_like_a_shell(text: str, expected: dict[str, str]) -> None:
    assert envfiles.parse(text) == expected


def test_env_files_round_trip(tmp_path: Path) -> None:
    variables = {"X": "a b 'c' $HOME", "Y": ""}
    envfiles.write(tmp_path / "env", variables)
    assert envfiles.read(tmp_path / "env") == variables
    assert (tmp_path / "env").stat().st_mode & 0o077 == 0


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mode": {"type": "string", "default": "auto"},
        "verify": {
            "type": "object",
            "default": {},
            "properties": {"enabled": {"type": "boolean", "default": True}},
        },
        "maybe": {"type": "string", "nullable": True, "default": "d"},
        "jobs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"restart": {"type": "string", "default": "Never"}},
            },
        },
    },
}


@pytest.mark.parametrize(
    ("given", "defaulted"),
    [
        # A missing object with a default gets it, and then its own fields' defaults.
        ({}, {"mode": "auto", "verify": {"enabled": True}, "maybe": "d"}),
        # Present values win; null is kept where nullable.
        (
            {"mode": "m", "verify": {"enabled": False}, "maybe": None},
            {"mode": "m", "verify": {"enabled": False}, "maybe": None},
        ),
        # Array items are defaulted one by one.
        (
            {"jobs": [{}, {"restart": "IfRunning"}]},
            {
                "mode": "auto",
                "verify": {"enabled": True},
                "maybe": "d",
                "jobs": [{"restart": "Never"}, {"restart": "IfRunning"}],
            },
        ),
    ],
)
def test_defaulting_follows_the_apiserver_algorithm(
    given: dict[str, Any], defaulted: dict[str, Any]
) -> None:
    before = json.dumps(given, sort_keys=True)
    assert manifests.apply_defaults(given, SCHEMA) == defaulted
    assert json.dumps(given, sort_keys=True) == before, "the input must not be modified"


def test_defaulted_paths_name_what_defaulting_added() -> None:
    before = {"a": {"b": 1}, "l": [{}]}
    after = {"a": {"b": 1, "c": 2}, "d": 3, "l": [{"e": 4}]}
    assert manifests.defaulted_paths(before, after) == ["a.c", "d", "l[0].e"]
