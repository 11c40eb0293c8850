"""The shell side of RotationPolicy enforcement: index entries and the Police over them."""

from __future__ import annotations

from rotator.core import authorization, models
from rotator.handlers import policing

REQUEST = authorization.Request(tenant="00000000-0000-0000-0000-0000000000aa")


def police(
    entries: list[authorization.NamedPolicy | None], enforce: bool = True
) -> policing.Police:
    return policing.Police(
        enforce=enforce, policies_of=lambda: entries, labels_of=lambda _ns: {"team": "data"}
    )


def test_invalid_policy_is_indexed_as_granting_nothing() -> None:
    entry = policing.policy_entry("broken", {"spec": {"tenants": ["x"]}})
    assert entry == {"broken": None}
    assert police([None]).check("data-eng", REQUEST).allowed is False


def test_valid_policy_entry_grants_by_namespace_selector() -> None:
    body = {"spec": {"namespaceSelector": {"matchLabels": {"team": "data"}}}}
    entry = policing.policy_entry("by-label", body)
    decision = police(list(entry.values())).check("any-ns", REQUEST)
    assert decision.allowed and decision.policy == "by-label"


def test_not_enforcing_allows_everything() -> None:
    assert police([], enforce=False).check("x", REQUEST).allowed is True
    assert police([], enforce=True).check("x", REQUEST).allowed is False


def test_from_indices_reads_kopf_style_stores() -> None:
    spec = models.RotationPolicySpec.from_spec({"namespaces": ["a"]})
    policy_index = {"p": [authorization.NamedPolicy("p", spec)]}
    namespace_index = {"a": [{"team": "data"}]}
    p = policing.from_indices(True, policy_index, namespace_index)
    assert p.check("a", REQUEST).allowed
    assert not p.check("b", REQUEST).allowed
