// Clicks through the keygate dashboard in headless Chromium (Debian's, driven by playwright-core).
//
// Run by tests/tests/e2e/dashboard.rs against a real `keygate serve`, but runnable by hand against a
// throw-away instance (it revokes and rotates that instance's keys):
//   KEYGATE_URL=http://127.0.0.1:8080 KEYGATE_OUTBOX=<data dir>/outbox.mbox \
//   KEYGATE_EMAIL=owner@example.com node tests/browser/dashboard.mjs
//
// Every step prints one JSON line {"step", "ok", "error"?, "screenshot"?}; the last line is
// {"summary": {...}}. The process exits 0 only when every step passed. One-time codes are read
// from the server's mbox outbox, as a person would read their email.

import { expect, harness, launch } from './harness.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.KEYGATE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const OUTBOX = process.env.KEYGATE_OUTBOX;
const EMAIL = process.env.KEYGATE_EMAIL || 'owner@example.com';
const ARTIFACTS = process.env.KEYGATE_ARTIFACTS || path.join(here, '..', 'artifacts');
const SCREENSHOTS = process.env.KEYGATE_SCREENSHOTS || path.join(here, '..', '..', 'target', 'screenshots');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ONLY = process.env.KEYGATE_STEPS ? new Set(process.env.KEYGATE_STEPS.split(',')) : null;
const TIMEOUT = 15_000;

if (!OUTBOX) {
  console.error('KEYGATE_OUTBOX must name the server mail outbox (mbox)');
  process.exit(2);
}

/* ---------- mail ---------- */

function messages() {
  let text = '';
  try {
    text = fs.readFileSync(OUTBOX, 'utf8');
  } catch {
    return [];
  }
  return text.split(/^From .*$/m).map((m) => m.trim()).filter(Boolean);
}

/**
 * Runs `action`, then waits for a new message to `EMAIL` and returns its 6-digit code. With
 * `mayReuse`, a request the server absorbed (a code for the same thing went out less than 30 s
 * ago and still works) sends no email: after 3 s the newest email's code is used.
 */
