// Keras applications' graphs rebuilt in TensorFlow.js layers, with Keras' layer names and block
// structure (every block, every layer type), at reduced width (w) and input size.
//
// Each builder takes a Builder. In probe mode the classifier is linear (logits), and the model
// returned is only the head: from a new input standing for the CAM layer's output to the logits,
// so that tf.grad of a logit with respect to that input is the gradient Grad-CAM needs.
'use strict';
const tfl = require('@tensorflow/tfjs-layers');
const C = require('./custom_layers');

const L = tfl.layers;

class Builder {
  constructor(probe, camLayer) {
    this.probe = probe;
    this.camLayer = camLayer;
    this.headInput = null;
    this.counters = {};
  }
  // Keras' automatic names: conv2d, conv2d_1, ...
  auto(base) {
    const n = this.counters[base] || 0;
    this.counters[base] = n + 1;
    return n ? `${base}_${n}` : base;
  }
  apply(layer, x) {
    const y = layer.apply(x);
    if (!this.probe || layer.name !== this.camLayer) return y;
    this.headInput = tfl.input({ shape: y.shape.slice(1), name: 'cam_input' });
    return this.headInput;
  }
  classifier(units, name) { return L.dense({ units, activation: this.probe ? 'linear' : 'softmax', name }); }
  model(input, output, name) { return tfl.model({ inputs: this.headInput || input, outputs: output, name }); }
}

const conv = (filters, k, o = {}) => L.conv2d(Object.assign({ filters, kernelSize: k, useBias: o.useBias !== undefined ? o.useBias : true }, o));
const bn = (name, epsilon = 1e-3, o = {}) => L.batchNormalization(Object.assign({ name, epsilon, momentum: 0.99 }, o));
const act = (activation, name) => L.activation({ activation, name });
const ch = (n, w) => Math.max(2, Math.round(n * w));
const makeDivisible = (v, d = 8) => Math.max(d, Math.floor((v + d / 2) / d) * d);
// keras.applications' correct_pad: asymmetric padding before a stride-2 'valid' convolution.
function correctPad(x, k) {
  const adjust = [1 - (x.shape[1] % 2), 1 - (x.shape[2] % 2)];
  const c = Math.floor(k / 2);
  return [[c - adjust[0], c], [c - adjust[1], c]];
}

