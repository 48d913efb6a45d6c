// A hand-written JavaScript worker doing the same `POST /v1/check` as the keygate edge, as a
// good JS engineer would write it: prefix regex + CRC-32 checksum, WebCrypto SHA-256, a `Map`
// isolate cache with a TTL, one KV read (the same `rec:<hex digest>` records the keygate worker's
// sync writes), a `Set` blacklist, the same JSON answers and headers. It is the baseline
// `cargo xtask bench-edge` measures the Rust/wasm worker against; it is not part of keygate.
//
// Routes: GET /healthz (the trivial route) and POST /v1/check. Everything else is a 404.

const KEY_RE = /^pk_(?:live|test)_[0-9A-Za-z]{36}$/;
const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CACHE_TTL_MS = 30_000;
const NEGATIVE_TTL_MS = 5_000;
const MAX_BODY = 4096;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function checksumOk(key) {
  // CRC-32 of "<prefix>_<body>" as 6 base62 symbols at the end.
  const signed = key.length - 6;
  let crc = 0xffffffff;
  for (let i = 0; i < signed; i++) crc = CRC_TABLE[(crc ^ key.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  let v = 0;
  for (let i = signed; i < key.length; i++) v = v * 62 + B62.indexOf(key[i]);
  return v === crc;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const encoder = new TextEncoder();

async function sha256Hex(s) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
  let out = "";
  for (let i = 0; i < d.length; i++) out += HEX[d[i]];
  return out;
}

const MESSAGES = {
  VALID: "the key is valid",
  REVOKED: "the key was revoked and replaced by a new one",
  INVALID: "the key is not a valid key",
  BLACKLISTED: "this key may not use this module or functionality",
  ORIGIN_NOT_ALLOWED: "this origin may not use this key",
};
const STATUS_CODES = { VALID: 200, REVOKED: 401, INVALID: 401, BLACKLISTED: 403, ORIGIN_NOT_ALLOWED: 403 };

// digest hex -> { rec: compiled record | null, until: ms }
const cache = new Map();

function compile(rec) {
  return {
    workspaceId: rec.workspaceId,
    revoked: rec.state === "revoked",
    blacklist: new Set((rec.blacklist ?? []).map((r) => `${r.module}/${r.functionality}`)),
    origins: new Set(rec.allowedOrigins ?? []),
  };
}

function json(status, body, extra) {
  const headers = { "content-type": "application/json", "cache-control": "no-store", ...extra };
  return new Response(JSON.stringify(body), { status, headers });
}

function error(status, reason, message) {
  return json(status, { error: { code: status, message, reason } });
}

function verdict(status, workspaceId, lookup, origin) {
  const body = { valid: status === "VALID", status };
  if (status === "VALID") body.workspaceId = workspaceId;
  body.message = MESSAGES[status];
  const extra = { "x-keygate-lookup": lookup };
  if (origin) {
    extra["access-control-allow-origin"] = origin;
    extra.vary = "Origin";
  }
  return json(STATUS_CODES[status], body, extra);
}

async function check(request, env) {
  const text = await request.text();
  if (text.length > MAX_BODY) return error(413, "PAYLOAD_TOO_LARGE", "the body is too large");
  let input;
  try {
    input = JSON.parse(text);
  } catch {
    return error(400, "INVALID_JSON", "the body is not JSON");
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    return error(400, "INVALID_JSON", "expected an object");
  }
  const key = input.key ?? request.headers.get("x-publishable-key");
  const { module, functionality } = input;
  if (typeof key !== "string" || typeof module !== "string" || typeof functionality !== "string") {
    return error(400, "MISSING_FIELD", "key, module and functionality are required strings");
  }
  const origin = request.headers.get("origin");
  if (!KEY_RE.test(key) || !checksumOk(key)) return verdict("INVALID", null, "none", origin);

  const digest = await sha256Hex(key);
  const now = Date.now();
  let lookup = "cache";
  let hit = cache.get(digest);
  if (!hit || hit.until <= now) {
    const raw = await env.KEYGATE_KV.get(`rec:${digest}`);
    const rec = raw ? compile(JSON.parse(raw)) : null;
    hit = { rec, until: now + (rec ? CACHE_TTL_MS : NEGATIVE_TTL_MS) };
    cache.set(digest, hit);
    lookup = rec ? "kv" : "miss";
  }
  const rec = hit.rec;
  if (!rec) return verdict("INVALID", null, lookup, origin);
  const originOk = rec.origins.size === 0 || (origin !== null && rec.origins.has(origin));
  const allowOrigin = origin && originOk ? origin : null;
  let status;
  if (rec.revoked) status = "REVOKED";
  else if (!originOk) status = "ORIGIN_NOT_ALLOWED";
  else {
    const m = module.toLowerCase();
    const f = functionality.toLowerCase();
    status = rec.blacklist.has(`${m}/${f}`) || rec.blacklist.has(`${m}/*`) ? "BLACKLISTED" : "VALID";
  }
  return verdict(status, rec.workspaceId, lookup, allowOrigin);
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return json(200, { status: "ok" });
    if (pathname === "/v1/check") {
      if (request.method !== "POST") return error(405, "METHOD_NOT_ALLOWED", "use POST");
      return check(request, env);
    }
    return error(404, "NOT_FOUND", "no such route");
  },
};
