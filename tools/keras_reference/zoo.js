// Small models that, with the architectures, cover every Keras layer type Dermal converts, at odd
// sizes (13x11 images, 3/5/7 channels: loop tails, asymmetric 'same' padding at stride 2).
'use strict';
const tfl = require('@tensorflow/tfjs-layers');
const C = require('./custom_layers');
const { conv, bn, act } = require('./architectures');

const L = tfl.layers;

// Convolutions, normalisation, activations, merges and pooling.
function zooA(b) {
  const input = tfl.input({ shape: [13, 11, 3], name: 'image' });
  let x = b.apply(L.rescaling({ scale: 0.5, offset: 0.1, name: 'rescaling' }), input);
  x = b.apply(new C.Normalization({ name: 'normalization' }), x);
  const g = b.apply(new C.GroupedConv2D({ filters: 6, kernel_size: [3, 3], strides: [2, 2], padding: 'same', groups: 3, activation: 'relu', name: 'grouped_conv' }), x);
  let d = b.apply(conv(6, 3, { dilationRate: 2, padding: 'same', activation: 'tanh', name: 'dilated_conv' }), x);
  d = b.apply(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'max_pool_same' }), d);
  x = b.apply(L.add({ name: 'add' }), [g, d]);
  x = b.apply(bn('bn_no_center', 1e-3, { center: false }), x);
  let dw = b.apply(L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', activation: 'sigmoid', name: 'depthwise' }), x);
  dw = b.apply(bn('bn_no_scale', 1e-3, { scale: false }), dw);
  let s = b.apply(L.separableConv2d({ filters: 12, kernelSize: 3, padding: 'same', activation: 'relu6', name: 'separable' }), x);
  s = b.apply(L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avg_pool_same' }), s);
  const r1 = b.apply(new C.FullReLU({ max_value: 6, negative_slope: 0.1, name: 'relu_leaky_capped' }), dw);
  const r2 = b.apply(L.leakyReLU({ alpha: 0.2, name: 'leaky_relu' }), s);
  const r3 = b.apply(L.prelu({ sharedAxes: [1, 2], name: 'prelu' }), s);
  const r4 = b.apply(L.elu({ alpha: 1, name: 'elu' }), dw);
  const r5 = b.apply(new C.HardSwish({ name: 'hard_swish' }), s);
  const r6 = b.apply(act('gelu', 'gelu'), dw);
  const m1 = b.apply(new C.Subtract({ name: 'subtract' }), [r1, r2]);
  const m2 = b.apply(L.multiply({ name: 'multiply' }), [r3, r4]);
  const m3 = b.apply(L.average({ name: 'average' }), [r5, r6, m1]);
  const m4 = b.apply(L.maximum({ name: 'maximum' }), [m1, m2]);
  const m5 = b.apply(L.minimum({ name: 'minimum' }), [m2, m3]);
  x = b.apply(L.concatenate({ axis: -1, name: 'concat' }), [m3, m4, m5]);
  x = b.apply(L.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'zero_pad' }), x);
  x = b.apply(L.cropping2D({ cropping: [[1, 0], [1, 1]], name: 'crop' }), x);
  x = b.apply(conv(5, 2, { name: 'last_conv', activation: 'relu' }), x);
  const gk = b.apply(new C.GlobalAveragePoolingKeepdims({ name: 'gap_keepdims' }), x);
  const gd = b.apply(L.dense({ units: 4, activation: 'swish', name: 'dense_on_image' }), gk);
  const gm = b.apply(L.globalMaxPooling2d({ name: 'global_max_pool' }), x);
  x = b.apply(L.concatenate({ axis: -1, name: 'concat_top' }), [b.apply(L.flatten({ name: 'flatten' }), gd), gm]);
  x = b.apply(b.classifier(7, 'predictions'), x);
  return b.model(input, x, 'zoo_a');
}

