"""Fetch, start and stop Lowkey Vault, the third-party Key Vault emulator we cross-check against.

Lowkey Vault is a Spring Boot jar on Maven Central
(``com.github.nagyesta.lowkey-vault:lowkey-vault-app``). This module downloads it once over
HTTPS, checks the SHA-1 Maven Central publishes beside it, caches it under
``${ROTATOR_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/rotator}/lowkey-vault/<version>/``, starts it
on free loopback ports, waits until it answers, and stops it so no java process is left behind.

It serves HTTPS with a bundled self-signed certificate; the PKCS#12 store and its password are
served on the plain-HTTP token port (``/metadata/default-cert/...``). We turn that into a PEM
bundle (public roots + that certificate) for the SDK's ``connection_verify``.

Knobs: ``ROTATOR_LOWKEY_VERSION`` (default below), ``ROTATOR_LOWKEY_JAR`` (use this jar, no
download), ``ROTATOR_LOWKEY_JAVA`` (the java binary). Versions 5 and later need Java 25.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import certifi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

DEFAULT_VERSION = "7.3.74"
MAVEN = "https://repo1.maven.org/maven2/com/github/nagyesta/lowkey-vault/lowkey-vault-app"
TEMURIN_25 = pathlib.Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
# Lowkey Vault answers api-versions up to this one; the SDK's default (2026-04-01) is newer.
API_VERSION = "2025-07-01"


class LowkeyUnavailable(RuntimeError):
    """Lowkey Vault cannot be obtained or started here; the reason says why."""


def cache_dir() -> pathlib.Path:
    explicit = os.environ.get("ROTATOR_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(xdg) / "rotator"


def version() -> str:
    return os.environ.get("ROTATOR_LOWKEY_VERSION", DEFAULT_VERSION)


def _download(url: str, timeout: float = 120.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise LowkeyUnavailable(f"GET {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise LowkeyUnavailable(f"GET {url} failed: {exc}") from exc


def jar_path(ver: str | None = None) -> pathlib.Path:
    """The cached jar, downloaded (and its SHA-1 checked) on first use."""
    explicit = os.environ.get("ROTATOR_LOWKEY_JAR")
    if explicit:
        path = pathlib.Path(explicit)
        if not path.is_file():
            raise LowkeyUnavailable(f"ROTATOR_LOWKEY_JAR={explicit} is not a file")
        return path
    ver = ver or version()
    target = cache_dir() / "lowkey-vault" / ver / f"lowkey-vault-app-{ver}.jar"
    if target.is_file():
        return target
    url = f"{MAVEN}/{ver}/lowkey-vault-app-{ver}.jar"
    expected = _download(url + ".sha1", timeout=30.0).decode().split()[0].strip().lower()
    data = _download(url)
    actual = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise LowkeyUnavailable(f"{url}: SHA-1 {actual} does not match the published {expected}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent or interrupted run never sees half a jar.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)
    return target


def java_for(ver: str) -> str:
    explicit = os.environ.get("ROTATOR_LOWKEY_JAVA")
    if explicit:
        return explicit
    major = int(ver.split(".")[0]) if ver.split(".")[0].isdigit() else 0
    if major >= 5:
        if not TEMURIN_25.is_file():
            raise LowkeyUnavailable(f"Lowkey Vault {ver} needs Java 25; {TEMURIN_25} is missing")
        return str(TEMURIN_25)
    found = shutil.which("java")
    if found is None:
        raise LowkeyUnavailable("no java on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass
class Running:
    """A started Lowkey Vault: the vault URL, the CA bundle that trusts it, and the process."""

    url: str
    token_url: str
    bundle_path: pathlib.Path
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _pem_bundle(token_url: str, directory: pathlib.Path) -> pathlib.Path:
    store = _download(f"{token_url}/metadata/default-cert/lowkey-vault.p12", timeout=10.0)
    password = _download(f"{token_url}/metadata/default-cert/password", timeout=10.0).strip()
    _key, cert, extra = pkcs12.load_key_and_certificates(store, password)
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in [cert, *extra] if c is not None]
    bundle = directory / "lowkey-ca-bundle.pem"
    bundle.write_bytes(pathlib.Path(certifi.where()).read_bytes() + b"\n" + b"".join(pems))
    return bundle


def start(directory: pathlib.Path, *, timeout: float = 120.0) -> Running:
    """Start Lowkey Vault on free loopback ports; raise LowkeyUnavailable if it cannot run."""
    ver = version()
    jar = jar_path(ver)
    java = java_for(ver)
    port, token_port = free_port(), free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "lowkey-vault.log"
    args = [
        java,
        "-Xmx256m",
        "-jar",
        str(jar),
        f"--server.port={port}",
        f"--app.token.port={token_port}",
        "--server.address=127.0.0.1",
        "--LOWKEY_VAULT_RELAXED_PORTS=true",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory
        )
    token_url = f"http://127.0.0.1:{token_port}"
    running = Running(
        url=f"https://localhost:{port}",
        token_url=token_url,
        bundle_path=directory / "lowkey-ca-bundle.pem",
        process=process,
        log_path=log_path,
    )
    deadline = time.monotonic() + timeout
    last_error = "not started"
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LowkeyUnavailable(
                    f"Lowkey Vault exited with {process.returncode}; see {log_path}"
                )
            try:
                running.bundle_path = _pem_bundle(token_url, directory)
                ctx = ssl.create_default_context(cafile=str(running.bundle_path))
                with urllib.request.urlopen(
                    f"{running.url}/ping", timeout=5, context=ctx
                ) as response:
                    if response.status == 200:
                        return running
            except (LowkeyUnavailable, urllib.error.URLError, OSError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.5)
        raise LowkeyUnavailable(f"Lowkey Vault not healthy after {timeout}s: {last_error}")
    except BaseException:
        running.stop()
        raise


@contextlib.contextmanager
def running(directory: pathlib.Path) -> Iterator[Running]:
    """Lowkey Vault for the duration of a block; always stopped afterwards."""
    lowkey = start(directory)
    try:
        yield lowkey
    finally:
        lowkey.stop()
