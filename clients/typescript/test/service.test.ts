// A machine-to-machine client and a resource server with panva's
// oauth4webapi, configured from RFC 8414 discovery: the client credentials
// grant, then RFC 7662 introspection, before and after the client is
// disabled.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as oauth from "oauth4webapi";
import { admin, startGatehouse, type Server } from "./server.js";

let server: Server;
before(async () => {
  server = await startGatehouse();
});
after(() => server.stop());

interface Registered {
  client_id: string;
  client_secret: string;
}

function register(name: string): Registered {
  return JSON.parse(admin(server, "client", "create", "--name", name, "--confidential", "--scope", "profile"));
}

test("client credentials, then introspection, with oauth4webapi", async () => {
  const issuer = new URL(server.url);
  const options = { [oauth.allowInsecureRequests]: true };
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: "oauth2" }));
  assert.equal(as.introspection_endpoint, `${server.url}/oauth/introspect`);

  const worker = register("worker");
  const granted = await oauth.clientCredentialsGrantRequest(
    as,
    { client_id: worker.client_id },
    oauth.ClientSecretBasic(worker.client_secret),
    new URLSearchParams({ scope: "profile" }),
    options,
  );
  const tokens = await oauth.processClientCredentialsResponse(as, { client_id: worker.client_id }, granted);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(tokens.scope, "profile");
  assert.equal(tokens.refresh_token, undefined);

  const resourceServer = register("resource server");
  const introspect = async () => {
    const response = await oauth.introspectionRequest(
      as,
      { client_id: resourceServer.client_id },
      oauth.ClientSecretPost(resourceServer.client_secret),
      tokens.access_token,
      options,
    );
    return oauth.processIntrospectionResponse(as, { client_id: resourceServer.client_id }, response);
  };
  const live = await introspect();
  assert.equal(live.active, true);
  assert.equal(live.client_id, worker.client_id);
  assert.equal(live.sub, worker.client_id);
  assert.equal(live.scope, "profile");

  admin(server, "client", "disable", "--client-id", worker.client_id);
  const dead = await introspect();
  assert.deepEqual(dead, { active: false });
});
