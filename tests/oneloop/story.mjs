// Drives Oneloop's own published client, @oneloop-hq/oneloop-ts 1.0.9 (unchanged, pinned in
// package.json), against a running keygate: only the base URL differs from production use.
//
// Environment: KEYGATE_URL (http://127.0.0.1:PORT), KEYGATE_OUTBOX (the mbox file the sign-in
// code lands in), KEYGATE_EMAIL. Prints one JSON line per step: {"step", "ok", "error"?}.
// The dashboard API (sign-in by emailed code, then POST /api/v1/sdk-keys) makes the SDK key
// the client then uses as its Bearer token, as a platform's developer would.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

// The client replaces the global fetch with node-fetch 2 when it loads; the dashboard calls
// below keep Node's own (it exposes every Set-Cookie header).
const nativeFetch = globalThis.fetch;
const require = createRequire(import.meta.url);
const { OneloopClient, OneloopError } = require("@oneloop-hq/oneloop-ts");

const base = process.env.KEYGATE_URL;
const outbox = process.env.KEYGATE_OUTBOX;
const email = process.env.KEYGATE_EMAIL || "owner@example.com";
if (!base || !outbox) {
  console.error("set KEYGATE_URL and KEYGATE_OUTBOX");
  process.exit(2);
}

let failed = 0;
async function step(name, fn) {
  try {
    await fn();
    console.log(JSON.stringify({ step: name, ok: true }));
  } catch (e) {
    failed += 1;
    console.log(JSON.stringify({ step: name, ok: false, error: String(e && e.stack ? e.stack : e) }));
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}
function expectEq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the dashboard part: sign in with the emailed code, make an SDK key ---------------------

let cookie = "";
let csrf = "";
async function dashboard(method, path, body) {
  const res = await nativeFetch(base + path, {
    method,
    headers: {
      "content-type": "application/json",
      cookie,
      ...(csrf ? { "x-csrf-token": csrf } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const setCookie = res.headers.getSetCookie ? res.headers.getSetCookie() : [];
  for (const c of setCookie) {
    const [pair] = c.split(";");
    const [k] = pair.split("=");
    const rest = cookie.split("; ").filter((p) => p && !p.startsWith(k + "="));
    cookie = [...rest, pair].join("; ");
  }
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// The code is mailed by a background queue, off the request path: wait up to 10 s for it.
async function newestCode() {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let mbox = "";
    try {
      mbox = readFileSync(outbox, "utf8");
    } catch {}
    const messages = mbox.split("\nFrom ").filter((m) => m.includes(`To: ${email}`));
    const last = messages[messages.length - 1] || "";
    const line = last.split("\n").map((l) => l.trim()).find((l) => /^\d{6}$/.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error("no sign-in code in the outbox within 10 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

let sdkKey = "";
await step("sign-in-and-create-sdk-key", async () => {
  let r = await dashboard("POST", "/api/v1/auth/otp", { email });
  expectEq(r.status, 202, "otp status");
  r = await dashboard("POST", "/api/v1/auth/session", { email, code: await newestCode() });
  expectEq(r.status, 201, "session status");
  csrf = r.body.csrfToken;
  r = await dashboard("POST", "/api/v1/sdk-keys", {
    name: "oneloop story",
    scopes: { workspace: ["read", "write"], workspace_scopes: ["read", "write"], api_keys: ["read", "write"] },
  });
  expectEq(r.status, 201, "sdk key status");
  sdkKey = r.body.key;
  expect(sdkKey.startsWith("sk_"), "an sk_ key");
});

// --- from here on, only Oneloop's client ---------------------------------------------------

const oneloop = new OneloopClient({ environment: base, token: sdkKey });
const orders = (c, r, u, d) => ({ representation: "orders", create: c, read: r, update: u, del: d });
const billing = { representation: "billing", create: false, read: true, update: false, del: false };
const status = async (key, requestedScopes = [], extra = {}) =>
  (await oneloop.verifyApiKey({ key, requestedScopes, ...extra })).status;

let ws = "";
await step("workspace", async () => {
  const created = await oneloop.createWorkspace({ name: "Story shop" });
  ws = created.workspace.id;
  expect(ws, "a workspace id");
  const all = await oneloop.getWorkspace();
  expect(all.workspaces.some((w) => w.id === ws), "the workspace in the list");
  const one = await oneloop.getWorkspaceById(ws);
  expectEq(one.workspace.name, "Story shop", "name");
  const updated = await oneloop.updateWorkspace(ws, { defaultKeyPrefix: "story" });
  expectEq(updated.workspace.defaultKeyPrefix, "story", "default prefix");
});

await step("scopes", async () => {
  const a = await oneloop.createWorkspaceScopes(ws, { name: "Orders", representation: "orders", description: "orders API" });
  expectEq(a.scope.representation, "orders", "representation");
  await oneloop.createWorkspaceScopes(ws, { name: "Billing", representation: "billing" });
  const list = await oneloop.getWorkspaceScopes(ws);
  expectEq(list.scopes.map((s) => s.representation).sort(), ["billing", "orders"], "scopes");
  let threw = null;
  try {
    await oneloop.createWorkspaceScopes(ws, { name: "Again", representation: "orders" }, { maxRetries: 0 });
  } catch (e) {
    threw = e;
  }
  expect(threw instanceof OneloopError && threw.statusCode === 409, "a 409 for a duplicate representation");
});

let keyId = "";
let key = "";
await step("create-api-key", async () => {
  const r = await oneloop.createApiKey({
    name: "customer 42",
    workspaceId: ws,
    scopes: [orders(true, true, false, false)],
    enabled: true,
    customerId: "cus_42",
  });
  keyId = r.apiKey.id;
  key = r.apiKey.key;
  expect(key.startsWith("story_"), `the workspace's prefix on ${r.apiKey.maskedKey}`);
  expectEq(r.apiKey.customerId, "cus_42", "customer");
  expectEq(r.apiKey.enabled, true, "enabled");
  const got = await oneloop.getApiKeyById(ws, keyId);
  expect(got.apiKey.key === undefined, "the value is shown only once");
  const list = await oneloop.getApiKeys(ws);
  expect(list.apiKeys.some((k) => k.id === keyId), "the key in the list");
});

await step("verify-valid", async () => {
  const r = await oneloop.verifyApiKey({ key, requestedScopes: [orders(false, true, false, false)] });
  expectEq(r.status, "VALID", "status");
  expectEq(r.requestedScopes[0].representation, "orders", "requested scopes echoed");
});

await step("verify-invalid-scopes", async () => {
  expectEq(await status(key, [billing]), "INVALID_SCOPES", "another scope");
  expectEq(await status(key, [orders(false, false, false, true)]), "INVALID_SCOPES", "a right it lacks");
});

await step("verify-invalid", async () => {
  expectEq(await status("story_not-a-key"), "INVALID", "malformed");
  expectEq(await status(key.slice(0, -1) + (key.endsWith("a") ? "b" : "a")), "INVALID", "mistyped");
});

await step("disable", async () => {
  const r = await oneloop.editApiKey(ws, keyId, { enabled: false });
  expectEq(r.apiKey.enabled, false, "enabled");
  expectEq(await status(key), "DISABLED", "status");
  await oneloop.editApiKey(ws, keyId, { enabled: true, name: "customer 42 (renamed)" });
  expectEq(await status(key), "VALID", "enabled again");
});

await step("expire", async () => {
  const r = await oneloop.createApiKey({
    name: "short-lived", workspaceId: ws, scopes: [], enabled: true, customerId: "cus_7",
    expiresAt: Date.now() + 800,
  });
  expectEq(await status(r.apiKey.key), "VALID", "before expiry");
  await sleep(900);
  expectEq(await status(r.apiKey.key), "EXPIRED", "after expiry");
});

let limitedId = "";
let limited = "";
await step("exhaust", async () => {
  const r = await oneloop.createApiKey({
    name: "two uses", workspaceId: ws, scopes: [orders(false, true, false, false)], enabled: true,
    customerId: "cus_8", totalUsageAllowed: 2,
  });
  limitedId = r.apiKey.id;
  limited = r.apiKey.key;
  expectEq(r.apiKey.limitUsage, true, "limitUsage");
  expectEq(r.apiKey.totalUsageLeft, 2, "totalUsageLeft");
  expectEq(await status(limited), "VALID", "1st");
  expectEq(await status(limited), "VALID", "2nd");
  expectEq(await status(limited), "USAGE_LIMITED", "3rd");
  expectEq((await oneloop.getApiKeyById(ws, limitedId)).apiKey.totalUsageLeft, 0, "left");
});

await step("refill", async () => {
  const r = await oneloop.refillApiKey(ws, limitedId, { amount: 3 });
  expectEq(r.apiKey.totalUsageLeft, 3, "after refill");
  expectEq(await status(limited), "VALID", "usable again");
  expectEq((await oneloop.getApiKeyById(ws, limitedId)).apiKey.totalUsageLeft, 2, "counted");
});

await step("rate-limit", async () => {
  while (Date.now() % 1000 > 300) await sleep(10);
  const rl = { rateLimitConfig: { id: "story", limit: 2 } };
  const a = await oneloop.verifyApiKey({ key, requestedScopes: [], ...rl });
  expectEq([a.status, a.rateLimit.remaining], ["VALID", 1], "1st");
  const b = await oneloop.verifyApiKey({ key, requestedScopes: [], ...rl });
  expectEq([b.status, b.rateLimit.remaining], ["VALID", 0], "2nd");
  const c = await oneloop.verifyApiKey({ key, requestedScopes: [], ...rl });
  expectEq(c.status, "RATE_LIMITED", "3rd");
  expect(c.rateLimit.resetAt > Date.now() - 50, "resetAt in the future");
});

await step("rotate-with-grace", async () => {
  // keygate's extension: the key's grace period, set through the client's own edit call
  // (the client sends any field it is given); rotate itself takes no body in Oneloop's API.
  await oneloop.editApiKey(ws, keyId, { rotationGracePeriodMs: 1500 });
  const r = await oneloop.rotateApiKey(ws, keyId);
  const fresh = r.apiKey.key;
  expect(fresh && fresh !== key, "a new value");
  expectEq(r.apiKey.id, keyId, "same key id");
  expectEq(await status(fresh), "VALID", "new value");
  expectEq(await status(key), "VALID", "old value within grace");
  await sleep(1600);
  expectEq(await status(key), "INVALID", "old value after grace");
  expectEq(await status(fresh), "VALID", "new value still");
  key = fresh;
});

await step("rotate-without-grace", async () => {
  await oneloop.editApiKey(ws, keyId, { rotationGracePeriodMs: 0 });
  const r = await oneloop.rotateApiKey(ws, keyId);
  expectEq(await status(key), "INVALID", "old value at once");
  key = r.apiKey.key;
  expectEq(await status(key), "VALID", "new value");
});

let linkToken = "";
await step("link-token", async () => {
  const t = await oneloop.generateLinkToken({ customerId: "cus_42", workspaceId: ws });
  linkToken = t.token;
  expect(t.token.startsWith("lt_"), "a link token");
  expect(t.expiresAt > Date.now() + 14 * 60_000, "about 15 minutes to live");
  const v = await oneloop.validateLinkToken(t.token);
  expectEq(v, { valid: true, expiresAt: t.expiresAt, workspaceId: ws, customerId: "cus_42" }, "validated");
  const tampered = t.token.slice(0, -1) + (t.token.endsWith("a") ? "b" : "a");
  let threw = null;
  try {
    await oneloop.validateLinkToken(tampered, { maxRetries: 0 });
  } catch (e) {
    threw = e;
  }
  expect(threw && threw.constructor.name === "BadRequestError", `BadRequestError, got ${threw}`);
  expectEq(threw.body.error.reason, "INVALID_LINK_TOKEN", "reason");
});

// The customer portal's API, with the token the client generated: customer 42 sees its key.
await step("customer-portal", async () => {
  const portal = (path) =>
    nativeFetch(`${base}/api/v1/portal${path}`, { headers: { authorization: `Bearer ${linkToken}` } }).then((r) => r.json());
  const session = await portal("/session");
  expectEq([session.customerId, session.workspaceId], ["cus_42", ws], "the token's customer");
  const { apiKeys } = await portal("/api-key");
  expect(apiKeys.some((k) => k.id === keyId && k.key === undefined), "customer 42's key, masked");
  expect(apiKeys.every((k) => k.customerId === "cus_42"), "only customer 42's keys");
});

await step("billing-usage", async () => {
  const before = await oneloop.getBillingUsage("story_bid");
  expectEq(before.data, [], "nothing yet");
  const a = await oneloop.verifyApiKey({ key, requestedScopes: [], billing: { id: "story_bid", usage: 3 } });
  expectEq(a.status, "VALID", "status");
  await oneloop.verifyApiKey({ key, requestedScopes: [], billing: { useCustomerIdForBilling: true, usage: 2 } });
  await oneloop.verifyApiKey({ key, requestedScopes: [], billing: { id: "story_bid", usage: 4 } });
  // A refused answer adds nothing.
  const refused = await oneloop.verifyApiKey({ key, requestedScopes: [billing], billing: { id: "story_bid", usage: 100 } });
  expectEq(refused.status, "INVALID_SCOPES", "refused");
  const day = new Date().toISOString().slice(0, 10);
  const u = await oneloop.getBillingUsage("story_bid");
  expectEq(u.data, [{ billingId: "story_bid", day, totalBillingUsage: 7 }], "usage by id");
  const c = await oneloop.getBillingUsage("cus_42");
  expectEq(c.data, [{ billingId: "cus_42", day, totalBillingUsage: 2 }], "usage by customer id");
});

await step("delete", async () => {
  const r = await oneloop.deleteApiKey(ws, keyId);
  expectEq(r.apiKey.deleted, true, "deleted");
  expectEq(await status(key), "DELETED", "status");
  const list = await oneloop.getApiKeys(ws);
  expect(!list.apiKeys.some((k) => k.id === keyId), "gone from the list");
});

await step("errors", async () => {
  const stranger = new OneloopClient({ environment: base, token: "sk_live_not_a_real_key" });
  let threw = null;
  try {
    await stranger.getWorkspace();
  } catch (e) {
    threw = e;
  }
  expect(threw && threw.constructor.name === "UnauthorizedError", `UnauthorizedError, got ${threw}`);
  expectEq(threw.body.error.code, 401, "Oneloop's error shape");
  threw = null;
  try {
    await oneloop.getApiKeyById(ws, "01900000-0000-7000-8000-000000000000");
  } catch (e) {
    threw = e;
  }
  expect(threw instanceof OneloopError && threw.statusCode === 404, `a 404, got ${threw}`);
});

process.exit(failed === 0 ? 0 : 1);
