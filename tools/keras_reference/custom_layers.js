// Keras layers that TensorFlow.js lacks, written here with tfjs-core ops from Keras' documented
// semantics. Each one's config carries `keras_class`: write_keras_files.py saves the layer
// under that Keras class name (e.g. GroupedConv2D -> Conv2D with groups).
'use strict';
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');

class KerasLayer extends tfl.layers.Layer {
  constructor(config, kerasClass, own) {
    super(config);
    this.kerasClass = kerasClass;
    this.own = own || {};
  }
  getConfig() {
    return Object.assign({}, super.getConfig(), this.own, { keras_class: this.kerasClass });
  }
}

function activate(x, name) {
  switch (name || 'linear') {
    case 'linear': return x;
    case 'relu': return tf.relu(x);
    case 'sigmoid': return tf.sigmoid(x);
    default: throw new Error(`activation ${name} not implemented in GroupedConv2D`);
  }
}

// Conv2D with groups: each group of input channels convolved with its own slice of filters.
class GroupedConv2D extends KerasLayer {
  constructor(c) {
    super(c, 'Conv2D', {
      filters: c.filters, kernel_size: c.kernel_size, strides: c.strides || [1, 1], padding: c.padding || 'valid',
      data_format: 'channels_last', dilation_rate: c.dilation_rate || [1, 1], groups: c.groups,
      activation: c.activation || 'linear', use_bias: c.use_bias !== false,
    });
  }
  build(inputShape) {
    const o = this.own;
    const cin = inputShape[inputShape.length - 1];
    this.kernel = this.addWeight('kernel', [o.kernel_size[0], o.kernel_size[1], cin / o.groups, o.filters], 'float32',
                                 tfl.initializers.zeros());
    if (o.use_bias) this.bias = this.addWeight('bias', [o.filters], 'float32', tfl.initializers.zeros());
    this.built = true;
  }
  computeOutputShape(s) {
    const o = this.own;
    const out = (n, i) => {
      if (n === null) return null;
      const ext = o.dilation_rate[i] * (o.kernel_size[i] - 1) + 1;
      return o.padding === 'same' ? Math.ceil(n / o.strides[i]) : Math.floor((n - ext) / o.strides[i]) + 1;
    };
    return [s[0], out(s[1], 0), out(s[2], 1), o.filters];
  }
  call(inputs) {
    return tf.tidy(() => {
      const o = this.own;
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const xs = tf.split(x, o.groups, 3), ks = tf.split(this.kernel.read(), o.groups, 3);
      const ys = xs.map((xi, g) => tf.conv2d(xi, ks[g], o.strides, o.padding, 'NHWC', o.dilation_rate));
      let y = tf.concat(ys, 3);
      if (o.use_bias) y = tf.add(y, this.bias.read());
      return activate(y, o.activation);
    });
  }
  static get className() { return 'GroupedConv2D'; }
}

class Subtract extends KerasLayer {
  constructor(c) { super(c, 'Subtract'); }
  computeOutputShape(s) { return s[0]; }
  call(inputs) { return tf.sub(inputs[0], inputs[1]); }
  static get className() { return 'KerasSubtract'; }
}

// Keras Normalization with adapted statistics: (x - mean) / max(sqrt(variance), 1e-7).
class Normalization extends KerasLayer {
  constructor(c) { super(c, 'Normalization', { axis: [-1], invert: false, mean: null, variance: null }); }
  build(inputShape) {
    const ch = inputShape[inputShape.length - 1];
    this.mean = this.addWeight('mean', [ch], 'float32', tfl.initializers.zeros(), undefined, false);
    this.variance = this.addWeight('variance', [ch], 'float32', tfl.initializers.ones(), undefined, false);
    this.count = this.addWeight('count', [], 'float32', tfl.initializers.zeros(), undefined, false);
    this.built = true;
  }
  computeOutputShape(s) { return s; }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.div(tf.sub(x, this.mean.read()), tf.maximum(tf.sqrt(this.variance.read()), 1e-7));
    });
  }
  static get className() { return 'KerasNormalization'; }
}

// Keras 3 ReLU(max_value, negative_slope) with threshold 0.
class FullReLU extends KerasLayer {
  constructor(c) { super(c, 'ReLU', { max_value: c.max_value, negative_slope: c.negative_slope, threshold: 0 }); }
  computeOutputShape(s) { return s; }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      let pos = tf.relu(x);
      if (this.own.max_value !== null && this.own.max_value !== undefined) pos = tf.minimum(pos, this.own.max_value);
      return tf.sub(pos, tf.mul(this.own.negative_slope, tf.relu(tf.neg(x))));
    });
  }
  static get className() { return 'FullReLU'; }
}

// Activation('hard_swish'): x * relu6(x + 3) / 6.
class HardSwish extends KerasLayer {
  constructor(c) { super(c, 'Activation', { activation: 'hard_swish' }); }
  computeOutputShape(s) { return s; }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.mul(x, tf.div(tf.clipByValue(tf.add(x, 3), 0, 6), 6));
    });
  }
  static get className() { return 'KerasHardSwish'; }
}

