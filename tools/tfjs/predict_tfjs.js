// TensorFlow.js's own answer for a layers model on disk: tfjs-layers loads DIR/model.json and its
// shards (tfjs-core dequantises them) and predicts on images given as raw uint8 N,H,W,C bytes,
// fed as pixel / 255 in float32. Writes OUT.json: {"shape": [N, classes], "data": [...]}.
//
//   node tools/tfjs/predict_tfjs.js DIR INPUT.u8 N OUT.json
// @tensorflow/tfjs-{core,backend-cpu,layers} come from tools/keras_reference/node_modules (pinned
// there), else from NODE_PATH and the usual module paths.
'use strict';
const fs = require('fs');
const path = require('path');

const pinned = path.join(__dirname, '..', 'keras_reference');
const need = (name) => require(require.resolve(name, { paths: [pinned, ...(require.resolve.paths(name) || [])] }));
const tf = need('@tensorflow/tfjs-core');
need('@tensorflow/tfjs-backend-cpu');
const tfl = need('@tensorflow/tfjs-layers');

// model.json and every shard of every group, read the way tfjs's own file handlers do.
function fileHandler(dir) {
  return {
    load: async () => {
      const m = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = [];
      const shards = [];
      for (const group of m.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: m.modelTopology, format: m.format, generatedBy: m.generatedBy, convertedBy: m.convertedBy,
        weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
      };
    },
  };
}

async function main() {
  const [dir, input, nText, out] = process.argv.slice(2);
  if (!out) throw new Error('usage: predict_tfjs.js DIR INPUT.u8 N OUT.json');
  await tf.setBackend('cpu');
  const model = await tfl.loadLayersModel(fileHandler(dir));
  const [, h, w, c] = model.inputs[0].shape;
  const n = parseInt(nText, 10);
  const bytes = fs.readFileSync(input);
  if (bytes.length !== n * h * w * c) throw new Error(`${input}: ${bytes.length} bytes, expected ${n}x${h}x${w}x${c}`);
  const t0 = Date.now();
  const y = tf.tidy(() => model.predict(tf.div(tf.tensor4d(Float32Array.from(bytes), [n, h, w, c]), 255)));
  fs.writeFileSync(out, JSON.stringify({ shape: y.shape, data: Array.from(await y.data()) }));
  console.log(`tfjs ${tf.version_core}: ${path.basename(dir)} on ${n} images in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

module.exports = { fileHandler };

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
