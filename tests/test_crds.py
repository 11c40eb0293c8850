"""Offline checks of the CRDs in crds/ and the validation manifests in tests/manifests/.

The real kube-apiserver (e2e) proves that every rule fires with its message; these tests keep
the YAML honest without one: every field is documented for ``kubectl explain``, the names,
printer columns and defaults are the agreed ones, the status schema is the one docs/design.md
fixes, CEL rules stay inside the cost budget's preconditions, and the duration rules agree
with :mod:`rotator.core.durations` (CEL has no days, so the CRDs convert durations
themselves, in several copies that must not drift apart).
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rotator.core import durations

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"
MANIFESTS = ROOT / "tests" / "manifests"
DESIGN = ROOT / "docs" / "design.md"

GROUP = "rotator.dev"
VERSION = "v1alpha1"

# What PRODUCT.md fixes for each kind: file, plural, short name, scope.
KINDS = {
    "ServicePrincipalSecret": ("serviceprincipalsecrets", "sps", "Namespaced"),
    "DatabricksSecretBinding": ("databrickssecretbindings", "dsb", "Namespaced"),
    "RotationPolicy": ("rotationpolicies", "rpol", "Cluster"),
}

# The duration grammar as the CRDs spell it, and how they turn a duration into seconds.
DURATION_FORMAT = "^([0-9]{1,9}d)?([0-9]{1,9}h)?([0-9]{1,9}m)?([0-9]{1,9}s)?$"
SECONDS = (
    ".findAll('[0-9]+[dhms]').map(p, int(p.substring(0, p.size() - 1)) * "
    "{'d': 86400, 'h': 3600, 'm': 60, 's': 1}[p.substring(p.size() - 1)]).sum()"
)


def load_crd(kind: str) -> dict[str, Any]:
    plural = KINDS[kind][0]
    document = yaml.safe_load((CRDS / f"{GROUP}_{plural}.yaml").read_text())
    assert isinstance(document, dict)
    return document


def version_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def schema_of(kind: str) -> dict[str, Any]:
    schema = version_of(load_crd(kind))["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below ``schema`` (properties, list items, map values) with its path."""
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield f"{path}[]", schema["items"]
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield f"{path}{{}}", schema["additionalProperties"]
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema node at a dotted ``path`` such as ``spec.jobs[].restart``."""
    for part in path.split("."):
        if part.endswith("[]"):
            schema = schema["properties"][part[:-2]]["items"]
        else:
            schema = schema["properties"][part]
    return schema


def rules(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every x-kubernetes-validations rule in a schema, with the path it sits on."""
    for path, child in [("", schema), *walk(schema, "")]:
        for rule in child.get("x-kubernetes-validations", []):
            yield path, rule


def all_rules() -> list[tuple[str, str, dict[str, Any]]]:
    return [(kind, path, rule) for kind in KINDS for path, rule in rules(schema_of(kind))]


# --- names, scope, subresources, printer columns ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_crd_names_scope_and_version(kind: str) -> None:
    plural, short, scope = KINDS[kind]
    crd = load_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == scope
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["rotator"]
    version = version_of(crd)
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_crds_folder_holds_exactly_the_three_kinds() -> None:
    files = sorted(p.name for p in CRDS.glob("*.yaml"))
    assert files == sorted(f"{GROUP}_{plural}.yaml" for plural, _, _ in KINDS.values())


READY = '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "ServicePrincipalSecret",
            {
                "Ready": READY,
                "Expires": ".status.current.expiresAt",
                "Next rotation": ".status.nextRotationTime",
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            "DatabricksSecretBinding",
            {
                "Ready": READY,
                "Synced version": ".status.syncedVersion",
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            "RotationPolicy",
            {
                "Namespaces": ".spec.namespaces",
                "Max validity": ".spec.maxValidity",
                "Age": ".metadata.creationTimestamp",
            },
        ),
    ],
)
def test_printer_columns(kind: str, expected: dict[str, str]) -> None:
    columns = version_of(load_crd(kind))["additionalPrinterColumns"]
    default_view = {c["name"]: c["jsonPath"] for c in columns if c.get("priority", 0) == 0}
    assert default_view == expected
    for column in columns:
        assert column["description"], column["name"]
        # A future time in a "date" column prints as <invalid>; only Age is a date.
        assert column["type"] == ("date" if column["name"] == "Age" else "string")


