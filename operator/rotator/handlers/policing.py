"""RotationPolicy enforcement in the shell: kopf indices of policies and namespace labels.

The decision itself is :func:`rotator.core.authorization.check` (pure). This module keeps what it
needs in kopf indices (no API reads per check) and offers one call for every handler:

    decision = police.check(namespace, authorization.request_for_secret(spec))
    decision = police.check(namespace, authorization.request_for_binding(spec))

It runs BEFORE any cloud call: a denied resource gets Stalled/NotAuthorized, a Warning event and
zero cloud calls. Enforcement is on unless the operator runs with ``--no-enforce-policies``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rotator.core import authorization, errors, models

logger = logging.getLogger(__name__)


def policy_entry(name: str, body: Mapping[str, Any]) -> dict[str, authorization.NamedPolicy | None]:
    """The index entry of one RotationPolicy: its parsed spec, or None when invalid.

    An invalid policy grants nothing (and is logged): a typo must never widen access.
    """
    try:
        return {name: authorization.NamedPolicy(name, models.RotationPolicySpec.from_body(body))}
    except errors.SpecError as exc:
        logger.warning("RotationPolicy %s is invalid and grants nothing: %s", name, exc.message)
        return {name: None}


def namespace_entry(name: str, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The index entry of one namespace: its labels."""
    return {name: dict(labels)}


class Police:
    """Checks requests against the current policies and namespace labels.

    ``policies_of`` and ``labels_of`` read the live kopf indices (or test data).
    """

    def __init__(
        self,
        *,
        enforce: bool,
        policies_of: Callable[[], Iterable[authorization.NamedPolicy | None]],
        labels_of: Callable[[str], Mapping[str, str]],
    ) -> None:
        self.enforce = enforce
        self._policies_of = policies_of
        self._labels_of = labels_of

    def check(self, namespace: str, request: authorization.Request) -> authorization.Decision:
        """Whether ``namespace`` may make ``request``; always allowed when not enforcing."""
        if not self.enforce:
            return authorization.Decision(
                True, None, "policy enforcement is off (--no-enforce-policies)"
            )
        known = [p for p in self._policies_of() if p is not None]
        return authorization.check(known, namespace, self._labels_of(namespace), request)


def from_indices(enforce: bool, policy_index: Any, namespace_index: Any) -> Police:
    """A :class:`Police` over kopf's live indices (``kopf.Index``: key -> store of values)."""

    def policies_of() -> list[authorization.NamedPolicy | None]:
        return [value for key in list(policy_index) for value in policy_index.get(key, ())]

    def labels_of(namespace: str) -> Mapping[str, str]:
        for labels in namespace_index.get(namespace, ()):
            return dict(labels)
        return {}

    return Police(enforce=enforce, policies_of=policies_of, labels_of=labels_of)
