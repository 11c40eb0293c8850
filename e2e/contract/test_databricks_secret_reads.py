"""Reading a scope's value back for the drift check: ``DatabricksAdapter.secret_digest`` with
the real databricks-sdk (``secrets.get_secret``, ``GET /api/2.0/secrets/get``) against the
Databricks emulator.

Pinned here: the digest is SHA-256 of the bytes ``put_secret(string_value=...)`` stored; a
missing key or scope is None (``RESOURCE_DOES_NOT_EXIST``); a caller without READ on the scope
is refused (``PERMISSION_DENIED`` → NotAuthorized), one with a READ ACL is not; and no value,
raw or base64, reaches an exception or a log record, even with the SDK's DEBUG round-trip log.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rotator.clouds import databricks, identity
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, sensitive
from rotator.sandbox import faults, stack

pytestmark = pytest.mark.e2e

VALUE = "abc8Q~the-value-read-back-for-drift"
READER_PAT = "dapi-reader-of-etl"


@pytest.fixture
async def sandbox(tmp_path: pathlib.Path) -> AsyncIterator[stack.Stack]:
    async with stack.Stack.start(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture
def cloud(sandbox: stack.Stack) -> cloud_settings.CloudSettings:
    return cloud_settings.CloudSettings.from_env(sandbox.env())


@pytest.fixture
def service(sandbox: stack.Stack) -> Any:
    return next(s for s in sandbox.services if s.kind == "databricks")


@pytest.fixture(autouse=True)
def no_value_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for form in (VALUE, base64.b64encode(VALUE.encode()).decode()):
        assert form not in caplog.text


def hidden(exc: BaseException) -> bool:
    text = f"{exc} {exc!r} {exc.__cause__!r} {exc.__context__!r}"
    return VALUE not in text and base64.b64encode(VALUE.encode()).decode() not in text


async def test_the_digest_of_what_was_put_and_none_for_what_is_missing(
    service: Any, cloud: cloud_settings.CloudSettings
) -> None:
    strategy = identity.DatabricksCredentials(identity.sync_credential(cloud))
    async with databricks.DatabricksAdapter(service.url, cloud, credentials=strategy) as adapter:
        await adapter.create_scope("etl")
        await adapter.put_secret("etl", "client-secret", sensitive.SecretText(VALUE))
        digest = await adapter.secret_digest("etl", "client-secret")
        assert digest == hashlib.sha256(VALUE.encode()).digest()
        assert await adapter.secret_digest("etl", "no-such-key") is None
        assert await adapter.secret_digest("no-such-scope", "client-secret") is None
        # Overwritten by someone else: a different digest.
        service.state.put_secret(service.state.aad(), "etl", "client-secret", b"by hand")
        assert await adapter.secret_digest("etl", "client-secret") == (
            hashlib.sha256(b"by hand").digest()
        )


async def test_reading_needs_read_on_the_scope(
    service: Any, cloud: cloud_settings.CloudSettings
) -> None:
    state = service.state
    state.create_scope(state.aad(), "etl")
    state.put_secret(state.aad(), "etl", "client-secret", VALUE.encode())
    state.add_pat(READER_PAT, "reader@sandbox.local", admin=False)
    token = sensitive.SecretText(READER_PAT)
    async with databricks.DatabricksAdapter(service.url, cloud, token=token) as reader:
        with pytest.raises(errors.NotAuthorized) as caught:
            await reader.secret_digest("etl", "client-secret")
        assert "PERMISSION_DENIED" in str(caught.value) and hidden(caught.value)
        state.put_acl(state.aad(), "etl", "reader@sandbox.local", "READ")
        assert await reader.secret_digest("etl", "client-secret") == (
            hashlib.sha256(VALUE.encode()).digest()
        )


async def test_a_get_refused_outside_notebooks_is_a_permanent_error(
    sandbox: stack.Stack, service: Any, cloud: cloud_settings.CloudSettings
) -> None:
    """Databricks documents ``secrets/get`` as DBUtils-only and may answer 400 ``BAD_REQUEST``
    to a caller outside a notebook: a permanent refusal the drift check skips, not a retry."""
    strategy = identity.DatabricksCredentials(identity.sync_credential(cloud))
    async with databricks.DatabricksAdapter(service.url, cloud, credentials=strategy) as adapter:
        await adapter.create_scope("etl")
        await adapter.put_secret("etl", "client-secret", sensitive.SecretText(VALUE))
        sandbox.add_fault(
            faults.FaultRule(
                "databricks.getSecret", "status", count=1, status=400, code="BAD_REQUEST"
            )
        )
        with pytest.raises(errors.PermanentError) as caught:
            await adapter.secret_digest("etl", "client-secret")
        assert not isinstance(caught.value, errors.NotFound) and hidden(caught.value)