// Shape layers, sequences (Dense and LayerNormalization on rank 3), inference no-ops.
function zooB(b) {
  const input = tfl.input({ shape: [6, 5, 4], name: 'image' });
  let x = b.apply(new C.Passthrough({ keras_class: 'RandomFlip', keras_config: { mode: 'horizontal' }, name: 'random_flip' }), input);
  x = b.apply(conv(4, 1, { name: 'conv_1x1' }), x);
  x = b.apply(L.gaussianNoise({ stddev: 0.5, name: 'gaussian_noise' }), x);
  let p = b.apply(L.permute({ dims: [2, 1, 3], name: 'permute' }), x);
  p = b.apply(conv(3, 2, { name: 'conv_after_permute', activation: 'elu' }), p);
  const seq = b.apply(L.reshape({ targetShape: [20, 3], name: 'to_sequence' }), p);
  let r = b.apply(L.dense({ units: 5, activation: 'gelu', name: 'dense_on_sequence' }), seq);
  r = b.apply(L.layerNormalization({ axis: -1, epsilon: 1e-3, name: 'layer_norm_sequence' }), r);
  r = b.apply(L.softmax({ axis: -1, name: 'softmax_sequence' }), r);
  const img = b.apply(L.reshape({ targetShape: [5, 4, 3], name: 'to_image' }), seq);
  let q = b.apply(conv(3, 3, { padding: 'same', name: 'conv_after_reshape' }), img);
  q = b.apply(new C.Passthrough({ keras_class: 'SpatialDropout2D', keras_config: { rate: 0.5 }, name: 'spatial_dropout' }), q);
  q = b.apply(L.layerNormalization({ axis: -1, name: 'layer_norm_image' }), q);
  const gm = b.apply(L.globalMaxPooling2d({ name: 'global_max_pool' }), q);
  x = b.apply(L.concatenate({ axis: -1, name: 'concat' }), [b.apply(L.flatten({ name: 'flatten' }), r), gm]);
  x = b.apply(L.dropout({ rate: 0.3, name: 'dropout' }), x);
  x = b.apply(b.classifier(7, 'predictions'), x);
  return b.model(input, x, 'zoo_b');
}

// Teachable Machine's shape: Sequential > [Sequential > [Functional base, pooling], Sequential >
// [Dense, Dense without bias]]; the Sequentials have no InputLayer.
function teachableMachine(b) {
  const input = tfl.input({ shape: [32, 32, 3], name: 'input_1' });
  let x = conv(8, 3, { strides: 2, padding: 'same', useBias: false, name: 'Conv1' }).apply(input);
  x = bn('bn_Conv1').apply(x);
  x = L.reLU({ maxValue: 6, name: 'Conv1_relu' }).apply(x);
  x = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: 'expanded_conv_depthwise' }).apply(x);
  x = bn('expanded_conv_depthwise_BN').apply(x);
  x = L.reLU({ maxValue: 6, name: 'expanded_conv_depthwise_relu' }).apply(x);
  x = conv(16, 1, { useBias: false, name: 'Conv_1' }).apply(x);
  x = bn('Conv_1_bn').apply(x);
  x = L.reLU({ maxValue: 6, name: 'out_relu' }).apply(x);
  const base = tfl.model({ inputs: input, outputs: x, name: 'model1' });
  const body = tfl.sequential({ layers: [base, L.globalAveragePooling2d({ name: 'global_average_pooling2d_GlobalAveragePooling2D1' })], name: 'sequential_1' });
  const head = tfl.sequential({
    layers: [L.dense({ units: 12, activation: 'relu', inputShape: [16], name: 'dense_Dense1' }),
      L.dense({ units: 7, activation: 'softmax', useBias: false, name: 'dense_Dense2' })],
    name: 'sequential_3',
  });
  return tfl.sequential({ layers: [body, head], name: 'sequential_4' });
}

