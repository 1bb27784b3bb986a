// Writes the reference models (make_reference.js's, rebuilt with the same seeded weights) in
// TensorFlow.js layers format, from tfjs's own saving (model.save: modelTopology, weightSpecs,
// weightData), under DIR/<model>/:
//   tfjs/            model.json + float32 shards: at most 4 MiB each (tfjs-converter's default)
//                    and at least three, so tensors straddle shard boundaries; teachable_machine
//                    as tfjs-node's file:// handler writes it, one weights.bin. custom_layers.js's
//                    helpers carry their Keras class names (as in a model converted from Keras).
//                    The reference is the model's reference.json (the same float32 weights).
//   tfjs_uint8/, tfjs_uint16/, tfjs_float16/   for QUANTISED: the weights quantised as
//                    tfjs-converter writes them (per tensor: uint8/uint16 codes with
//                    {dtype, min, scale}, min nudged so that 0 is exact; or float16), the
//                    uint8/uint16 manifests sorted by name as converted Keras files come;
//                    teachable_machine's topology wrapped as {model_config, training_config}.
//                    reference.json: the input and TensorFlow.js's output after tf.loadLayersModel
//                    read these very files; decoded.bin: tfjs-core's dequantised weights
//                    (tf.io.decodeWeights), float32 in manifest order.
//   tfjs_prefixed/   teachable_machine with each weight named by its full model path
//                    ("sequential_4/sequential_1/model1/Conv1/kernel"), as Keras 3's h5 names them.
//
//   node write_tfjs_files.js --out DIR [--only mobilenet_v2,zoo_a]   # after make_reference.js
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');
const A = require('./architectures');
const { MODELS, setRandomWeights } = require('./make_reference');
const { fileHandler } = require('../tfjs/predict_tfjs');

const QUANTISED = ['mobilenet_v2', 'teachable_machine'];
const SINGLE_FILE = ['teachable_machine'];
const MAX_SHARD = 4 << 20;
const CONTAINERS = ['Sequential', 'Model', 'Functional'];

// Helper layers under their Keras class (custom_layers.js's kerasClass), walking nested models
// alongside the live ones.
function kerasClasses(topology, live) {
  for (const layer of topology.config.layers || []) {
    const own = live.getLayer(layer.config.name);
    if (CONTAINERS.includes(layer.class_name)) kerasClasses(layer, own);
    if (!own || !own.kerasClass) continue;
    layer.class_name = own.kerasClass;
    const cfg = layer.config;
    delete cfg.keras_class;
    Object.assign(cfg, cfg.keras_config || {});
    delete cfg.keras_config;
  }
  return topology;
}

async function savedArtifacts(model) {
  let artifacts;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return artifacts;
}

// IEEE half, rounded to nearest even (float16 "quantisation").
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(v) {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112;
  if (e >= 31) return sign | 0x7c00;
  const round = (h, rem, half) => (rem > half || (rem === half && (h & 1)) ? h + 1 : h);
  if (e <= 0) {  // a subnormal half, or zero
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    return sign | round(mant >>> shift, mant & ((1 << shift) - 1), 1 << (shift - 1));
  }
  return sign | round((e << 10) | (mant >>> 13), mant & 0x1fff, 0x1000);  // a carry moves into the exponent
}

// tfjs-converter's affine quantisation of one tensor: codes 0..2^bits-1, min nudged so that 0 is
// exactly a code when the range holds it.
function quantiseAffine(values, bits) {
  const qmax = 2 ** bits - 1;
  let lo = Infinity, hi = -Infinity;
  for (const v of values) lo = Math.min(lo, v), hi = Math.max(hi, v);
  const scale = hi > lo ? (hi - lo) / qmax : 1;
  const min = lo <= 0 && hi >= 0 ? -Math.round(-lo / scale) * scale : lo;
  const codes = bits === 8 ? new Uint8Array(values.length) : new Uint16Array(values.length);
  for (let i = 0; i < values.length; ++i) codes[i] = Math.min(qmax, Math.max(0, Math.round((values[i] - min) / scale)));
  return { codes, min, scale };
}

// specs + float32 data -> quantised specs + data, in `order`.
function quantise(specs, data, dtype) {
  const floats = tf.io.decodeWeights(data, specs);
  const out = [];
  const chunks = [];
  for (const spec of specs) {
    const values = floats[spec.name].dataSync();
    let bytes;
    const q = { dtype };
    if (dtype === 'float16') {
      bytes = new Uint16Array(values.length);
      values.forEach((v, i) => { bytes[i] = toHalf(v); });
    } else {
      const r = quantiseAffine(values, dtype === 'uint8' ? 8 : 16);
      bytes = r.codes;
      Object.assign(q, { min: r.min, scale: r.scale });
    }
    q.original_dtype = 'float32';
    out.push(Object.assign({}, spec, { quantization: q }));
    chunks.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  Object.values(floats).forEach((t) => t.dispose());
  return { specs: out, chunks };
}

function byName(specs, chunks) {
  const order = specs.map((s, i) => i).sort((a, b) => (specs[a].name < specs[b].name ? -1 : specs[a].name > specs[b].name ? 1 : 0));
  return { specs: order.map((i) => specs[i]), chunks: order.map((i) => chunks[i]) };
}

function writeVariant(dir, json, specs, data, singleFile) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const shardBytes = Math.min(MAX_SHARD, Math.ceil(data.length / 3));
  const n = singleFile ? 1 : Math.max(1, Math.ceil(data.length / shardBytes));
  const paths = [];
  for (let i = 0; i < n; ++i) {
    const name = singleFile ? 'weights.bin' : `group1-shard${i + 1}of${n}.bin`;
    fs.writeFileSync(path.join(dir, name), singleFile ? data : data.subarray(i * shardBytes, (i + 1) * shardBytes));
    paths.push(name);
  }
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(Object.assign({}, json, { weightsManifest: [{ paths, weights: specs }] })));
  return paths.length;
}

