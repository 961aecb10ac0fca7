// Accessibility audit of the page a script is on, with axe-core (Deque's engine, the one behind
// Lighthouse's accessibility score). Only what axe rates "serious" or "critical" is returned: those
// are the failures that stop a person from signing in (an unlabelled field, too little contrast, a
// button with no name); "minor" and "moderate" findings are left to review.
import axe from 'axe-core';

const BLOCKING = new Set(['serious', 'critical']);

/**
 * Runs axe on `page` and returns its blocking violations as [{id, impact, help, nodes: [target…]}].
 * The page's context must be created with `bypassCSP: true`: Gatehouse's pages allow no script.
 */
export async function audit(page) {
  const hint = 'axe-core did not load: create the browser context with { bypassCSP: true }';
  await page.addScriptTag({ content: axe.source }).catch((error) => {
    throw new Error(`${hint} (${error.message})`);
  });
  if (!(await page.evaluate(() => typeof window.axe?.run === 'function'))) throw new Error(hint);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return violations
    .filter((violation) => BLOCKING.has(violation.impact))
    .map(({ id, impact, help, nodes }) => ({ id, impact, help, nodes: nodes.map((node) => node.target.flat().join(' ')) }));
}
