"""Run the real kubectl against the testbed, as the admin or as the operator identity.

``Kubectl(kubeconfig, cache_dir)("get", "ns")`` returns a ``CompletedProcess[str]``; with
``check=True`` (the default) a non-zero exit raises ``KubectlError``, whose message carries
the command, exit code, stdout and stderr (kubectl's reasons are on stderr, and a plain
``CalledProcessError`` would hide them from the test report).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

KUBECTL = os.environ.get("ROTATOR_KUBECTL") or shutil.which("kubectl") or "kubectl"


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; str() shows its output."""

    def __str__(self) -> str:
        return (
            f"kubectl {' '.join(self.cmd[1:])} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )


@dataclasses.dataclass(frozen=True)
class Kubectl:
    """A kubectl bound to one kubeconfig (and a private discovery cache)."""

    kubeconfig: Path
    cache_dir: Path | None = None
    timeout: float = 60.0

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        if self.cache_dir is not None:
            env["KUBECACHEDIR"] = str(self.cache_dir)
        cmd = [KUBECTL, *args]
        done = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout or self.timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, cmd, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        """``kubectl <args> -o json``, parsed."""
        return json.loads(self(*args, "-o", "json").stdout)
