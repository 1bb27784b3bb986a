#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU) on one model: the benchmark peer of dermal_bench_engine.
//
//   node bench/ort_engine.js --model M --threads T --iters N [--warmup W] [--load-runs K]
//
// Needs bench/ort/install.sh first (bench/ort/node_modules); Dermal itself never uses ORT.
// Prints one JSON line, measured in this fresh process:
//   import_ms       require('onnxruntime-node') (loads libonnxruntime; not part of load_ms)
//   load_ms         InferenceSession.create: the time from the file name to a session
//   first_ms        the first run (ORT finishes some set-up lazily there)
//   forward_ms      median of the timed runs after the warm-up (all of them in forward_runs_ms)
//   peak_rss_bytes  process.resourceUsage().maxRSS, taken after the timed runs
//   load_runs_ms    with --load-runs K > 1: K session creations in this process, the first being
//                   load_ms; the later ones find the library warm and the file in the page cache
'use strict';

const path = require('path');
const { performance } = require('perf_hooks');

function parseArgs(argv) {
  const o = { model: '', threads: 1, iters: 30, warmup: 5, loadRuns: 1 };
  const names = { '--model': 'model', '--threads': 'threads', '--iters': 'iters', '--warmup': 'warmup', '--load-runs': 'loadRuns' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`bad option ${argv[i]}`);
    o[key] = key === 'model' ? argv[i + 1] : Number(argv[i + 1]);
    if (key !== 'model' && !(Number.isInteger(o[key]) && o[key] >= (key === 'warmup' ? 0 : 1)))
      throw new Error(`${argv[i]} needs a positive integer, got '${argv[i + 1]}'`);
  }
  if (!o.model) throw new Error('--model is required');
  return o;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

// A fixed pseudo-random image in [-2, 2] (mulberry32, seed 7): the same kind of input as the engine's.
function randomImage(n) {
  let a = 7;
  const x = new Float32Array(n);
  for (let i = 0; i < n; ++i) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    x[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 4 - 2;
  }
  return x;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let t0 = performance.now();
  let ort;
  try {
    ort = require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    throw new Error(`onnxruntime-node is not installed: run bench/ort/install.sh (${e.message.split("\n")[0]})`);
  }
  const importMs = performance.now() - t0;
  // One image at a time on T threads, nothing running beside it: the engine's setting.
  const options = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  const create = async () => {
    const start = performance.now();
    const s = await ort.InferenceSession.create(o.model, options);
    return [s, performance.now() - start];
  };
  const [session, loadMs] = await create();

  // Batch 1: symbolic (string) or unknown dims become 1, as the engine plans them.
  const feeds = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor || m.type !== 'float32' || m.shape.length === 0)
      throw new Error(`input ${m.name}: need a float32 tensor of known rank`);
    const dims = m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
    feeds[m.name] = new ort.Tensor('float32', randomImage(dims.reduce((a, b) => a * b, 1)), dims);
  }
  const timeRun = async () => {
    const start = performance.now();
    await session.run(feeds);
    return performance.now() - start;
  };
  const firstMs = await timeRun();
  for (let i = 0; i < o.warmup; ++i) await timeRun();
  const runs = [];
  for (let i = 0; i < o.iters; ++i) runs.push(await timeRun());
  const peakRss = process.resourceUsage().maxRSS * 1024; // KiB on Linux
  await session.release();

  const loadRuns = [loadMs];
  for (let i = 1; i < o.loadRuns; ++i) {
    const [s, ms] = await create();
    loadRuns.push(ms);
    await s.release();
  }
  console.log(JSON.stringify({
    engine: 'onnxruntime-node',
    ort_version: ort.env.versions.node,
    model: o.model,
    threads: o.threads,
    iters: o.iters,
    warmup: o.warmup,
    input_shapes: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims])),
    import_ms: importMs,
    load_ms: loadMs,
    load_runs_ms: loadRuns,
    first_ms: firstMs,
    forward_ms: median(runs),
    forward_min_ms: Math.min(...runs),
    forward_runs_ms: runs,
    peak_rss_bytes: peakRss,
  }));
}

main().catch((e) => {
  console.error(`ort_engine.js: ${e.message}`);
  console.error('usage: node bench/ort_engine.js --model M --threads T --iters N [--warmup W] [--load-runs K]');
  process.exit(1);
});
