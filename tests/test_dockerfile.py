"""Lint of the Dockerfile with the official parser (e2e/test_image.py builds and runs it)."""

from __future__ import annotations

import pathlib
import re

import dockerfile

ROOT = pathlib.Path(__file__).parents[1]
COMMANDS = dockerfile.parse_file(str(ROOT / "Dockerfile"))


def _all(cmd: str) -> list[dockerfile.Command]:
    return [c for c in COMMANDS if c.cmd.upper() == cmd]


def _final_stage() -> list[dockerfile.Command]:
    last_from = max(i for i, c in enumerate(COMMANDS) if c.cmd.upper() == "FROM")
    return list(COMMANDS[last_from:])


def test_the_default_base_is_pinned_to_a_patch_release_and_a_digest() -> None:
    (arg,) = [c for c in _all("ARG") if c.value[0].startswith("BASE_IMAGE=")]
    image = arg.value[0].removeprefix("BASE_IMAGE=")
    name, _, digest = image.partition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{image} is not pinned by digest"
    tag = name.split(":", 1)[1]
    assert re.match(r"3\.11\.\d+-slim-bookworm$", tag), f"{image}: not a patch release of 3.11"


def test_every_stage_builds_on_the_base_argument() -> None:
    # One knob: image/build.sh swaps the base (a local one where Docker Hub is out of reach).
    for command in _all("FROM"):
        assert command.value[0] == "${BASE_IMAGE}", command.original


def test_runs_as_a_numeric_non_root_user() -> None:
    users = _all("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].value[0].split(":")[0]
    assert user.isdigit() and int(user) != 0


def test_no_add_and_no_pip_cache() -> None:
    assert not _all("ADD"), "use COPY: ADD fetches URLs and unpacks archives implicitly"
    for run in _all("RUN"):
        text = " ".join(run.value)
        if "pip install" in text or "pip wheel" in text:
            assert "--no-cache-dir" in text, run.original


def test_the_runtime_has_no_installer_and_no_sandbox() -> None:
    final = " ".join(" ".join(c.value) for c in _final_stage() if c.cmd.upper() == "RUN")
    assert "pip uninstall" in final and "setuptools" in final
    build = " ".join(" ".join(c.value) for c in _all("RUN"))
    assert "pip uninstall --yes pip setuptools" in build  # nor in the virtualenv copied over
    assert "[sandbox]" not in build and ".[" not in build  # the wheel without extras


def test_the_user_has_a_passwd_entry() -> None:
    # kopf names its identity after getpass.getuser(), which fails for a uid without one.
    uid = _all("USER")[-1].value[0].split(":")[0]
    final = " ".join(" ".join(c.value) for c in _final_stage() if c.cmd.upper() == "RUN")
    assert "useradd" in final and f"--uid {uid}" in final


def test_installs_the_pinned_dependency_set() -> None:
    build = " ".join(" ".join(c.value) for c in _all("RUN"))
    assert "-c constraints.txt" in build
    copied = " ".join(" ".join(c.value) for c in _all("COPY"))
    assert "constraints.txt" in copied and "pyproject.toml" in copied and "setup.py" in copied


def test_entrypoint_is_the_console_script() -> None:
    (entrypoint,) = _all("ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ("rotator",)
