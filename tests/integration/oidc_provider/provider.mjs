// The console's OIDC sign-in test: panva oidc-provider (pinned in package.json), an
// OpenID Certified implementation, with one confidential client registered for the
// console's redirect URI. Its development login screen accepts any login name; the
// account's email is <login>@example.com, verified.
//
// Run: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// GET /healthz answers 200 (the test's start-up wait). The ES256 signing key is
// generated in memory at start.
import * as http from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'test-es256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingKey] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  // Put the scope's claims (email) in the ID token itself, as most providers do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true };
      },
    };
  },
});

const callback = provider.callback();
http
  .createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200).end('ok');
      return;
    }
    callback(req, res);
  })
  .listen(Number(port), '127.0.0.1');