// Transfer learning the functional way: a Functional base model called on a new Input inside a
// Functional model (the base's own first node is not saved; references to it count it).
function transfer(b) {
  const baseIn = tfl.input({ shape: [24, 20, 3], name: 'input_1' });
  let x = conv(6, 3, { strides: 2, padding: 'same', name: 'Conv1' }).apply(baseIn);
  x = bn('bn_Conv1').apply(x);
  x = L.reLU({ maxValue: 6, name: 'out_relu' }).apply(x);
  const base = tfl.model({ inputs: baseIn, outputs: x, name: 'base_model' });
  const input = tfl.input({ shape: [24, 20, 3], name: 'input_2' });
  let y = base.apply(input);
  y = L.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(y);
  y = L.dropout({ rate: 0.2, name: 'dropout' }).apply(y);
  y = b.classifier(7, 'predictions').apply(y);
  return tfl.model({ inputs: input, outputs: y, name: 'transfer' });
}

// Keras' image preprocessing inside the model: augmentation layers (the identity at inference),
// Resizing with crop_to_aspect_ratio and pad_to_aspect_ratio, CenterCrop both ways (a crop, and
// an input smaller than the window on one side: smart_resize), Rescaling, Normalization, and a
// nested Sequential of preprocessing layers.
function zooPreprocess(b) {
  const input = tfl.input({ shape: [17, 23, 3], name: 'image' });
  let x = input;
  for (const [cls, cfg] of [['RandomGrayscale', { factor: 0.5 }], ['RandomRotation', { factor: 0.2, fill_mode: 'reflect' }],
    ['RandomZoom', { height_factor: 0.1 }], ['RandomContrast', { factor: 0.3 }]])
    x = b.apply(new C.Passthrough({ keras_class: cls, keras_config: cfg, name: cls.toLowerCase() }), x);
  x = b.apply(new C.Resizing({ height: 12, width: 10, crop_to_aspect_ratio: true, name: 'resize_crop' }), x);
  x = b.apply(L.rescaling({ scale: 1 / 127.5, offset: -1, name: 'rescaling' }), x);
  x = b.apply(new C.Normalization({ name: 'normalization' }), x);
  const inner = tfl.sequential({
    layers: [new C.Resizing({ height: 9, width: 12, interpolation: 'nearest', pad_to_aspect_ratio: true, fill_value: 0.5,
      name: 'resize_pad', batchInputShape: [null, 12, 10, 3] }),
    new C.CenterCrop({ height: 8, width: 8, name: 'center_crop' })],
    name: 'preprocess',
  });
  x = b.apply(inner, x);
  x = b.apply(conv(5, 3, { padding: 'same', activation: 'relu', name: 'conv_a' }), x);
  x = b.apply(new C.CenterCrop({ height: 10, width: 6, name: 'center_crop_up' }), x);
  x = b.apply(new C.Resizing({ height: 6, width: 7, name: 'resize_down' }), x);
  x = b.apply(conv(6, 3, { padding: 'same', activation: 'relu', name: 'conv_b' }), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'gap' }), x);
  x = b.apply(b.classifier(7, 'predictions'), x);
  return b.model(input, x, 'zoo_preprocess');
}

// A grayscale classifier (one input channel), resizing and cropping its input itself.
function zooGray(b) {
  const input = tfl.input({ shape: [20, 18, 1], name: 'gray_image' });
  let x = b.apply(new C.Resizing({ height: 16, width: 16, name: 'resize' }), input);
  x = b.apply(L.rescaling({ scale: 1 / 255, name: 'rescaling' }), x);
  x = b.apply(conv(6, 3, { padding: 'same', activation: 'relu', name: 'conv_1' }), x);
  x = b.apply(new C.CenterCrop({ height: 12, width: 12, name: 'center_crop' }), x);
  x = b.apply(conv(8, 3, { strides: 2, padding: 'same', activation: 'relu', name: 'conv_2' }), x);
  x = b.apply(L.globalAveragePooling2d({ name: 'gap' }), x);
  x = b.apply(b.classifier(7, 'predictions'), x);
  return b.model(input, x, 'zoo_gray');
}

module.exports = { zooA, zooB, teachableMachine, transfer, zooPreprocess, zooGray };
