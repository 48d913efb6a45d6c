// keygate edge: the worker's entry module. `cargo xtask build-edge` bundles it with
// wasm-bindgen's output (`./index.js`, built from `edge/src`) into `edge/build/index.js`.
//
// It only moves values between workerd and the wasm module; every decision is made in Rust
// (and every verdict in `keygate_shared`). It replaces worker-build's generated shim, which
// constructed a `WorkerEntrypoint` subclass wrapped in a `Proxy` for every request (about a
// sixth of the trivial route's CPU time in the profile, see edge/README.md, "Figures").
//
// Recovery from a wasm trap (a Rust panic aborts, or `unreachable`, stack overflow): the
// instance is then in an unknown state, so it is replaced by a fresh one from the same module
// before the next call. A trap is noticed three ways: a synchronous throw out of an export
// (caught below), a panic (the `worker` crate's panic hook sets `criticalError`), and an
// uncaught trap in a microtask (a Rust future polled by the executor; the `error` event).
// The request that trapped fails (workerd answers 500); the next one is served by the new
// instance. Checking the flag costs one property read per request.
import * as wasm from "./index.js";

const state = wasm.__worker_init_state();

function noteTrap(error) {
  if (error instanceof WebAssembly.RuntimeError) state.criticalError = true;
}

/** A fresh instance if the last one trapped. */
function ready() {
  if (state.criticalError) {
    console.error("keygate: the wasm instance trapped; starting a fresh one");
    state.criticalError = false;
    wasm.__wbg_reset_state();
  }
}

addEventListener("error", (event) => noteTrap(event.error));

export default {
  fetch(request, env, ctx) {
    ready();
    let answer;
    try {
      answer = wasm.fetch(request, env, ctx);
    } catch (error) {
      noteTrap(error);
      throw error;
    }
    // `undefined`: a check whose body the wasm module wants in one piece (it has checked
    // the Content-Length); its answer is then synchronous unless the record must be read.
    return answer === undefined ? request.arrayBuffer().then((body) => checkBody(request, body, env, ctx)) : answer;
  },
};

function checkBody(request, body, env, ctx) {
  ready();
  try {
    return wasm.checkBody(request, new Uint8Array(body), env, ctx);
  } catch (error) {
    noteTrap(error);
    throw error;
  }
}

/**
 * The change log's Durable Object (`edge/src/changes.rs`). The Rust object lives in the
 * instance that created it; after a trap and a fresh instance, it is created again (its
 * storage is durable; what it kept in memory is a cache).
 */
export class RecentChanges {
  constructor(ctx, env) {
    ready();
    this.args = [ctx, env];
    this.inner = new wasm.RecentChanges(ctx, env);
    this.instanceId = state.instanceId;
  }

  fetch(request) {
    ready();
    if (this.instanceId !== state.instanceId) {
      this.inner = new wasm.RecentChanges(...this.args);
      this.instanceId = state.instanceId;
    }
    try {
      return this.inner.fetch(request);
    } catch (error) {
      noteTrap(error);
      throw error;
    }
  }
}