async function codeAfter(action, { mayReuse = false } = {}) {
  const before = messages().length;
  await action();
  const started = Date.now();
  const deadline = started + TIMEOUT;
  while (Date.now() < deadline) {
    const all = messages();
    if (all.length > before || (mayReuse && all.length && Date.now() - started > 3000)) {
      const msg = decodeMessage(all[all.length - 1]);
      // Only the body: headers carry dates and ids full of digits.
      const body = msg.slice(msg.search(/\n\s*\n/) + 1);
      const code = body.match(/(?:^|\s)(\d{6})(?=\s|$|[.,])/m) || body.match(/\b(\d{3})[ -](\d{3})\b/);
      if (code) return code.slice(1).join('');
      throw new Error(`no 6-digit code in the newest email:\n${msg.slice(0, 400)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no email arrived in the outbox');
}

/** The text of an RFC 5322 message, with quoted-printable and base64 bodies decoded. */
function decodeMessage(raw) {
  const unfolded = raw.replace(/\r\n/g, '\n');
  if (/Content-Transfer-Encoding:\s*base64/i.test(unfolded)) {
    const parts = unfolded.split(/\n\n/);
    return parts
      .map((p) => (/^[A-Za-z0-9+/=\n]+$/.test(p.trim()) && p.trim().length > 20 ? Buffer.from(p.replace(/\s/g, ''), 'base64').toString('utf8') : p))
      .join('\n\n');
  }
  return unfolded.replace(/=\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/* ---------- harness ---------- */

const { step, shot, watch, finish, consoleProblems } = harness({ artifacts: ARTIFACTS, prefix: 'dashboard', only: ONLY });
const browser = await launch(CHROMIUM);

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, baseURL: BASE });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  watch(page);

  const modal = () => page.getByRole('dialog');
  let workspacePath = null;
  let revealedAccessKey = null;

  await step('signin', page, async () => {
    await page.goto('/');
    await page.waitForURL(/\/signin/);
    await page.getByLabel('Work email').fill(EMAIL);
    const code = await codeAfter(() => page.getByRole('button', { name: 'Email me a sign-in code' }).click());
    await page.getByLabel('Sign-in code').fill(code);
    await shot(page, 'dashboard-signin-code');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    // A fresh instance has no workspace yet: the dashboard offers to create the first one.
    await page.waitForURL((u) => !u.pathname.startsWith('/signin'));
    const first = page.getByRole('heading', { name: 'Create your first workspace' });
    const tokens = page.getByRole('heading', { name: 'Tokens', level: 1 });
    await first.or(tokens).first().waitFor();
    if (await first.isVisible()) {
      await shot(page, 'dashboard-first-workspace');
      await page.getByLabel('Workspace name').fill('Production');
      await page.getByRole('button', { name: 'Create workspace' }).click();
    }
    await page.waitForURL(/\/w\/[^/]+\/tokens/);
    await tokens.waitFor();
    workspacePath = new URL(page.url()).pathname.match(/^\/w\/[^/]+/)[0];
    expect(await page.getByText(EMAIL).first().isVisible(), 'the signed-in email is not shown in the sidebar');
  });

  await step('create-and-revoke-token', page, async () => {
    await page.goto(`${workspacePath}/tokens`);
    await page.getByRole('button', { name: 'Create token' }).click();
    await modal().getByLabel('Name').fill('ci-deploy');
    await modal().getByLabel('Expires').selectOption({ label: 'In 30 days' });
    await modal().getByRole('button', { name: 'Create token' }).click();
    const value = await modal().getByTestId('new-token').inputValue();
    expect(value.length >= 20, `token value looks wrong: ${value}`);
    await modal().getByText("You won't see this token again").waitFor();
    await shot(page, 'dashboard-token-shown-once');
    await modal().getByRole('button', { name: 'Done' }).click();
    const row = page.getByRole('row', { name: /ci-deploy/ });
    await row.waitFor();
    expect(!(await row.innerText()).includes(value), 'the token list shows the full value');
    await row.getByRole('button', { name: /Revoke/ }).click();
    await modal().getByText('stop working immediately').waitFor();
    await modal().getByRole('button', { name: 'Revoke token' }).click();
    await row.waitFor({ state: 'detached' });
  });

  await step('reveal-sdk-access-key', page, async () => {
    await page.goto(`${workspacePath}/tokens`);
    await page.getByRole('tab', { name: 'SDK Access Key' }).click();
    await page.waitForURL(/\/tokens\/sdk-access-key$/);
    const hidden = page.getByLabel('SDK access key', { exact: true });
    await hidden.waitFor();
    expect((await hidden.getAttribute('type')) === 'password', 'the SDK access key field is not password-style');
    const right = await codeAfter(() => page.getByRole('button', { name: 'Reveal Key' }).click());
    await modal().getByRole('heading', { name: 'Check your email' }).waitFor();
    const wrong = right === '000000' ? '111111' : '000000';
    await modal().getByLabel('Verification code').fill(wrong);
    await modal().getByRole('button', { name: 'Verify' }).click();
    await modal().getByTestId('otp-error').getByText("That code isn't right").waitFor();
    expect(await modal().isVisible(), 'a wrong code closed the modal');
    await shot(page, 'dashboard-reveal-wrong-code');
    await modal().getByLabel('Verification code').fill(right);
    await modal().getByRole('button', { name: 'Verify' }).click();
    await modal().waitFor({ state: 'detached' });
    const revealed = page.getByTestId('sdk-access-key-revealed');
    const key = await revealed.inputValue();
    revealedAccessKey = key;
    expect(/^sk_/.test(key), `revealed key does not look like an SDK key: ${key}`);
    expect((await revealed.getAttribute('type')) !== 'password', 'revealed key is still hidden');
    await page.getByRole('button', { name: 'Copy SDK access key' }).waitFor();
  });

  await step('reveal-with-dead-code-offers-new-code', page, async () => {
    await page.goto(`${workspacePath}/tokens/sdk-access-key`);
    const right = await codeAfter(() => page.getByRole('button', { name: 'Reveal Key' }).click());
    const wrong = right === '000000' ? '111111' : '000000';
    const resend = modal().getByRole('button', { name: 'Send a new code' });
    for (let i = 0; i < 8 && !(await resend.isVisible()); i++) {
      await modal().getByLabel('Verification code').fill(wrong);
      await modal().getByRole('button', { name: 'Verify' }).click();
      await modal().getByTestId('otp-error').waitFor();
      await page.waitForTimeout(100);
    }
    expect(await resend.isVisible(), 'after many wrong codes the modal does not offer a new code');
    expect(/no longer works|expired|already been used/.test(await modal().getByTestId('otp-error').innerText()), 'the dead-code message is unclear');
    await shot(page, 'dashboard-reveal-dead-code');
    // The dead challenge's code still works for a new challenge: within 30 s no new email.
    const fresh = await codeAfter(() => resend.click(), { mayReuse: true });
    await modal().getByLabel('Verification code').fill(fresh);
    await modal().getByRole('button', { name: 'Verify' }).click();
    await modal().waitFor({ state: 'detached' });
    expect(/^sk_/.test(await page.getByTestId('sdk-access-key-revealed').inputValue()), 'no key after a new code');
  });

  await step('rotate-sdk-access-key', page, async () => {
    await page.goto(`${workspacePath}/tokens/sdk-access-key`);
    // Close the step-up window the reveals opened: rotating must then ask for a code.
    const closed = await page.evaluate(async () => {
      const csrf = document.cookie.split(';').map((c) => c.trim().split('=')).find(([n]) => n.endsWith('keygate_csrf'));
      const res = await fetch('/api/v1/auth/step-up', { method: 'DELETE', headers: { 'X-CSRF-Token': csrf ? csrf[1] : '' } });
      return res.status;
    });
    expect(closed === 204, `closing the step-up window answered ${closed}`);
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await modal().getByText('Backends still using the current key will start failing immediately').waitFor();
    const code = await codeAfter(() => modal().getByRole('button', { name: 'Rotate key' }).click());
    const confirm = page.getByRole('dialog', { name: "Confirm it's you" });
    await confirm.waitFor();
    await shot(page, 'dashboard-step-up-prompt');
    await confirm.getByLabel('Verification code').fill(code);
    await confirm.getByRole('button', { name: 'Verify' }).click();
    await confirm.waitFor({ state: 'detached' });
    await modal().first().waitFor({ state: 'detached' });
    await page.getByText('SDK access key rotated').waitFor();
    const fresh = page.getByTestId('sdk-access-key-new');
    if (await fresh.count()) {
      const key = await fresh.inputValue();
      expect(/^sk_/.test(key) && key !== revealedAccessKey, `rotation did not show a new key: ${key}`);
    }
  });

  await step('modal-keyboard', page, async () => {
    await page.goto(`${workspacePath}/tokens`);
    const opener = page.getByRole('button', { name: 'Create token' });
    await opener.click();
    await modal().waitFor();
    // Focus stays inside the dialog however often Tab is pressed.
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      expect(await modal().evaluate((d) => d.contains(document.activeElement)), `Tab ${i + 1} left the dialog`);
    }
    await page.keyboard.press('Escape');
    await modal().waitFor({ state: 'detached' });
    expect(await opener.evaluate((b) => b === document.activeElement), 'focus did not return to the opener');
  });

  await step('revoke-publishable-key', page, async () => {
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    const field = page.getByTestId('publishable-key');
    const before = await field.inputValue();
    expect(/^pk_/.test(before), `publishable key looks wrong: ${before}`);
    await page.getByRole('button', { name: 'Revoke Key' }).click();
    await modal().getByText('Systems still using the old key will start failing immediately').waitFor();
    await shot(page, 'dashboard-revoke-confirm');
    await modal().getByRole('button', { name: 'Revoke and issue a new key' }).click();
    await modal().waitFor({ state: 'detached' });
    await page.getByTestId('revoke-notice').waitFor();
    const after = await field.inputValue();
    expect(/^pk_/.test(after) && after !== before, `the key did not change: ${before} -> ${after}`);
    await shot(page, 'dashboard-publishable-key-new');
    await page.reload();
    expect((await page.getByTestId('publishable-key').inputValue()) === after, 'the new key did not survive a reload');
  });

  await step('blacklist-rule', page, async () => {
    // Rules pick from the workspace's catalogue: make sure it has a module first.
    await page.goto(`${workspacePath}/modules`);
    await page.getByRole('heading', { name: 'Modules', level: 1 }).waitFor();
    const names = page.getByLabel('Module name');
    let found = false;
    for (const input of await names.all()) if ((await input.inputValue()) === 'payments') found = true;
    if (!found) {
      await page.getByRole('button', { name: 'Add module' }).click();
      await names.last().fill('payments');
      await page.getByLabel('Functionalities, separated by commas').last().fill('charge, refund');
      await page.getByRole('button', { name: 'Save catalogue' }).click();
      await page.getByText('Catalogue saved').waitFor();
    }
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    const rows = page.getByTestId('blacklist-table').getByRole('row');
    // Start from an empty blacklist, so the test can be run again against the same server.
    const removeButtons = page.getByTestId('blacklist-remove');
    await page.getByRole('button', { name: 'Blacklist Action' }).waitFor();
    while ((await removeButtons.count()) > 0) {
      const n = await removeButtons.count();
      await removeButtons.first().click();
      await page.waitForFunction((k) => document.querySelectorAll('[data-testid=blacklist-remove]').length < k, n);
    }
    const addRule = async (functionality) => {
      await page.getByRole('button', { name: 'Blacklist Action' }).click();
      await modal().getByLabel('Module').selectOption('payments');
      await modal().getByLabel('Functionality').selectOption(functionality);
      if (functionality.label === 'refund') await shot(page, 'dashboard-blacklist-modal');
      await modal().getByRole('button', { name: 'Save rule' }).click();
      await modal().waitFor({ state: 'detached' });
    };
    await addRule({ label: 'refund' });
    await addRule({ label: 'All functionalities' });
    await page.getByTestId('blacklist-table').waitFor();
    expect((await rows.count()) === 3, `expected 2 rules, saw ${(await rows.count()) - 1}`);
    await page.getByTestId('blacklist-table').getByText('All functionalities').waitFor();
    await shot(page, 'dashboard-blacklist-two-rules', true);
    await page.getByRole('button', { name: 'Remove rule payments refund' }).click();
    await page.getByRole('button', { name: 'Remove rule payments refund' }).waitFor({ state: 'detached' });
    expect((await rows.count()) === 2, 'the rule was not removed');
    await page.reload();
    await page.getByTestId('blacklist-table').waitFor();
    expect((await page.getByTestId('blacklist-table').getByRole('row').count()) === 2, 'the removal did not survive a reload');
  });

  await step('modules-routes', page, async () => {
    // The Modules page's routes box: a route saved with the catalogue, kept across a reload,
    // tried in "Test a request" (mapped and allowed, mapped but blacklisted by the rule on
    // payments/* from the previous step, unmapped), and an overlap refused with the server's
    // message.
    await page.goto(`${workspacePath}/modules`);
    await page.getByRole('heading', { name: 'Modules', level: 1 }).waitFor();
    const names = page.getByLabel('Module name');
    const funcs = page.getByLabel('Functionalities, separated by commas');
    const routes = page.getByTestId('module-routes');
    const rowOf = async (module) => {
      const all = await names.all();
      for (let i = 0; i < all.length; i += 1) if ((await all[i].inputValue()) === module) return i;
      await page.getByRole('button', { name: 'Add module' }).click();
      await names.last().fill(module);
      return all.length;
    };
    const billing = await rowOf('billing');
    await funcs.nth(billing).fill('refund, payout');
    await routes.nth(billing).fill('refund: POST /billing/refunds/*');
    const payments = await rowOf('payments');
    await funcs.nth(payments).fill('charge, refund');
    await routes.nth(payments).fill('charge: POST /payments/charges');
    await page.getByRole('button', { name: 'Save catalogue' }).click();
    await page.getByText('Catalogue saved').waitFor();
    await shot(page, 'dashboard-modules-routes-saved', true);

    await page.reload();
    await page.getByRole('heading', { name: 'Modules', level: 1 }).waitFor();
    const kept = await routes.nth(await rowOf('billing')).inputValue();
    expect(kept.includes('refund: POST /billing/refunds/*'), `the route did not survive a reload: ${JSON.stringify(kept)}`);

    const result = page.getByTestId('route-test-result');
    const tryRequest = async (method, path, expected) => {
      await page.getByLabel('Method', { exact: true }).selectOption(method);
      await page.getByLabel('Path', { exact: true }).fill(path);
      await page.getByRole('button', { name: 'Test', exact: true }).click();
      await page.waitForFunction(
        ([el, text]) => document.querySelector(el)?.textContent.includes(text),
        ['[data-testid=route-test-result]', expected],
      );
      return result.innerText();
    };
    const mapped = await tryRequest('POST', '/billing/refunds/42', 'billing/refund');
    expect(mapped.includes('allowed for the publishable key'), `a mapped, allowed path reads: ${mapped}`);
    await shot(page, 'dashboard-modules-test-mapped', true);
    const blocked = await tryRequest('POST', '/payments/charges', 'payments/charge');
    expect(blocked.includes('blacklisted'), `a blacklisted action reads: ${blocked}`);
    const unmapped = await tryRequest('GET', '/nowhere/at/all', 'No route matches');
    expect(unmapped.includes('ROUTE_NOT_MAPPED'), `an unmapped path reads: ${unmapped}`);
    await shot(page, 'dashboard-modules-test-unmapped', true);

    // The same request under two functionalities: the server refuses the catalogue and says why.
    const b = await rowOf('billing');
    await routes.nth(b).fill('refund: POST /billing/refunds/*\npayout: POST /billing/refunds/*');
    await page.getByRole('button', { name: 'Save catalogue' }).click();
    const error = page.getByRole('alert').filter({ hasText: 'overlaps' });
    await error.waitFor();
    const text = await error.innerText();
    expect(/billing\/payout/.test(text) && /billing\/refund/.test(text), `the conflict message names neither route: ${text}`);
    await shot(page, 'dashboard-modules-route-conflict', true);
    await page.reload();
    await page.getByRole('heading', { name: 'Modules', level: 1 }).waitFor();
    const after = await routes.nth(await rowOf('billing')).inputValue();
    expect(!after.includes('payout'), 'the refused catalogue was stored');

    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.getByRole('heading', { name: 'Modules', level: 1 }).waitFor();
    await tryRequest('POST', '/billing/refunds/7', 'billing/refund');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, 'dashboard-phone-modules', true);
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(overflow <= 0, `the Modules page scrolls sideways at 390px (${overflow}px too wide)`);
  });

  await step('allowed-origins', page, async () => {
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    await page.getByLabel('Allowed origins').fill('https://app.example.com\nhttps://admin.example.com');
    await page.getByLabel('Origin URL').fill('https://api.example.com');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('Origins saved').waitFor();
    await page.reload();
    expect((await page.getByLabel('Allowed origins').inputValue()).includes('https://admin.example.com'), 'allowed origins were not saved');
  });

  await step('gateway-secret', page, async () => {
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    await page.getByTestId('forward-cookies').check();
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('Origins saved').waitFor();
    await page.reload();
    expect(await page.getByTestId('forward-cookies').isChecked(), 'forwarding cookies was not saved');
    await page.getByTestId('gateway-secret-show').click();
    const first = await page.getByTestId('gateway-secret-0').inputValue();
    expect(/^[0-9a-f]{64}$/.test(first), `the gateway secret looks wrong: ${first}`);
    await page.getByTestId('gateway-secret-rotate').click();
    await modal().getByRole('button', { name: 'Rotate' }).click();
    await page.getByText('Gateway secret rotated').waitFor();
    const current = await page.getByTestId('gateway-secret-0').inputValue();
    const previous = await page.getByTestId('gateway-secret-1').inputValue();
    expect(current !== first && previous === first, 'rotation did not keep the previous secret for the overlap');
    await shot(page, 'dashboard-gateway-secret', true);
  });

  await step('create-and-revoke-sdk-key', page, async () => {
    await page.goto('/settings/sdk-keys');
    await page.getByText('Backend-only secrets').waitFor();
    await page.getByRole('button', { name: 'Create SDK key' }).click();
    await modal().getByLabel('Name').fill('billing-service');
    await modal().getByLabel('API keys: write').check();
    await modal().getByLabel('Workspaces: read').check();
    expect(await modal().getByLabel('API keys: read').isChecked(), 'write did not imply read');
    await modal().getByRole('button', { name: 'Create SDK key' }).click();
    const value = await modal().getByTestId('new-sdk-key').inputValue();
    expect(/^sk_/.test(value), `new SDK key looks wrong: ${value}`);
    await modal().getByText("You won't see this SDK key again without a verification code").waitFor();
    await shot(page, 'dashboard-sdk-key-created');
    await modal().getByRole('button', { name: 'Done' }).click();
    const row = page.getByRole('row', { name: /billing-service/ });
    await row.waitFor();
    expect(!(await row.innerText()).includes(value), 'the SDK key list shows the full value');
    await shot(page, 'dashboard-sdk-keys-list', true);

    // Reveal it again by code.
    const code = await codeAfter(() => row.getByRole('button', { name: /Reveal/ }).click());
    await modal().getByLabel('Verification code').fill(code);
    await modal().getByRole('button', { name: 'Verify' }).click();
    const shown = await modal().getByTestId('sdk-key-revealed').inputValue();
    expect(shown === value, 'the revealed SDK key differs from the one created');
    await modal().getByRole('button', { name: 'Done' }).click();

    await row.getByRole('button', { name: /Revoke/ }).click();
    await modal().getByText('will start failing immediately').waitFor();
    await modal().getByRole('button', { name: 'Revoke key' }).click();
    await row.waitFor({ state: 'detached' });
  });

  await step('members-and-audit', page, async () => {
    await page.goto('/settings/members');
    const colleague = `colleague-${Date.now()}@example.com`;
    await page.getByLabel('Email', { exact: true }).fill(colleague);
    await page.getByLabel('Role', { exact: true }).selectOption('admin');
    await page.getByRole('button', { name: 'Invite' }).click();
    const row = page.getByRole('row', { name: new RegExp(colleague) });
    await row.waitFor();
    await row.getByRole('combobox').selectOption('member');
    await page.getByText('is now member').waitFor();
    await page.goto('/settings/audit');
    await page.getByTestId('audit-table').waitFor();
    expect((await page.getByTestId('audit-table').getByRole('row').count()) > 1, 'the audit log is empty');
  });

  await step('usage', page, async () => {
    // Verifies through the dashboard's own API module (the session): a key with 3 uses hit 5
    // times with billing (3 VALID, 2 USAGE_LIMITED, 3 x 2 units to cus_a), a disabled key once.
    await page.goto(`${workspacePath}/tokens`);
    const workspaceId = decodeURIComponent(workspacePath.split('/')[2]);
    const statuses = await page.evaluate(async (workspaceId) => {
      const api = await import('/assets/api.js');
      const create = (extra) => api.post('/api/v1/api-key', { name: 'usage-key', workspaceId, scopes: [], enabled: true, ...extra });
      const limited = (await create({ totalUsageAllowed: 3, customerId: 'cus_a' })).apiKey.key;
      const off = (await create({ name: 'off-key', enabled: false })).apiKey.key;
      const billing = { useCustomerIdForBilling: true, usage: 2 };
      const out = [];
      for (const key of [limited, limited, limited, limited, limited, off]) {
        out.push((await api.post('/api/v1/api-key/verify', { key, requestedScopes: [], billing })).status);
      }
      return out;
    }, workspaceId);
    expect(statuses.join() === 'VALID,VALID,VALID,USAGE_LIMITED,USAGE_LIMITED,DISABLED', `verify answered ${statuses}`);
    await page.waitForTimeout(1500); // the statistics are flushed once a second
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
    const chart = page.getByTestId('usage-chart');
    await chart.locator('svg').waitFor();
    const bars = chart.locator('g.chart-bar');
    expect((await bars.count()) === 1, `expected one day with verifications, got ${await bars.count()} bars`);
    expect((await bars.first().getAttribute('data-total')) === '6', 'the bar does not total 6 verifications');
    expect((await bars.first().locator('rect').count()) === 3, 'the bar does not stack 3 outcomes');
    // Columns: VALID first, then the refusals in the API's order (DISABLED before USAGE_LIMITED).
    for (const label of ['Valid', 'Usage limited', 'Disabled']) await page.locator('.chart-legend').getByText(label, { exact: true }).waitFor();
    const today = new Date().toISOString().slice(0, 10);
    await page.getByRole('button', { name: 'Show verifications as a table' }).click();
    const row = page.getByTestId('usage-table').getByRole('row', { name: new RegExp(today) });
    const cells = (await row.getByRole('cell').allInnerTexts()).map((t) => t.trim());
    expect(cells.join('|') === `${today}|3|1|2|6`, `today's row reads ${cells.join('|')}`);
    const billingRow = page.getByTestId('billing-table').getByRole('row', { name: /cus_a/ });
    expect((await billingRow.innerText()).includes('6'), 'cus_a was not billed 6 units');
    expect((await page.getByTestId('billing-chart').locator('g.chart-bar').count()) === 1, 'the billing chart has no bar for today');
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'usage-desktop.png'), fullPage: true, animations: 'disabled' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300); // the charts redraw at the new width
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'usage-phone.png'), fullPage: true, animations: 'disabled' });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'usage-phone-top.png'), animations: 'disabled' });
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(overflow <= 0, `the usage page scrolls sideways at 390 px by ${overflow} px`);
    // One key's series.
    const keySelect = page.getByLabel('API key', { exact: true });
    await keySelect.selectOption(await keySelect.locator('option', { hasText: 'usage-key' }).first().getAttribute('value'));
    await page.waitForFunction(() => document.querySelector('[data-testid="usage-chart"] g.chart-bar')?.getAttribute('data-total') === '5');
  });

  await step('controls-are-labelled', page, async () => {
    // Every visible control has an accessible name: a <label>, aria-label(ledby) or its text.
    const unlabelled = () =>
      page.evaluate(() => {
        const bad = [];
        for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
          if (el.type === 'hidden' || el.getClientRects().length === 0) continue;
          const byIds = (el.getAttribute('aria-labelledby') || '')
            .split(/\s+/)
            .map((id) => document.getElementById(id)?.textContent.trim() || '')
            .join(' ')
            .trim();
          const name =
            (el.getAttribute('aria-label') || '').trim() ||
            [...(el.labels || [])].map((l) => l.textContent.trim()).join(' ') ||
            byIds ||
            (['BUTTON', 'A'].includes(el.tagName) ? el.textContent.trim() : '');
          if (!name) bad.push(el.outerHTML.slice(0, 140));
        }
        return bad;
      });
    const problems = [];
    const check = async (where) => problems.push(...(await unlabelled()).map((b) => `${where}: ${b}`));
    for (const tab of ['', '/sdk-access-key', '/publishable-key']) {
      await page.goto(`${workspacePath}/tokens${tab}`);
      await page.getByRole('tabpanel').getByRole('heading').first().waitFor();
      await check(`tokens${tab}`);
    }
    await page.getByRole('button', { name: 'Blacklist Action' }).click();
    await modal().waitFor();
    await check('blacklist modal');
    await page.keyboard.press('Escape');
    for (const where of [`${workspacePath}/modules`, '/settings/sdk-keys', '/settings/members', '/settings/audit']) {
      await page.goto(where);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await page.waitForLoadState('networkidle');
      await check(where);
    }
    await page.goto('/settings/sdk-keys');
    await page.getByRole('button', { name: 'Create SDK key' }).click();
    await modal().waitFor();
    await check('create SDK key modal');
    await page.keyboard.press('Escape');
    expect(problems.length === 0, `controls without a name:\n${problems.join('\n')}`);
  });

  await step('phone-width', page, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    await page.getByTestId('publishable-key').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page scrolls sideways at 390px (${overflow}px too wide)`);
    await shot(page, 'dashboard-phone-publishable-key', true);
    await page.getByRole('tab', { name: 'SDK Access Key' }).click();
    await codeAfter(() => page.getByRole('button', { name: 'Reveal Key' }).click());
    await modal().getByLabel('Verification code').waitFor();
    await shot(page, 'dashboard-phone-reveal-modal');
    await page.keyboard.press('Escape');
    await modal().waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Open navigation' }).click();
    await page.getByRole('link', { name: 'SDK keys' }).click();
    await page.getByRole('heading', { name: 'SDK keys', level: 1 }).waitFor();
    const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow2 <= 0, `SDK keys scrolls sideways at 390px (${overflow2}px too wide)`);
    await page.getByRole('button', { name: 'Open navigation' }).click();
    await page.getByRole('link', { name: 'SDK keys' }).waitFor();
    await page.waitForTimeout(400); // the drawer slides in
    await shot(page, 'dashboard-phone-menu');
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step('workspace-switcher', page, async () => {
    await page.goto(`${workspacePath}/tokens/publishable-key`);
    const name = `Staging ${Date.now() % 100000}`;
    await page.getByRole('button', { name: 'New workspace' }).click();
    await modal().getByLabel('Workspace name').fill(name);
    await modal().getByRole('button', { name: 'Create workspace' }).click();
    await page.waitForURL((u) => !u.pathname.startsWith(workspacePath));
    const switcher = page.getByRole('combobox', { name: 'Workspace', exact: true });
    expect((await switcher.locator('option:checked').innerText()) === name, 'the switcher does not show the new workspace');
    await page.getByRole('tab', { name: 'Publishable Key' }).click();
    const otherKey = await page.getByTestId('publishable-key').inputValue();
    await switcher.selectOption({ label: 'Production' });
    await page.waitForURL(new RegExp(`${workspacePath}/tokens/publishable-key$`));
    const ownKey = await page.getByTestId('publishable-key').inputValue();
    expect(/^pk_/.test(otherKey) && otherKey !== ownKey, 'each workspace should have its own publishable key');
  });

  await step('sign-out', page, async () => {
    await page.goto(`${workspacePath}/tokens`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/signin/);
    await page.goto(`${workspacePath}/tokens`);
    await page.waitForURL(/\/signin/);
  });

  await step('no-console-errors', page, async () => {
    // 401s on purpose (signed-out checks) and 4xx from deliberate wrong codes are expected.
    const real = consoleProblems.filter((p) => !/status of 4\d\d/.test(p));
    expect(real.length === 0, real.join('\n'));
  });
} finally {
  await browser.close();
}
process.exit(finish());
