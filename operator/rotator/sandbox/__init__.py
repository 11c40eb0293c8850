"""Emulators of Entra, Graph, Key Vault and Databricks, and `rotator demo`: `make demo`, e2e.

Not production code: the production wheel and image ship this file alone (setup.py leaves the
rest of the package out), so importing the sandbox there fails here, with the way to get it,
rather than deep inside with a bare "No module named". The sandbox runs from a source checkout
installed with the ``sandbox`` extra, which brings its own dependencies (trustme's CA; PyJWT and
cryptography, which production also gets through msal): ``pip install -e '.[sandbox]'``.
"""

from __future__ import annotations

import pathlib

_HOW = (
    "rotator.sandbox (the emulators behind `rotator demo` and the e2e tests) is not part of "
    "this installation: it is the optional extra rotator[sandbox], installed from a source "
    "checkout with `pip install -e '.[sandbox]'` (as `make venv` does)"
)

if not (pathlib.Path(__file__).parent / "stack.py").is_file():
    raise ModuleNotFoundError(_HOW, name=__name__)
try:
    import trustme  # noqa: F401  (the extra's one dependency that production never has)
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(f"{_HOW} (missing: {exc.name})", name=__name__) from exc
