"""Tests for rotator.core.reasons: every reason is a documented, unique CamelCase word."""

from __future__ import annotations

import inspect
import re

from rotator.core import reasons

_CONSTANT = re.compile(r'^([A-Z_]+): Final = (?:"([A-Za-z]+)"|([A-Z_]+))\s*(#\s*\S.*)?$')


def test_every_reason_is_camel_case_and_listed() -> None:
    constants = {
        name: value
        for name, value in vars(reasons).items()
        if name.isupper() and isinstance(value, str)
    }
    assert len(constants) >= 25
    for value in constants.values():
        assert re.fullmatch(r"[A-Z][a-zA-Z]+", value), value
        assert value in reasons.ALL
    assert set(constants.values()) == set(reasons.ALL)


def test_every_reason_has_a_one_line_comment() -> None:
    lines = [
        line
        for line in inspect.getsource(reasons).splitlines()
        if re.match(r"^[A-Z_]+: Final = ", line)
    ]
    assert lines
    for line in lines:
        match = _CONSTANT.match(line)
        assert match is not None, line
        if match.group(1) != "ALL":
            assert match.group(4), f"undocumented reason: {line}"
