// A real OpenID Provider for the integration tests (tests/it/operators.rs): the certified npm
// `oidc-provider`, on 127.0.0.1 at a free port. It prints its issuer URL as the first line on stdout
// and serves, beside the provider itself, a few test controls under /_harness/:
//
//   POST /_harness/token  {"account", "claims", "client", "ttl"}  → {"id_token", "access_token"}
//        Registers the account's claims, then signs it in as a browser would: the authorization
//        code flow with PKCE, through the provider's own login and consent pages over HTTP, and
//        the token endpoint. `client` is `gatehouse` (default) or `other-client`; `ttl` is the
//        ID token's lifetime in seconds (default 600).
//   POST /_harness/account  {"account", "claims"}  → {}
//        Registers the claims of an account that will sign in through the provider's own pages
//        in a browser (its development login accepts any password).
//   POST /_harness/rotate → {"kid"}
//        Rotates the signing key: a new RSA key with a new kid signs from now on; the JWKS serves
//        the new key and, for tokens already out, the previous one.
//
// Nothing here signs a token itself: every token comes from the provider's token endpoint.
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const REDIRECT_URI = 'http://127.0.0.1/callback';
// More redirect URIs the clients may use, comma-separated: Gatehouse's SSO callback, when the
// provider plays a tenant's identity provider (tests/it/sso.rs).
const EXTRA_REDIRECT_URIS = (process.env.IDP_REDIRECT_URIS ?? '').split(',').filter(Boolean);
const CLIENTS = ['gatehouse', 'other-client'].map((id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  redirect_uris: [REDIRECT_URI, ...EXTRA_REDIRECT_URIS],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

/** The claims of each account, as the tests register them. */
const accounts = new Map();
/** The ID token lifetime of the sign-in in progress (sign-ins run one at a time). */
let idTokenTtl = 600;
/** Signing keys, newest first: the provider signs with the first. */
const keys = [];
let provider;
let handler;
const cookieKey = randomBytes(16).toString('hex');

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `key-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

function build(issuer) {
  const configured = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: keys.slice(0, 2) },
    cookies: { keys: [cookieKey] },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, ...(accounts.get(id) ?? {}) }),
    }),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
      // Claims a deployment may require (`--oidc-required-claim`).
      tenant: ['hd'],
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'tenant'],
    // Scope claims in the ID token itself (the token Gatehouse is handed), not only at userinfo.
    conformIdTokenClaims: false,
    ttl: { IdToken: () => idTokenTtl },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
  });
  configured.on('server_error', (ctx, error) => console.error('provider error:', error));
  return configured;
}

/** A minimal cookie jar: the flow is sequential, so the latest value of each cookie wins. */
class Jar {
  cookies = new Map();

  take(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      this.cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1));
    }
  }

  header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

async function step(jar, url, init = {}) {
  const response = await fetch(url, {
    ...init,
    redirect: 'manual',
    headers: { ...(init.headers ?? {}), cookie: jar.header() },
  });
  jar.take(response);
  return response;
}

/** Signs `account` in through the provider's pages, as a browser would, and redeems the code. */
async function signIn(issuer, account, clientId) {
  const client = CLIENTS.find((c) => c.client_id === clientId);
  if (!client) throw new Error(`unknown client ${clientId}`);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const authorize = new URL(`${issuer}/auth`);
  authorize.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile groups tenant',
    state,
    nonce: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    prompt: 'login consent',
  }).toString();

  const jar = new Jar();
  let response = await step(jar, authorize);
  for (let hops = 0; hops < 12; hops += 1) {
    const location = response.headers.get('location');
    if (!location) {
      throw new Error(`the provider answered ${response.status} without a redirect: ${await response.text()}`);
    }
    const next = new URL(location, issuer);
    if (next.href.startsWith(REDIRECT_URI)) {
      if (next.searchParams.get('state') !== state) throw new Error(`state mismatch in ${next}`);
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`no code in ${next}`);
      return redeem(issuer, client, code, verifier);
    }
    if (next.pathname.startsWith('/interaction/')) {
      // The page a person would see; its form says which prompt it is.
      const page = await (await step(jar, next)).text();
      const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1];
      const form = prompt === 'login'
        ? { prompt, login: account, password: 'any password' }
        : { prompt: 'consent' };
      response = await step(jar, next, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    } else {
      response = await step(jar, next);
    }
  }
  throw new Error('the sign-in did not reach the redirect URI');
}

async function redeem(issuer, client, code, verifier) {
  const basic = Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64');
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
    }).toString(),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

function readJson(request) {
  return new Promise((resolve, reject) => {
    let text = '';
    request.on('data', (chunk) => { text += chunk; });
    request.on('end', () => {
      try { resolve(text ? JSON.parse(text) : {}); } catch (error) { reject(error); }
    });
    request.on('error', reject);
  });
}

function reply(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

let queue = Promise.resolve();

async function control(issuer, request, response) {
  const { pathname } = new URL(request.url, issuer);
  if (request.method === 'POST' && pathname === '/_harness/token') {
    const { account, claims = {}, client = 'gatehouse', ttl = 600 } = await readJson(request);
    accounts.set(account, claims);
    // One sign-in at a time, so that each gets the ID token lifetime it asked for.
    const run = queue.then(async () => {
      idTokenTtl = ttl;
      return signIn(issuer, account, client);
    });
    queue = run.catch(() => {});
    const tokens = await run;
    return reply(response, 200, { id_token: tokens.id_token, access_token: tokens.access_token });
  }
  if (request.method === 'POST' && pathname === '/_harness/account') {
    const { account, claims = {} } = await readJson(request);
    accounts.set(account, claims);
    return reply(response, 200, {});
  }
  if (request.method === 'POST' && pathname === '/_harness/rotate') {
    keys.unshift(newKey());
    provider = build(issuer);
    handler = provider.callback();
    return reply(response, 200, { kid: keys[0].kid });
  }
  return reply(response, 404, { error: `no harness control at ${pathname}` });
}

const server = createServer((request, response) => {
  if (request.url.startsWith('/_harness/')) {
    control(server.issuer, request, response).catch((error) => reply(response, 500, { error: String(error) }));
  } else {
    handler(request, response);
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  server.issuer = `http://127.0.0.1:${port}`;
  keys.unshift(newKey());
  provider = build(server.issuer);
  handler = provider.callback();
  process.stdout.write(`${server.issuer}\n`);
  // stdout carries the issuer only; anything the provider logs goes to stderr.
  console.log = console.error;
});

// The test that started the provider closes its stdin when it is done (or dies).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
