// Checks the harness itself, without Gatehouse: the TOTP test vectors, that Debian's Chromium
// launches under playwright-core, that axe runs on a page sending Gatehouse's CSP (only in a
// context that bypasses it) and finds a real violation, and that openid-client loads on this Node.
//
//   node selfcheck.mjs   → {"ok": true, …} on the last line and exit 0, or {"error"} and exit 1
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

import { audit } from './axe.mjs';
import { launch, newPage, run } from './harness.mjs';

const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
const PAGES = {
  '/labelled': '<label for="email">Email</label><input id="email" name="email"><button>Continue</button>',
  '/unlabelled': '<input name="email"><button>Continue</button>',
};

run(async () => {
  const failures = [];
  const vectors = execFileSync(process.execPath, [fileURLToPath(new URL('totp.mjs', import.meta.url)), '--self-test'])
    .toString().trim();
  if (vectors !== '{"ok":true}') failures.push(`totp self-test: ${vectors}`);

  const client = await import('openid-client');
  for (const name of ['discovery', 'authorizationCodeGrant', 'refreshTokenGrant', 'fetchUserInfo', 'buildEndSessionUrl']) {
    if (typeof client[name] !== 'function') failures.push(`openid-client has no ${name}`);
  }

  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP });
    response.end(`<!doctype html><html lang="en"><title>Sign in</title><main><form method="post">${PAGES[request.url] ?? ''}</form></main></html>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const browser = await launch();
  const results = {};
  try {
    const page = await newPage(browser, { bypassCSP: true });
    for (const path of Object.keys(PAGES)) {
      await page.goto(`${base}${path}`);
      results[path] = await audit(page);
    }
    if (results['/labelled'].length) failures.push(`a labelled field was flagged: ${JSON.stringify(results['/labelled'])}`);
    if (!results['/unlabelled'].some((v) => v.id === 'label')) failures.push('an unlabelled field was not flagged');

    // Without the bypass the page's CSP must stop axe, with the error that says what to do.
    const strict = await newPage(browser);
    await strict.goto(`${base}/labelled`);
    const blocked = await audit(strict).then(() => null, (error) => error.message);
    if (!blocked) failures.push('axe ran despite the CSP: the CSP check is not what we think');
    results.withCsp = blocked;
  } finally {
    await browser.close();
    server.close();
  }
  if (failures.length) throw new Error(failures.join('; '));
  return { ok: true, chromium: browser.version(), axe: results };
});
