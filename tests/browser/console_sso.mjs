// A tenant's owner sets up single sign-on in the tenant console, in Chromium (issue 23.4,
// FR-AUTH-003, UC-TENANT-SSO): enters a provider that cannot be verified and reads each problem,
// corrects the issuer, verifies it, completes a test sign-in at the provider (tests/idp: the
// certified oidc-provider), activates it, and reads the page in German; every screen audited with
// axe-core (WCAG 2.1 A and AA).
//
//   BASE          Gatehouse, e.g. http://127.0.0.1:PORT
//   EMAIL         an owner; PASSWORD their password
//   TOTP_SECRET   base32, the owner's authenticator; TOTP_STEP as in pages.mjs
//   TENANT        the owner's tenant
//   BAD_ISSUER    an issuer whose verification fails
//   ISSUER        the provider's issuer; its client is `gatehouse` / `gatehouse-secret`
//   DOMAIN        the email domain it signs in
//   IDP_LOGIN     the provider's account for the test sign-in (any password)
//   SCREENSHOTS   optional: a folder for PNGs
//   LANG_TAG      `de`: the owner switches the pages to German first and does every step in German
//
// Prints {lang, saved, verifyProblems, verified, tested, active, germanTitle, axe: {screen: [violations]}, problems}.
import { audit } from './axe.mjs';
import { launch, newPage, required, run } from './harness.mjs';
import { signIn, throughProvider } from './pages.mjs';

// Words the pages say at each step, per language (the fields and buttons are found by their ids
// and actions, which do not change with it).
const SAID = {
  en: {
    saved: 'The settings are saved', passed: 'passed verification', tested: 'Test sign-in succeeded',
    active: 'Single sign-on is active', back: 'Back to the single sign-on settings',
  },
  de: {
    saved: 'Die Einstellungen sind gespeichert', passed: 'hat die Prüfung bestanden', tested: 'Testanmeldung erfolgreich',
    active: 'Single Sign-on ist aktiv', back: 'Zurück zu den Single-Sign-on-Einstellungen',
  },
};

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const origin = new URL(base).origin;
  const tenant = required('TENANT');
  const lang = process.env.LANG_TAG === 'de' ? 'de' : 'en';
  const said = SAID[lang];
  const shots = process.env.SCREENSHOTS || null;
  const sso = `${base}/admin/${tenant}/sso`;
  const axe = {};
  const problems = [];
  const result = {
    lang: null, saved: false, verifyProblems: [], verified: false, tested: false, active: false, germanTitle: null, axe, problems,
  };
  const status = async (page) => (await page.getByRole('status').first().innerText().catch(() => '')).trim();

  const browser = await launch();
  // axe-core is injected as a script: Gatehouse's CSP would refuse it (tests/it/web.rs checks the CSP).
  const page = await newPage(browser, { bypassCSP: true });
  // Posts the form of `action` and waits for what it loads.
  const act = async (action) => {
    const navigated = page
      .waitForEvent('framenavigated', { predicate: (frame) => frame === page.mainFrame(), timeout: 15_000 })
      .then(() => true, () => false);
    await page.locator(`form:has(input[name="action"][value="${action}"]) button[type="submit"]`).click();
    if (!(await navigated)) problems.push(`the ${action} form loaded nothing`);
    await page.waitForLoadState('load');
  };
  await page.goto(`${base}/login`);
  const signedIn = await signIn(page, origin, {
    email: required('EMAIL'), password: required('PASSWORD'), totpSecret: required('TOTP_SECRET'),
  });
  problems.push(...signedIn.problems);

  // Enter a provider whose issuer cannot be read, and save (in German, after the page's switch).
  await page.goto(sso);
  if (lang === 'de') {
    await Promise.all([page.waitForURL((url) => url.href.startsWith(sso)), page.getByRole('link', { name: 'Deutsch' }).click()]);
  }
  result.lang = await page.locator('html').getAttribute('lang');
  axe[`sso-new-${lang}`] = await audit(page);
  await page.locator('#sso-issuer').fill(required('BAD_ISSUER'));
  await page.locator('#sso-client-id').fill('gatehouse');
  await page.locator('#sso-client-secret').fill('gatehouse-secret');
  await page.locator('#sso-domains').fill(required('DOMAIN'));
  await act('save');
  result.saved = (await status(page)).includes(said.saved);

  // Verify: each problem in words.
  await act('verify');
  result.verifyProblems = await page.locator('#verification li').allInnerTexts();
  axe[`sso-problems-${lang}`] = await audit(page);
  if (lang === 'en') await shot('tenant-sso-problems');

  // Correct the issuer (the secret stays), verify again, test.
  await page.locator('#sso-issuer').fill(required('ISSUER'));
  await act('save');
  await act('verify');
  result.verified = (await status(page)).includes(said.passed);
  await act('test');
  const walked = await throughProvider(page, origin, { login: required('IDP_LOGIN'), password: 'any password' });
  problems.push(...walked.problems);
  const tested = (await page.locator('main').innerText().catch(() => '')).trim();
  result.tested = tested.includes(said.tested);
  if (!result.tested) problems.push(`after the test sign-in the page says: ${tested.slice(0, 300)}`);
  axe[`sso-tested-${lang}`] = await audit(page);
  await Promise.all([page.waitForURL(sso), page.getByRole('link', { name: said.back }).click()]);

  await act('activate');
  result.active = (await status(page)).includes(said.active);
  axe[`sso-active-${lang}`] = await audit(page);
  if (lang === 'en') {
    await shot('tenant-sso');
    await Promise.all([page.waitForURL((url) => url.href.startsWith(sso)), page.getByRole('link', { name: 'Deutsch' }).click()]);
    result.germanTitle = (await page.locator('h1').innerText()).trim();
    axe['sso-de'] = await audit(page);
  }
  problems.push(...page.consoleErrors.filter((error) => !error.startsWith('Failed to load resource')));
  await browser.close();
  return result;

  async function shot(name) {
    if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
});
