// What every browser script here shares: launching Debian's Chromium offline, steps that print
// one JSON line each ({"step", "ok", "error"?, "screenshot"?, "ms"}) with a screenshot, and the
// console errors a page logged.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

/** Throws `message` unless `cond`. */
export function expect(cond, message) {
  if (!cond) throw new Error(message);
}

/**
 * Steps of one script: `prefix` names its screenshots (`<prefix>-<step>.png` in `artifacts`),
 * `only` (a set of step names, or null) which steps run.
 * @param {{artifacts: string, prefix: string, only: Set<string> | null}} options
 */
export function harness({ artifacts, prefix, only }) {
  fs.mkdirSync(artifacts, { recursive: true });
  const results = [];
  const consoleProblems = [];

  /** Saves `<artifacts>/<name>.png` with animations finished, so nothing is caught half-faded. */
  async function shot(page, name, fullPage = false) {
    const file = path.join(artifacts, `${name}.png`);
    await page.screenshot({ path: file, fullPage, animations: 'disabled' });
    return file;
  }

  /** Runs step `name` (unless left out), then screenshots `page` (a page, or a function giving the current one). */
  async function step(name, page, fn) {
    if (only && !only.has(name)) return;
    const started = Date.now();
    const result = { step: name, ok: true };
    try {
      await fn();
    } catch (e) {
      result.ok = false;
      result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 12).join('\n');
    }
    try {
      result.screenshot = await shot(typeof page === 'function' ? page() : page, `${prefix}-${name}`, true);
    } catch {
      /* the page may be gone */
    }
    result.ms = Date.now() - started;
    results.push(result);
    console.log(JSON.stringify(result));
  }

  /** Records the console errors and uncaught exceptions of `page`. */
  function watch(page) {
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleProblems.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => consoleProblems.push(`page error: ${err.message}`));
    return page;
  }

  /** Prints the summary line; the exit code: 0 only when every step passed. */
  function finish() {
    const summary = { passed: results.filter((r) => r.ok).length, failed: results.filter((r) => !r.ok).length };
    console.log(JSON.stringify({ summary }));
    return summary.failed === 0 && results.length > 0 ? 0 : 1;
  }

  return { step, shot, watch, finish, results, consoleProblems };
}

/**
 * Debian's Chromium, headless. Playwright adds --headless and a fresh temporary
 * --user-data-dir itself; the other flags keep Chromium from reaching for the internet.
 */
export function launch(executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium') {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
