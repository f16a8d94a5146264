"""A real resource: Azurite's blob service (OAuth basic, HTTPS) accepts miemu's tokens.

Python azure-storage-blob with ManagedIdentityCredential -> miemu creates a container,
uploads and downloads a blob, all in a clean client process. The same request without a
token fails, and so does a genuine miemu token minted for another audience (showing that
Azurite really checks what it is given).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import (JS_DIR, PY_CLIENTS, STARTUP_TIMEOUT, STOP_TIMEOUT, VENV_PY, fail,
                      normalise, run_client)

AZURITE_MAIN = JS_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
ACCOUNT = "devstoreaccount1"  # Azurite's built-in account


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1/localhost, made for this run only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "miemu-sdk-azurite")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "azurite-cert.pem", directory / "azurite-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tls_ready(port: int, cert: Path) -> bool:
    context = ssl.create_default_context(cafile=str(cert))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def azurite(tools, tmp_path_factory, blocking_env, home):
    workdir = tmp_path_factory.mktemp("azurite")
    cert, key = self_signed_cert(workdir)
    (workdir / "data").mkdir()
    port = free_port()
    log = workdir / "azurite.log"
    argv = [tools["node"], str(AZURITE_MAIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--oauth", "basic", "--cert", str(cert), "--key", str(key),
            "--location", str(workdir / "data"), "--disableTelemetry", "--skipApiVersionCheck",
            "--loose"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **blocking_env}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, cwd=workdir)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not tls_ready(port, cert):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
            fail(f"Azurite did not start on 127.0.0.1:{port}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield {"account_url": f"https://127.0.0.1:{port}/{ACCOUNT}", "cert": cert, "log": log}
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def blob_client(mode: str, azurite, container: str, env: dict) -> dict:
    argv = [str(VENV_PY), "-B", str(PY_CLIENTS / "blob_client.py"), mode, azurite["account_url"],
            str(azurite["cert"]), container]
    return run_client(argv, env, PY_CLIENTS).result


def test_blob_roundtrip_with_managed_identity(azurite, client_env, tools, results):
    container = f"mi-{uuid.uuid4().hex[:12]}"
    result = blob_client("roundtrip", azurite, container, client_env(scope="unused"))
    assert result["ok"], f"{result}\nAzurite log:\n{azurite['log'].read_text()[-2000:]}"
    assert result["downloaded_matches"] and result["blobs"] == ["hello.bin"]
    assert result["version"] == tools["azure-storage-blob"]
    results.success("azure-storage-blob", result["version"],
                    "BlobServiceClient + ManagedIdentityCredential against Azurite "
                    "(OAuth basic, HTTPS): create container, upload, download")


def test_blob_request_without_token_fails(azurite, client_env, results):
    container = f"anon-{uuid.uuid4().hex[:12]}"
    env = client_env(scope="unused")
    result = blob_client("anonymous", azurite, container, env)
    assert result["ok"] is False, f"Azurite accepted an anonymous create: {result}"
    assert result["status"] in (401, 403), result
    assert blob_client("exists", azurite, container, env)["exists"] is False
    results.notes.append(f"Azurite without a token: HTTP {result['status']} "
                         f"{normalise(result['error_code'])}")


def test_blob_rejects_a_miemu_token_for_another_audience(azurite, client_env, results):
    container = f"aud-{uuid.uuid4().hex[:12]}"
    env = client_env(scope="unused", MIEMU_OTHER_SCOPE="https://vault.azure.net/.default")
    result = blob_client("wrong-audience", azurite, container, env)
    assert result["ok"] is False, f"Azurite accepted a vault token for storage: {result}"
    assert result["status"] in (401, 403), result
    assert blob_client("exists", azurite, container, client_env(scope="unused"))["exists"] is False
    results.notes.append(f"Azurite with a miemu token for https://vault.azure.net: HTTP "
                         f"{result['status']} {normalise(result['error_code'])}")