class GlobalAveragePoolingKeepdims extends KerasLayer {
  constructor(c) { super(c, 'GlobalAveragePooling2D', { data_format: 'channels_last', keepdims: true }); }
  computeOutputShape(s) { return [s[0], 1, 1, s[3]]; }
  call(inputs) {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.mean(x, [1, 2], true);
  }
  static get className() { return 'GlobalAveragePoolingKeepdims'; }
}

// Training-only layers (SpatialDropout2D, RandomFlip...): the identity at inference.
class Passthrough extends KerasLayer {
  constructor(c) { super(c, c.keras_class, c.keras_config || {}); }
  getConfig() { return Object.assign({}, super.getConfig(), { keras_config: this.own }); }
  computeOutputShape(s) { return s; }
  call(inputs) { return tf.clone(Array.isArray(inputs) ? inputs[0] : inputs); }
  static get className() { return 'Passthrough'; }
}

// Keras computes sizes in float32 and truncates: int(float32(a * b) / c).
const f32div = (a, b, c) => Math.trunc(Math.fround(Math.fround(a * b) / c));

// The central crop to the aspect ratio of h x w (crop_to_aspect_ratio, smart_resize).
function cropToAspect(x, h, w) {
  const [H, W] = [x.shape[1], x.shape[2]];
  const ch = Math.max(1, Math.min(H, f32div(W, h, w))), cw = Math.max(1, Math.min(W, f32div(H, w, h)));
  const top = Math.trunc(Math.fround(H - ch) / 2), left = Math.trunc(Math.fround(W - cw) / 2);
  return tf.slice(x, [0, top, left, 0], [-1, ch, cw, -1]);
}

// tf.image.resize with half-pixel centres (tfjs-layers' own Resizing passes align_corners).
function tfResize(x, h, w, method) {
  if (method === 'bilinear') return tf.image.resizeBilinear(x, [h, w], false, true);
  if (method === 'nearest') return tf.image.resizeNearestNeighbor(x, [h, w], false, true);
  throw new Error(`interpolation ${method}: tfjs has no reference for it`);
}

// Keras' Resizing as TensorFlow computes it (Keras 2, and Keras 3's TensorFlow backend).
class Resizing extends KerasLayer {
  constructor(c) {
    super(c, 'Resizing', {
      height: c.height, width: c.width, interpolation: c.interpolation || 'bilinear',
      crop_to_aspect_ratio: !!c.crop_to_aspect_ratio, pad_to_aspect_ratio: !!c.pad_to_aspect_ratio,
      fill_mode: 'constant', fill_value: c.fill_value || 0, antialias: false, data_format: 'channels_last',
    });
  }
  computeOutputShape(s) { return [s[0], this.own.height, this.own.width, s[3]]; }
  call(inputs) {
    return tf.tidy(() => {
      const o = this.own;
      let x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (o.crop_to_aspect_ratio) x = cropToAspect(x, o.height, o.width);
      if (o.pad_to_aspect_ratio) {
        const [H, W] = [x.shape[1], x.shape[2]];
        const ph = Math.max(H, f32div(W, o.height, o.width)), pw = Math.max(W, f32div(H, o.width, o.height));
        const top = Math.trunc(Math.fround(ph - H) / 2), left = Math.trunc(Math.fround(pw - W) / 2);
        x = tf.pad(x, [[0, 0], [top, ph - H - top], [left, pw - W - left], [0, 0]], o.fill_value);
      }
      return tfResize(x, o.height, o.width, o.interpolation);
    });
  }
  static get className() { return 'KerasResizing'; }
}

// Keras 3's CenterCrop: the central window, or smart_resize when the input is smaller.
class CenterCrop extends KerasLayer {
  constructor(c) { super(c, 'CenterCrop', { height: c.height, width: c.width, data_format: 'channels_last' }); }
  computeOutputShape(s) { return [s[0], this.own.height, this.own.width, s[3]]; }
  call(inputs) {
    return tf.tidy(() => {
      const { height: h, width: w } = this.own;
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const dh = x.shape[1] - h, dw = x.shape[2] - w;
      if (dh >= 0 && dw >= 0) return tf.slice(x, [0, Math.trunc(dh / 2), Math.trunc(dw / 2), 0], [-1, h, w, -1]);
      return tfResize(cropToAspect(x, h, w), h, w, 'bilinear');
    });
  }
  static get className() { return 'KerasCenterCrop'; }
}

for (const cls of [GroupedConv2D, Subtract, Normalization, FullReLU, HardSwish, GlobalAveragePoolingKeepdims, Passthrough,
  Resizing, CenterCrop])
  tf.serialization.registerClass(cls);

module.exports = { GroupedConv2D, Subtract, Normalization, FullReLU, HardSwish, GlobalAveragePoolingKeepdims, Passthrough,
  Resizing, CenterCrop };
