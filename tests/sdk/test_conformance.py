"""Azure SDK conformance: official client libraries against a real miemu process.

Each case starts one client program (Python, JS or Rust) in a fresh process with a clean
environment. The client gets a token through its library, verifies it in its own language
against the JWKS found through miemu's OIDC discovery (PyJWT, jose, jsonwebtoken) and
prints one JSON line. The harness then checks the claims against `miemu config`, and checks
again with PyJWT. Failure flows must raise, return no token and finish within seconds.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509

from conftest import (JS_DIR, PY_CLIENTS, RUST_BIN, RUST_DIR, VENV_PY, normalise,
                      run_client, start_miemu, stop_miemu)

MANAGEMENT = "https://management.azure.com/.default"
VAULT = "https://vault.azure.net/.default"
STORAGE = "https://storage.azure.com/.default"

# A failure must surface within this many seconds of the library call (no retry loops),
# and the whole client process within FAILURE_WALL (process start-up included).
FAILURE_WITHIN = 5.0
FAILURE_WALL = 20.0


@dataclass(frozen=True)
class Client:
    """One library entry point; `argv(selector, id)` builds its command line."""

    library: str  # package name as in the lock file
    api: str  # what the case exercises, for reports
    lang: str

    def argv(self, selector: str, ident: str | None) -> list[str]:
        tail = [ident] if ident else []
        if self.api == "ManagedIdentityCredential" and self.lang == "py":
            return [str(VENV_PY), "-B", str(PY_CLIENTS / "azure_identity_client.py"), "mi", selector, *tail]
        if self.api == "DefaultAzureCredential" and self.lang == "py":
            return [str(VENV_PY), "-B", str(PY_CLIENTS / "azure_identity_client.py"), "dac", "system"]
        if self.api == "ManagedIdentityClient":
            return [str(VENV_PY), "-B", str(PY_CLIENTS / "msal_client.py"), selector, *tail]
        js_sel = {"system": "system", "client_id": "clientId", "resource_id": "resourceId",
                  "object_id": "objectId"}[selector]
        if self.api == "ManagedIdentityCredential" and self.lang == "js":
            return ["node", str(JS_DIR / "identity_client.mjs"), "mi", js_sel, *tail]
        if self.api == "DefaultAzureCredential" and self.lang == "js":
            return ["node", str(JS_DIR / "identity_client.mjs"), "dac", "system"]
        if self.api == "ManagedIdentityApplication":
            return ["node", str(JS_DIR / "msal_client.mjs"), js_sel, *tail]
        if self.api == "ManagedIdentityCredential" and self.lang == "rust":
            return [str(RUST_BIN), selector.replace("_", "-"), *tail]
        raise AssertionError(self)

    @property
    def cwd(self) -> Path:
        return {"py": PY_CLIENTS, "js": JS_DIR, "rust": RUST_DIR}[self.lang]


PY_MI = Client("azure-identity", "ManagedIdentityCredential", "py")
PY_DAC = Client("azure-identity", "DefaultAzureCredential", "py")
PY_MSAL = Client("msal", "ManagedIdentityClient", "py")
JS_MI = Client("@azure/identity", "ManagedIdentityCredential", "js")
JS_DAC = Client("@azure/identity", "DefaultAzureCredential", "js")
JS_MSAL = Client("@azure/msal-node", "ManagedIdentityApplication", "js")
RUST_MI = Client("azure_identity", "ManagedIdentityCredential", "rust")

SYSTEM = ("system", None)
USER = ("user", "sdk-user-main")
USER_ALL = ("user", "sdk-user-all")


@dataclass(frozen=True)
class Case:
    client: Client
    selector: str  # system | client_id | resource_id | object_id
    identity: tuple[str, str | None]  # (kind, name) in `miemu config`
    scope: str = MANAGEMENT
    azure_client_id: bool = False  # DefaultAzureCredential reads AZURE_CLIENT_ID
    container: str = "app"  # whose <container>.env the client gets

    @property
    def flow(self) -> str:
        if self.client.api == "DefaultAzureCredential":
            flow = "AZURE_CLIENT_ID" if self.azure_client_id else "system"
        else:
            flow = self.selector.replace("_", " ")
        return flow if self.container == "app" else f"{flow} from the {self.container} container"

    @property
    def id(self) -> str:
        return f"{self.client.lang}-{self.client.library}-{self.client.api}-{self.flow}".replace(" ", "_")


SUCCESS_CASES = [
    Case(PY_MI, "system", SYSTEM),
    Case(PY_MI, "client_id", USER),
    Case(PY_MI, "resource_id", USER, scope=VAULT),
    Case(PY_MI, "object_id", USER),
    Case(PY_DAC, "system", SYSTEM),
    Case(PY_DAC, "system", USER_ALL, azure_client_id=True),
    Case(PY_MSAL, "system", SYSTEM, scope=VAULT),
    Case(PY_MSAL, "client_id", USER),
    Case(PY_MSAL, "resource_id", USER),
    Case(PY_MSAL, "object_id", USER, scope=VAULT),
    Case(JS_MI, "system", SYSTEM),
    Case(JS_MI, "client_id", USER),
    Case(JS_MI, "resource_id", USER, scope=VAULT),
    Case(JS_MI, "object_id", USER),
    Case(JS_DAC, "system", SYSTEM),
    Case(JS_DAC, "system", USER_ALL, azure_client_id=True),
    Case(JS_MSAL, "system", SYSTEM, scope=VAULT),
    Case(JS_MSAL, "client_id", USER),
    Case(JS_MSAL, "resource_id", USER),
    Case(JS_MSAL, "object_id", USER, scope=VAULT),
    Case(RUST_MI, "system", SYSTEM),
    Case(RUST_MI, "client_id", USER, scope=VAULT),
    Case(RUST_MI, "object_id", USER),
    # lifecycle "all": open to the init container too.
    Case(PY_MI, "client_id", USER_ALL, container="init"),
    Case(JS_MSAL, "object_id", USER_ALL, container="init"),
    Case(RUST_MI, "client_id", USER_ALL, container="init"),
]

# The built-in default configuration (no --config) works as shipped.
ANY_USER = ("user", None)
DEFAULT_CONFIG_CASES = [
    Case(PY_MI, "system", SYSTEM),
    Case(PY_MSAL, "resource_id", ANY_USER),
    Case(JS_MI, "client_id", ANY_USER, scope=VAULT),
    Case(RUST_MI, "object_id", ANY_USER),
]

SELECTOR_FIELD = {"client_id": "client_id", "resource_id": "resource_id", "object_id": "principal_id"}


def identity_of(miemu, case: Case) -> dict:
    kind, name = case.identity
    return miemu.identity(kind="system") if kind == "system" else miemu.identity(name=name, kind="user")


def audience(scope: str) -> str:
    return scope.removesuffix("/.default")


# --------------------------------------------------------------------------- the endpoint itself


def test_env_file_selects_the_app_service_flow_in_every_sdk(miemu):
    for container, values in miemu.env_files.items():
        assert values["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:"), container
        assert values["IDENTITY_HEADER"], container
        for absent in ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE"):
            assert absent not in values, f"{container}.env exports {absent}"
    assert miemu.env_files["app"]["IDENTITY_HEADER"] != miemu.env_files["init"]["IDENTITY_HEADER"]


def test_discovery_publishes_issuer_and_a_consistent_jwks(miemu):
    metadata = requests.get(miemu.discovery_url, timeout=5).json()
    assert metadata["issuer"] == miemu.config["issuer"] == f"https://sts.windows.net/{miemu.tenant}/"
    jwks = requests.get(metadata["jwks_uri"], timeout=5).json()
    assert jwks["keys"], "JWKS has no keys"
    for key in jwks["keys"]:
        assert {"kty", "use", "kid", "x5t", "n", "e", "x5c"} <= key.keys(), key.keys()
        assert (key["kty"], key["use"]) == ("RSA", "sig")
        # x5c[0] is a certificate for the same RSA key, and x5t is its SHA-1 thumbprint.
        der = base64.b64decode(key["x5c"][0])
        cert = x509.load_der_x509_certificate(der)
        numbers = cert.public_key().public_numbers()
        as_int = lambda b64: int.from_bytes(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)), "big")
        assert (numbers.n, numbers.e) == (as_int(key["n"]), as_int(key["e"]))
        thumb = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        assert key["x5t"] == thumb


# --------------------------------------------------------------------------- success matrix


def check_token(miemu, case: Case, result: dict) -> dict:
    """Claims the client verified must match `miemu config`; PyJWT agrees independently."""
    ident = identity_of(miemu, case)
    claims = result["claims"]
    expected = {
        "aud": audience(case.scope),
        "iss": miemu.config["issuer"],
        "tid": miemu.tenant,
        "oid": ident["principal_id"],
        "appid": ident["client_id"],
        "xms_mirid": ident["resource_id"],
    }
    assert {k: claims.get(k) for k in expected} == expected
    assert result["header"]["alg"] == "RS256"
    # The library's expiry must be the token's `exp` (msal-python only reports expires_in).
    slack = 5 if case.client.library == "msal" else 1
    assert abs(result["expires_on"] - claims["exp"]) <= slack, (result["expires_on"], claims["exp"])

    metadata = requests.get(miemu.discovery_url, timeout=5).json()
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(result["token"])
    again = jwt.decode(result["token"], key.key, algorithms=["RS256"], audience=expected["aud"],
                       issuer=metadata["issuer"])
    assert again == claims
    return claims


def run_success_case(case: Case, m, build_env, tools) -> tuple[dict, str]:
    ident = identity_of(m, case)
    selector_value = ident[SELECTOR_FIELD[case.selector]] if case.selector != "system" else None
    overrides = {"AZURE_CLIENT_ID": ident["client_id"]} if case.azure_client_id else {}
    run = run_client(case.client.argv(case.selector, selector_value),
                     build_env(container=case.container, scope=case.scope, **overrides),
                     case.client.cwd)
    result = run.result
    assert result["ok"], f"{case.id}: {result}\nstderr: {run.stderr[-2000:]}"
    assert run.returncode == 0
    check_token(m, case, result)
    version = result.get("version") or tools[case.client.library]
    assert version == tools[case.client.library], "runtime version differs from the lock file"
    return result, version


@pytest.mark.parametrize("case", SUCCESS_CASES, ids=lambda c: c.id)
def test_sdk_gets_a_verifiable_token(case: Case, miemu, client_env, tools, results):
    _, version = run_success_case(case, miemu, client_env, tools)
    results.success(case.client.library, version, f"{case.client.api}: {case.flow}")


@pytest.mark.parametrize("case", DEFAULT_CONFIG_CASES, ids=lambda c: c.id)
def test_sdk_gets_a_verifiable_token_from_the_default_config(case: Case, default_miemu,
                                                            default_client_env, tools):
    run_success_case(case, default_miemu, default_client_env, tools)


# --------------------------------------------------------------------------- failure flows

FAILURE_CLIENTS = [PY_MI, PY_DAC, PY_MSAL, JS_MI, JS_DAC, JS_MSAL, RUST_MI]
NOT_FOUND = ("No User Assigned or Delegated Managed Identity found for specified "
             "ClientId/ResourceId/PrincipalId.")

# flow -> (status, message or None for an empty body) that miemu answers with.
# None of these statuses is retried by any SDK (protocol.md 5.2).
FAILURE_FLOWS = {
    "wrong header": (403, None),
    "unknown client id": (400, NOT_FOUND),
    "identity not open to the caller": (400, NOT_FOUND),
    "init container, identity open to main only": (400, NOT_FOUND),
    "init container, no identity open to init": (403, "init containers"),
}


def failure_setup(request, flow: str):
    """(selector, id, env) for one failure flow."""
    miemu, client_env = request.getfixturevalue("miemu"), request.getfixturevalue("client_env")
    if flow == "wrong header":
        wrong = uuid.uuid4().hex
        return "system", None, client_env(IDENTITY_HEADER=wrong, MSI_SECRET=wrong)
    if flow == "unknown client id":
        return "client_id", str(uuid.uuid4()), client_env()
    if flow == "identity not open to the caller":
        return "client_id", miemu.identity(name="sdk-user-closed")["client_id"], client_env()
    if flow == "init container, identity open to main only":
        return "system", None, client_env(container="init")
    if flow == "init container, no identity open to init":
        return "system", None, request.getfixturevalue("default_client_env")(container="init")
    raise AssertionError(flow)


@pytest.mark.parametrize("flow", FAILURE_FLOWS)
def test_failure_flow_is_a_prompt_4xx_on_the_wire(flow, request):
    """The endpoint answers each failure flow with the status and body real ACA uses."""
    selector, ident, env = failure_setup(request, flow)
    params = {"resource": "https://management.azure.com", "api-version": "2019-08-01"}
    if ident:
        params["client_id"] = ident
    response = requests.get(env["IDENTITY_ENDPOINT"], params=params,
                            headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}, timeout=5,
                            proxies={"http": None, "https": None})
    status, message = FAILURE_FLOWS[flow]
    assert response.status_code == status, (response.status_code, response.text)
    if message is None:
        assert response.content == b""
    else:
        body = response.json()
        assert response.headers["content-type"].startswith("application/json")
        assert set(body) == {"statusCode", "message", "correlationId"}
        assert body["statusCode"] == status and message in body["message"]
        uuid.UUID(body["correlationId"])


@pytest.mark.parametrize("flow", FAILURE_FLOWS)
@pytest.mark.parametrize("client", FAILURE_CLIENTS, ids=lambda c: f"{c.lang}-{c.library}")
def test_sdk_raises_promptly_and_returns_no_token(client: Client, flow: str, request, tools,
                                                  results):
    selector, ident, env = failure_setup(request, flow)
    dac = client.api == "DefaultAzureCredential"
    if dac and ident:
        env["AZURE_CLIENT_ID"] = ident  # the only way to pick an identity through DAC
    run = run_client(client.argv(selector, ident), env, client.cwd, timeout=FAILURE_WALL * 3)
    result = run.result
    assert result["ok"] is False, f"{client.library} returned a token for '{flow}': {result}"
    assert "token" not in result and "claims" not in result
    assert result["stage"] == "get_token", result
    assert run.returncode != 0
    assert result["error"], result
    assert result["elapsed"] <= FAILURE_WITHIN, f"library took {result['elapsed']}s to fail"
    assert run.wall <= FAILURE_WALL, f"client process took {run.wall}s"
    text = normalise(f"{result['error_type']}: {result['error']}")
    if dac:
        # The chain's aggregate message: keep its first line and the managed-identity part,
        # which must be there (DAC tried miemu and failed for this flow's reason).
        lines = result["error"].splitlines()
        mi_lines = [line.strip() for line in lines if "ManagedIdentityCredential" in line]
        assert mi_lines, f"DefaultAzureCredential never tried managed identity: {result['error']}"
        text = normalise(f"{result['error_type']}: {lines[0]} ... {mi_lines[0]}")
        flow = f"{flow} [DefaultAzureCredential]"
    results.failure(client.library, result.get("version") or tools[client.library], flow, text)
    results.timings.append(f"{client.library} / {flow}: raised after {result['elapsed']:.3f}s "
                           f"(process {run.wall:.1f}s)")


def test_rust_crate_refuses_resource_ids_for_app_service(client_env, tools, results):
    """azure_identity 1.0 rejects a user-assigned resource id for App Service at construction
    (upstream issue Azure/azure-sdk-for-rust#2407), so the Rust matrix has no resource-id case.
    When this starts failing, the crate supports it: add it to SUCCESS_CASES."""
    run = run_client(RUST_MI.argv("resource_id", "/subscriptions/x/resourcegroups/y/providers/"
                                  "Microsoft.ManagedIdentity/userAssignedIdentities/z"),
                     client_env(), RUST_MI.cwd)
    assert (run.result["ok"], run.result["stage"]) == (False, "construct"), run.result
    assert "resource IDs aren't supported for App Service" in run.result["error"]
    results.notes.append(f"`azure_identity` {tools['azure_identity']} (Rust) refuses a user-assigned "
                         "resource id for App Service when the credential is built "
                         "(Azure/azure-sdk-for-rust#2407), so it has no resource-id flow here.")


# --------------------------------------------------------------------------- loopback guard


def test_a_client_that_leaves_loopback_fails_loudly(client_env):
    """Sanity check of the guard itself: an outside request through the env proxy is refused."""
    env = client_env()
    code = ("import requests, sys\n"
            "try:\n"
            "    requests.get('https://login.microsoftonline.com/common/discovery/keys', timeout=5)\n"
            "except requests.exceptions.ProxyError as e:\n"
            "    print('{\"ok\": false, \"error\": \"proxy refused\"}'); sys.exit(0)\n"
            "print('{\"ok\": true}')\n")
    run = run_client([str(VENV_PY), "-B", "-c", code], env, PY_CLIENTS, timeout=30)
    assert run.result == {"ok": False, "error": "proxy refused"}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(env["HTTP_PROXY"].rsplit(":", 1)[1])), timeout=2)


# --------------------------------------------------------------------------- lifecycle


def test_miemu_stops_cleanly_on_sigterm(tools, tmp_path, blocking_env, home):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **blocking_env}
    m = start_miemu(tmp_path, None, env)
    assert requests.get(m.discovery_url, timeout=5).status_code == 200
    assert stop_miemu(m) == 0, m.log_tail()
