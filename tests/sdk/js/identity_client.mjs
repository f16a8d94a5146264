// One token request through @azure/identity (ManagedIdentityCredential or DefaultAzureCredential).
// usage: node identity_client.mjs {mi,dac} {system,clientId,resourceId,objectId} [ID]
// env:   IDENTITY_ENDPOINT/IDENTITY_HEADER (read by the library), MIEMU_SCOPE, MIEMU_DISCOVERY_URL
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity";
import { failure, run, success, versionOf } from "./common.mjs";

const LIBRARY = "@azure/identity";

function build(kind, select, id) {
  if (kind === "dac") {
    if (select !== "system" || id) throw new Error("DefaultAzureCredential takes its identity from AZURE_CLIENT_ID only");
    return new DefaultAzureCredential();
  }
  switch (select) {
    case "system": return new ManagedIdentityCredential();
    case "clientId": return new ManagedIdentityCredential({ clientId: id });
    case "resourceId": return new ManagedIdentityCredential({ resourceId: id });
    case "objectId": return new ManagedIdentityCredential({ objectId: id });
    default: throw new Error(`unknown selector ${select}`);
  }
}

await run(async () => {
  const [kind, select, id] = process.argv.slice(2);
  const scope = process.env.MIEMU_SCOPE;
  const version = versionOf(LIBRARY);
  const start = performance.now();
  const elapsed = () => Math.round(performance.now() - start) / 1000;
  let credential;
  try {
    credential = build(kind, select, id);
  } catch (err) {
    return failure(LIBRARY, version, "construct", err, elapsed());
  }
  let token;
  try {
    token = await credential.getToken(scope);
  } catch (err) {
    return failure(LIBRARY, version, "get_token", err, elapsed());
  }
  if (!token) return failure(LIBRARY, version, "get_token", new Error("getToken returned null"), elapsed());
  const took = elapsed();
  return success(LIBRARY, version, token.token, Math.floor(token.expiresOnTimestamp / 1000), scope, took,
    { credential: credential.constructor.name });
});
