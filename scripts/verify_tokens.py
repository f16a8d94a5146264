#!/usr/bin/env python3
"""Verify the tokens a container printed against miemu's JWKS, host side.

Used by scripts/container-test.sh. Finds every JWT in a log file, checks its RS256
signature against the JWKS fetched from miemu (PyJWT + cryptography when they can be
imported, otherwise `openssl dgst -verify` with a key rebuilt from the JWK's n and
e), checks the claims against `miemu config --format json`, and requires at least
one valid token per identity named with --identity.

Exit 0 when every token verifies and every named identity got one; 1 otherwise.
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(b: bytes) -> bytes:
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + der_len(len(b)) + b


def rsa_pem(jwk: dict) -> str:
    """PKCS#1 RSAPublicKey PEM from a JWK's n and e."""
    body = der_int(b64d(jwk["n"])) + der_int(b64d(jwk["e"]))
    der = b"\x30" + der_len(len(body)) + body
    lines = base64.encodebytes(der).decode().strip()
    return f"-----BEGIN RSA PUBLIC KEY-----\n{lines}\n-----END RSA PUBLIC KEY-----\n"


def verify_openssl(token: str, jwk: dict) -> bool:
    head, payload, sig = token.split(".")
    with tempfile.TemporaryDirectory() as d:
        key, data, sigf = (os.path.join(d, n) for n in ("key.pem", "data", "sig"))
        with open(key, "w") as f:
            f.write(rsa_pem(jwk))
        with open(data, "wb") as f:
            f.write(f"{head}.{payload}".encode())
        with open(sigf, "wb") as f:
            f.write(b64d(sig))
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", key, "-signature", sigf, data],
                           capture_output=True, text=True, timeout=30)
        return r.returncode == 0 and "Verified OK" in r.stdout


def verify_pyjwt(token: str, jwk: dict, audience: str, issuer: str) -> None:
    import jwt  # PyJWT

    key = jwt.PyJWK(jwk, algorithm="RS256").key
    jwt.decode(token, key=key, algorithms=["RS256"], audience=audience, issuer=issuer,
               options={"require": ["exp", "iat", "nbf", "aud", "iss"]})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True, help="file holding the container's output")
    ap.add_argument("--jwks-url", required=True)
    ap.add_argument("--config-json", required=True, help="output of `miemu config --format json`")
    ap.add_argument("--audience", required=True)
    ap.add_argument("--identity", action="append", default=[], help="identity that must have a token: its name, or kind:system / kind:user")
    ap.add_argument("--openssl", action="store_true", help="force the openssl verifier")
    a = ap.parse_args()

    cfg = json.load(open(a.config_json))
    tenant = cfg["tenant_id"]
    issuer = cfg.get("issuer") or f"https://sts.windows.net/{tenant}/"
    ids = cfg["identities"]
    with urllib.request.urlopen(a.jwks_url, timeout=10) as r:
        jwks = json.load(r)
    keys = {k["kid"]: k for k in jwks["keys"]}
    use_pyjwt = False
    if not a.openssl:
        try:
            import jwt  # noqa: F401
            import cryptography  # noqa: F401
            use_pyjwt = True
        except ImportError:
            pass
    how = "PyJWT" if use_pyjwt else "openssl dgst -sha256 -verify"
    tokens = list(dict.fromkeys(JWT_RE.findall(open(a.log, errors="replace").read())))
    print(f"verify: {len(tokens)} distinct token(s) in {a.log}; JWKS {a.jwks_url} has {len(keys)} key(s); "
          f"signatures checked with {how}")
    failures = 0
    got = set()
    now = time.time()
    for t in tokens:
        header = json.loads(b64d(t.split(".")[0]))
        claims = json.loads(b64d(t.split(".")[1]))
        problems = []
        jwk = keys.get(header.get("kid"))
        if header.get("alg") != "RS256":
            problems.append(f"alg {header.get('alg')}")
        if jwk is None:
            problems.append(f"kid {header.get('kid')} not in JWKS")
        else:
            try:
                if use_pyjwt:
                    verify_pyjwt(t, jwk, a.audience, issuer)
                elif not verify_openssl(t, jwk):
                    problems.append("signature does not verify")
            except Exception as e:  # PyJWT raises on a bad signature or claim
                problems.append(f"{type(e).__name__}: {e}")
        if claims.get("aud") != a.audience:
            problems.append(f"aud {claims.get('aud')!r}")
        if claims.get("iss") != issuer:
            problems.append(f"iss {claims.get('iss')!r}")
        if claims.get("tid") != tenant:
            problems.append(f"tid {claims.get('tid')!r}")
        if not (isinstance(claims.get("exp"), int) and claims["exp"] > now):
            problems.append(f"exp {claims.get('exp')!r}")
        match = [i for i in ids
                 if str(i.get("principal_id", "")).lower() == str(claims.get("oid", "")).lower()
                 and str(i.get("client_id", "")).lower() == str(claims.get("appid", "")).lower()]
        name = match[0]["name"] if match else None
        if not match:
            problems.append(f"oid/appid {claims.get('oid')}/{claims.get('appid')} match no configured identity")
        else:
            rid = match[0].get("resource_id")
            if rid and str(claims.get("xms_mirid", "")).lower() != rid.lower():
                problems.append(f"xms_mirid {claims.get('xms_mirid')!r} != {rid!r}")
        if problems:
            failures += 1
            print(f"verify: FAIL token for {name or '?'}: " + "; ".join(problems))
        else:
            got.update({name, f"kind:{match[0].get('kind')}"})
            print(f"verify: ok   token for {name} ({match[0].get('kind')}): signature valid, aud={claims['aud']} "
                  f"oid={claims['oid']} appid={claims['appid']} xms_mirid={claims.get('xms_mirid')}")
    for want in a.identity:
        if want not in got:
            failures += 1
            print(f"verify: FAIL no valid token for identity {want!r}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
