// Accessibility audit of the page a script is on, with axe-core (Deque's engine, the one behind
// Lighthouse's accessibility score), against WCAG 2.1 levels A and AA (issue 23.8): every
// violation of those rules is returned, whatever axe rates its impact.
import axe from 'axe-core';

/** The rule sets of WCAG 2.0 and 2.1, levels A and AA. */
const WCAG_21_AA = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/**
 * Runs axe on `page` and returns its violations as [{id, impact, help, nodes: [target…]}].
 * The page's context must be created with `bypassCSP: true`: Gatehouse's pages allow no script
 * but their own.
 */
export async function audit(page) {
  const hint = 'axe-core did not load: create the browser context with { bypassCSP: true }';
  await page.addScriptTag({ content: axe.source }).catch((error) => {
    throw new Error(`${hint} (${error.message})`);
  });
  if (!(await page.evaluate(() => typeof window.axe?.run === 'function'))) throw new Error(hint);
  const options = { resultTypes: ['violations'], runOnly: { type: 'tag', values: WCAG_21_AA } };
  const { violations } = await page.evaluate((options) => window.axe.run(document, options), options);
  return violations.map(({ id, impact, help, nodes }) => ({ id, impact, help, nodes: nodes.map((node) => node.target.flat().join(' ')) }));
}
