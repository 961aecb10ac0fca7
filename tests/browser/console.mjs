// The tenant console in Chromium (issue 23.4 and 23.8), as an owner uses it: signs in at /login,
// lands in the console, audits every screen with axe-core (WCAG 2.1 A and AA), invites a user with
// the keyboard alone in a browser with JavaScript off, opens the user, changes their role, opens
// another tenant's console (a refusal page), switches to German, and saves screenshots.
//
//   BASE          Gatehouse, e.g. http://127.0.0.1:PORT
//   EMAIL         an owner; PASSWORD their password
//   TOTP_SECRET   base32, the owner's authenticator; TOTP_STEP as in pages.mjs
//   TENANT        the owner's tenant; OTHER_TENANT another tenant
//   INVITE_EMAIL  whom to invite (as an admin)
//   SCREENSHOTS   optional: a folder for PNGs of the main screens
//
// Prints {landedOn, invited, keyboardStops, roleChanged, refusedStatus, germanLang, germanRoleStatus,
// germanInviteStatus, axe: {screen: [violations]}, problems}: the German statuses say what the page
// answered a role change and an invitation made in German.
import { audit } from './axe.mjs';
import { launch, newPage, required, run } from './harness.mjs';
import { signIn, tabTo } from './pages.mjs';

run(async () => {
  const base = required('BASE').replace(/\/$/, '');
  const email = required('EMAIL');
  const password = required('PASSWORD');
  const totpSecret = required('TOTP_SECRET');
  const tenant = required('TENANT');
  const other = required('OTHER_TENANT');
  const invite = required('INVITE_EMAIL');
  const shots = process.env.SCREENSHOTS || null;
  const origin = new URL(base).origin;
  const users = `${base}/admin/${tenant}/users`;

  const browser = await launch();
  const axe = {};
  const problems = [];
  const result = {
    landedOn: null, invited: false, keyboardStops: null, roleChanged: false, refusedStatus: null, germanLang: null,
    germanRoleStatus: null, germanInviteStatus: null, axe, problems,
  };
  const shot = async (page, name) => {
    if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  };

  // 1. Keyboard only, JavaScript off: sign in and invite, every essential action a plain form.
  let signedInState;
  {
    const page = await newPage(browser, { javaScriptEnabled: false });
    const context = page.context();
    await page.goto(`${base}/login`);
    const signedIn = await signIn(page, origin, { email, password, totpSecret });
    problems.push(...signedIn.problems);
    result.landedOn = page.url();
    if (!page.url().startsWith(users)) {
      problems.push(`an owner landed on ${page.url()}, not ${users}`);
      return result;
    }
    // Tab from the top of the page to the invitation's email field, counting the stops.
    const stops = await tabTo(page, '#invite-email');
    if (stops === null) {
      problems.push('the invitation form cannot be reached with Tab');
      return result;
    }
    result.keyboardStops = stops;
    await page.keyboard.type(invite);
    await page.keyboard.press('Tab');
    await page.keyboard.type('Keyboard Person');
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowDown'); // user → admin
    await page.keyboard.press('Tab');
    await Promise.all([page.waitForURL(/invited=/), page.keyboard.press('Enter')]);
    const status = (await page.getByRole('status').first().innerText()).trim();
    result.invited = status.includes(invite);
    if (!result.invited) problems.push(`after the invitation the page says: ${status}`);
    const role = await page.locator('tr', { hasText: invite }).locator('td').nth(2).innerText();
    if (role.trim() !== 'Admin') problems.push(`the invited user's role is ${role}, not Admin (ArrowDown in the role list)`);
    // The same browser session goes on (a TOTP code is good once).
    signedInState = await context.storageState();
    await context.close();
  }

  // 2. With JavaScript (and htmx) on: every screen audited, the role changed with the mouse.
  const page = await newPage(browser, { bypassCSP: true, storageState: signedInState });
  await page.goto(users);
  axe.users = await audit(page);
  await shot(page, 'tenant-users');
  await page.getByRole('link', { name: invite, exact: true }).click();
  await page.waitForURL(/\/users\/[^/?]+$/);
  axe.user = await audit(page);
  await shot(page, 'tenant-user');
  await page.locator('#new-role').selectOption('user');
  await Promise.all([page.waitForURL(/done=role/), page.getByRole('button', { name: 'Change the role' }).click()]);
  result.roleChanged = (await page.getByRole('status').first().innerText()).includes('The role is changed');
  axe['user-changed'] = await audit(page);

  // A problem shown beside the form: the same email invited again.
  await page.goto(users);
  await page.getByLabel('Email', { exact: true }).fill(invite);
  await page.getByRole('button', { name: 'Send the invitation' }).click();
  await page.getByRole('alert').first().waitFor();
  axe['invite-refused'] = await audit(page);

  const refused = await page.goto(`${base}/admin/${other}/users`);
  result.refusedStatus = refused?.status() ?? null;
  axe.refused = await audit(page);

  await page.goto(`${base}/account`);
  axe.account = await audit(page);

  await page.goto(`${base}/admin/${tenant}/subscription`);
  axe.subscription = await audit(page);
  await shot(page, 'tenant-subscription');

  await page.goto(users);
  await Promise.all([page.waitForURL(users), page.getByRole('link', { name: 'Deutsch' }).click()]);
  result.germanLang = await page.locator('html').getAttribute('lang');
  axe['users-de'] = await audit(page);
  await shot(page, 'tenant-users-de');
  await page.getByRole('link', { name: invite, exact: true }).click();
  await page.waitForURL(/\/users\/[^/?]+$/);
  axe['user-de'] = await audit(page);
  // In German: change the role back to admin, then invite a second colleague (fields by their ids).
  await page.locator('#new-role').selectOption('admin');
  await Promise.all([page.waitForURL(/done=role/), page.locator('form:has(#new-role) button[type=submit]').click()]);
  result.germanRoleStatus = (await page.getByRole('status').first().innerText()).trim();
  await page.goto(users);
  await page.locator('#invite-email').fill(`de-${invite}`);
  await Promise.all([page.waitForURL(/invited=/), page.locator('#invite-email').press('Enter')]);
  result.germanInviteStatus = (await page.getByRole('status').first().innerText()).trim();
  // Refusals answer 4xx pages on purpose; anything else the browser reports (a CSP refusal, a
  // script error) is a problem.
  problems.push(...page.consoleErrors.filter((error) => !error.startsWith('Failed to load resource')));
  return result;
});
