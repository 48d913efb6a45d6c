// Runs the built keygate edge worker (edge/build) under the pinned miniflare, for tests and
// benchmarks driven from Rust.
//
//   node tests/edge/run-miniflare.mjs [build-dir]
//
// Bindings come from the environment variable KEYGATE_EDGE_BINDINGS (a JSON object of string
// vars/secrets, e.g. {"KEYGATE_EDGE_SECRET": "...", "KEYGATE_SELFTEST": "1"}). KV is in
// memory, `cf: false` keeps miniflare off the internet, and the server listens on a free
// loopback port. When ready it prints one line, {"url": "http://127.0.0.1:PORT"}, on stdout;
// it stops when stdin closes or on SIGTERM/SIGINT, so a dying parent never leaves it behind.
import { Miniflare, Log, LogLevel } from "miniflare";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const buildDir = path.resolve(process.argv[2] ?? path.join(root, "edge", "build"));
const bindings = JSON.parse(process.env.KEYGATE_EDGE_BINDINGS ?? "{}");

const mf = new Miniflare({
  modulesRoot: buildDir,
  modules: [
    { type: "ESModule", path: path.join(buildDir, "index.js") },
    { type: "CompiledWasm", path: path.join(buildDir, "index_bg.wasm") },
  ],
  compatibilityDate: "2025-09-01",
  kvNamespaces: ["KEYGATE_KV"],
  bindings,
  cf: false,
  host: "127.0.0.1",
  port: 0,
  log: new Log(process.env.KEYGATE_EDGE_LOG === "debug" ? LogLevel.DEBUG : LogLevel.WARN),
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(code);
  }
}

try {
  const url = await mf.ready;
  process.stdout.write(JSON.stringify({ url: url.origin }) + "\n");
} catch (e) {
  console.error("miniflare failed to start:", e);
  await stop(1);
}

process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
process.stdin.on("end", () => stop(0));
process.stdin.on("close", () => stop(0));
process.stdin.resume();
