"""Values that must never be shown: :class:`SecretText` wraps a secret and masks it.

Messages end up in status, events and logs; a secret travels through every layer only inside a
:class:`SecretText`, whose ``str``/``repr``/``format`` are masked, and is revealed at the one
place that hands it to an SDK.
"""

from __future__ import annotations

import hmac
from typing import Final

_MASK: Final = "***"


class SecretText:
    """A secret value (a Graph ``secretText``) that never prints itself.

    ``str()``, ``repr()`` and f-strings show ``***``; call :meth:`reveal` at the single place
    that must hand the value to an SDK. Equality is constant-time. Not hashable, so a secret
    cannot end up as a dict key or set member that someone later logs.
    """

    __slots__ = ("_value",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretText wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The value itself: pass it straight to the SDK, never to a message."""
        return self._value

    def __str__(self) -> str:
        return _MASK

    def __repr__(self) -> str:
        return f"SecretText('{_MASK}')"

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretText):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the value somewhere we do not control (caches, queues).
        raise TypeError("SecretText cannot be pickled")