function mobilenetV2(b, { size = 128, alpha = 0.35, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  let x = b.apply(conv(makeDivisible(32 * alpha), 3, { strides: 2, padding: 'same', useBias: false, name: 'Conv1' }), input);
  x = b.apply(bn('bn_Conv1', 1e-3), x);
  x = b.apply(L.reLU({ maxValue: 6, name: 'Conv1_relu' }), x);
  const block = (inp, filters, stride, expansion, id) => {
    const inCh = inp.shape[3];
    const outCh = makeDivisible(Math.floor(filters * alpha));
    let prefix = `block_${id}_`;
    let y = inp;
    if (id) {
      y = b.apply(conv(expansion * inCh, 1, { padding: 'same', useBias: false, name: prefix + 'expand' }), y);
      y = b.apply(bn(prefix + 'expand_BN'), y);
      y = b.apply(L.reLU({ maxValue: 6, name: prefix + 'expand_relu' }), y);
    } else {
      prefix = 'expanded_conv_';
    }
    if (stride === 2) y = b.apply(L.zeroPadding2d({ padding: correctPad(y, 3), name: prefix + 'pad' }), y);
    y = b.apply(L.depthwiseConv2d({ kernelSize: 3, strides: stride, useBias: false, padding: stride === 1 ? 'same' : 'valid', name: prefix + 'depthwise' }), y);
    y = b.apply(bn(prefix + 'depthwise_BN'), y);
    y = b.apply(L.reLU({ maxValue: 6, name: prefix + 'depthwise_relu' }), y);
    y = b.apply(conv(outCh, 1, { padding: 'same', useBias: false, name: prefix + 'project' }), y);
    y = b.apply(bn(prefix + 'project_BN'), y);
    if (inCh === outCh && stride === 1) y = b.apply(L.add({ name: prefix + 'add' }), [inp, y]);
    return y;
  };
  const spec = [[16, 1, 1], [24, 2, 6], [24, 1, 6], [32, 2, 6], [32, 1, 6], [32, 1, 6], [64, 2, 6], [64, 1, 6], [64, 1, 6],
    [64, 1, 6], [96, 1, 6], [96, 1, 6], [96, 1, 6], [160, 2, 6], [160, 1, 6], [160, 1, 6], [320, 1, 6]];
  spec.forEach(([f, s, e], id) => { x = block(x, f, s, e, id); });
  x = b.apply(conv(ch(1280, alpha), 1, { useBias: false, name: 'Conv_1' }), x);
  x = b.apply(bn('Conv_1_bn'), x);
  x = b.apply(L.reLU({ maxValue: 6, name: 'out_relu' }), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'mobilenetv2_0.35_' + size);
}

function resnet50(b, { size = 128, w = 0.25, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  let x = b.apply(L.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'conv1_pad' }), input);
  x = b.apply(conv(ch(64, w), 7, { strides: 2, name: 'conv1_conv' }), x);
  x = b.apply(bn('conv1_bn', 1.001e-5), x);
  x = b.apply(act('relu', 'conv1_relu'), x);
  x = b.apply(L.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }), x);
  x = b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);
  const block = (inp, filters, stride, shortcutConv, name) => {
    let shortcut = inp;
    if (shortcutConv) {
      shortcut = b.apply(conv(4 * filters, 1, { strides: stride, name: name + '_0_conv' }), inp);
      shortcut = b.apply(bn(name + '_0_bn', 1.001e-5), shortcut);
    }
    let y = b.apply(conv(filters, 1, { strides: stride, name: name + '_1_conv' }), inp);
    y = b.apply(bn(name + '_1_bn', 1.001e-5), y);
    y = b.apply(act('relu', name + '_1_relu'), y);
    y = b.apply(conv(filters, 3, { padding: 'same', name: name + '_2_conv' }), y);
    y = b.apply(bn(name + '_2_bn', 1.001e-5), y);
    y = b.apply(act('relu', name + '_2_relu'), y);
    y = b.apply(conv(4 * filters, 1, { name: name + '_3_conv' }), y);
    y = b.apply(bn(name + '_3_bn', 1.001e-5), y);
    y = b.apply(L.add({ name: name + '_add' }), [shortcut, y]);
    return b.apply(act('relu', name + '_out'), y);
  };
  const stack = (inp, filters, blocks, stride, name) => {
    let y = block(inp, filters, stride, true, name + '_block1');
    for (let i = 2; i <= blocks; ++i) y = block(y, filters, 1, false, name + '_block' + i);
    return y;
  };
  x = stack(x, ch(64, w), 3, 1, 'conv2');
  x = stack(x, ch(128, w), 4, 2, 'conv3');
  x = stack(x, ch(256, w), 6, 2, 'conv4');
  x = stack(x, ch(512, w), 3, 2, 'conv5');
  x = b.apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'resnet50');
}

