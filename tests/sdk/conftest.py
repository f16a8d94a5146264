"""Fixtures for the Azure SDK conformance suite.

The suite drives the official client libraries (Python, JS, Rust) against a real miemu
process. Every client runs as a fresh process whose environment holds only PATH, HOME,
the variables from miemu's `<container>.env` file and the "nothing leaves loopback"
overrides below. Missing tools fail the run (never skip it) with a pointer to
scripts/setup-sdk.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SDK = Path(__file__).resolve().parent
REPO = SDK.parents[1]
PY_DIR = SDK / "python"
VENV_PY = PY_DIR / ".venv" / "bin" / "python"
PY_CLIENTS = PY_DIR / "clients"
JS_DIR = SDK / "js"
RUST_DIR = SDK / "rust"
RUST_BIN = RUST_DIR / "target" / "debug" / "miemu-sdk-rust"
SUITE_CONFIG = SDK / "miemu-sdk.toml"
COMPAT_FILE = SDK / "compat.md"
SETUP_HINT = "run `scripts/setup-sdk.sh` (creates the venv, runs `npm ci`, builds tests/sdk/rust)"

JS_PACKAGES = ("@azure/identity", "@azure/msal-node", "jose", "azurite")
PY_PACKAGES = ("azure-identity", "msal", "azure-storage-blob", "PyJWT", "cryptography")
RUST_PACKAGES = ("azure_identity", "azure_core", "jsonwebtoken")

# Bounds on every subprocess the suite starts.
CLIENT_TIMEOUT = 60
STARTUP_TIMEOUT = 30
STOP_TIMEOUT = 10


# The harness itself talks to miemu and Azurite on loopback only: never through a proxy
# that the calling environment may have configured.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))


def miemu_bin() -> Path:
    return Path(os.environ.get("MIEMU_BIN") or REPO / "target" / "debug" / "miemu")


def fail(message: str):
    pytest.fail(message, pytrace=False)


# --------------------------------------------------------------------------- tools


def _lock_versions() -> dict[str, str]:
    """Exact versions the lock files pin, keyed by package name."""
    versions: dict[str, str] = {}
    lock = PY_DIR / "requirements.lock"
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip()] = version.strip()
    packages = json.loads((JS_DIR / "package-lock.json").read_text())["packages"]
    for name in JS_PACKAGES:
        versions[name] = packages[f"node_modules/{name}"]["version"]
    cargo_lock = (RUST_DIR / "Cargo.lock").read_text()
    for name in RUST_PACKAGES:
        match = re.search(rf'name = "{name}"\nversion = "([^"]+)"', cargo_lock)
        if match:
            versions[name] = match.group(1)
    return versions


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """Checks every tool the suite needs; fails (never skips) when one is missing."""
    missing = []
    binary = miemu_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing.append(f"miemu binary {binary} (set MIEMU_BIN or `cargo build`)")
    if not VENV_PY.is_file():
        missing.append(f"Python venv {VENV_PY.parent.parent}")
    node = shutil.which("node")
    if node is None:
        missing.append("`node` on PATH (Node.js >= 20)")
    else:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        major = int(out.stdout.strip().lstrip("v").split(".")[0] or 0)
        if major < 20:
            missing.append(f"Node.js >= 20 (found {out.stdout.strip()})")
    for name in JS_PACKAGES:
        if not (JS_DIR / "node_modules" / name / "package.json").is_file():
            missing.append(f"tests/sdk/js/node_modules/{name}")
    if not RUST_BIN.is_file():
        missing.append(f"Rust client {RUST_BIN.relative_to(REPO)}")
    if missing:
        fail("SDK conformance suite cannot run; missing:\n  - " + "\n  - ".join(missing) + f"\n{SETUP_HINT}")

    versions = _lock_versions()
    # The venv must hold exactly what requirements.lock pins.
    probe = subprocess.run(
        [str(VENV_PY), "-c",
         "import importlib.metadata as m, json, sys; "
         "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))", *PY_PACKAGES],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode != 0:
        fail(f"venv is incomplete ({probe.stderr.strip()[-500:]}); {SETUP_HINT}")
    installed = json.loads(probe.stdout)
    stale = {n: (v, versions.get(n)) for n, v in installed.items() if versions.get(n) != v}
    if stale:
        fail(f"venv does not match requirements.lock (installed, locked): {stale}; {SETUP_HINT}")
    for name in JS_PACKAGES:
        found = json.loads((JS_DIR / "node_modules" / name / "package.json").read_text())["version"]
        if found != versions[name]:
            fail(f"node_modules/{name} is {found}, package-lock.json pins {versions[name]}; {SETUP_HINT}")
    return {**versions, "node": node}


# --------------------------------------------------------------------------- loopback guard


@pytest.fixture(scope="session")
def dead_port():
    """A loopback port that is bound but never listens: every connection is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="session")
