"""Gathered facts: what the handler read from the clouds, handed to the pure decisions.

The shell gathers, the core decides: these frozen dataclasses are the only view of Graph and
Key Vault the core gets. ``None`` in a field of :class:`Facts` always means "not gathered" (the
handler did not look), which is different from "looked and found nothing" (an empty tuple, or
a :class:`VaultLatest` whose ``version`` is ``None``). Decisions that need a fact that was not
gathered either skip the check (triggers) or ask for it (:class:`rotator.core.rotation.Gather`).
None of these carry a secret value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Final

#: Tag on every Key Vault version the operator writes: the Graph keyId it holds.
TAG_KEY_ID: Final = "rotator.dev/key-id"
#: Tag on every Key Vault version the operator writes: the rotation id that wrote it.
TAG_ROTATION_ID: Final = "rotator.dev/rotation-id"


@dataclasses.dataclass(frozen=True)
class GraphCredential:
    """One ``passwordCredential`` of the application (or service principal), without text."""

    key_id: str
    display_name: str | None = None
    hint: str | None = None
    end_date_time: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class VaultLatest:
    """The latest version of a Key Vault secret; ``version`` is None when the secret is absent."""

    version: str | None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    enabled: bool = True

    @property
    def exists(self) -> bool:
        """Whether the secret has any version at all."""
        return self.version is not None

    @property
    def rotation_id(self) -> str | None:
        """The rotation that wrote this version, if the operator wrote it."""
        return self.tags.get(TAG_ROTATION_ID)

    @property
    def key_id(self) -> str | None:
        """The Graph keyId this version holds, if the operator wrote it."""
        return self.tags.get(TAG_KEY_ID)


@dataclasses.dataclass(frozen=True)
class Facts:
    """Everything a decision may look at besides spec, status, annotations and the clock.

    graph_credentials  the app's passwordCredentials (None: not read)
    key_vault_latest   the latest version of ``spec.keyVault.secretName`` (None: not read)
    staging_latest     the latest version of the staging secret (None: not read)
    text_held          whether the handler holds, in memory, the text minted by the journal's
                       rotation (it is lost on restart; then it must come from staging)
    resumed            the journal was written by an earlier pass (or process): before acting
                       on it, check that what it names still exists in Graph and Key Vault
    """

    graph_credentials: tuple[GraphCredential, ...] | None = None
    key_vault_latest: VaultLatest | None = None
    staging_latest: VaultLatest | None = None
    text_held: bool = False
    resumed: bool = False

    @property
    def graph_key_ids(self) -> frozenset[str] | None:
        """The keyIds Graph lists, or None when not gathered."""
        if self.graph_credentials is None:
            return None
        return frozenset(c.key_id for c in self.graph_credentials)