const asJson = (t) => ({ shape: t.shape, data: Array.from(t.dataSync()) });
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function write(name, dir) {
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
  const model = MODELS[name].build(new A.Builder(false));
  setRandomWeights(model, name);
  const x = tf.tensor(ref.input.data, ref.input.shape);
  const drift = maxDiff(model.predict(x).dataSync(), ref.output.data);
  if (drift > 1e-6) throw new Error(`${name}: the rebuilt model is not the reference's (${drift})`);

  const a = await savedArtifacts(model);
  const data = Buffer.from(a.weightData);
  const helpers = JSON.stringify(a.modelTopology).includes('keras_class');
  const json = {
    modelTopology: kerasClasses(JSON.parse(JSON.stringify(a.modelTopology)), model),
    format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy,
  };
  const shards = writeVariant(path.join(dir, 'tfjs'), json, a.weightSpecs, data, SINGLE_FILE.includes(name));
  const report = [`tfjs (${shards} shard${shards > 1 ? 's' : ''})`];
  if (!helpers) {  // TensorFlow.js reads its own files back to the reference output
    const back = await tfl.loadLayersModel(fileHandler(path.join(dir, 'tfjs')));
    const d = maxDiff(back.predict(x).dataSync(), ref.output.data);
    if (d > 1e-6) throw new Error(`${name}: tfjs reads back its model.json with output drift ${d}`);
  }
  if (!QUANTISED.includes(name)) return report;

  const wrapped = name === 'teachable_machine';
  for (const dtype of ['uint8', 'uint16', 'float16']) {
    let { specs, chunks } = quantise(a.weightSpecs, a.weightData, dtype);
    if (dtype !== 'float16') ({ specs, chunks } = byName(specs, chunks));
    const topology = wrapped ? { keras_version: a.modelTopology.keras_version, backend: a.modelTopology.backend,
                                 model_config: { class_name: a.modelTopology.class_name, config: a.modelTopology.config },
                                 training_config: null } : a.modelTopology;
    const variant = path.join(dir, `tfjs_${dtype}`);
    writeVariant(variant, { modelTopology: topology, format: a.format, generatedBy: a.generatedBy,
                            convertedBy: `write_tfjs_files.js (${dtype}, as tfjs-converter lays it out)` },
                 specs, Buffer.concat(chunks), false);
    const loaded = await (fileHandler(variant).load());
    const decoded = tf.io.decodeWeights(loaded.weightData, loaded.weightSpecs);
    fs.writeFileSync(path.join(variant, 'decoded.bin'),
                     Buffer.concat(specs.map((s) => Buffer.from(decoded[s.name].dataSync().buffer))));
    const back = await tfl.loadLayersModel(fileHandler(variant));
    const y = back.predict(x);
    fs.writeFileSync(path.join(variant, 'reference.json'), JSON.stringify({ model: name, variant: dtype, input: ref.input, output: asJson(y) }));
    report.push(`${dtype} (output moves ${maxDiff(y.dataSync(), ref.output.data).toExponential(1)})`);
  }
  // Names with the whole model path, root included.
  const rootName = a.modelTopology.config.name;
  const paths = new Map();
  const walk = (m, prefix) => m.layers.forEach((l) => (l.layers ? walk(l, prefix.concat(l.name)) : paths.set(l.name, prefix.concat(l.name))));
  walk(model, [rootName]);
  const prefixed = a.weightSpecs.map((s) => {
    const [layer, v] = [s.name.slice(0, s.name.lastIndexOf('/')), s.name.slice(s.name.lastIndexOf('/') + 1)];
    return Object.assign({}, s, { name: paths.get(layer).join('/') + '/' + v });
  });
  writeVariant(path.join(dir, 'tfjs_prefixed'), json, prefixed, data, false);
  report.push('prefixed names');
  return report;
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (k) => (args.indexOf(k) >= 0 ? args[args.indexOf(k) + 1] : null);
  const out = opt('--out');
  if (!out) throw new Error('usage: write_tfjs_files.js --out DIR [--only a,b]');
  await tf.setBackend('cpu');
  const only = opt('--only') ? opt('--only').split(',') : Object.keys(MODELS);
  for (const name of only) {
    const dir = path.join(out, name);
    if (!fs.existsSync(path.join(dir, 'reference.json'))) throw new Error(`${dir}/reference.json is missing: run make_reference.js first`);
    const t0 = Date.now();
    const report = await write(name, dir);
    console.log(`${name}: ${report.join(', ')}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