# --- schema hygiene ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_at_every_depth_has_a_description(kind: str) -> None:
    schema = schema_of(kind)
    assert schema.get("description", "").strip()
    missing = [
        path
        for path, child in walk(schema, "")
        # The apiserver refuses anything but `type` on the root metadata.
        if path != ".metadata" and not str(child.get("description", "")).strip()
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural_without_preserved_unknown_fields(kind: str) -> None:
    schema = schema_of(kind)
    untyped = [path for path, child in walk(schema, "") if "type" not in child]
    assert untyped == []
    preserved = [
        path
        for path, child in walk(schema, "")
        if child.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert preserved == []
    assert schema["required"] == ["spec"]


@pytest.mark.parametrize("kind", KINDS)
def test_spec_values_are_bounded_so_cel_cost_is_estimable(kind: str) -> None:
    # The apiserver estimates CEL cost from these bounds and rejects the CRD when a rule could
    # be too expensive; unbounded strings or lists anywhere a rule reaches are the usual cause.
    spec = schema_of(kind)["properties"]["spec"]
    unbounded = []
    for path, child in walk(spec, "spec"):
        if child["type"] == "string" and "enum" not in child and "maxLength" not in child:
            unbounded.append(path)
        if child["type"] == "array" and "maxItems" not in child:
            unbounded.append(path)
        if (
            child["type"] == "object"
            and "additionalProperties" in child
            and "maxProperties" not in child
        ):
            unbounded.append(path)
    assert unbounded == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_rule_has_a_message(kind: str) -> None:
    for path, rule in rules(schema_of(kind)):
        assert rule.get("message", "").strip(), f"{kind}{path}: {rule['rule']}"
        assert "messageExpression" not in rule


def test_conditions_are_a_map_keyed_by_type() -> None:
    for kind in KINDS:
        conditions = node(schema_of(kind), "status.conditions")
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert conditions["items"]["required"] == ["type", "status"]
        assert node(conditions["items"], "status")["enum"] == ["True", "False", "Unknown"]


# --- defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "default"),
    [
        ("ServicePrincipalSecret", "spec.application.credentialOwner", "application"),
        ("ServicePrincipalSecret", "spec.rotation.validity", "90d"),
        ("ServicePrincipalSecret", "spec.rotation.renewBefore", "30d"),
        ("ServicePrincipalSecret", "spec.rotation.overlap", "24h"),
        ("ServicePrincipalSecret", "spec.verify.enabled", True),
        ("ServicePrincipalSecret", "spec.verify.timeout", "5m"),
        ("ServicePrincipalSecret", "spec.suspend", False),
        ("ServicePrincipalSecret", "spec.deletionPolicy", "Retain"),
        ("DatabricksSecretBinding", "spec.scope.create", False),
        ("DatabricksSecretBinding", "spec.jobs[].restart", "Never"),
    ],
)
def test_defaults(kind: str, path: str, default: object) -> None:
    assert node(schema_of(kind), path)["default"] == default


@pytest.mark.parametrize("parent", ["spec.rotation", "spec.verify"])
def test_object_defaults_spell_out_the_field_defaults(parent: str) -> None:
    # The object default is written in full (the apiserver checks it against the CEL rules
    # before field defaults apply); it must say the same as the field defaults.
    schema = node(schema_of("ServicePrincipalSecret"), parent)
    fields = {name: child["default"] for name, child in schema["properties"].items()}
    assert schema["default"] == fields


def test_core_defaults_agree_with_crd_defaults() -> None:
    from rotator.core import models

    spec = models.ServicePrincipalSecretSpec.from_body(
        {
            "spec": {
                "tenantId": "00000000-0000-0000-0000-0000000000aa",
                "application": {"clientId": "11111111-2222-3333-4444-555555555555"},
                "keyVault": {"vaultUrl": "https://kv.vault.azure.net", "secretName": "s"},
            }
        }
    )
    crd = schema_of("ServicePrincipalSecret")
    for field in ("validity", "renewBefore", "overlap"):
        expected = durations.parse_duration(node(crd, f"spec.rotation.{field}")["default"])
        assert getattr(spec.rotation, re.sub("B", "_b", field)) == expected
    assert spec.verify.timeout == durations.parse_duration(
        node(crd, "spec.verify.timeout")["default"]
    )
    assert spec.deletion_policy == node(crd, "spec.deletionPolicy")["default"]


# --- status matches docs/design.md -------------------------------------------------------


def design_statuses() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DESIGN.read_text(), re.S)
    sps, dsb = (yaml.safe_load(block)["status"] for block in blocks[:2])
    return {"ServicePrincipalSecret": sps, "DatabricksSecretBinding": dsb}


