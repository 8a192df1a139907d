// oidc-provider (the OpenID-certified provider for Node, https://github.com/panva/node-oidc-provider), set
// up as the peer Latchkey is measured against by scripts/peer-bench.sh: the client_credentials grant and token
// introspection (RFC 7662). Run `npm ci` in this directory first.
//
//   PORT=18090 node scripts/peer/provider.mjs
//
// Two confidential clients (client_secret_basic):
//   bench  grant_types [client_credentials], scope "api:read": gets RS256 JWT access tokens (typ at+jwt) for
//          the default resource, the same kind of token Latchkey's client_credentials grant answers with;
//   rs     a resource server: no grants, allowed to introspect (features.introspection.allowedPolicy).
//
// oidc-provider does not store JWT access tokens (only their signature makes them valid), so its introspection
// endpoint answers {"active": false} for them. A second resource, urn:latchkey-bench:opaque, gives the same
// client opaque (stored) access tokens, the kind oidc-provider can introspect: `resource=urn:...` at the
// token endpoint. The default in-memory adapter holds them (no database: the cheapest storage it has).
//
// "Production-ish": NODE_ENV=production, no dev interactions, no discovery of dev features, no logs (the
// library writes none per request; its start-up notices are answered by configuring what they ask about).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT || 18090);
const host = process.env.HOST || '127.0.0.1';
const issuer = process.env.ISSUER || `http://${host}:${port}`;
const SCOPE = 'api:read';
const JWT_RESOURCE = 'https://api.latchkey-bench.example';
const OPAQUE_RESOURCE = 'urn:latchkey-bench:opaque';

// A fresh RS256 signing key each start, exported as a private JWK.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };

const clients = [
  {
    client_id: process.env.CC_CLIENT_ID || 'bench',
    client_secret: process.env.CC_CLIENT_SECRET || 'bench-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
  },
  {
    client_id: process.env.RS_CLIENT_ID || 'rs',
    client_secret: process.env.RS_CLIENT_SECRET || 'rs-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];
const resourceServerId = clients[1].client_id;

const resourceServers = {
  [JWT_RESOURCE]: {
    scope: SCOPE,
    audience: JWT_RESOURCE,
    accessTokenFormat: 'jwt',
    accessTokenTTL: 3600,
    jwt: { sign: { alg: 'RS256' } },
  },
  [OPAQUE_RESOURCE]: {
    scope: SCOPE,
    audience: OPAQUE_RESOURCE,
    accessTokenFormat: 'opaque',
    accessTokenTTL: 3600,
  },
};

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  scopes: ['openid', SCOPE],
  // Only what the benchmark uses; no browser flow is exercised, so the interaction URL is never reached.
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The resource server may introspect anything; a client only its own tokens.
      allowedPolicy: async (ctx, client, token) => client.clientId === resourceServerId || token.clientId === client.clientId,
    },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => JWT_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        const info = resourceServers[resourceIndicator];
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || 600,
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  // Unknown routes and errors answer JSON; no error is rendered to the console.
  renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
});
provider.proxy = false;
// Koa prints uncaught errors to stderr by default; the benchmark checks status codes instead.
provider.on('server_error', () => {});
provider.app.silent = true;

// Plain node:http, as a deployment behind a TLS-terminating proxy would run it.
const server = provider.listen(port, host, () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