def blocking_env(dead_port) -> dict[str, str]:
    """Overrides that send every authority, IMDS and proxied request to a closed port.

    Loopback (NO_PROXY) stays direct, so only miemu, Azurite and nothing else answers.
    IDENTITY_SERVER_THUMBPRINT, IMDS_ENDPOINT and AZURE_FEDERATED_TOKEN_FILE stay unset.
    """
    dead = f"127.0.0.1:{dead_port}"
    env = {
        "AZURE_AUTHORITY_HOST": f"https://{dead}",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{dead}",
        "MSAL_MANAGED_IDENTITY_ENDPOINT": f"http://{dead}/metadata/identity/oauth2/token",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[var] = env[var.lower()] = f"http://{dead}"
    return env


# --------------------------------------------------------------------------- miemu


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not a KEY=value line: {line!r}")
        values[key.strip()] = value.strip()
    return values


@dataclass
class Miemu:
    proc: subprocess.Popen
    log: Path
    config: dict
    env_files: dict[str, dict[str, str]]
    base_url: str

    @property
    def tenant(self) -> str:
        return self.config["tenant_id"]

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/{self.tenant}/.well-known/openid-configuration"

    def identity(self, name: str | None = None, kind: str | None = None) -> dict:
        found = [i for i in self.config["identities"]
                 if (name is None or i["name"] == name) and (kind is None or i["kind"] == kind)]
        if kind == "user" and name is None:
            found = found[:1]  # "any user-assigned identity": the first one listed
        if len(found) != 1:
            fail(f"`miemu config` lists {len(found)} identities with name={name} kind={kind}: "
                 f"{self.config['identities']}")
        return found[0]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def miemu_config(config_file: Path | None) -> dict:
    argv = [str(miemu_bin()), "config"]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    out = subprocess.run(argv + ["--format", "json"], capture_output=True, text=True,
                         timeout=STARTUP_TIMEOUT)
    if out.returncode != 0:
        fail(f"`{' '.join(argv)} --format json` exited {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def start_miemu(workdir: Path, config_file: Path | None, env: dict[str, str]) -> Miemu:
    config = miemu_config(config_file)
    key_dir, env_dir = workdir / "keys", workdir / "env"
    key_dir.mkdir(parents=True)
    env_dir.mkdir(parents=True)
    log = workdir / "miemu.log"
    argv = [str(miemu_bin()), "serve"]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    argv += ["--listen", "127.0.0.1:0", "--key-dir", str(key_dir), "--env-dir", str(env_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    names = [c["name"] for c in config["containers"]]
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not all((env_dir / f"{n}.env").is_file() for n in names):
        if proc.poll() is not None:
            fail(f"miemu exited with {proc.returncode} before writing its env files:\n"
                 + log.read_text(errors="replace")[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
            fail(f"miemu wrote no env files for {names} within {STARTUP_TIMEOUT}s:\n"
                 + log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)
    env_files = {n: parse_env_file(env_dir / f"{n}.env") for n in names}
    endpoint = urlsplit(env_files[names[0]]["IDENTITY_ENDPOINT"])
    return Miemu(proc, log, config, env_files, f"{endpoint.scheme}://{endpoint.netloc}")


def stop_miemu(m: Miemu) -> int | None:
    """SIGTERM, then wait; returns the exit code, or None if it had to be killed."""
    if m.proc.poll() is not None:
        return m.proc.returncode
    m.proc.send_signal(signal.SIGTERM)
    try:
        return m.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        m.proc.kill()
        m.proc.wait(STOP_TIMEOUT)
        return None


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """An empty HOME for every client: no CLI logins or token caches leak in."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def miemu(tools, tmp_path_factory, blocking_env, home) -> Miemu:
    workdir = tmp_path_factory.mktemp("miemu")
    config_file = workdir / "miemu-sdk.toml"
    config_file.write_text(SUITE_CONFIG.read_text().format_map(
        {"tenant_id": str(uuid.uuid4()), "subscription_id": str(uuid.uuid4())}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **blocking_env}
    m = start_miemu(workdir, config_file, env)
    yield m
    stop_miemu(m)


# --------------------------------------------------------------------------- clients


@dataclass
class ClientRun:
    argv: list[str]
    result: dict
    wall: float
    returncode: int
    stderr: str = field(repr=False)


def run_client(argv: list[str], env: dict[str, str], cwd: Path,
               timeout: float = CLIENT_TIMEOUT) -> ClientRun:
    """Runs one client program and parses the one JSON line it prints."""
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        fail(f"{argv} did not finish within {timeout}s (an SDK retry loop?)\n"
             f"stderr: {(exc.stderr or b'')[-3000:]!r}")
    wall = round(time.monotonic() - start, 3)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        fail(f"{argv} printed no JSON result (exit {proc.returncode})\n"
             f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}")
    return ClientRun(argv, json.loads(lines[-1]), wall, proc.returncode, proc.stderr)


def env_builder(m: Miemu, blocking_env: dict[str, str], home: Path):
    """Returns build(container, scope, **overrides): the clean environment of one client."""

    def build(container: str = "app", scope: str = "https://management.azure.com/.default",
              **overrides: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        env.update(m.env_files[container])
        env.update(blocking_env)
        env["MIEMU_SCOPE"] = scope
        env["MIEMU_DISCOVERY_URL"] = m.discovery_url
        env.update(overrides)
        return env

    return build


@pytest.fixture(scope="session")
def client_env(miemu, blocking_env, home):
    """Client environments for the suite's miemu (tests/sdk/miemu-sdk.toml)."""
    return env_builder(miemu, blocking_env, home)


@pytest.fixture(scope="session")
def default_miemu(tools, tmp_path_factory, blocking_env, home) -> Miemu:
    """A second miemu on the built-in default configuration (no --config)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **blocking_env}
    m = start_miemu(tmp_path_factory.mktemp("miemu-default"), None, env)
    yield m
    stop_miemu(m)


@pytest.fixture(scope="session")
def default_client_env(default_miemu, blocking_env, home):
    """Client environments for the default-configuration miemu."""
    return env_builder(default_miemu, blocking_env, home)


# --------------------------------------------------------------------------- results


GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PORT = re.compile(r"(127\.0\.0\.1|localhost):\d+")


def normalise(text: str) -> str:
    """Error text with run-specific parts (GUIDs, ports, secrets) replaced."""
    text = GUID.sub("<guid>", text)
    text = PORT.sub(r"\1:<port>", text)
    return " ".join(text.split())


class Results:
    """What the matrix verified, for the printed summary and tests/sdk/compat.md."""

    def __init__(self):
        self.successes: dict[tuple[str, str], list[str]] = {}
        self.failures: dict[tuple[str, str], dict[str, str]] = {}
        self.notes: list[str] = []
        self.timings: list[str] = []  # printed only: they vary from run to run
        self.versions: dict[str, str] = {}

    def success(self, library: str, version: str, flow: str):
        self.versions[library] = version
        self.successes.setdefault((library, version), []).append(flow)

    def failure(self, library: str, version: str, flow: str, text: str):
        self.versions[library] = version
        self.failures.setdefault((library, version), {})[flow] = text


RESULTS = Results()


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if RESULTS.failures:
        terminalreporter.section("SDK error text per failure flow")
        for (library, version), flows in sorted(RESULTS.failures.items()):
            for flow, text in sorted(flows.items()):
                terminalreporter.write_line(f"{library} {version} / {flow}: {text}")
    if RESULTS.timings:
        terminalreporter.section("How fast each failure surfaced")
        for line in sorted(RESULTS.timings):
            terminalreporter.write_line(line)
    if RESULTS.notes:
        terminalreporter.section("SDK conformance notes")
        for note in RESULTS.notes:
            terminalreporter.write_line(note)


_DESELECTED = []


def pytest_deselected(items):
    _DESELECTED.extend(items)


def pytest_sessionfinish(session, exitstatus):
    """After a full, green run, (re)write tests/sdk/compat.md from what was verified.

    A run narrowed with -k/-m/`path::test`, or one that failed, leaves the file alone.
    """
    narrowed = _DESELECTED or any("::" in str(arg) for arg in session.config.args)
    if exitstatus != 0 or session.testsfailed or narrowed or not session.items:
        return
    from compat import render  # tests/sdk/compat.py

    COMPAT_FILE.write_text(render(RESULTS))
