// A real OpenID Connect provider for scimd's sign-in tests: oidc-provider (OpenID Certified)
// on a loopback address, with one confidential client (client_secret_basic), RS256 keys made
// at start, and accounts whose preferred_username is the login typed on its own sign-in page
// (its development interactions). Profile claims are left out of the ID token, as conformant
// issuers do in the code flow, so the relying party must read them from UserInfo.
//
// Usage: node issuer.mjs HOST REDIRECT_URI CLIENT_SECRET_FILE
// Prints "issuer <url>" once it listens.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [host, redirectUri, secretFile] = process.argv.slice(2);
const clientSecret = readFileSync(secretFile, 'utf8').trim();

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(0, host, () => {
  const issuer = `http://${host}:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'scimd',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [jwk] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
    },
    conformIdTokenClaims: true,
    pkce: { required: () => true },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: `sub-${id}`,
        preferred_username: id,
        name: id,
        email: id,
        email_verified: true,
      }),
    }),
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
