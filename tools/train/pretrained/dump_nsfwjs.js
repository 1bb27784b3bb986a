// Dump nsfwjs's MobileNetV2 (Keras 2.2.4, TF.js layers format wrapped in .min.js) to plain files:
//   node dump_nsfwjs.js OUT_DIR   ->  OUT_DIR/model.json (topology + weightsManifest), OUT_DIR/weights.bin
// The weight shard is a base64 string of uint8 values; each tensor has quantization {min, scale}.
const fs = require('fs');
const path = require('path');
const out = process.argv[2] || '.';
// nsfwjs's package.json "exports" hides its files from require.resolve: look in the module paths.
const roots = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
  .concat(require.resolve.paths('nsfwjs') || []);
const base = roots.map(r => path.join(r, 'nsfwjs')).find(d => fs.existsSync(path.join(d, 'package.json')));
if (!base) throw new Error('nsfwjs not found: npm ci here, or set NODE_PATH to its node_modules');
const dir = path.join(base, 'dist', 'models', 'mobilenet_v2');
const model = require(path.join(dir, 'model.min.js'));
const shard = require(path.join(dir, 'group1-shard1of1.min.js'));
const b64 = typeof shard === 'string' ? shard : (shard.default || shard);
if (typeof b64 !== 'string') throw new Error('unexpected shard export: ' + typeof b64);
const buf = Buffer.from(b64, 'base64');
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'weights.bin'), buf);
model.weightsManifest[0].paths = ['weights.bin'];
fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(model));
console.log(`wrote ${out}/model.json and weights.bin (${buf.length} bytes, ` +
            `${model.weightsManifest[0].weights.length} tensors)`);
