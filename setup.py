"""Build hook: the production wheel carries no sandbox (emulators, ``rotator demo``).

pyproject.toml holds all the metadata; this only filters what goes into a built wheel. Of
``rotator.sandbox`` the wheel keeps ``__init__.py`` alone, which raises a clear error naming the
``sandbox`` extra when imported. Editable installs (``pip install -e '.[sandbox]'``, what
``make venv`` does) put the source folder on the path, so dev, e2e and ``make demo`` see all of it.
"""

from __future__ import annotations

from setuptools import setup
from setuptools.command.build_py import build_py

SANDBOX = "rotator.sandbox"


class ProductionBuildPy(build_py):  # type: ignore[misc]
    """``build_py`` without the sandbox's modules (but with its explaining ``__init__``)."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules: list[tuple[str, str, str]] = super().find_package_modules(package, package_dir)
        if getattr(self, "editable_mode", False):
            return modules
        if package == SANDBOX or package.startswith(SANDBOX + "."):
            return [m for m in modules if (m[0], m[1]) == (SANDBOX, "__init__")]
        return modules


setup(cmdclass={"build_py": ProductionBuildPy})
