"""A throwaway certificate authority for the emulators' HTTPS.

The real SDKs insist on HTTPS (MSAL refuses plain-HTTP authorities, Key Vault's challenge
policy refuses plain HTTP), so every emulator serves TLS with a certificate from this CA.
Clients trust it through a PEM bundle: the system's CAs plus this one, named by
`SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE` or the operator's `--ca-bundle` setting.
"""

from __future__ import annotations

import dataclasses
import pathlib
import ssl

import certifi
import trustme

HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass
class SandboxCA:
    """One CA per sandbox stack; it signs one server certificate for the loopback names."""

    directory: pathlib.Path
    _ca: trustme.CA = dataclasses.field(default_factory=trustme.CA, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = self._ca.issue_cert(*HOSTS)
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        # The bundle keeps the public roots so one file works for every client in a process.
        self.bundle_path.write_bytes(
            pathlib.Path(certifi.where()).read_bytes() + b"\n" + self._ca.cert_pem.bytes()
        )
        self._server.private_key_and_cert_chain_pem.write_to_path(str(self.server_pem_path))

    @property
    def ca_path(self) -> pathlib.Path:
        return self.directory / "sandbox-ca.pem"

    @property
    def bundle_path(self) -> pathlib.Path:
        return self.directory / "ca-bundle.pem"

    @property
    def server_pem_path(self) -> pathlib.Path:
        return self.directory / "sandbox-server.pem"

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self._ca.configure_trust(ctx)
        return ctx
