// The OpenID provider of the OIDC end-to-end tests: node-oidc-provider (a certified OpenID
// provider), served over HTTPS, with a scripted login in place of a person at a browser.
//
//   node idp.mjs CONFIG.json
//
// CONFIG names the port, the TLS certificate and key, the signing key's id, the clients and
// the accounts, and a control file the test rewrites between logins:
//   {"account": "alice", "clockOffsetSeconds": 0}
// `account` is who the next login is (the login and consent prompts are answered at once);
// `clockOffsetSeconds` shifts this provider's clock while it issues tokens, so that they are
// already expired. Prints "listening" once it serves.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function control() {
  try {
    return JSON.parse(fs.readFileSync(config.control, 'utf8'));
  } catch {
    return {};
  }
}

// Every time this provider reads comes through Date.now. The offset applies to the token
// endpoint only, where tokens get their iat and exp: the browser's cookies stay current.
const realNow = Date.now;
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: config.kid, alg: 'RS256', use: 'sig' };

const issuer = `https://127.0.0.1:${config.port}`;
const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/'],
    token_endpoint_auth_method: 'client_secret_post',
    ...client,
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The e-mail claims belong in the ID token, which is what the CA reads.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const claims = config.accounts[id];
    if (!claims) {
      return undefined;
    }
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path !== '/token') {
    return next();
  }
  offsetMs = (control().clockOffsetSeconds || 0) * 1000;
  try {
    return await next();
  } finally {
    offsetMs = 0;
  }
});

// The scripted login: whoever the control file names logs in and consents to every scope.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    const account = control().account;
    if (!config.accounts[account]) {
      ctx.status = 400;
      ctx.body = `no account ${account}`;
      return undefined;
    }
    result = { login: { accountId: account } };
  } else {
    const grant = new provider.Grant({
      accountId: details.session.accountId,
      clientId: details.params.client_id,
    });
    grant.addOIDCScope(details.params.scope);
    result = { consent: { grantId: await grant.save() } };
  }
  return provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
});

const server = https.createServer(
  { cert: fs.readFileSync(config.cert), key: fs.readFileSync(config.key) },
  provider.callback(),
);
server.listen(config.port, '127.0.0.1', () => {
  console.log('listening');
});
