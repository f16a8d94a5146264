"""azure-storage-blob against Azurite (OAuth basic, HTTPS) with a managed-identity token.

usage: blob_client.py MODE ACCOUNT_URL CA_FILE CONTAINER
  roundtrip       ManagedIdentityCredential: create container, upload, download, compare, list
  anonymous       no credential: try to create the container and upload (must fail)
  exists          ManagedIdentityCredential: report whether CONTAINER exists
  wrong-audience  a real miemu token for another resource (MIEMU_OTHER_SCOPE), offered
                  for storage: try to create the container (must fail)
"""

import os
import secrets
import sys

from _common import Timer, emit, main_guard

LIBRARY = "azure-storage-blob"


class FixedToken:
    """A TokenCredential that hands out one pre-fetched token whatever the scope."""

    def __init__(self, token):
        self._token = token

    def get_token(self, *scopes, **kwargs):
        return self._token


def service(account_url, ca_file, credential):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(account_url, credential=credential, connection_verify=ca_file,
                             retry_total=0)


def main():
    import azure.storage.blob
    from azure.core.exceptions import HttpResponseError
    from azure.identity import ManagedIdentityCredential

    mode, account_url, ca_file, container = sys.argv[1:5]
    version = azure.storage.blob.__version__
    base = {"library": LIBRARY, "version": version, "mode": mode, "container": container}

    if mode == "roundtrip":
        payload = secrets.token_bytes(4096)
        with Timer() as t:
            svc = service(account_url, ca_file, ManagedIdentityCredential())
            cc = svc.create_container(container)
            cc.upload_blob("hello.bin", payload)
            downloaded = cc.download_blob("hello.bin").readall()
            names = [b.name for b in cc.list_blobs()]
        emit({**base, "ok": downloaded == payload, "downloaded_matches": downloaded == payload,
              "blobs": names, "elapsed": t.elapsed})
        return 0 if downloaded == payload else 1

    if mode == "exists":
        svc = service(account_url, ca_file, ManagedIdentityCredential())
        emit({**base, "ok": True, "exists": svc.get_container_client(container).exists()})
        return 0

    if mode == "anonymous":
        credential = None
    elif mode == "wrong-audience":
        token = ManagedIdentityCredential().get_token(os.environ["MIEMU_OTHER_SCOPE"])
        credential = FixedToken(token)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    with Timer() as t:
        try:
            cc = service(account_url, ca_file, credential).create_container(container)
            cc.upload_blob("hello.bin", b"must not be stored")
        except HttpResponseError as exc:
            error = exc
        else:
            error = None
    if error is None:
        emit({**base, "ok": True, "elapsed": t.elapsed})
        return 0
    emit({**base, "ok": False, "stage": "create_container", "status": error.status_code,
          "error_code": str(error.error_code), "error_type": type(error).__name__,
          "error": str(error).splitlines()[0], "elapsed": t.elapsed})
    return 1


if __name__ == "__main__":
    main_guard(main)
