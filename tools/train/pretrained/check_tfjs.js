// Run nsfwjs's MobileNetV2 in TensorFlow.js (tfjs-layers 4.22, CPU backend) on a batch of images
// already preprocessed by convert_nsfwjs.py (float32 NHWC, 224x224x3, values /255), and write the
// 1280-d pooled features (flatten_1) and the 5 head probabilities (dense_3) for comparison.
//   NODE_PATH=.../node_modules node check_tfjs.js DIR INPUT.bin N
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');

async function main() {
  const [dir, input, nStr] = process.argv.slice(2);
  const n = parseInt(nStr, 10);
  await tf.setBackend('cpu');
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(dir, 'weights.bin'));
  const handler = {
    load: async () => ({
      modelTopology: m.modelTopology,
      weightSpecs: m.weightsManifest[0].weights,  // uint8 + {min, scale}: tfjs dequantises
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length),
    }),
  };
  const model = await tfl.loadLayersModel(handler);
  const probe = tfl.model({inputs: model.inputs,
                           outputs: [model.getLayer('flatten_1').output, model.getLayer('dense_3').output]});
  const buf = fs.readFileSync(input);
  const x = tf.tensor4d(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4), [n, 224, 224, 3]);
  const [feat, prob] = probe.predict(x);
  fs.writeFileSync(path.join(dir, 'check_tfjs_features.bin'), Buffer.from((await feat.data()).buffer));
  fs.writeFileSync(path.join(dir, 'check_tfjs_probs.bin'), Buffer.from((await prob.data()).buffer));
  console.log(`tfjs ${tf.version_core}: features ${feat.shape}, probabilities ${prob.shape}`);
}
main().catch(e => { console.error(e); process.exit(1); });
