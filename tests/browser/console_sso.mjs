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
//
// Prints {saved, verifyProblems, verified, tested, active, germanTitle, axe: {screen: [violations]}, problems}.
import { audit } from './axe.mjs';
import { launch, newPage, required, run } from './harness.mjs';
import { press, signIn, throughProvider } from './pages.mjs';

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const origin = new URL(base).origin;
  const tenant = required('TENANT');
  const shots = process.env.SCREENSHOTS || null;
  const sso = `${base}/admin/${tenant}/sso`;
  const axe = {};
  const problems = [];
  const result = { saved: false, verifyProblems: [], verified: false, tested: false, active: false, germanTitle: null, axe, problems };
  const status = async (page) => (await page.getByRole('status').first().innerText().catch(() => '')).trim();
  const pressed = async (page, button) => {
    const failed = await press(page, button);
    if (failed) problems.push(failed);
  };

  const browser = await launch();
  // axe-core is injected as a script: Gatehouse's CSP would refuse it (tests/it/web.rs checks the CSP).
  const page = await newPage(browser, { bypassCSP: true });
  await page.goto(`${base}/login`);
  const signedIn = await signIn(page, origin, {
    email: required('EMAIL'), password: required('PASSWORD'), totpSecret: required('TOTP_SECRET'),
  });
  problems.push(...signedIn.problems);

  // Enter a provider whose issuer cannot be read, and save.
  await page.goto(sso);
  axe['sso-new'] = await audit(page);
  await page.getByLabel('Issuer URL', { exact: true }).fill(required('BAD_ISSUER'));
  await page.getByLabel('Client ID', { exact: true }).fill('gatehouse');
  await page.getByLabel('Client secret', { exact: true }).fill('gatehouse-secret');
  await page.getByLabel('Email domains', { exact: true }).fill(required('DOMAIN'));
  await pressed(page, 'Save the settings');
  result.saved = (await status(page)).includes('The settings are saved');

  // Verify: each problem in words.
  await pressed(page, 'Verify the provider');
  result.verifyProblems = await page.locator('#verification li').allInnerTexts();
  axe['sso-problems'] = await audit(page);
  await shot('tenant-sso-problems');

  // Correct the issuer (the secret stays), verify again, test.
  await page.getByLabel('Issuer URL', { exact: true }).fill(required('ISSUER'));
  await pressed(page, 'Save the settings');
  await pressed(page, 'Verify the provider');
  result.verified = (await status(page)).includes('passed verification');
  await pressed(page, 'Test sign-in');
  const walked = await throughProvider(page, origin, { login: required('IDP_LOGIN'), password: 'any password' });
  problems.push(...walked.problems);
  const tested = (await page.locator('main').innerText().catch(() => '')).trim();
  result.tested = tested.includes('Test sign-in succeeded');
  if (!result.tested) problems.push(`after the test sign-in the page says: ${tested.slice(0, 300)}`);
  axe['sso-tested'] = await audit(page);
  await Promise.all([page.waitForURL(sso), page.getByRole('link', { name: 'Back to the single sign-on settings' }).click()]);

  await pressed(page, 'Activate');
  result.active = (await status(page)).includes('Single sign-on is active');
  axe['sso-active'] = await audit(page);
  await shot('tenant-sso');

  await Promise.all([page.waitForURL((url) => url.href.startsWith(sso)), page.getByRole('link', { name: 'Deutsch' }).click()]);
  result.germanTitle = (await page.locator('h1').innerText()).trim();
  axe['sso-de'] = await audit(page);
  problems.push(...page.consoleErrors.filter((error) => !error.startsWith('Failed to load resource')));
  await browser.close();
  return result;

  async function shot(name) {
    if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
});
