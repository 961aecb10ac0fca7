// A managed application signing its users in through Gatehouse's OpenID provider with the
// certified relying party library `openid-client` (v6): discovery, the authorization code flow with
// PKCE (S256), state and nonce, the ID token checked against Gatehouse's JWKS, userinfo, refresh,
// and RP-initiated logout. Chromium plays the user on Gatehouse's login pages.
//
//   ISSUER                     Gatehouse (discovery at ISSUER/.well-known/openid-configuration)
//   CLIENT_ID, CLIENT_SECRET   the application; no secret → a public client (auth method none)
//   TOKEN_AUTH                 optional: client_secret_basic (default) or client_secret_post
//   REDIRECT_URI               registered in Gatehouse, http://127.0.0.1:PORT/…: this script listens there
//   POST_LOGOUT_REDIRECT_URI   registered too; listened on likewise
//   EMAIL, PASSWORD            the user; TOTP_SECRET (optional, base32) if they have an authenticator,
//                              TOTP_STEP (optional, see pages.mjs)
//   PROMPT                     optional `prompt` for the authorization request (e.g. consent)
//
// stdout, one JSON object a line. First, after sign-in, code exchange, userinfo and one refresh:
//   {"claims", "userinfo", "refreshed", "kid", "problems"}   or   {"error", "stage", "problems"}
// Then it reads commands from stdin, one a line, so that a test can act between them:
//   refresh   → {"refresh": "ok"|"refused", "error"?}   with the latest refresh token
//   userinfo  → {"userinfo": claims} | {"userinfo": null, "error"}
//   logout    → {"logout": {"landedOn", "stateBack", "confirmed", "problem"?}}   end-session in the
//               browser, pressing "Sign out" if Gatehouse asks to confirm
//   quit      → exits (so does the end of stdin)
//
// Only for loopback tests: the issuer is plain http, so requests are allowed without TLS.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import * as client from 'openid-client';

import { STEP_TIMEOUT, emit, launch, newPage, required, run, within } from './harness.mjs';
import { press, signIn } from './pages.mjs';

run(async () => {
  const issuer = new URL(required('ISSUER'));
  const clientId = required('CLIENT_ID');
  const secret = process.env.CLIENT_SECRET || null;
  const redirectUri = required('REDIRECT_URI');
  const postLogoutUri = required('POST_LOGOUT_REDIRECT_URI');
  const user = { email: required('EMAIL'), password: required('PASSWORD'), totpSecret: process.env.TOTP_SECRET || null };

  const arrivals = await listen([redirectUri, postLogoutUri]);
  const browser = await launch();
  try {
    const page = await newPage(browser);
    const session = await signInOnce(page, arrivals, { issuer, clientId, secret, redirectUri, user });
    emit(session.report);
    if (!session.tokens) return undefined;
    await commands(page, arrivals, session, postLogoutUri);
    return undefined;
  } finally {
    await browser.close();
    arrivals.close();
  }
});

/** The initial flow: everything up to and including the first refresh. */
async function signInOnce(page, arrivals, { issuer, clientId, secret, redirectUri, user }) {
  const problems = [];
  let stage = 'discovery';
  try {
    const config = await client.discovery(issuer, clientId, secret ? { client_secret: secret } : undefined, authMethod(secret), {
      // Gatehouse's ID tokens are checked against its JWKS, not only trusted for coming over TLS.
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      timeout: STEP_TIMEOUT / 1000,
    });
    config.timeout = STEP_TIMEOUT / 1000;

    stage = 'authorization';
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const parameters = {
      redirect_uri: redirectUri,
      scope: 'openid email profile tenant offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    };
    if (process.env.PROMPT) parameters.prompt = process.env.PROMPT;
    const callback = arrivals.next(redirectUri);
    await page.goto(client.buildAuthorizationUrl(config, parameters).href);
    const ended = await signIn(page, issuer.origin, user);
    problems.push(...ended.problems);
    if (ended.step !== 'elsewhere') {
      // An error page is no step: what it says is the clue.
      const shown = ended.problem ?? (await page.locator('body').innerText({ timeout: 2_000 }).catch(() => '')).trim().slice(0, 300);
      throw new Error(`the browser stayed on Gatehouse's ${ended.step} page at ${ended.url}${shown ? `: ${shown}` : ''}`);
    }
    const callbackUrl = await within(callback, STEP_TIMEOUT, `the browser never reached ${redirectUri}; it is at ${ended.url}`);

    stage = 'token';
    const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const session = { config, tokens, sub: claims.sub, idToken: tokens.id_token, problems };

    stage = 'userinfo';
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

    stage = 'refresh';
    const refreshed = await refresh(session);
    if (refreshed.refresh !== 'ok') problems.push(`the first refresh was refused: ${refreshed.error}`);

    session.report = { claims, userinfo, refreshed: refreshed.refresh === 'ok', kid: kidOf(tokens.id_token), problems };
    return session;
  } catch (error) {
    console.error(error);
    return { report: { error: describe(error), stage, problems } };
  }
}

function authMethod(secret) {
  if (!secret) return client.None();
  return process.env.TOKEN_AUTH === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
}

/**
 * One refresh with the latest refresh token; keeps the new tokens. A new ID token must be about
 * the same person (OpenID Connect Core §12.2).
 */
async function refresh(session) {
  const refreshToken = session.tokens.refresh_token;
  if (!refreshToken) return { refresh: 'refused', error: 'no refresh token was issued' };
  try {
    const tokens = await client.refreshTokenGrant(session.config, refreshToken);
    if (tokens.id_token) {
      const { sub } = tokens.claims();
      if (sub !== session.sub) return { refresh: 'refused', error: `the new ID token is for ${sub}, not ${session.sub}` };
      session.idToken = tokens.id_token;
    }
    // A server that does not rotate refresh tokens may leave the old one in place.
    session.tokens = { ...tokens, refresh_token: tokens.refresh_token ?? refreshToken };
    return { refresh: 'ok' };
  } catch (error) {
    console.error(error);
    return { refresh: 'refused', error: describe(error) };
  }
}

/** Answers the commands on stdin until `quit` or the end of stdin. */
async function commands(page, arrivals, session, postLogoutUri) {
  const lines = createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    const command = line.trim();
    if (command === 'quit') break;
    if (command === 'refresh') {
      emit(await refresh(session));
    } else if (command === 'userinfo') {
      try {
        emit({ userinfo: await client.fetchUserInfo(session.config, session.tokens.access_token, session.sub) });
      } catch (error) {
        emit({ userinfo: null, error: describe(error) });
      }
    } else if (command === 'logout') {
      emit({ logout: await logout(page, arrivals, session, postLogoutUri) });
    } else if (command) {
      emit({ error: `unknown command ${JSON.stringify(command)}` });
    }
  }
  lines.close();
}

