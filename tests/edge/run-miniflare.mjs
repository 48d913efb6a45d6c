// Runs the built keygate edge worker (edge/build) under the pinned miniflare, for tests and
// benchmarks driven from Rust.
//
//   node tests/edge/run-miniflare.mjs [build-dir]
//
// Bindings come from the environment variable KEYGATE_EDGE_BINDINGS (a JSON object of string
// vars/secrets, e.g. {"KEYGATE_EDGE_SECRET": "...", "KEYGATE_SELFTEST": "1"}). KV and the
// change log's Durable Object are in memory, `cf: false` keeps miniflare off the internet, and
// the server listens on a free loopback port. When ready it prints one line,
// {"url": "http://127.0.0.1:PORT"}, on stdout; it stops when stdin closes or on
// SIGTERM/SIGINT, so a dying parent never leaves it behind.
//
// Simulated locations: with KEYGATE_EDGE_LOCATIONS set to a JSON array of
// {"name": "a", "bindings": {...extra vars}, "changes": true}, each location is its own worker
// (its own isolate) in the same workerd, with its own KV namespace (its view of KV) and, when
// "changes" is true, the change log's Durable Object namespace shared with every other
// location (defined by the first location), as on Cloudflare. The first line is then
// {"url": <first location>, "locations": {"a": url, ...}, "admin": url}; the admin server
// (loopback) lets the test play KV propagation when it chooses:
//   GET  /kv?loc=b&key=K           the value (404 if none)
//   PUT  /kv?loc=b&key=K           stores the body
//   POST /kv/copy?from=a&to=b      copies every key of a's KV into b's; answers {"copied": n}
//
// Benchmark mode: with KEYGATE_EDGE_BASELINE=1 (and no locations), the same workerd also runs
// tests/edge/baseline-worker.mjs (the hand-written JavaScript baseline) as a second worker
// sharing keygate's KV namespace, and each worker gets a direct workerd socket (miniflare's
// `unsafeDirectSockets`), so a benchmark measures workerd and not miniflare's Node proxy. The
// first line then also carries {"direct": {"keygate": url, "baseline": url}}. With
// KEYGATE_EDGE_INSPECTOR=PORT workerd's V8 inspector listens on that loopback port (profiling).
// With KEYGATE_EDGE_COMPARE_BUILD=DIR as well, the second worker is not the JavaScript
// baseline but another build of keygate (e.g. a copy of edge/build from before a change), so
// the same benchmark measures one build against the other in one run.
import { Miniflare, Log, LogLevel } from "miniflare";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const buildDir = path.resolve(process.argv[2] ?? path.join(root, "edge", "build"));
const bindings = JSON.parse(process.env.KEYGATE_EDGE_BINDINGS ?? "{}");
const locations = process.env.KEYGATE_EDGE_LOCATIONS
  ? JSON.parse(process.env.KEYGATE_EDGE_LOCATIONS)
  : null;

const modules = [
  { type: "ESModule", path: path.join(buildDir, "index.js") },
  { type: "CompiledWasm", path: path.join(buildDir, "index_bg.wasm") },
];
const common = {
  modulesRoot: buildDir,
  modules,
  compatibilityDate: "2025-09-01",
};
const log = new Log(process.env.KEYGATE_EDGE_LOG === "debug" ? LogLevel.DEBUG : LogLevel.WARN);

const baseline = !locations && process.env.KEYGATE_EDGE_BASELINE === "1";
const compareBuild = process.env.KEYGATE_EDGE_COMPARE_BUILD
  ? path.resolve(process.env.KEYGATE_EDGE_COMPARE_BUILD)
  : null;
const inspectorPort = process.env.KEYGATE_EDGE_INSPECTOR
  ? Number(process.env.KEYGATE_EDGE_INSPECTOR)
  : undefined;

