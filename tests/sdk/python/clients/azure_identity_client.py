"""One token request through azure-identity (ManagedIdentityCredential or DefaultAzureCredential).

usage: azure_identity_client.py {mi,dac} {system,client_id,resource_id,object_id} [ID]
env:   IDENTITY_ENDPOINT/IDENTITY_HEADER (read by the library), MIEMU_SCOPE, MIEMU_DISCOVERY_URL
"""

import os
import sys

from _common import Timer, audience_of, failure, main_guard, success

LIBRARY = "azure-identity"


def build_credential(kind, select, ident):
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if kind == "dac":
        if select != "system" or ident:
            raise SystemExit("DefaultAzureCredential takes its identity from AZURE_CLIENT_ID only")
        return DefaultAzureCredential()
    if select == "system":
        return ManagedIdentityCredential()
    if select == "client_id":
        return ManagedIdentityCredential(client_id=ident)
    if select == "resource_id":
        return ManagedIdentityCredential(identity_config={"resource_id": ident})
    if select == "object_id":
        return ManagedIdentityCredential(identity_config={"object_id": ident})
    raise SystemExit(f"unknown selector {select!r}")


def main():
    import azure.identity

    kind, select = sys.argv[1], sys.argv[2]
    ident = sys.argv[3] if len(sys.argv) > 3 else None
    scope = os.environ["MIEMU_SCOPE"]
    version = azure.identity.__version__
    with Timer() as t:
        try:
            credential = build_credential(kind, select, ident)
        except Exception as exc:
            return failure(LIBRARY, version, "construct", exc, 0)
        try:
            token = credential.get_token(scope)
        except Exception as exc:
            error = exc
        else:
            error = None
    if error is not None:
        return failure(LIBRARY, version, "get_token", error, t.elapsed)
    return success(LIBRARY, version, token.token, token.expires_on,
                   os.environ["MIEMU_DISCOVERY_URL"], audience_of(scope), t.elapsed,
                   credential=type(credential).__name__)


if __name__ == "__main__":
    main_guard(main)
