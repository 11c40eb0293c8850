"""Lint of the Dockerfile (there is no Docker engine here to build it), with the official parser."""

from __future__ import annotations

import pathlib

import dockerfile

ROOT = pathlib.Path(__file__).parents[1]
COMMANDS = dockerfile.parse_file(str(ROOT / "Dockerfile"))


def _all(cmd: str) -> list[dockerfile.Command]:
    return [c for c in COMMANDS if c.cmd.upper() == cmd]


def test_base_images_are_pinned_to_a_patch_release() -> None:
    for command in _all("FROM"):
        image = command.value[0]
        assert ":" in image, f"{image} has no tag"
        tag = image.split(":", 1)[1]
        assert tag != "latest" and tag.count(".") >= 2, f"{image} is not pinned to a patch release"


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


def test_installs_the_pinned_dependency_set() -> None:
    build = " ".join(" ".join(c.value) for c in _all("RUN"))
    assert "-c constraints.txt" in build
    copied = " ".join(" ".join(c.value) for c in _all("COPY"))
    assert "constraints.txt" in copied and "pyproject.toml" in copied


def test_entrypoint_is_the_console_script() -> None:
    (entrypoint,) = _all("ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ("rotator",)
