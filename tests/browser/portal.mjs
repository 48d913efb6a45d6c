// Clicks through the customer portal (`/portal#token=…`) in headless Chromium (Debian's, driven
// by playwright-core), against a real `keygate serve`. Run by tests/tests/portal.rs, which
// makes the workspace, its portal policy, an SDK key and link tokens first.
//
// Environment: KEYGATE_URL, KEYGATE_SDK_KEY (to verify keys the way a platform's backend does),
// PORTAL_ALICE and PORTAL_BOB (link tokens of two customers of one workspace), PORTAL_EXPIRED (an
// expired one), KEYGATE_COOKIE and KEYGATE_WORKSPACE (an owner's dashboard session and the
// workspace, for the policy page), PORTAL_EMBED_ALLOWED and PORTAL_EMBED_REFUSED (a
// platform page framing the portal, on an origin the workspace allows and on another), KEYGATE_STEPS (which steps), KEYGATE_ARTIFACTS (screenshots: portal-*.png).
//
// Every step prints one JSON line {"step", "ok", "error"?, "screenshot"?}; the process exits 0
// only when every step passed.

import { expect, harness, launch } from './harness.mjs';

const BASE = (process.env.KEYGATE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const SDK_KEY = process.env.KEYGATE_SDK_KEY;
const ALICE = process.env.PORTAL_ALICE;
const BOB = process.env.PORTAL_BOB;
const EXPIRED = process.env.PORTAL_EXPIRED;
const COOKIE = process.env.KEYGATE_COOKIE || '';
const WORKSPACE = process.env.KEYGATE_WORKSPACE;
const EMBED_ALLOWED = process.env.PORTAL_EMBED_ALLOWED;
const EMBED_REFUSED = process.env.PORTAL_EMBED_REFUSED;
const ARTIFACTS = process.env.KEYGATE_ARTIFACTS || 'target/screenshots';
const ONLY = process.env.KEYGATE_STEPS ? new Set(process.env.KEYGATE_STEPS.split(',')) : null;
const TIMEOUT = 15_000;
const { step, shot, watch, finish, consoleProblems } = harness({ artifacts: ARTIFACTS, prefix: 'portal-step', only: ONLY });

/** What the platform's backend learns when it verifies `key` with its SDK key. */
async function verify(key) {
  const res = await fetch(`${BASE}/api/v1/api-key/verify`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${SDK_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ key }),
  });
  return (await res.json()).status;
}

