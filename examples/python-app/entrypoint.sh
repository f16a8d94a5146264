#!/bin/sh
# Export IDENTITY_ENDPOINT, IDENTITY_HEADER, MSI_ENDPOINT, MSI_SECRET from the
# dotenv file miemu writes (MIEMU_ENV_FILE, default /run/miemu/app.env), waiting
# up to 30 s for it, then run the app unchanged.
set -eu
f="${MIEMU_ENV_FILE:-/run/miemu/app.env}"
i=0
while [ ! -s "$f" ]; do
  i=$((i + 1))
  if [ "$i" -gt 60 ]; then echo "entrypoint: $f not found" >&2; exit 1; fi
  sleep 0.5
done
set -a
. "$f"
set +a
exec "$@"
