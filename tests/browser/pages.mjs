// Gatehouse's sign-in pages as a person sees them: the labels and button names below are the whole
// contract between these scripts and the server-rendered pages. A step is recognised by its field,
// never by its URL, so the pages may move without breaking the scripts.
//
//   email     <input name="email"> labelled "Email", button "Continue"
//   password  <input name="password" type="password"> labelled "Password", button "Sign in"
//   code      <input name="code"> labelled "Authentication code", button "Verify"
//   enrol     the same field with a button "Confirm": setting up an authenticator (not automated)
//   signed-in #signed-in "Signed in as <strong>EMAIL</strong>" on /account and in a console's navigation
//   page      a loaded page that asks for nothing and does not move on by itself: where a flow ends
//   problem   <p role="alert" class="problem">…</p> beside any of them
import { STEP_TIMEOUT } from './harness.mjs';
import { totp } from './totp.mjs';

const FIELDS = [
  ['code', 'Authentication code'],
  ['password', 'Password'],
  ['email', 'Email'],
];

/**
 * Which step the page shows now, without waiting: {step, url, problem}. `step` is one of the
 * above, `elsewhere` once the browser has left `origin` (Gatehouse), or `unknown` while a page
 * loads or moves on by itself.
 */
export async function classify(page, origin) {
  const url = page.url();
  if (new URL(url).origin !== origin) return { step: 'elsewhere', url, problem: null };
  try {
    const alert = page.getByRole('alert');
    const problem = (await alert.count()) ? (await alert.first().innerText()).trim() : null;
    if (await page.locator('#signed-in').first().isVisible()) return { step: 'signed-in', url, problem };
    for (const [step, label] of FIELDS) {
      if (!(await page.getByLabel(label, { exact: true }).first().isVisible())) continue;
      // Setting up an authenticator asks for a code too, but confirms it with "Confirm".
      if (step === 'code' && (await page.getByRole('button', { name: 'Confirm', exact: true }).count())) {
        return { step: 'enrol', url, problem };
      }
      return { step, url, problem };
    }
    // A page that asks for nothing and does not move on by itself (no meta refresh) once loaded:
    // an answer such as "this organisation has no account for you", where the flow ends.
    const loaded = (await page.evaluate(() => document.readyState)) === 'complete';
    if (loaded && !(await page.locator('meta[http-equiv="refresh"]').count())) return { step: 'page', url, problem };
    return { step: 'unknown', url, problem };
  } catch (error) {
    // The page navigated while we looked.
    return { step: 'unknown', url, problem: null, detail: error.message };
  }
}

/**
 * Waits until the page shows a step it recognises (or has left `origin`), polling the DOM: an
 * interstitial page that moves on by itself (a meta refresh) is passed over. Gives up after
 * STEP_TIMEOUT and returns the last `unknown`.
 */
export async function settle(page, origin) {
  const deadline = Date.now() + STEP_TIMEOUT;
  for (;;) {
    let seen = await classify(page, origin);
    if (seen.step === 'page') {
      // A page about to move on (a meta refresh under way, a navigation not yet committed) can
      // look like an end for a moment: an end is one that is still there a little later.
      await page.waitForTimeout(500);
      const again = await classify(page, origin);
      seen = again.step === 'page' && again.url === seen.url ? again : { ...again, step: again.step === 'page' ? 'unknown' : again.step };
    }
    if (seen.step !== 'unknown' || Date.now() > deadline) {
      if (seen.step === 'elsewhere') await page.waitForLoadState('load').catch(() => {});
      return seen;
    }
    await page.waitForTimeout(100);
  }
}

/**
 * Presses the button named `button` and waits for the browser to load what the form submission led
 * to. Returns null once a page has loaded, else why not: the browser's console errors since the
 * press (where Chromium reports a CSP form-action refusal).
 */
export async function press(page, button) {
  const before = page.consoleErrors.length;
  const navigated = page
    .waitForEvent('framenavigated', { predicate: (frame) => frame === page.mainFrame(), timeout: STEP_TIMEOUT })
    .then(() => true, () => false);
  await page.getByRole('button', { name: button, exact: true }).click();
  if (await navigated) return null;
  const errors = page.consoleErrors.slice(before).map((text) => text.trim());
  return `pressing "${button}" loaded nothing${errors.length ? `: ${errors.join(' | ')}` : ''}`;
}

