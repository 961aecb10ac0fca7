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
import { settle, submitEmail, throughProvider } from './pages.mjs';

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

    const walked = await throughProvider(page, origin, { login, password });
    seen = walked.seen;
    problems.push(...walked.problems);

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
