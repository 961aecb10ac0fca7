// The staff screens in Chromium (issue 23.3, 23.5, 23.6, 23.8): an operator signs in at the identity
// provider (tests/idp: the certified oidc-provider) with JavaScript off, provisions a tenant with
// the keyboard alone, then every staff screen is audited with axe-core (WCAG 2.1 A and AA), in
// English and German, with screenshots.
//
//   BASE         Gatehouse, e.g. http://127.0.0.1:PORT
//   IDP_LOGIN    the operator's account at the provider (any password)
//   TENANT       the tenant to provision; OWNER its owner's email
//   AUDITOR_LOGIN optional: an auditor's account at the provider, who exports the log's
//                tenant.create rows as CSV in the browser (the file's path is `csvFile`)
//   SCREENSHOTS  optional: a folder for PNGs
//
// Prints {provisioned, keyboardStops, germanLang, germanStatus, axe: {screen: [violations]}, problems}:
// `germanStatus` what the page says after a second tenant is provisioned in German.
import { audit } from './axe.mjs';
import { launch, newPage, required, run } from './harness.mjs';
import { tabTo, throughProvider } from './pages.mjs';

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const origin = new URL(base).origin;
  const tenant = required('TENANT');
  const owner = required('OWNER');
  const shots = process.env.SCREENSHOTS || null;
  const axe = {};
  const problems = [];
  const result = { provisioned: false, keyboardStops: null, germanLang: null, germanStatus: null, csvFile: null, auditorLang: null, axe, problems };
  const browser = await launch();

  // 1. JavaScript off: sign in at the provider, provision by keyboard alone.
  let signedInState;
  {
    const page = await newPage(browser, { javaScriptEnabled: false });
    await page.goto(`${base}/console/login`);
    const walked = await throughProvider(page, origin, { login: required('IDP_LOGIN'), password: 'any password' });
    problems.push(...walked.problems);
    if (!page.url().startsWith(`${base}/console`)) {
      problems.push(`the operator landed on ${page.url()}, not ${base}/console`);
      return result;
    }
    const stops = await tabTo(page, '#tenant-name');
    if (stops === null) {
      problems.push('the provisioning form cannot be reached with Tab');
      return result;
    }
    result.keyboardStops = stops;
    for (const value of [tenant, 'Lumon Industries', 'free', owner]) {
      await page.keyboard.type(value);
      await page.keyboard.press('Tab');
    }
    // The applications field stays empty; Enter submits the form.
    await Promise.all([page.waitForURL(/created=/), page.keyboard.press('Enter')]);
    const status = (await page.getByRole('status').first().innerText()).trim();
    result.provisioned = status.includes(tenant);
    if (!result.provisioned) problems.push(`after provisioning the page says: ${status}`);
    signedInState = await page.context().storageState();
    await page.context().close();
  }

  // 2. Every staff screen through axe (injected as a script: the CSP is bypassed for it).
  const page = await newPage(browser, { bypassCSP: true, storageState: signedInState });
  const screen = async (name, path, shot) => {
    const answer = await page.goto(`${base}${path}`);
    if (!answer || answer.status() !== 200) problems.push(`${path} answered ${answer?.status()}`);
    axe[name] = await audit(page);
    if (shot && shots) await page.screenshot({ path: `${shots}/${shot}.png`, fullPage: true });
  };
  await screen('tenants', '/console', 'console-tenants');
  await screen('tenant', '/console/tenants/acme', 'console-tenant');
  await screen('new-tenant', `/console/tenants/${tenant}`);
  await screen('platform', '/console/platform', 'console-platform');
  await screen('apps', '/console/apps');
  await screen('app', '/console/apps/billing-app');
  await screen('audit', '/console/audit', 'console-audit');
  await screen('audit-filtered', '/console/audit?action=tenant.create');
  await screen('tenant-users', `/admin/${tenant}/users`);
  await screen('tenant-sso', '/admin/acme/sso');
  await Promise.all([page.waitForURL(/\/admin\/acme\/sso/), page.getByRole('link', { name: 'Deutsch' }).click()]);
  result.germanLang = await page.locator('html').getAttribute('lang');
  await screen('tenant-de', '/console/tenants/acme', 'console-tenant-de');
  await screen('tenants-de', '/console');
  await screen('platform-de', '/console/platform');
  // The same provisioning in German (the fields found by their ids, not their German labels).
  await page.goto(`${base}/console`);
  await page.locator('#tenant-name').fill(`${tenant}-de`);
  await page.locator('#tenant-display').fill('Lumon Deutschland');
  await page.locator('#tenant-plan').fill('free');
  await page.locator('#tenant-owner').fill(`de-${owner}`);
  await Promise.all([page.waitForURL(/created=/), page.locator('#tenant-owner').press('Enter')]);
  result.germanStatus = (await page.getByRole('status').first().innerText()).trim();
  problems.push(...page.consoleErrors.filter((error) => !error.startsWith('Failed to load resource')));

  // 3. An auditor, whose pages are German, signs in at the provider, searches the log for the
  // provisioning and downloads exactly that filter as CSV.
  if (process.env.AUDITOR_LOGIN) {
    const auditor = await newPage(browser, { bypassCSP: true });
    await auditor.context().addCookies([{ name: 'gatehouse_lang', value: 'de', url: base }]);
    await auditor.goto(`${base}/console/login`);
    const walked = await throughProvider(auditor, origin, { login: process.env.AUDITOR_LOGIN, password: 'any password' });
    problems.push(...walked.problems);
    await auditor.goto(`${base}/console/audit`);
    await auditor.locator('#action').fill('tenant.create');
    await Promise.all([auditor.waitForURL(/action=tenant.create/), auditor.locator('#action').press('Enter')]);
    axe['auditor-audit-de'] = await audit(auditor);
    result.auditorLang = await auditor.locator('html').getAttribute('lang');
    const [download] = await Promise.all([
      auditor.waitForEvent('download'),
      auditor.locator('a[href^="/console/audit.csv"]').click(),
    ]);
    const path = `${shots || '/tmp'}/audit-export-${process.pid}.csv`;
    await download.saveAs(path);
    result.csvFile = path;
  }
  await browser.close();
  return result;
});
