// Single sign-on through a tenant's identity provider, in Chromium: the person types their email on
// Gatehouse's login page, Gatehouse sends the browser to the tenant's provider (tests/idp: the
// certified oidc-provider with its development login and consent pages), the person signs in
// there, and the provider sends the browser back to Gatehouse, signed in.
//
//   BASE                       Gatehouse, e.g. http://127.0.0.1:PORT
//   EMAIL                      the user, whose domain names the tenant
//   IDP_LOGIN, IDP_PASSWORD    what to type on the provider's login page
//   IDP_ISSUER                 optional: the provider's URL, to check it is the origin visited
//   START_URL                  optional: start there (the owner's test sign-in URL, straight to the
//                              provider) instead of typing EMAIL on the login page
//
// Prints {signedIn, landedOn, visitedIdp, idpOrigins, signedInText, callbackUrls, pageText, problems}:
// `callbackUrls` are the provider's returns to Gatehouse's /login/sso/callback (to replay them),
// `pageText` what the last page says.
import { launch, newPage, required, run } from './harness.mjs';
import { press, settle, submitEmail } from './pages.mjs';

/** How many provider pages (login, consent, and any repeat) the flow may show before we give up. */
const MAX_PROVIDER_PAGES = 4;

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const email = required('EMAIL');
  const login = required('IDP_LOGIN');
  const password = required('IDP_PASSWORD');
  const idpOrigin = process.env.IDP_ISSUER ? new URL(process.env.IDP_ISSUER).origin : null;
  const origin = new URL(base).origin;

  const problems = [];
  const result = {
    signedIn: false, landedOn: null, visitedIdp: false, idpOrigins: [], signedInText: null, callbackUrls: [], pageText: null, problems,
  };
  const browser = await launch();
  try {
    // Gatehouse's CSP stays on: a redirect the browser would refuse must fail here as it would for people.
    const page = await newPage(browser);
    const visited = new Set();
    page.on('framenavigated', (frame) => {
      if (frame !== page.mainFrame()) return;
      const url = new URL(frame.url());
      visited.add(url.origin);
      if (url.origin === origin && url.pathname === '/login/sso/callback') result.callbackUrls.push(url.href);
    });

    let seen;
    if (process.env.START_URL) {
      await page.goto(process.env.START_URL);
    } else {
      await page.goto(`${base}/login`);
      seen = await settle(page, origin);
      if (seen.step !== 'email') {
        problems.push(`expected the email step, got ${seen.step} at ${seen.url}`);
        return result;
      }
      const refused = await submitEmail(page, email);
      if (refused) problems.push(`the email step: ${refused}`);
    }

    for (let pages = 0; ; pages += 1) {
      seen = await settle(page, origin);
      if (seen.step !== 'elsewhere') break;
      if (pages === MAX_PROVIDER_PAGES) {
        problems.push(`still at the provider after ${pages} pages: ${seen.url}`);
        break;
      }
      // oidc-provider's devInteractions pages (lib/views/login.js, lib/views/interaction.js): each
      // form carries a hidden `prompt`; login has `login` and `password` and a "Sign-in" button,
      // consent a "Continue" button.
      const prompt = await page.locator('form input[name="prompt"]').first().getAttribute('value', { timeout: 5_000 })
        .catch(() => null);
      let failed;
      if (prompt === 'login') {
        await page.locator('input[name="login"]').fill(login);
        await page.locator('input[name="password"]').fill(password);
        failed = await press(page, 'Sign-in');
      } else if (prompt === 'consent') {
        failed = await press(page, 'Continue');
      } else {
        const text = (await page.locator('body').innerText().catch(() => '')).trim().slice(0, 300);
        problems.push(`an unexpected page at ${seen.url}: ${text}`);
        break;
      }
      if (failed) {
        problems.push(`the provider's ${prompt} page: ${failed}`);
        break;
      }
    }

    result.landedOn = page.url();
    result.pageText = (await page.locator('body').innerText().catch(() => '')).trim().slice(0, 500);
    result.idpOrigins = [...visited].filter((seenOrigin) => seenOrigin !== origin && seenOrigin !== 'null');
    result.visitedIdp = idpOrigin ? visited.has(idpOrigin) : result.idpOrigins.length > 0;
    if (seen.step === 'signed-in') {
      result.signedInText = (await page.locator('#signed-in').innerText()).trim();
      const shown = (await page.locator('#signed-in strong').innerText()).trim();
      result.signedIn = shown.toLowerCase() === email.toLowerCase();
      if (!result.signedIn) problems.push(`signed in as ${shown}, not ${email}`);
    } else if (seen.step !== 'elsewhere' && !process.env.START_URL) {
      problems.push(`did not reach the signed-in page: ${seen.step} at ${seen.url}${seen.problem ? `: ${seen.problem}` : ''}`);
    }
  } finally {
    await browser.close();
  }
  return result;
});