const browser = await launch();

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, baseURL: BASE });
  context.setDefaultTimeout(TIMEOUT);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  let page = await context.newPage();
  watch(page);
  const modal = () => page.getByRole('dialog');
  const rows = () => page.getByTestId('portal-keys').locator('tbody tr');

  /** Creates a key named `name` in the open portal; returns its value (shown once). */
  async function createKey(name, { scope = true } = {}) {
    await page.getByTestId('portal-create').click();
    await modal().getByLabel('Name').fill(name);
    if (scope) await modal().getByTestId('portal-scope-orders').check();
    await shot(page, `portal-create-form-${name}`);
    await modal().getByTestId('portal-submit').click();
    const value = await page.getByTestId('portal-new-key').inputValue();
    return value;
  }

  await step('open-with-fragment', () => page, async () => {
    await page.goto(`/portal#token=${ALICE}`);
    await page.getByRole('heading', { name: 'Your API keys' }).waitFor();
    expect(!page.url().includes('lt_') && !page.url().includes('#'), `the token stayed in the address bar: ${page.url()}`);
    await page.getByText('No keys yet').waitFor();
    expect((await page.getByTestId('portal-customer').textContent()).includes('alice'), 'the page does not say whose keys these are');
    await shot(page, 'portal-empty');
  });

  let firstValue = null;
  let rolledValue = null;
  await step('create-key-shown-once', () => page, async () => {
    firstValue = await createKey('Production');
    expect(/^key_[A-Za-z0-9]+$/.test(firstValue), `not a key value: ${firstValue}`);
    await modal().getByRole('button', { name: 'Copy API key' }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied === firstValue, 'the copy button did not copy the value');
    await shot(page, 'portal-created');
    await modal().getByRole('button', { name: 'Done' }).click();
    await rows().first().waitFor();
    expect((await rows().count()) === 1, 'one key expected');
    const listed = await page.getByTestId('portal-keys').textContent();
    expect(!listed.includes(firstValue), 'the list shows the full value');
    expect(listed.includes(firstValue.slice(-4)), 'the list does not show the masked value');
    expect((await verify(firstValue)) === 'VALID', 'the new key does not verify');
    await page.reload();
    await rows().first().waitFor();
    expect(!(await page.content()).includes(firstValue), 'the value is shown again after a reload');
    await shot(page, 'portal-list');
  });

  await step('roll-key', () => page, async () => {
    await rows().first().getByTestId('portal-roll').click();
    await modal().getByTestId('portal-grace').selectOption({ label: 'Keep the old value working for 1 hour' });
    await modal().getByTestId('portal-roll-submit').click();
    rolledValue = await page.getByTestId('portal-new-key').inputValue();
    expect(rolledValue !== firstValue && /^key_/.test(rolledValue), 'rolling gave no new value');
    await shot(page, 'portal-rolled');
    await modal().getByRole('button', { name: 'Done' }).click();
    expect((await verify(rolledValue)) === 'VALID', 'the rolled value does not verify');
    expect((await verify(firstValue)) === 'VALID', 'the old value stopped during its grace period');
  });

  await step('revoke-key', () => page, async () => {
    await rows().first().getByTestId('portal-revoke').click();
    await shot(page, 'portal-revoke-confirm');
    await modal().getByRole('button', { name: 'Revoke key' }).click();
    await page.getByText('No keys yet').waitFor();
    expect((await verify(rolledValue)) === 'DELETED', 'the revoked key still verifies');
  });

  await step('another-customer-sees-none-of-it', () => page, async () => {
    await createKey('Alice only', { scope: false });
    await modal().getByRole('button', { name: 'Done' }).click();
    await rows().first().waitFor();
    const bob = await context.newPage();
    watch(bob);
    await bob.goto(`/portal?token=${BOB}`);
    await bob.getByRole('heading', { name: 'Your API keys' }).waitFor();
    expect(!bob.url().includes('token='), `?token= stayed in the address bar: ${bob.url()}`);
    await bob.getByText('No keys yet').waitFor();
    const text = await bob.locator('body').textContent();
    expect(!text.includes('Alice only') && text.includes('bob'), 'bob sees alice’s keys');
    await shot(bob, 'portal-second-customer');
    await bob.close();
  });

  await step('phone-width', () => page, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await rows().first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the portal scrolls sideways at 390px (${overflow}px too wide)`);
    await shot(page, 'portal-phone', true);
    await page.getByTestId('portal-create').click();
    await modal().getByLabel('Name').waitFor();
    await shot(page, 'portal-phone-create');
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step('expired-link', () => page, async () => {
    page = await context.newPage();
    watch(page);
    await page.goto(`/portal#token=${EXPIRED}`);
    await page.getByTestId('portal-expired').waitFor();
    expect((await page.getByRole('heading', { level: 1 }).textContent()) === 'This link has expired', 'no clear expired message');
    await shot(page, 'portal-expired');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'portal-phone-expired');
  });

  await step('policy-page', () => page, async () => {
    page = await context.newPage();
    watch(page);
    await context.addCookies(COOKIE.split('; ').filter(Boolean).map((c) => {
      const at = c.indexOf('=');
      return { name: c.slice(0, at), value: c.slice(at + 1), url: BASE };
    }));
    await page.goto(`/w/${WORKSPACE}/portal`);
    await page.getByRole('heading', { name: 'Customer portal', level: 1 }).waitFor();
    expect(await page.getByTestId('policy-orders-read').isChecked(), 'the saved policy is not shown');
    expect(!(await page.getByTestId('policy-orders-del').isChecked()), 'a right the policy does not grant is shown');
    await page.getByTestId('policy-maxLiveKeys').fill('4');
    await page.getByTestId('policy-save').click();
    await page.getByText('Portal policy saved').waitFor();
    await shot(page, 'portal-policy-page', true);
    const session = await fetch(`${BASE}/api/v1/portal/session`, { headers: { Authorization: `Bearer ${ALICE}` } }).then((r) => r.json());
    expect(session.policy.maxLiveKeys === 4, `the portal did not get the new policy: ${JSON.stringify(session.policy)}`);
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the policy page scrolls sideways at 390px (${overflow}px too wide)`);
    await shot(page, 'portal-policy-phone', true);
  });

  await step('framed-only-by-allowed-origins', () => page, async () => {
    // The platform's page (served by the test on two origins) frames the portal: its own,
    // allowed origin gets it; any other origin gets nothing (CSP frame-ancestors from the
    // workspace's allowed origins).
    page = await context.newPage();
    watch(page);
    await page.goto(`${EMBED_ALLOWED}/account/keys`);
    const framed = page.frameLocator('#portal');
    await framed.getByRole('heading', { name: 'Your API keys' }).waitFor();
    await framed.getByTestId('portal-keys').locator('tbody tr').first().waitFor();
    await shot(page, 'portal-framed');

    const other = await context.newPage();
    await other.goto(`${EMBED_REFUSED}/account/keys`);
    await other.waitForTimeout(1_500);
    const frame = other.frames().find((f) => f !== other.mainFrame());
    expect(frame !== undefined, 'the platform page has no frame');
    const shown = await frame.getByRole('heading', { name: 'Your API keys' }).count();
    expect(shown === 0, 'a page of an origin the workspace does not allow framed the portal');
    await shot(other, 'portal-framed-refused');
    await other.close();
  });

  await step('no-console-errors', () => page, async () => {
    // The expired link's 401 is on purpose, and so is the refused frame.
    const real = consoleProblems.filter((p) => !/status of 401|frame-ancestors/.test(p));
    expect(real.length === 0, real.join('\n'));
  });
} finally {
  await browser.close();
}
process.exit(finish());