/** Fills the field labelled `label` and presses `button`; see `press`. */
export async function submit(page, label, value, button) {
  await page.getByLabel(label, { exact: true }).fill(value);
  return press(page, button);
}

export const submitEmail = (page, email) => submit(page, 'Email', email, 'Continue');
export const submitPassword = (page, password) => submit(page, 'Password', password, 'Sign in');
/**
 * Types the authenticator's code. Gatehouse takes each 30-second step's code once and accepts the
 * next step's too, so a second sign-in of the same user within 30 s sets TOTP_STEP=1.
 */
export function submitCode(page, secret) {
  const code = totp(secret, Date.now() / 1000 + 30 * Number(process.env.TOTP_STEP || 0));
  return submit(page, 'Authentication code', code, 'Verify');
}

/**
 * Signs in from whatever step the page shows (none if a session already exists) until the browser
 * lands somewhere that is not a sign-in step: the account page, or the application Gatehouse sends
 * it back to. Returns {step, url, problem, problems}: where it ended, and what did not go as expected.
 */
export async function signIn(page, origin, { email, password, totpSecret }) {
  const problems = [];
  const done = new Set();
  for (;;) {
    const seen = await settle(page, origin);
    if (seen.step === 'enrol') problems.push('Gatehouse asks to set up an authenticator first');
    if (!['email', 'password', 'code'].includes(seen.step)) {
      if (totpSecret && !done.has('code') && done.has('password')) {
        problems.push('TOTP_SECRET is set but no authentication code was asked for');
      }
      return { ...seen, problems };
    }
    if (done.has(seen.step)) {
      problems.push(`the ${seen.step} step came back${seen.problem ? `: ${seen.problem}` : ''}`);
      return { ...seen, problems };
    }
    if (seen.step === 'code' && !totpSecret) {
      problems.push('an authentication code was asked for but TOTP_SECRET is not set');
      return { ...seen, problems };
    }
    done.add(seen.step);
    const value = { email, password, code: totpSecret }[seen.step];
    const failed = await { email: submitEmail, password: submitPassword, code: submitCode }[seen.step](page, value);
    if (failed) {
      problems.push(`the ${seen.step} step: ${failed}`);
      return { ...(await classify(page, origin)), problems };
    }
  }
}

/** How many identity provider pages (login, consent, and any repeat) a flow may show before we give up. */
const MAX_PROVIDER_PAGES = 4;

/**
 * Signs in at an identity provider made by tests/idp (the certified oidc-provider with its
 * development login and consent pages) as `login`, from wherever the browser is, until it is back
 * on `origin`. Returns {seen, problems}: the step it came back to (see `settle`), and what did not
 * go as expected.
 */
export async function throughProvider(page, origin, { login, password }) {
  const problems = [];
  for (let pages = 0; ; pages += 1) {
    const seen = await settle(page, origin);
    if (seen.step !== 'elsewhere') return { seen, problems };
    if (pages === MAX_PROVIDER_PAGES) {
      problems.push(`still at the provider after ${pages} pages: ${seen.url}`);
      return { seen, problems };
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
      return { seen, problems };
    }
    if (failed) {
      problems.push(`the provider's ${prompt} page: ${failed}`);
      return { seen, problems };
    }
  }
}

/** The most Tab presses a keyboard walk tries before it says a field cannot be reached. */
const MAX_TAB_STOPS = 40;

/**
 * Tabs from the top of the page until the field `selector` has the focus, as a keyboard user
 * would: the number of presses it took, or null if it was never reached.
 */
export async function tabTo(page, selector) {
  await page.locator('body').focus();
  for (let stops = 1; stops <= MAX_TAB_STOPS; stops += 1) {
    await page.keyboard.press('Tab');
    if (await page.locator(selector).evaluate((field) => field === document.activeElement)) return stops;
  }
  return null;
}
