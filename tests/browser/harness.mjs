// What every script shares: reading its inputs from the environment, the one-JSON-object-per-line
// output on stdout, the time limits, and a headless Debian Chromium driven by playwright-core.
//
// The contract with the Rust tests: stdout carries only JSON lines (the last one is the result);
// diagnostics go to stderr; exit 0 means the script ran to the end, whatever it found; any other
// exit is a harness failure (the last stdout line then says {"error": …}). Nothing waits forever:
// each step gives up after STEP_TIMEOUT and the whole script after HARNESS_TIMEOUT_SECONDS (60).
import { chromium } from 'playwright-core';

/** How long one wait (a navigation, an element, a request) may take. */
export const STEP_TIMEOUT = 15_000;

/** An environment variable the script cannot run without. */
export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** Writes one JSON line to stdout. */
export function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

/**
 * Runs `main` under the global time limit and exits: 0 with its result as the last line, 1 if it
 * threw, 2 if it ran out of time.
 */
export function run(main) {
  // Libraries that log to stdout would break the JSON lines.
  console.log = console.error;
  const seconds = Number(process.env.HARNESS_TIMEOUT_SECONDS || 60);
  setTimeout(() => {
    emit({ error: `the script did not finish within ${seconds} s` });
    process.exit(2);
  }, seconds * 1000);
  main().then(
    (result) => {
      if (result !== undefined) emit(result);
      process.exit(0);
    },
    (error) => {
      console.error(error);
      // Playwright appends a coloured call log; the first line says what failed.
      emit({ error: String(error?.message ?? error).split('\n')[0] });
      process.exit(1);
    },
  );
}

/** Rejects with `message` if `promise` has not settled within `ms`. */
export function within(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Debian's Chromium, headless. Playwright kills it if this process exits first. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox'],
    timeout: STEP_TIMEOUT,
  });
}

/**
 * A page in a fresh context (its own cookies). `bypassCSP` is for pages that run axe: Gatehouse's
 * CSP has no script-src, so the injected axe script would be refused. Flows that cross origins keep
 * the CSP, so that a form-action the browser would refuse shows up here too. Console messages
 * (where Chromium reports CSP refusals) go to stderr and are collected in `page.consoleErrors`.
 */
export async function newPage(browser, { bypassCSP = false, storageState = undefined, javaScriptEnabled = true } = {}) {
  const context = await browser.newContext({ bypassCSP, storageState, javaScriptEnabled });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on('console', (message) => {
    console.error(`[browser ${message.type()}] ${message.text()}`);
    if (message.type() === 'error') page.consoleErrors.push(message.text());
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) console.error(`[browser at] ${frame.url()}`);
  });
  page.on('pageerror', (error) => {
    console.error(`[browser pageerror] ${error.message}`);
    page.consoleErrors.push(error.message);
  });
  return page;
}
