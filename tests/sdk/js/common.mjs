// Shared by the JS client programs: one JSON line of output and token
// verification with `jose` against the JWKS reached through OIDC discovery.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";

export function emit(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

// Installed version of a package, from its own package.json.
export function versionOf(name) {
  const require = createRequire(import.meta.url);
  let dir = require.resolve(name);
  const marker = `node_modules/${name}/`;
  dir = dir.slice(0, dir.lastIndexOf(marker) + marker.length);
  return JSON.parse(readFileSync(dir + "package.json", "utf8")).version;
}

export function audienceOf(scope) {
  return scope.endsWith("/.default") ? scope.slice(0, -"/.default".length) : scope;
}

async function getJson(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.json();
}

// Checks the RS256 signature with the key named by `kid` and the iss (from
// discovery), aud, exp, nbf and iat claims. Returns { header, claims }.
export async function verify(token, discoveryUrl, audience) {
  const metadata = await getJson(discoveryUrl);
  const jwks = createLocalJWKSet(await getJson(metadata.jwks_uri));
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: ["RS256"],
    issuer: metadata.issuer,
    audience,
    requiredClaims: ["exp", "iat", "nbf", "iss", "aud"],
  });
  return { header: decodeProtectedHeader(token), claims: payload };
}

function errorText(err) {
  let text = String(err && err.message !== undefined ? err.message : err);
  let cause = err && err.cause;
  while (cause) {
    text += ` [cause: ${cause.message ?? cause}]`;
    cause = cause.cause;
  }
  return text;
}

export function failure(library, version, stage, err, elapsed) {
  emit({
    ok: false, stage, library, version, elapsed,
    error_type: err && err.name ? err.name : typeof err,
    error: errorText(err),
  });
  return 1;
}

export async function success(library, version, token, expiresOn, scope, elapsed, extra = {}) {
  let verified;
  try {
    verified = await verify(token, process.env.MIEMU_DISCOVERY_URL, audienceOf(scope));
  } catch (err) {
    return failure(library, version, "verify", err, elapsed);
  }
  emit({ ok: true, library, version, token, expires_on: expiresOn, elapsed, ...verified, ...extra });
  return 0;
}

export async function run(main) {
  try {
    process.exitCode = await main();
  } catch (err) {
    emit({ ok: false, stage: "crash", error_type: err && err.name, error: errorText(err) });
    process.exitCode = 2;
  }
}
