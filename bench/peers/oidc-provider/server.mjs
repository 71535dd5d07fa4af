// The issuance bench's peer: panva oidc-provider (pinned in package.json) issuing
// DPoP-bound ES256 at+jwt access tokens (RFC 9068) by client_credentials, with a
// resource indicator (RFC 8707), in one Node process with its in-memory store.
//
// Run: node server.mjs PORT CLIENT_ID CLIENT_SECRET RESOURCE
// GET /healthz answers 200 (for the bench's start-up wait); everything else is the
// provider's own Koa app. The signing key is generated in memory at start.
import * as http from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, resource] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // Every token this client gets is sender-constrained (RFC 9449 §5.2).
      dpop_bound_access_tokens: true,
      scope: 'read write',
      // The only key is ES256; the default (RS256) would need an RSA key.
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingKey] },
  scopes: ['read', 'write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new Error('unknown resource');
        }
        return {
          scope: 'read write',
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  enabledJWA: { dPoPSigningAlgValues: ['ES256'] },
});
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const app = provider.callback();
const server = http.createServer((request, response) => {
  if (request.url === '/healthz') {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end('{"status":"ok"}');
    return;
  }
  app(request, response);
});
server.keepAliveTimeout = 30_000;
server.listen(Number(port), '127.0.0.1', () => console.log(`peer listening on ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
