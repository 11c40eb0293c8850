"""``python -m e2e.testbed up|down|status``: the testbed in the background, by hand.

``up`` starts the control plane and, once ``rotator.sandbox`` has a ``__main__``, the
emulator stack (``python -m rotator.sandbox serve --env-file ...``), all detached, records
their pids in ``.testbed/state.json`` and writes ``.testbed/env``: a sourceable file with
KUBECONFIG (admin), ROTATOR_OPERATOR_KUBECONFIG, KUBECACHEDIR and every variable the
emulator stack publishes. ``down`` stops whatever ``state.json`` records; running it twice is
harmless. Logs stay in ``.testbed/`` until the next ``up``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

from e2e.testbed import controlplane, envfiles, processes

DEFAULT_DIR = controlplane.REPO / ".testbed"
SANDBOX_MODULE = "rotator.sandbox"
SANDBOX_TIMEOUT = float(os.environ.get("ROTATOR_TESTBED_SANDBOX_TIMEOUT", "60"))


def _state_path(folder: Path) -> Path:
    return folder / "state.json"


def _load_children(folder: Path) -> list[processes.Child]:
    path = _state_path(folder)
    if not path.exists():
        return []
    records = json.loads(path.read_text()).get("children", [])
    return [processes.Child.from_record(r) for r in records]


def _save_children(folder: Path, children: list[processes.Child]) -> None:
    tmp = _state_path(folder).with_suffix(".tmp")
    tmp.write_text(json.dumps({"children": [c.record() for c in children]}, indent=2) + "\n")
    tmp.replace(_state_path(folder))


def _sandbox_available() -> bool:
    try:
        return importlib.util.find_spec(f"{SANDBOX_MODULE}.__main__") is not None
    except ImportError:
        return False


def _wait_for_env_file(path: Path, child: processes.Child, timeout: float) -> dict[str, str]:
    """The emulator stack's variables once its env file exists and stopped changing."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        if not child.running():
            raise RuntimeError(
                f"the emulator stack exited before writing {path}; log {child.log}:\n"
                f"{child.log_tail()}"
            )
        text = path.read_text() if path.exists() else ""
        if text and text == previous:
            return envfiles.parse(text)
        previous = text
        time.sleep(0.2)
    raise RuntimeError(
        f"the emulator stack wrote no {path} within {timeout:.0f}s; log {child.log}:\n"
        f"{child.log_tail()}"
    )


def up(folder: Path) -> int:
    running = [c for c in _load_children(folder) if c.running()]
    if running:
        print(f"testbed already up ({', '.join(f'{c.name} pid {c.pid}' for c in running)}).")
        print(f"  source {folder / 'env'}   # or `make testbed-down` first")
        return 0
    began = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    children: list[processes.Child] = []
    plane = controlplane.ControlPlane(folder / "controlplane", attached=False)
    try:
        plane.start()
        children.extend(plane.children)
        _save_children(folder, children)
        variables = plane.env()
        if _sandbox_available():
            sandbox_env = folder / "sandbox.env"
            sandbox = processes.spawn(
                "sandbox",
                [
                    sys.executable,
                    "-m",
                    SANDBOX_MODULE,
                    "serve",
                    "--dir",
                    str(folder / "sandbox"),
                    "--env-file",
                    str(sandbox_env),
                ],
                log=folder / "logs" / "sandbox.log",
                cwd=controlplane.REPO,
                attached=False,
            )
            children.append(sandbox)
            _save_children(folder, children)
            variables.update(_wait_for_env_file(sandbox_env, sandbox, SANDBOX_TIMEOUT))
        else:
            print(
                f"note: {SANDBOX_MODULE}.__main__ is not importable yet: "
                "control plane only, no emulators"
            )
    except (Exception, KeyboardInterrupt) as error:
        for child in reversed(children or plane.children):
            processes.stop(child)
        _state_path(folder).unlink(missing_ok=True)
        print(f"testbed failed to start: {error}\nlogs kept in {folder}", file=sys.stderr)
        return 1
    envfiles.write(
        folder / "env",
        variables,
        header="rotator testbed: `source` this file; written by python -m e2e.testbed up",
    )
    print(f"testbed up in {time.monotonic() - began:.1f}s:")
    print(f"  kube-apiserver {plane.url}  (etcd {plane.etcd_url})")
    for child in children:
        print(f"  {child.name:<15} pid {child.pid:<8} log {child.log}")
    print(f"  admin kubeconfig    {plane.admin_kubeconfig}  (user {plane.admin.user})")
    print(f"  operator kubeconfig {plane.operator_kubeconfig}  (user {plane.operator.user})")
    print(f"then: source {folder / 'env'}   and later: make testbed-down")
    return 0


def down(folder: Path) -> int:
    children = _load_children(folder)
    if not children:
        print(f"testbed: nothing recorded in {folder}, nothing to stop")
    for child in reversed(children):
        if child.running():
            processes.stop(child)
            print(f"stopped {child.name} (pid {child.pid})")
        else:
            print(f"{child.name} (pid {child.pid}) was not running")
    _state_path(folder).unlink(missing_ok=True)
    (folder / "env").unlink(missing_ok=True)
    return 0


def status(folder: Path) -> int:
    children = _load_children(folder)
    for child in children:
        state = "running" if child.running() else "stopped"
        print(f"{child.name:<15} pid {child.pid:<8} {state:<8} log {child.log}")
    if not children:
        print("testbed is down")
    return 0 if children and all(c.running() for c in children) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state and logs folder")
    args = parser.parse_args(argv)
    folder = args.dir.resolve()
    try:
        command = {"up": up, "down": down, "status": status}[args.command]
        return command(folder)
    except controlplane.BinariesMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