def shape(value: Any) -> Any:
    """Field names of a sample value, recursively; lists by the shape of their first item."""
    if isinstance(value, dict):
        return {key: shape(child) for key, child in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [shape(value[0])]
    return None


def schema_shape(schema: dict[str, Any]) -> Any:
    if schema["type"] == "object" and "properties" in schema:
        return {key: schema_shape(child) for key, child in schema["properties"].items()}
    if schema["type"] == "array" and "properties" in schema["items"]:
        return [schema_shape(schema["items"])]
    return None


@pytest.mark.parametrize("kind", ["ServicePrincipalSecret", "DatabricksSecretBinding"])
def test_status_schema_has_exactly_the_fields_of_the_design(kind: str) -> None:
    design = shape(design_statuses()[kind])
    crd = schema_shape(node(schema_of(kind), "status"))
    if design["conditions"] is None:  # the binding's sample abbreviates them as [...]
        design["conditions"] = crd["conditions"]
    assert crd == design


def test_design_sample_status_types_fit_the_schema() -> None:
    status = design_statuses()["ServicePrincipalSecret"]
    schema = node(schema_of("ServicePrincipalSecret"), "status")
    assert schema["properties"]["lastFailureTime"]["nullable"] is True  # the sample has null
    for key in ("observedGeneration", "failures"):
        assert isinstance(status[key], int)
        assert schema["properties"][key]["type"] == "integer"
    assert node(schema, "rotation.attempts")["type"] == "integer"
    for path, child in walk(schema, "status"):
        if path.endswith(("At", "Time")):
            assert child.get("format") == "date-time", path


# --- durations: the CEL copies agree with each other and with rotator.core.durations -----


def duration_fields() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for kind in KINDS:
        for path, child in walk(schema_of(kind), ""):
            texts = [r["rule"] for r in child.get("x-kubernetes-validations", [])]
            # A duration field checks its own format; its parent only compares durations.
            if any(text.startswith(f"self.matches('{DURATION_FORMAT}')") for text in texts):
                found.append((kind, path, child))
    return found


def test_duration_fields_are_the_expected_ones() -> None:
    assert sorted((kind, path) for kind, path, _ in duration_fields()) == [
        ("RotationPolicy", ".spec.maxValidity"),
        ("ServicePrincipalSecret", ".spec.rotation.overlap"),
        ("ServicePrincipalSecret", ".spec.rotation.renewBefore"),
        ("ServicePrincipalSecret", ".spec.rotation.validity"),
        ("ServicePrincipalSecret", ".spec.verify.timeout"),
    ]


def test_every_duration_field_checks_format_and_nonzero_with_one_message_each() -> None:
    for kind, path, child in duration_fields():
        texts = [r["rule"] for r in child["x-kubernetes-validations"]]
        assert f"self.matches('{DURATION_FORMAT}') && self != ''" in texts, (kind, path)
        assert "self == '' || self.matches('[1-9]')" in texts, (kind, path)


def test_every_seconds_conversion_is_the_same_expression_and_guarded_by_the_format() -> None:
    conversions = 0
    for kind, path, rule in all_rules():
        text = rule["rule"]
        if "findAll" not in text:
            continue
        uses = re.findall(r"(self(?:\.\w+)?)\.findAll", text)
        for operand in uses:
            conversions += 1
            assert f"{operand}{SECONDS}" in text, (kind, path, operand)
            # A malformed duration must yield only its own format message, never a second one.
            assert f"!{operand}.matches('{DURATION_FORMAT}') ||" in text, (kind, path, operand)
    # renewBefore<validity, validity-renewBefore>=1m (two), overlap<renewBefore, three maxima
    assert conversions == 9


def seconds_like_cel(text: str) -> int:
    """What the CRDs' CEL conversion computes, step for step."""
    factors = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(p[:-1]) * factors[p[-1]] for p in re.findall("[0-9]+[dhms]", text))


def crd_accepts(text: str) -> bool:
    return (
        re.search(DURATION_FORMAT, text) is not None
        and text != ""
        and bool(re.search("[1-9]", text))
    )


durations_like = st.one_of(
    st.text(alphabet="0123456789dhms .x", max_size=14),
    st.lists(
        st.tuples(st.integers(0, 10**10), st.sampled_from("dhms")), min_size=1, max_size=4
    ).map(lambda parts: "".join(f"{n}{u}" for n, u in parts)),
)


@given(durations_like)
def test_crd_duration_rules_agree_with_the_core_grammar(text: str) -> None:
    try:
        core: dt.timedelta | None = durations.parse_duration(text)
    except durations.DurationError:
        core = None
    if crd_accepts(text):
        # The CRD caps each number at 9 digits, the core caps the total at 100 years.
        assert core is not None or seconds_like_cel(text) > durations.MAX.total_seconds()
        if core is not None:
            assert seconds_like_cel(text) == core.total_seconds()
    elif core is not None:
        assert any(len(digits) > 9 for digits in re.findall("[0-9]+", text))


