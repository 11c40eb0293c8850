"""Tests for rotator.core.sensitive: secret text never prints, hashes or pickles."""

from __future__ import annotations

import pickle

import pytest

from rotator.core import sensitive

_VALUE = "s3cr3t~Value.With-Chars"


@pytest.mark.parametrize(
    "render",
    [
        str,
        repr,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: "%s" % s,  # noqa: UP031
        lambda s: f"{s:>40}",
    ],
)
def test_secret_text_never_renders_its_value(render: object) -> None:
    secret = sensitive.SecretText(_VALUE)
    shown = render(secret)  # type: ignore[operator]
    assert _VALUE not in shown
    assert "***" in shown


def test_secret_text_reveal_and_constant_time_equality() -> None:
    secret = sensitive.SecretText(_VALUE)
    assert secret.reveal() == _VALUE
    assert secret == sensitive.SecretText(_VALUE)
    assert secret != sensitive.SecretText(_VALUE + "x")
    assert len(secret) == len(_VALUE)


def test_secret_text_is_not_hashable_or_picklable() -> None:
    secret = sensitive.SecretText(_VALUE)
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