/**
 * RP-initiated logout in the browser; Gatehouse should send it back with our state. If it asks
 * first (a page with a "Sign out" button), the user confirms, and `confirmed` says so.
 */
async function logout(page, arrivals, session, postLogoutUri) {
  const state = client.randomState();
  const url = client.buildEndSessionUrl(session.config, {
    id_token_hint: session.idToken,
    post_logout_redirect_uri: postLogoutUri,
    state,
  });
  const back = arrivals.next(postLogoutUri);
  let arrived = null;
  let confirmed = false;
  let problem = null;
  try {
    await page.goto(url.href);
    const signOut = page.getByRole('button', { name: 'Sign out', exact: true });
    if (!page.url().startsWith(postLogoutUri) && (await signOut.count()) === 1) {
      confirmed = true;
      const failed = await press(page, 'Sign out');
      if (failed) throw new Error(failed);
    }
    arrived = await within(back, STEP_TIMEOUT, `no redirect to ${postLogoutUri}`);
  } catch (error) {
    console.error(error);
    problem = error.message.split('\n')[0];
  }
  return {
    landedOn: page.url(),
    stateBack: arrived !== null && new URL(arrived).searchParams.get('state') === state,
    confirmed,
    ...(problem && { problem }),
  };
}

/**
 * Serves every port the given URLs name, on 127.0.0.1, and records requests: `next(url)` resolves
 * to the next full URL requested at that URL's origin and path (a later `next` for the same path
 * replaces an earlier one that is still waiting).
 */
async function listen(urls) {
  const waiting = new Map();
  const servers = new Map();
  for (const url of urls.map((text) => new URL(text))) {
    if (url.hostname !== '127.0.0.1') throw new Error(`${url} must be on http://127.0.0.1:PORT`);
    if (servers.has(url.port)) continue;
    const server = createServer((request, response) => {
      const arrived = new URL(request.url, url.origin);
      const key = `${arrived.origin}${arrived.pathname}`;
      const resolve = waiting.get(key);
      if (!resolve) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not expected\n');
        return;
      }
      waiting.delete(key);
      resolve(arrived.href);
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end('<!doctype html><html lang="en"><title>Test application</title><h1>Back at the application</h1></html>');
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(url.port), '127.0.0.1', resolve);
    });
    servers.set(url.port, server);
  }
  return {
    next(text) {
      const { origin, pathname } = new URL(text);
      return new Promise((resolve) => waiting.set(`${origin}${pathname}`, resolve));
    },
    close() {
      for (const server of servers.values()) {
        server.closeAllConnections();
        server.close();
      }
    },
  };
}

function kidOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString()).kid ?? null;
}

/** An error as one line: the OAuth error code and description when the server sent one. */
function describe(error) {
  if (error?.error) return `${error.error}${error.error_description ? `: ${error.error_description}` : ''}`;
  const cause = error?.cause?.message ? ` (${error.cause.message})` : '';
  return `${error?.code ? `${error.code}: ` : ''}${error?.message ?? error}${cause}`;
}
