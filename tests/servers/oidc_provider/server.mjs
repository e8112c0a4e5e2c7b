// A real OpenID Connect provider (the oidc-provider package) for the tests.
//
// Usage: node server.mjs CONFIG.json
//
// The JSON file gives the port, the clients and the token lifetimes; the
// server prints "ready <issuer>" on stdout once it listens on 127.0.0.1.
// Besides the provider's own routes it serves two test helpers:
//   GET /test/stats     every token-endpoint call so far (grant, client, status)
//   GET /api/whoami     a protected resource that accepts the provider's
//                       access tokens (401 otherwise)
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const resource = config.resource;
const tokenCalls = [];

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return [
    { ...rsa.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' },
    { ...ec.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig', alg: 'ES256' },
  ];
}

function findAccount(ctx, accountId) {
  return {
    accountId,
    async claims() {
      return { sub: accountId, name: `User ${accountId}`, email: `${accountId}@example.test` };
    },
  };
}

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: signingKeys() },
  findAccount,
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
  cookies: { keys: ['restconnect-test-cookie-key'] },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: config.accessTokenTTL,
    ClientCredentials: config.accessTokenTTL,
    IdToken: 300,
    DeviceCode: config.deviceCodeTTL,
    RefreshToken: 3600,
    Interaction: 600,
    Session: 600,
    Grant: 3600,
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Client credentials need a resource server; the authorization-code
      // and device grants keep their userinfo-audience tokens.
      defaultResource: (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        return ctx.oidc.params.grant_type === 'client_credentials' ? resource : undefined;
      },
      getResourceServerInfo: () => ({
        scope: 'api:read',
        audience: resource,
        accessTokenTTL: config.accessTokenTTL,
        accessTokenFormat: 'opaque',
      }),
      useGrantedResource: () => false,
    },
  },
});

async function tokenOwner(value) {
  const models = [provider.ClientCredentials, provider.AccessToken];
  for (const model of models) {
    const token = await model.find(value);
    if (token && !token.isExpired) {
      return { client_id: token.clientId, sub: token.accountId ?? null, scope: token.scope };
    }
  }
  return null;
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/stats') {
    ctx.body = { token_calls: tokenCalls };
    return;
  }
  if (ctx.path === '/api/whoami') {
    const header = ctx.get('authorization') || '';
    const owner = header.startsWith('Bearer ') ? await tokenOwner(header.slice(7)) : null;
    if (!owner) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      ctx.body = { error: 'invalid_token' };
      return;
    }
    ctx.body = owner;
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST') {
    const params = ctx.oidc?.params ?? {};
    tokenCalls.push({
      grant_type: params.grant_type ?? null,
      client_id: ctx.oidc?.client?.clientId ?? null,
      status: ctx.status,
    });
  }
});

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
