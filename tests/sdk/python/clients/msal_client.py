"""One token request through MSAL Python's ManagedIdentityClient.

usage: msal_client.py {system,client_id,resource_id,object_id} [ID]
env:   IDENTITY_ENDPOINT/IDENTITY_HEADER (read by the library), MIEMU_SCOPE, MIEMU_DISCOVERY_URL

MSAL reports failures as a dict with `error`/`error_description` rather than raising;
such a result counts as a failure (stage get_token) and its text is reported.
"""

import os
import sys
import time

import requests

from _common import Timer, audience_of, emit, failure, main_guard, success

LIBRARY = "msal"


def managed_identity(select, ident):
    import msal

    if select == "system":
        return msal.SystemAssignedManagedIdentity()
    if select == "client_id":
        return msal.UserAssignedManagedIdentity(client_id=ident)
    if select == "resource_id":
        return msal.UserAssignedManagedIdentity(resource_id=ident)
    if select == "object_id":
        return msal.UserAssignedManagedIdentity(object_id=ident)
    raise SystemExit(f"unknown selector {select!r}")


def main():
    import msal

    select = sys.argv[1]
    ident = sys.argv[2] if len(sys.argv) > 2 else None
    resource = audience_of(os.environ["MIEMU_SCOPE"])
    version = msal.__version__
    with Timer() as t:
        try:
            client = msal.ManagedIdentityClient(managed_identity(select, ident),
                                                http_client=requests.Session())
            result = client.acquire_token_for_client(resource=resource)
        except Exception as exc:
            error = exc
        else:
            error = None
    if error is not None:
        return failure(LIBRARY, version, "get_token", error, t.elapsed)
    if "access_token" not in result:
        emit({"ok": False, "stage": "get_token", "library": LIBRARY, "version": version,
              "error_type": "error-dict:" + str(result.get("error")),
              "error": f"{result.get('error')}: {result.get('error_description')}",
              "elapsed": t.elapsed})
        return 1
    expires_on = int(time.time()) + int(result["expires_in"])
    return success(LIBRARY, version, result["access_token"], expires_on,
                   os.environ["MIEMU_DISCOVERY_URL"], resource, t.elapsed,
                   token_source=result.get("token_source"))


if __name__ == "__main__":
    main_guard(main)
