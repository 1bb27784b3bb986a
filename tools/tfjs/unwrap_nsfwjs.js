// Unwraps a TensorFlow.js model bundled as JavaScript, as npm's nsfwjs ships its models
// (dist/models/<name>/model.min.js + group1-shardNofM.min.js: UMD modules exporting the model.json
// object and each shard as a base64 string), into the files TensorFlow.js itself reads:
// OUT_DIR/model.json and binary shards OUT_DIR/group1-shardNofM.bin (the manifest's paths renamed
// to them; nothing else changes: quantisation, weight order and names stay as shipped).
//
//   node tools/tfjs/unwrap_nsfwjs.js mobilenet_v2 OUT_DIR     # a model of the installed nsfwjs
//   node tools/tfjs/unwrap_nsfwjs.js path/to/models/inception_v3 OUT_DIR
// nsfwjs is looked for in NODE_PATH, the usual module paths and tools/*/node_modules.
'use strict';
const fs = require('fs');
const path = require('path');

function nsfwjsRoot() {
  // nsfwjs's package.json "exports" hides its files from require.resolve: look in the folders.
  const roots = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
    .concat(require.resolve.paths('nsfwjs') || [])
    .concat(['../train/pretrained/node_modules', '../keras_reference/node_modules'].map((p) => path.join(__dirname, p)));
  const found = roots.map((r) => path.join(r, 'nsfwjs')).find((d) => fs.existsSync(path.join(d, 'package.json')));
  if (!found) throw new Error('nsfwjs is not installed: npm ci in tools/train/pretrained, or set NODE_PATH to its node_modules');
  return found;
}

function modelDir(what) {
  if (fs.existsSync(path.join(what, 'model.min.js'))) return what;
  const dir = path.join(nsfwjsRoot(), 'dist', 'models', what);
  if (!fs.existsSync(path.join(dir, 'model.min.js'))) throw new Error(`no model.min.js in ${what} or ${dir}`);
  return dir;
}

// A bundled module's export: the object or string itself, or under `default`.
function exported(file) {
  const m = require(path.resolve(file));
  return m && m.default !== undefined ? m.default : m;
}

function unwrap(dir, out) {
  const model = JSON.parse(JSON.stringify(exported(path.join(dir, 'model.min.js'))));
  if (!model.modelTopology || !Array.isArray(model.weightsManifest)) throw new Error(`${dir}/model.min.js holds no model.json`);
  fs.mkdirSync(out, { recursive: true });
  let bytes = 0;
  for (const group of model.weightsManifest) {
    group.paths = group.paths.map((p) => {
      const base = path.basename(p).replace(/\.(bin|min\.js)$/, '');
      const b64 = exported(path.join(dir, base + '.min.js'));
      if (typeof b64 !== 'string') throw new Error(`${base}.min.js does not export a base64 string`);
      const data = Buffer.from(b64, 'base64');
      fs.writeFileSync(path.join(out, base + '.bin'), data);
      bytes += data.length;
      return base + '.bin';
    });
  }
  fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(model));
  const tensors = model.weightsManifest.reduce((n, g) => n + g.weights.length, 0);
  const shards = model.weightsManifest.reduce((n, g) => n + g.paths.length, 0);
  console.log(`${out}/model.json: ${model.format || 'layers-model'}, ${tensors} tensors in ${shards} shard(s), ${bytes} bytes`);
}

if (require.main === module) {
  const [what, out] = process.argv.slice(2);
  if (!what || !out) {
    console.error('usage: unwrap_nsfwjs.js MODEL_NAME|MODEL_DIR OUT_DIR');
    process.exit(2);
  }
  unwrap(modelDir(what), out);
}

module.exports = { unwrap, modelDir };