@pytest.mark.parametrize(
    ("kind", "path", "limit"),
    [
        ("ServicePrincipalSecret", "spec.rotation.validity", "730d"),
        ("ServicePrincipalSecret", "spec.verify.timeout", "1h"),
        ("RotationPolicy", "spec.maxValidity", "730d"),
    ],
)
def test_duration_maxima_say_in_words_what_they_check_in_seconds(
    kind: str, path: str, limit: str
) -> None:
    (rule,) = [
        r for r in node(schema_of(kind), path)["x-kubernetes-validations"] if "<=" in r["rule"]
    ]
    bound = int(re.findall(r"<=\s*(\d+)", rule["rule"])[0])
    assert bound == durations.parse_duration(limit).total_seconds()
    assert f"at most {limit}" in rule["message"]


def test_guid_and_url_rules_are_identical_everywhere() -> None:
    # One grammar per kind of value: a tenant that a ServicePrincipalSecret may name must be
    # one a RotationPolicy may list, and the same for URLs.
    regexes: dict[str, set[str]] = {"GUID": set(), "URL": set()}
    for _, _, rule in all_rules():
        for regex in re.findall(r"self\.matches\('(\^[^']*)'\)", rule["rule"]):
            if "https://" in regex:
                regexes["URL"].add(regex)
            elif "[0-9a-fA-F]{8}" in regex:
                regexes["GUID"].add(regex)
    assert len(regexes["GUID"]) == 1
    assert len(regexes["URL"]) == 1
    (url,) = regexes["URL"]
    for good in ("https://kv.vault.azure.net", "https://KV.vault.azure.net/", "https://[::1]"):
        assert (re.fullmatch(url, good) is not None) == ("[" not in good), good
    for bad in ("http://kv", "https://kv/path", "https://u:p@kv", "https://kv?x=1", "https://"):
        assert re.fullmatch(url, bad) is None, bad


# --- the validation manifests ------------------------------------------------------------


def manifest_files(kind: str) -> list[pathlib.Path]:
    return sorted((MANIFESTS / kind).glob("*.yaml"))


def test_there_are_valid_and_invalid_manifests_for_every_kind() -> None:
    for folder in ("valid", "invalid"):
        kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifest_files(folder)}
        assert kinds == set(KINDS), folder


@pytest.mark.parametrize("path", manifest_files("invalid"), ids=lambda p: p.stem)
def test_invalid_manifest_says_what_the_apiserver_must_answer(path: pathlib.Path) -> None:
    first, second, *_ = path.read_text().splitlines()
    assert re.fullmatch(r"# expect: \S.*\S", first), first
    assert re.fullmatch(r"# rule: \S.*", second), second
    body = yaml.safe_load(path.read_text())
    assert body["apiVersion"] == f"{GROUP}/{VERSION}"
    assert body["kind"] in KINDS
    # No namespace: the e2e applies them into a namespace of its choosing.
    assert body["metadata"] == {"name": path.stem}


@pytest.mark.parametrize("path", manifest_files("valid"), ids=lambda p: p.stem)
def test_valid_manifest_is_documented_and_named(path: pathlib.Path) -> None:
    assert path.read_text().startswith("# valid: ")
    body = yaml.safe_load(path.read_text())
    assert body["apiVersion"] == f"{GROUP}/{VERSION}"
    assert body["kind"] in KINDS
    assert body["metadata"] == {"name": path.stem}


def expectations() -> list[tuple[str | None, str]]:
    """(field path or None, message) of every invalid manifest's ``# expect:`` line."""
    found = []
    for path in manifest_files("invalid"):
        expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
        field, sep, rest = expect.partition(": Invalid value: ")
        found.append((field, rest.split(": ", 1)[1]) if sep else (None, expect))
    return found


def test_every_cel_rule_is_exercised_by_an_invalid_manifest() -> None:
    # Shared messages ("must be longer than zero") count only where the manifest expects
    # them on the very field the rule sits on (or points at with fieldPath).
    expected = expectations()
    untested = []
    for kind, path, rule in all_rules():
        message = " ".join(rule["message"].split())
        field = "spec" + path.removeprefix(".spec") + rule.get("fieldPath", "")
        if not any(
            message.startswith(text) if at is not None and at == field else text in message
            for at, text in expected
            if at is None or at == field or "[]" in field
        ):
            untested.append((kind, field, message))
    assert untested == []