function efficientNetB0(b, { size = 128, w = 0.5, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  const f = (n) => makeDivisible(n * w);
  let x = b.apply(L.rescaling({ scale: 1 / 255, name: 'rescaling' }), input);
  x = b.apply(new C.Normalization({ name: 'normalization' }), x);
  x = b.apply(L.zeroPadding2d({ padding: correctPad(x, 3), name: 'stem_conv_pad' }), x);
  x = b.apply(conv(f(32), 3, { strides: 2, padding: 'valid', useBias: false, name: 'stem_conv' }), x);
  x = b.apply(bn('stem_bn'), x);
  x = b.apply(act('swish', 'stem_activation'), x);
  const block = (inp, name, fin, fout, k, stride, expand, se) => {
    const filters = fin * expand;
    let y = inp;
    if (expand !== 1) {
      y = b.apply(conv(filters, 1, { padding: 'same', useBias: false, name: name + 'expand_conv' }), y);
      y = b.apply(bn(name + 'expand_bn'), y);
      y = b.apply(act('swish', name + 'expand_activation'), y);
    }
    let pad = 'same';
    if (stride === 2) {
      y = b.apply(L.zeroPadding2d({ padding: correctPad(y, k), name: name + 'dwconv_pad' }), y);
      pad = 'valid';
    }
    y = b.apply(L.depthwiseConv2d({ kernelSize: k, strides: stride, padding: pad, useBias: false, name: name + 'dwconv' }), y);
    y = b.apply(bn(name + 'bn'), y);
    y = b.apply(act('swish', name + 'activation'), y);
    const fse = Math.max(1, Math.floor(fin * se));
    let s = b.apply(L.globalAveragePooling2d({ name: name + 'se_squeeze' }), y);
    s = b.apply(L.reshape({ targetShape: [1, 1, filters], name: name + 'se_reshape' }), s);
    s = b.apply(conv(fse, 1, { padding: 'same', activation: 'swish', name: name + 'se_reduce' }), s);
    s = b.apply(conv(filters, 1, { padding: 'same', activation: 'sigmoid', name: name + 'se_expand' }), s);
    y = b.apply(L.multiply({ name: name + 'se_excite' }), [y, s]);
    y = b.apply(conv(fout, 1, { padding: 'same', useBias: false, name: name + 'project_conv' }), y);
    y = b.apply(bn(name + 'project_bn'), y);
    if (stride === 1 && fin === fout) {
      y = b.apply(L.dropout({ rate: 0.2, name: name + 'drop' }), y);
      y = b.apply(L.add({ name: name + 'add' }), [y, inp]);
    }
    return y;
  };
  const args = [[3, 1, 32, 16, 1, 1], [3, 2, 16, 24, 6, 2], [5, 2, 24, 40, 6, 2], [3, 3, 40, 80, 6, 2], [5, 3, 80, 112, 6, 1],
    [5, 4, 112, 192, 6, 2], [3, 1, 192, 320, 6, 1]];
  args.forEach(([k, repeats, fin, fout, expand, stride], i) => {
    for (let j = 0; j < repeats; ++j)
      x = block(x, `block${i + 1}${String.fromCharCode(97 + j)}_`, j ? f(fout) : f(fin), f(fout), k, j ? 1 : stride, expand, 0.25);
  });
  x = b.apply(conv(f(1280), 1, { padding: 'same', useBias: false, name: 'top_conv' }), x);
  x = b.apply(bn('top_bn'), x);
  x = b.apply(act('swish', 'top_activation'), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = b.apply(L.dropout({ rate: 0.2, name: 'top_dropout' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'efficientnetb0');
}

function denseNet121(b, { size = 128, w = 0.25, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  const growth = ch(32, w);
  let x = b.apply(L.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'zero_padding2d' }), input);
  x = b.apply(conv(ch(64, w), 7, { strides: 2, useBias: false, name: 'conv1_conv' }), x);
  x = b.apply(bn('conv1_bn', 1.001e-5), x);
  x = b.apply(act('relu', 'conv1_relu'), x);
  x = b.apply(L.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'zero_padding2d_1' }), x);
  x = b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1' }), x);
  const convBlock = (inp, name) => {
    let y = b.apply(bn(name + '_0_bn', 1.001e-5), inp);
    y = b.apply(act('relu', name + '_0_relu'), y);
    y = b.apply(conv(4 * growth, 1, { useBias: false, name: name + '_1_conv' }), y);
    y = b.apply(bn(name + '_1_bn', 1.001e-5), y);
    y = b.apply(act('relu', name + '_1_relu'), y);
    y = b.apply(conv(growth, 3, { padding: 'same', useBias: false, name: name + '_2_conv' }), y);
    return b.apply(L.concatenate({ axis: -1, name: name + '_concat' }), [inp, y]);
  };
  const transition = (inp, name) => {
    let y = b.apply(bn(name + '_bn', 1.001e-5), inp);
    y = b.apply(act('relu', name + '_relu'), y);
    y = b.apply(conv(Math.floor(inp.shape[3] * 0.5), 1, { useBias: false, name: name + '_conv' }), y);
    return b.apply(L.averagePooling2d({ poolSize: 2, strides: 2, name: name + '_pool' }), y);
  };
  [6, 12, 24, 16].forEach((n, i) => {
    for (let k = 1; k <= n; ++k) x = convBlock(x, `conv${i + 2}_block${k}`);
    if (i < 3) x = transition(x, `pool${i + 2}`);
  });
  x = b.apply(bn('bn', 1.001e-5), x);
  x = b.apply(act('relu', 'relu'), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'densenet121');
}

function inceptionV3(b, { size = 171, w = 0.125, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  // conv2d_bn: Conv2D without bias, BatchNormalization(scale=False), ReLU; automatic names.
  const cbn = (x, filters, r, c, padding = 'same', strides = 1) => {
    let y = b.apply(conv(ch(filters, w), [r, c], { strides, padding, useBias: false, name: b.auto('conv2d') }), x);
    y = b.apply(bn(b.auto('batch_normalization'), 1e-3, { scale: false }), y);
    return b.apply(act('relu', b.auto('activation')), y);
  };
  const avg = (x) => b.apply(L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: b.auto('average_pooling2d') }), x);
  const maxp = (x) => b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, name: b.auto('max_pooling2d') }), x);
  const cat = (xs, name) => b.apply(L.concatenate({ axis: -1, name }), xs);
  let x = cbn(input, 32, 3, 3, 'valid', 2);
  x = cbn(x, 32, 3, 3, 'valid');
  x = cbn(x, 64, 3, 3);
  x = maxp(x);
  x = cbn(x, 80, 1, 1, 'valid');
  x = cbn(x, 192, 3, 3, 'valid');
  x = maxp(x);
  for (let i = 0; i < 3; ++i) {
    const b1 = cbn(x, 64, 1, 1);
    const b5 = cbn(cbn(x, 48, 1, 1), 64, 5, 5);
    const b3 = cbn(cbn(cbn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3);
    const bp = cbn(avg(x), i === 0 ? 32 : 64, 1, 1);
    x = cat([b1, b5, b3, bp], 'mixed' + i);
  }
  {
    const b3 = cbn(x, 384, 3, 3, 'valid', 2);
    const bd = cbn(cbn(cbn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 'valid', 2);
    x = cat([b3, bd, maxp(x)], 'mixed3');
  }
  [128, 160, 160, 192].forEach((n, i) => {
    const b1 = cbn(x, 192, 1, 1);
    const b7 = cbn(cbn(cbn(x, n, 1, 1), n, 1, 7), 192, 7, 1);
    const bd = cbn(cbn(cbn(cbn(cbn(x, n, 1, 1), n, 7, 1), n, 1, 7), n, 7, 1), 192, 1, 7);
    const bp = cbn(avg(x), 192, 1, 1);
    x = cat([b1, b7, bd, bp], 'mixed' + (4 + i));
  });
  {
    const b3 = cbn(cbn(x, 192, 1, 1), 320, 3, 3, 'valid', 2);
    const b7 = cbn(cbn(cbn(cbn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, 'valid', 2);
    x = cat([b3, b7, maxp(x)], 'mixed8');
  }
  for (let i = 0; i < 2; ++i) {
    const b1 = cbn(x, 320, 1, 1);
    const b3 = cbn(x, 384, 1, 1);
    const b3m = cat([cbn(b3, 384, 1, 3), cbn(b3, 384, 3, 1)], 'mixed9_' + i);
    const bd = cbn(cbn(x, 448, 1, 1), 384, 3, 3);
    const bdm = b.apply(L.concatenate({ axis: -1, name: b.auto('concatenate') }), [cbn(bd, 384, 1, 3), cbn(bd, 384, 3, 1)]);
    const bp = cbn(avg(x), 192, 1, 1);
    x = cat([b1, b3m, bdm, bp], 'mixed' + (9 + i));
  }
  x = b.apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'inception_v3');
}

function xception(b, { size = 128, w = 0.125, classes = 7 } = {}) {
  const input = tfl.input({ shape: [size, size, 3], name: 'input_1' });
  const sep = (filters, name) => L.separableConv2d({ filters: ch(filters, w), kernelSize: 3, padding: 'same', useBias: false, name });
  const shortcut = (x, filters) => {
    const r = b.apply(conv(ch(filters, w), 1, { strides: 2, padding: 'same', useBias: false, name: b.auto('conv2d') }), x);
    return b.apply(bn(b.auto('batch_normalization')), r);
  };
  let x = b.apply(conv(ch(32, w), 3, { strides: 2, useBias: false, name: 'block1_conv1' }), input);
  x = b.apply(bn('block1_conv1_bn'), x);
  x = b.apply(act('relu', 'block1_conv1_act'), x);
  x = b.apply(conv(ch(64, w), 3, { useBias: false, name: 'block1_conv2' }), x);
  x = b.apply(bn('block1_conv2_bn'), x);
  x = b.apply(act('relu', 'block1_conv2_act'), x);
  [[2, 128], [3, 256], [4, 728]].forEach(([blk, filters]) => {
    const r = shortcut(x, filters);
    const p = `block${blk}_`;
    if (blk > 2) x = b.apply(act('relu', p + 'sepconv1_act'), x);
    x = b.apply(sep(filters, p + 'sepconv1'), x);
    x = b.apply(bn(p + 'sepconv1_bn'), x);
    x = b.apply(act('relu', p + 'sepconv2_act'), x);
    x = b.apply(sep(filters, p + 'sepconv2'), x);
    x = b.apply(bn(p + 'sepconv2_bn'), x);
    x = b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: p + 'pool' }), x);
    x = b.apply(L.add({ name: b.auto('add') }), [x, r]);
  });
  for (let i = 0; i < 8; ++i) {
    const r = x;
    const p = `block${i + 5}_`;
    for (let k = 1; k <= 3; ++k) {
      x = b.apply(act('relu', `${p}sepconv${k}_act`), x);
      x = b.apply(sep(728, `${p}sepconv${k}`), x);
      x = b.apply(bn(`${p}sepconv${k}_bn`), x);
    }
    x = b.apply(L.add({ name: b.auto('add') }), [x, r]);
  }
  const r = shortcut(x, 1024);
  x = b.apply(act('relu', 'block13_sepconv1_act'), x);
  x = b.apply(sep(728, 'block13_sepconv1'), x);
  x = b.apply(bn('block13_sepconv1_bn'), x);
  x = b.apply(act('relu', 'block13_sepconv2_act'), x);
  x = b.apply(sep(1024, 'block13_sepconv2'), x);
  x = b.apply(bn('block13_sepconv2_bn'), x);
  x = b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'block13_pool' }), x);
  x = b.apply(L.add({ name: b.auto('add') }), [x, r]);
  x = b.apply(sep(1536, 'block14_sepconv1'), x);
  x = b.apply(bn('block14_sepconv1_bn'), x);
  x = b.apply(act('relu', 'block14_sepconv1_act'), x);
  x = b.apply(sep(2048, 'block14_sepconv2'), x);
  x = b.apply(bn('block14_sepconv2_bn'), x);
  x = b.apply(act('relu', 'block14_sepconv2_act'), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = b.apply(b.classifier(classes, 'predictions'), x);
  return b.model(input, x, 'xception');
}

module.exports = { Builder, mobilenetV2, resnet50, efficientNetB0, denseNet121, inceptionV3, xception, conv, bn, act, ch };
