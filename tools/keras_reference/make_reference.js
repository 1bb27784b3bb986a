// Builds the reference models in TensorFlow.js (Keras' layer semantics, pure JavaScript), gives
// them deterministic random weights, and writes for each one, under --out DIR/<model>/:
//   topology.json   the Keras (2.x-style) model config, as tfjs serializes it
//   weights.bin     float32 values; weights.json says which layer/variable each range is
//   reference.json  an input, the model's output, the logits and, for the architectures, the
//                   Grad-CAM map at the CAM layer: tf.grad of the top logit w.r.t. that layer's
//                   output, channel weights = its spatial mean, cam = relu(sum_c w_c A_c)
// write_keras_files.py then saves each model as .keras (Keras 3 layout) and .h5 (Keras 2).
//
//   node make_reference.js --out DIR [--only resnet50,zoo_a] [--list]
//   node make_reference.js --bench-out DIR     # full-size ResNet50 (224, 1000 classes), no outputs
//   node make_reference.js --from-dump DIR     # a model dumped by dump_keras_file.py: outputs only
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');
const A = require('./architectures');
const Z = require('./zoo');

const MODELS = {
  mobilenet_v2: { build: A.mobilenetV2, cam: 'out_relu' },
  resnet50: { build: A.resnet50, cam: 'conv5_block3_out' },
  efficientnet_b0: { build: A.efficientNetB0, cam: 'top_activation', pixels: true },
  densenet121: { build: A.denseNet121, cam: 'relu' },
  inception_v3: { build: A.inceptionV3, cam: 'mixed10' },
  xception: { build: A.xception, cam: 'block14_sepconv2_act' },
  zoo_a: { build: Z.zooA, logits: true },
  zoo_b: { build: Z.zooB, logits: true },
  teachable_machine: { build: Z.teachableMachine },
  transfer: { build: Z.transfer, logits: true },
  zoo_preprocess: { build: Z.zooPreprocess, logits: true, pixels: true },
  zoo_gray: { build: Z.zooGray, cam: 'conv_2', pixels: true },
};

// mulberry32 seeded from a string: the same weights on every machine and run.
function rng(seedText) {
  let h = 1779033703 ^ seedText.length;
  for (let i = 0; i < seedText.length; ++i) h = Math.imul(h ^ seedText.charCodeAt(i), 3432918353), h = (h << 13) | (h >>> 19);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(n, lo, hi, rand) {
  const v = new Float32Array(n);
  for (let i = 0; i < n; ++i) v[i] = lo + (hi - lo) * rand();
  return v;
}

// Values that keep activations near unit scale through deep stacks.
function randomValues(varName, shape, rand, layerName) {
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = (s) => (s.length === 4 ? s[0] * s[1] * s[2] : s.length === 2 ? s[0] : 1);
  switch (varName) {
    case 'kernel': case 'pointwise_kernel': {
      const a = Math.sqrt(6 / fanIn(shape));
      return uniform(n, -a, a, rand);
    }
    case 'depthwise_kernel': {
      const a = Math.sqrt(3 / (shape[0] * shape[1]));
      return uniform(n, -a, a, rand);
    }
    // A residual branch's last BN starts small (as in zero-gamma training): sums stay bounded.
    case 'gamma': return /(_3_bn|sepconv3_bn|block(2|3|4|13)_sepconv2_bn)$/.test(layerName) ? uniform(n, 0.1, 0.3, rand) : uniform(n, 0.7, 1.3, rand);
    case 'moving_variance': case 'variance': return uniform(n, 0.7, 1.3, rand);
    case 'alpha': return uniform(n, 0.1, 0.3, rand);
    case 'count': return new Float32Array(n).fill(1000);
    default: return uniform(n, -0.1, 0.1, rand);  // bias, beta, moving_mean, mean
  }
}

const varName = (v) => v.originalName.split('/').pop().replace(/_\d+$/, '');

// Every layer with weights, depth first, with its path of names from the root model.
function weightedLayers(model, prefix = []) {
  const out = [];
  for (const layer of model.layers) {
    if (layer.layers) out.push(...weightedLayers(layer, prefix.concat(layer.name)));
    else if (layer.weights.length) out.push({ path: prefix.concat(layer.name), layer });
  }
  return out;
}

function setRandomWeights(model, seed) {
  for (const { path: p, layer } of weightedLayers(model)) {
    const values = layer.weights.map((v, i) =>
      tf.tensor(randomValues(varName(v), v.shape, rng(`${seed}/${p.join('/')}/${i}`), layer.name), v.shape));
    layer.setWeights(values);
    values.forEach((t) => t.dispose());
  }
}

function writeModel(dir, model) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'topology.json'), JSON.stringify(model.toJSON(null, false)));
  const manifest = [];
  const chunks = [];
  let offset = 0;
  for (const { path: p, layer } of weightedLayers(model)) {
    const vars = layer.weights.map((v) => {
      const data = v.read().dataSync();
      chunks.push(Buffer.from(new Float32Array(data).buffer));
      const entry = { name: varName(v), shape: v.shape, offset, trainable: v.trainable };
      offset += data.length;
      return entry;
    });
    manifest.push({ path: p, class_name: layer.getClassName(), vars });
  }
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat(chunks));
  fs.writeFileSync(path.join(dir, 'weights.json'), JSON.stringify(manifest, null, 1));
}

