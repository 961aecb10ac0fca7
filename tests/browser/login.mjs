// Signs in to Gatehouse's own login pages in Chromium, as a person would, and audits every page on
// the way with axe-core.
//
//   BASE         Gatehouse, e.g. http://127.0.0.1:PORT
//   EMAIL        the user; PASSWORD their password
//   TOTP_SECRET  optional, base32: the user has an authenticator, so the code step must show
//   TOTP_STEP    optional: type the code of that many 30-second steps ahead (see pages.mjs)
//   EXTRA_PAGES  optional, comma-separated absolute URLs to audit only (a reset link, an invitation)
//
// The path: /login → email → password, wrong once (the error page), then right → code (if
// TOTP_SECRET) → /account or the tenant console. Prints {signedIn, landedOn, signedInText, wrongPasswordMessage,
// axe: {label: [violations]}, problems: [what did not go as expected]}.
import { audit } from './axe.mjs';
import { launch, newPage, required, run } from './harness.mjs';
import { settle, submitCode, submitEmail, submitPassword } from './pages.mjs';

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const email = required('EMAIL');
  const password = required('PASSWORD');
  const totpSecret = process.env.TOTP_SECRET || null;
  const extraPages = (process.env.EXTRA_PAGES || '').split(',').map((url) => url.trim()).filter(Boolean);
  const origin = new URL(base).origin;

  const browser = await launch();
  const axe = {};
  const problems = [];
  const result = { signedIn: false, landedOn: null, signedInText: null, wrongPasswordMessage: null, axe, problems };
  try {
    const page = await newPage(browser, { bypassCSP: true });
    /** Expects the page to show `step`; notes it in `problems` if it does not. */
    const expect = async (step) => {
      const seen = await settle(page, origin);
      if (seen.step !== step) {
        problems.push(`expected the ${step} step, got ${seen.step} at ${seen.url}${seen.problem ? `: ${seen.problem}` : ''}`);
      }
      return seen;
    };
    /** A submission that loaded nothing is a problem worth naming. */
    const submitted = (step, failed) => {
      if (failed) problems.push(`the ${step} step: ${failed}`);
    };

    await page.goto(`${base}/login`);
    if ((await expect('email')).step !== 'email') return result;
    axe.login = await audit(page);
    submitted('email', await submitEmail(page, email));
    if ((await expect('password')).step !== 'password') return result;
    axe.password = await audit(page);

    // A wrong password first: the error must say so, in an alert, on an accessible page.
    submitted('password', await submitPassword(page, `${password}-wrong`));
    const wrong = await settle(page, origin);
    result.wrongPasswordMessage = wrong.problem;
    if (!wrong.problem) problems.push(`a wrong password showed no alert (${wrong.step} at ${wrong.url})`);
    axe['wrong-password'] = await audit(page);
    if (wrong.step === 'email') {
      submitted('email', await submitEmail(page, email));
      await expect('password');
    } else if (wrong.step !== 'password') {
      problems.push(`after a wrong password the page shows ${wrong.step}, not the password step`);
      return result;
    }

    submitted('password', await submitPassword(page, password));
    let seen = await settle(page, origin);
    if (totpSecret) {
      if (seen.step === 'code') {
        axe.code = await audit(page);
        submitted('code', await submitCode(page, totpSecret));
        seen = await settle(page, origin);
      } else {
        problems.push(`TOTP_SECRET is set but the page after the password shows ${seen.step}`);
      }
    } else if (seen.step === 'code') {
      problems.push('an authentication code was asked for but TOTP_SECRET is not set');
    }
    if (seen.step === 'enrol') problems.push('Gatehouse asks to set up an authenticator first');

    result.landedOn = page.url();
    if (seen.step === 'signed-in') {
      result.signedInText = (await page.locator('#signed-in').innerText()).trim();
      const shown = (await page.locator('#signed-in strong').innerText()).trim();
      result.signedIn = shown.toLowerCase() === email.toLowerCase();
      if (!result.signedIn) problems.push(`signed in as ${shown}, not ${email}`);
      axe.account = await audit(page);
    } else {
      problems.push(`did not reach the signed-in page: ${seen.step} at ${seen.url}${seen.problem ? `: ${seen.problem}` : ''}`);
    }
  } finally {
    // Audited on their own, signed out, as the person opening the link from an email would be.
    for (const url of extraPages) {
      const page = await newPage(browser, { bypassCSP: true });
      const response = await page.goto(url).catch((error) => {
        problems.push(`${url}: ${error.message}`);
        return null;
      });
      if (response && !response.ok()) problems.push(`${url} answered ${response.status()}`);
      if (response) axe[url] = await audit(page);
      await page.context().close();
    }
    await browser.close();
  }
  return result;
});
