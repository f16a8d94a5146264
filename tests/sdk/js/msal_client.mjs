// One token request through @azure/msal-node's ManagedIdentityApplication.
// usage: node msal_client.mjs {system,clientId,resourceId,objectId} [ID]
// env:   IDENTITY_ENDPOINT/IDENTITY_HEADER (read by the library), MIEMU_SCOPE, MIEMU_DISCOVERY_URL
import { ManagedIdentityApplication } from "@azure/msal-node";
import { audienceOf, failure, run, success, versionOf } from "./common.mjs";

const LIBRARY = "@azure/msal-node";

function idParams(select, id) {
  switch (select) {
    case "system": return undefined;
    case "clientId": return { userAssignedClientId: id };
    case "resourceId": return { userAssignedResourceId: id };
    case "objectId": return { userAssignedObjectId: id };
    default: throw new Error(`unknown selector ${select}`);
  }
}

await run(async () => {
  const [select, id] = process.argv.slice(2);
  const scope = process.env.MIEMU_SCOPE;
  const version = versionOf(LIBRARY);
  const start = performance.now();
  const elapsed = () => Math.round(performance.now() - start) / 1000;
  let result;
  try {
    const params = idParams(select, id);
    const app = new ManagedIdentityApplication(params ? { managedIdentityIdParams: params } : {});
    result = await app.acquireToken({ resource: audienceOf(scope) });
  } catch (err) {
    return failure(LIBRARY, version, "get_token", err, elapsed());
  }
  const took = elapsed();
  return success(LIBRARY, version, result.accessToken, Math.floor(result.expiresOn.getTime() / 1000), scope, took,
    { token_source: result.fromCache ? "cache" : "network" });
});
