"""Child processes that never outlive their owner.

Every child runs in its own session (so its process group id is its pid and a signal to the
group also reaches anything it forked), writes stdout and stderr to a log file, and is stopped
by TERM, a bounded wait, then KILL. Three nets catch what a ``finally`` block misses:

- an ``atexit`` hook stops every child this process still owns (normal exit, uncaught errors);
- SIGTERM to the owner becomes ``KeyboardInterrupt`` (pytest then tears fixtures down),
  installed only when nobody else handles SIGTERM;
- ``PR_SET_PDEATHSIG`` makes the kernel SIGKILL an attached child when its parent dies even by
  SIGKILL, so a killed pytest leaves no kube-apiserver behind.

Detached children (``make testbed``) skip the last two: they must survive the launcher, and
``python -m e2e.testbed down`` stops them from their recorded pid and start time.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1

# Children this interpreter started attached, stopped by the atexit hook if still running.
_OWNED: dict[int, Child] = {}
_OWNED_LOCK = threading.Lock()


@dataclasses.dataclass
class Child:
    """A started child: enough to find it again (pid + start time) and to read its log."""

    name: str
    pid: int
    start_ticks: str
    log: Path
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return is_same_process(self.pid, self.start_ticks)

    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "startTicks": self.start_ticks,
            "log": str(self.log),
            "argv": self.argv,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Child:
        return cls(
            name=str(record["name"]),
            pid=int(record["pid"]),
            start_ticks=str(record["startTicks"]),
            log=Path(record["log"]),
            argv=[str(a) for a in record.get("argv", [])],
        )


def start_ticks(pid: int) -> str:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat).

    A pid plus its start time names one process for good: a recycled pid has a later start.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19]


def is_same_process(pid: int, ticks: str) -> bool:
    """True while the process that had this pid and start time is alive (zombies count as gone)."""
    if not ticks or start_ticks(pid) != ticks:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _die_with_parent(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``argv`` made to receive SIGKILL when this thread dies; the setting survives exec.

    util-linux's ``setpriv`` sets it and execs the command, which is safe however many
    threads this process runs; a ``preexec_fn`` (the fallback) runs Python between fork and
    exec, which the subprocess docs warn can deadlock when other threads exist.
    """
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "KILL", "--", *argv], None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return argv, preexec


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    attached: bool = True,
) -> Child:
    """Start ``argv`` in a new session with output appended to ``log``.

    ``attached=True`` ties the child to this interpreter (atexit, SIGTERM, parent-death
    signal). The parent-death signal fires when the *thread* that forked exits, so it is only
    set when spawning from the main thread; other threads still get the atexit net.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    command, preexec = list(argv), None
    if attached and threading.current_thread() is threading.main_thread():
        command, preexec = _die_with_parent(command)
        _forward_sigterm()
    with log.open("ab") as out:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )
    child = Child(
        name=name,
        pid=popen.pid,
        start_ticks=start_ticks(popen.pid),
        log=log,
        argv=list(argv),
        popen=popen,
    )
    if attached:
        with _OWNED_LOCK:
            _OWNED[child.pid] = child
    return child


def stop(child: Child, *, timeout: float = 10.0) -> None:
    """TERM the child's process group, wait up to ``timeout`` seconds, then KILL it."""
    try:
        if child.running():
            _signal_group(child, signal.SIGTERM)
            if not _wait(child, timeout):
                _signal_group(child, signal.SIGKILL)
                _wait(child, 5.0)
    finally:
        with _OWNED_LOCK:
            _OWNED.pop(child.pid, None)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    # The child is its own session and group leader, so pgid == pid. Re-check identity right
    # before signalling a recorded (not owned) pid, in case it was recycled meanwhile.
    if child.popen is None and not is_same_process(child.pid, child.start_ticks):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def _wait(child: Child, timeout: float) -> bool:
    if child.popen is not None:
        try:
            child.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_same_process(child.pid, child.start_ticks):
            return True
        time.sleep(0.1)
    return not is_same_process(child.pid, child.start_ticks)


def stop_all_owned() -> None:
    """Stop every attached child still running, newest first (the apiserver before etcd)."""
    with _OWNED_LOCK:
        children = list(_OWNED.values())
    for child in reversed(children):
        stop(child, timeout=5.0)


atexit.register(stop_all_owned)

_sigterm_installed = False


def _forward_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks and fixture teardown run."""
    global _sigterm_installed
    if _sigterm_installed or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    _sigterm_installed = True