let options;
if (baseline) {
  options = {
    cf: false,
    host: "127.0.0.1",
    port: 0,
    log,
    inspectorPort,
    workers: [
      {
        ...common,
        name: "keygate",
        kvNamespaces: { KEYGATE_KV: "kv-bench" },
        durableObjects: { KEYGATE_CHANGES: "RecentChanges" },
        bindings,
        unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
      },
      compareBuild
        ? {
            ...common,
            modulesRoot: compareBuild,
            modules: modules.map((m) => ({ ...m, path: path.join(compareBuild, path.basename(m.path)) })),
            name: "baseline",
            kvNamespaces: { KEYGATE_KV: "kv-bench" },
            durableObjects: { KEYGATE_CHANGES: "RecentChanges" },
            bindings,
            unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
          }
        : {
            name: "baseline",
            modules: true,
            scriptPath: path.join(root, "tests", "edge", "baseline-worker.mjs"),
            compatibilityDate: "2025-09-01",
            kvNamespaces: { KEYGATE_KV: "kv-bench" },
            unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
          },
    ],
  };
} else if (locations) {
  const owner = locations[0].name;
  options = {
    cf: false,
    host: "127.0.0.1",
    port: 0,
    log,
    workers: locations.map((loc) => ({
      ...common,
      name: loc.name,
      kvNamespaces: { KEYGATE_KV: `kv-${loc.name}` },
      durableObjects:
        loc.changes === false
          ? {}
          : { KEYGATE_CHANGES: { className: "RecentChanges", scriptName: owner } },
      bindings: { ...bindings, ...(loc.bindings ?? {}) },
      unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
    })),
  };
} else {
  options = {
    ...common,
    kvNamespaces: ["KEYGATE_KV"],
    durableObjects: { KEYGATE_CHANGES: "RecentChanges" },
    bindings,
    cf: false,
    host: "127.0.0.1",
    port: 0,
    log,
  };
}

const mf = new Miniflare(options);

let stopping = false;
let admin = null;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    admin?.close();
    await mf.dispose();
  } finally {
    process.exit(code);
  }
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function startAdmin() {
  const kv = (loc) => mf.getKVNamespace("KEYGATE_KV", loc);
  admin = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://admin");
      const q = (k) => url.searchParams.get(k);
      if (url.pathname === "/kv" && req.method === "GET") {
        const v = await (await kv(q("loc"))).get(q("key"));
        res.writeHead(v === null ? 404 : 200).end(v ?? "");
      } else if (url.pathname === "/kv" && req.method === "PUT") {
        await (await kv(q("loc"))).put(q("key"), await body(req));
        res.writeHead(204).end();
      } else if (url.pathname === "/kv/copy" && req.method === "POST") {
        const from = await kv(q("from"));
        const to = await kv(q("to"));
        let copied = 0;
        let cursor;
        do {
          const page = await from.list({ cursor });
          for (const k of page.keys) {
            const v = await from.get(k.name);
            if (v !== null) {
              await to.put(k.name, v);
              copied++;
            }
          }
          cursor = page.list_complete ? undefined : page.cursor;
        } while (cursor);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ copied }));
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise((resolve) => admin.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${admin.address().port}`;
}

try {
  const url = await mf.ready;
  if (locations) {
    const urls = {};
    for (const loc of locations) {
      urls[loc.name] = (await mf.unsafeGetDirectURL(loc.name)).origin;
    }
    const adminUrl = await startAdmin();
    process.stdout.write(
      JSON.stringify({ url: urls[locations[0].name], locations: urls, admin: adminUrl }) + "\n",
    );
  } else if (baseline) {
    const direct = {
      keygate: (await mf.unsafeGetDirectURL("keygate")).origin,
      baseline: (await mf.unsafeGetDirectURL("baseline")).origin,
    };
    process.stdout.write(JSON.stringify({ url: url.origin, direct }) + "\n");
  } else {
    process.stdout.write(JSON.stringify({ url: url.origin }) + "\n");
  }
} catch (e) {
  console.error("miniflare failed to start:", e);
  await stop(1);
}

process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
process.stdin.on("end", () => stop(0));
process.stdin.on("close", () => stop(0));
process.stdin.resume();
