"""Shared by the Python client programs: JSON output and token verification with PyJWT.

Each client program runs in its own process with a clean environment, performs one
flow through an official Azure library and prints exactly one JSON line on stdout.
"""

import json
import sys
import time

import jwt
import requests


def emit(result):
    print(json.dumps(result, sort_keys=True), flush=True)


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = round(time.monotonic() - self.start, 3)
        return False


def verify(token, discovery_url, audience):
    """Verify `token` against the JWKS reached through OIDC discovery.

    Checks the RS256 signature with the key named by the token's `kid`, and the
    `iss` (from discovery), `aud`, `exp`, `nbf` and `iat` claims. Returns
    (header, claims). Raises on any problem.
    """
    session = requests.Session()
    discovery = session.get(discovery_url, timeout=5)
    discovery.raise_for_status()
    metadata = discovery.json()
    jwks = session.get(metadata["jwks_uri"], timeout=5)
    jwks.raise_for_status()
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks.json()).keys}
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "RS256":
        raise ValueError(f"token alg is {header.get('alg')!r}, expected RS256")
    if header.get("kid") not in keys:
        raise ValueError(f"kid {header.get('kid')!r} is not in the JWKS ({sorted(keys)})")
    claims = jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["RS256"],
        audience=audience,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud"]},
    )
    return header, claims


def success(library, version, token, expires_on, discovery_url, audience, elapsed, **extra):
    try:
        header, claims = verify(token, discovery_url, audience)
    except Exception as exc:  # reported, never swallowed: the harness fails on ok=false
        emit({"ok": False, "stage": "verify", "library": library, "version": version,
              "error_type": type(exc).__name__, "error": str(exc), "elapsed": elapsed})
        return 1
    emit({"ok": True, "library": library, "version": version, "token": token,
          "header": header, "claims": claims, "expires_on": int(expires_on),
          "elapsed": elapsed, **extra})
    return 0


def failure(library, version, stage, exc, elapsed):
    emit({"ok": False, "stage": stage, "library": library, "version": version,
          "error_type": type(exc).__name__, "error": str(exc), "elapsed": elapsed})
    return 1


def audience_of(scope):
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope


def main_guard(fn):
    try:
        sys.exit(fn())
    except SystemExit:
        raise
    except BaseException as exc:  # anything unexpected still yields one JSON line
        emit({"ok": False, "stage": "crash", "error_type": type(exc).__name__, "error": str(exc)})
        sys.exit(2)
