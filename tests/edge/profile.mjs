// A V8 CPU profile of the keygate edge worker under load, through workerd's inspector
// (Chrome DevTools Protocol `Profiler.start`/`Profiler.stop`), for finding where a request's
// time goes. Run by `cargo xtask profile-edge` after `cargo xtask build-edge`:
//
//   node tests/edge/profile.mjs [route] [seconds] [out.cpuprofile]
//
// route: `check` (default: a valid key with a blacklist and allowed origins, served from the
// isolate cache), `malformed` (the same request with a bad checksum) or `healthz`.
// It starts its own miniflare (loopback, random ports, in-memory KV), writes one record into
// KV, drives 4 keep-alive connections at the worker's direct workerd socket, and prints the
// functions with the most self time; the full profile is written for Chrome DevTools.
import { Miniflare, Log, LogLevel } from "miniflare";
import http from "node:http";
import net from "node:net";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// KEYGATE_EDGE_BUILD=DIR profiles another build (e.g. a copy of edge/build from before a change).
const build = path.resolve(process.env.KEYGATE_EDGE_BUILD ?? path.join(root, "edge", "build"));
const route = process.argv[2] ?? "check";
const seconds = Number(process.argv[3] ?? 5);
const out = process.argv[4] ?? path.join(root, "target", `edge-${route}.cpuprofile`);

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
function crc32(s) {
  let c = 0xffffffff;
  for (let i = 0; i < s.length; i++) {
    c ^= s.charCodeAt(i);
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
function newKey() {
  let body = "pk_test_";
  for (const b of crypto.randomBytes(30)) body += B62[b % 62];
  let n = crc32(body);
  let sum = "";
  for (let i = 0; i < 6; i++) {
    sum = B62[n % 62] + sum;
    n = Math.floor(n / 62);
  }
  return body + sum;
}

const inspectorPort = await freePort();
const mf = new Miniflare({
  cf: false,
  host: "127.0.0.1",
  port: 0,
  inspectorPort,
  log: new Log(LogLevel.WARN),
  workers: [
    {
      name: "keygate",
      modulesRoot: build,
      modules: [
        { type: "ESModule", path: path.join(build, "index.js") },
        { type: "CompiledWasm", path: path.join(build, "index_bg.wasm") },
      ],
      compatibilityDate: "2025-09-01",
      kvNamespaces: ["KEYGATE_KV"],
      durableObjects: { KEYGATE_CHANGES: "RecentChanges" },
      bindings: { KEYGATE_EDGE_SECRET: "profile-secret-0123456789abcdef0123456789abcdef" },
      unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
    },
  ],
});
try {
  await mf.ready;
  const direct = await mf.unsafeGetDirectURL("keygate");
  const key = newKey();
  const digest = crypto.createHash("sha256").update(key).digest("hex");
  const kv = await mf.getKVNamespace("KEYGATE_KV", "keygate");
  await kv.put(
    `rec:${digest}`,
    JSON.stringify({
      format: 1,
      keyDigest: digest,
      workspaceId: "ws_profile",
      state: "active",
      blacklist: [{ module: "billing", functionality: "refund" }],
      allowedOrigins: ["https://app.example.com"],
      version: 1,
    }),
  );
  const sent = route === "malformed" ? key.slice(0, 10) + "zzzz" + key.slice(14) : key;
  const body = JSON.stringify({ key: sent, module: "billing", functionality: "charge" });
  const options =
    route === "healthz"
      ? { method: "GET", path: "/healthz" }
      : {
          method: "POST",
          path: "/v1/check",
          headers: { "content-type": "application/json", origin: "https://app.example.com" },
        };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const once = () =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: direct.hostname, port: direct.port, agent, ...options },
        (res) => {
          res.resume();
          const lookup = res.headers["x-keygate-lookup"];
          res.on("end", () => resolve(lookup ? `${res.statusCode} ${lookup}` : res.statusCode));
        },
      );
      req.on("error", reject);
      req.end(route === "healthz" ? undefined : body);
    });
  const load = async (ms) => {
    const until = Date.now() + ms;
    let n = 0;
    const statuses = {};
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (Date.now() < until) {
          const s = await once();
          statuses[s] = (statuses[s] ?? 0) + 1;
          n++;
        }
      }),
    );
    return { n, statuses };
  };
  await load(1000); // warm-up

  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => t.title?.includes("keygate")) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  };
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const i = ++id;
      pending.set(i, resolve);
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 50 });
  await call("Profiler.start");
  const { n, statuses } = await load(seconds * 1000);
  const { result } = await call("Profiler.stop");
  ws.close();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result.profile));

  // Self time by function.
  const p = result.profile;
  const dt = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const byFn = new Map();
  let total = 0;
  for (const node of p.nodes) {
    const t = dt.get(node.id) ?? 0;
    total += t;
    const cf = node.callFrame;
    const name = `${cf.functionName || "(anonymous)"} ${cf.url ? path.basename(cf.url) : ""}`;
    byFn.set(name, (byFn.get(name) ?? 0) + t);
  }
  console.log(
    `${route}: ${n} requests in ${seconds} s (${Math.round(n / seconds)} req/s while profiling), statuses ${JSON.stringify(statuses)}`,
  );
  // The worker thread's busy time per request: what a request costs the isolate, less
  // sensitive to other load on the machine than requests per second.
  const idle = [...byFn].filter(([name]) => name.startsWith("(idle)")).reduce((a, [, t]) => a + t, 0);
  console.log(`busy: ${((total - idle) / n).toFixed(1)} us of worker-thread time per request`);
  console.log(`self time by function (of ${(total / 1000).toFixed(0)} ms sampled):`);
  for (const [name, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`  ${((100 * t) / total).toFixed(1).padStart(5)} %  ${name}`);
  }
  console.log(`profile written to ${out}`);
} finally {
  await mf.dispose();
}
