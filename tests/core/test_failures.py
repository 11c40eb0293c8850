"""The failure table against a corpus of real error answers (tests/core/corpus/*.json)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from rotator.core import errors, failures, reasons
from tests.core import corpus

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)
ROWS = corpus.rows()


def reply_of(row: dict[str, Any]) -> failures.Reply:
    return failures.parse(
        row["service"],
        row["status"],
        corpus.body_text(row),
        content_type=corpus.header(row, "Content-Type") or "",
        retry_after=failures.delay_seconds(corpus.header(row, "Retry-After"), now=NOW),
    )


def test_the_corpus_covers_every_service_and_outcome() -> None:
    assert {r["service"] for r in ROWS} == set(corpus.SERVICES)
    assert {r["expect"]["outcome"] for r in ROWS} == {"transient", "permanent", "permission"}
    for row in ROWS:
        assert row["source"].strip(), row["name"]
    assert len({r["name"] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_every_row_is_classified_as_expected(row: dict[str, Any]) -> None:
    expect = row["expect"]
    verdict = failures.classify(reply_of(row))
    assert verdict.outcome == expect["outcome"]
    assert verdict.reason == expect["reason"]
    assert verdict.cause == expect["cause"]
    assert verdict.transient is expect["transient"]
    assert verdict.verification == expect.get("verification")
    if "delay" in expect:
        assert verdict.delay == expect["delay"]


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_every_row_becomes_an_error_the_handlers_understand(row: dict[str, Any]) -> None:
    reply = reply_of(row)
    verdict = failures.classify(reply)
    exc = failures.error(verdict, reply, action="read", target="the thing", kind="application")
    expect = row["expect"]
    if expect["outcome"] == "permission":
        assert isinstance(exc, errors.NotAuthorized) and exc.reason == reasons.NOT_AUTHORIZED
    elif expect["outcome"] == "transient":
        assert isinstance(exc, errors.TransientError)
        assert errors.retry_after(exc) == expect.get("delay")
    elif verdict.verification is None:
        assert isinstance(exc, errors.PermanentError) and exc.reason == expect["reason"]
    # One line, bounded, and never a page of HTML.
    text = str(exc)
    assert "\n" not in text and "<" not in text and len(text) < 700
    if row.get("text"):
        assert f"HTTP {row['status']} with a non-JSON body" in text


def test_a_non_json_body_is_summarized_and_classified_by_status() -> None:
    reply = failures.parse("graph", 502, "<html><body>boom</body></html>", content_type="text/html")
    assert not reply.json and reply.message == ""
    assert failures.said(reply) == "HTTP 502 with a non-JSON body (text/html)"
    assert failures.classify(reply).outcome == "transient"
    four = failures.parse("keyvault", 400, "<html/>", content_type="text/html; charset=utf-8")
    assert failures.classify(four).outcome == "permanent"


def test_no_answer_is_transient_everywhere() -> None:
    for service in corpus.SERVICES:
        reply = failures.Reply(service, None, failure="ConnectError")  # type: ignore[arg-type]
        verdict = failures.classify(reply)
        assert verdict.outcome == "transient" and verdict.cause == "no-answer"
        exc = failures.error(verdict, reply, action="read", target="x")
        assert "no answer" in str(exc) and "ConnectError" in str(exc)


def test_entra_never_calls_a_busy_answer_invalid() -> None:
    # The chaos-run finding: a token error without an AADSTS code was "invalid" (permanent).
    for status in (429, 500, 502, 503, 504):
        verdict = failures.classify(failures.Reply("entra", status))
        assert verdict.outcome == "transient" and verdict.verification is None
    odd = failures.classify(failures.Reply("entra", 404, json=False, content_type="text/html"))
    assert odd.outcome == "transient"


def test_databricks_501_is_permanent_and_502_transient() -> None:
    assert failures.classify(failures.Reply("databricks", 501)).outcome == "permanent"
    assert failures.classify(failures.Reply("databricks", 502)).outcome == "transient"


def test_messages_are_one_bounded_line() -> None:
    assert failures.one_line("a\n b\tc") == "a b c"
    assert len(failures.one_line("x" * 1000)) == 300


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30.0), ("Fri, 27 Nov 2026 12:00:45 GMT", 45.0), ("soon", None), (None, None)],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert failures.delay_seconds(value, now=NOW) == seconds


def test_an_azure_shaped_body_from_the_token_endpoint_still_names_its_aadsts_code() -> None:
    body = '{"error": {"code": "AADSTS90002", "message": "Tenant not found."}}'
    verdict = failures.classify(failures.parse("entra", 400, body))
    assert verdict.verification == "tenant"