const asJson = (t) => ({ shape: t.shape, data: Array.from(t.dataSync()) });

function reference(name, spec, dir) {
  const clean = spec.build(new A.Builder(false));
  setRandomWeights(clean, name);
  const inShape = [1].concat(clean.inputs[0].shape.slice(1));
  const n = inShape.reduce((a, b) => a * b, 1);
  const x = tf.tensor(spec.pixels ? uniform(n, 0, 255, rng(name + '/input')) : uniform(n, -1, 1, rng(name + '/input')), inShape);
  const out = { model: name, input: asJson(x), output: asJson(clean.predict(x)) };
  if (spec.cam) {
    const head = spec.build(new A.Builder(true, spec.cam));
    setRandomWeights(head, name);
    const feature = tfl.model({ inputs: clean.inputs, outputs: clean.getLayer(spec.cam).output }).predict(x);
    const logits = head.predict(feature);
    const top = tf.argMax(logits, 1).dataSync()[0];
    const grad = tf.grad((a) => tf.sum(tf.gather(head.apply(a), [top], 1)))(feature);
    const weights = tf.mean(grad, [1, 2]);  // [1, C]
    const cam = tf.squeeze(tf.relu(tf.sum(tf.mul(feature, tf.reshape(weights, [1, 1, 1, -1])), 3)), [0]);
    Object.assign(out, { logits: asJson(logits), top, cam_layer: spec.cam, cam: asJson(cam), cam_grad_weights: asJson(weights) });
  } else if (spec.logits) {  // the same model with a linear classifier
    const linear = spec.build(new A.Builder(true, null));
    setRandomWeights(linear, name);
    out.logits = asJson(linear.predict(x));
  }
  fs.mkdirSync(dir, { recursive: true });
  writeModel(dir, clean);
  fs.writeFileSync(path.join(dir, 'reference.json'), JSON.stringify(out));
}

// A model dumped from a real Keras file: its tfjs-ready config plus weights in layer order.
async function fromDump(dir) {
  const topology = JSON.parse(fs.readFileSync(path.join(dir, 'tfjs_topology.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'weights.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(dir, 'weights.bin'));
  const floats = new Float32Array(bin.buffer, bin.byteOffset, bin.length / 4);
  const load = async (topo) => {
    const model = await tfl.models.modelFromJSON(topo);
    for (const entry of manifest) {
      const layer = model.getLayer(entry.path[entry.path.length - 1]);
      layer.setWeights(entry.vars.map((v) => {
        const size = v.shape.reduce((a, b) => a * b, 1);
        return tf.tensor(floats.slice(v.offset, v.offset + size), v.shape);
      }));
    }
    return model;
  };
  const model = await load(topology);
  // The same model with a linear last layer gives the logits behind a final softmax.
  const linear = JSON.parse(JSON.stringify(topology));
  const layers = linear.modelTopology.config.layers;
  layers[layers.length - 1].config.activation = 'linear';
  const logitsModel = await load(linear);
  const inShape = [2].concat(model.inputs[0].shape.slice(1));
  const n = inShape.reduce((a, b) => a * b, 1);
  const x = tf.tensor(uniform(n, 0, 1, rng(path.basename(dir) + '/input')), inShape);
  const out = { model: path.basename(dir), input: asJson(x), output: asJson(model.predict(x)), logits: asJson(logitsModel.predict(x)) };
  fs.writeFileSync(path.join(dir, 'reference.json'), JSON.stringify(out));
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (k) => (args.indexOf(k) >= 0 ? args[args.indexOf(k) + 1] : null);
  await tf.setBackend('cpu');
  if (args.includes('--list')) return console.log(Object.keys(MODELS).join('\n'));
  if (opt('--from-dump')) return fromDump(opt('--from-dump'));
  if (opt('--bench-out')) {
    const model = A.resnet50(new A.Builder(false), { size: 224, w: 1, classes: 1000 });
    setRandomWeights(model, 'bench');
    return writeModel(path.join(opt('--bench-out'), 'resnet50_full'), model);
  }
  const outDir = opt('--out');
  if (!outDir) throw new Error('usage: make_reference.js --out DIR [--only a,b] | --bench-out DIR | --from-dump DIR');
  const only = opt('--only') ? opt('--only').split(',') : Object.keys(MODELS);
  for (const name of only) {
    if (!MODELS[name]) throw new Error('unknown model ' + name);
    const t0 = Date.now();
    reference(name, MODELS[name], path.join(outDir, name));
    console.log(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

// write_tfjs_files.js rebuilds the same models with the same weights.
module.exports = { MODELS, setRandomWeights };

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
