"""An ordinary app using DefaultAzureCredential. Run next to miemu it gets its
tokens from the managed-identity endpoint, exactly as in Azure Container Apps."""
import base64
import json
import os
import time

from azure.identity import DefaultAzureCredential

SCOPE = os.environ.get("TOKEN_SCOPE", "https://storage.azure.com/.default")


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main() -> None:
    credential = DefaultAzureCredential()
    while True:
        token = credential.get_token(SCOPE)
        c = claims(token.token)
        print(json.dumps({"scope": SCOPE, "expires_on": token.expires_on,
                          "aud": c.get("aud"), "oid": c.get("oid"),
                          "appid": c.get("appid"), "xms_mirid": c.get("xms_mirid")}),
              flush=True)
        if os.environ.get("ONCE"):
            return
        time.sleep(int(os.environ.get("INTERVAL", "300")))


if __name__ == "__main__":
    main()
