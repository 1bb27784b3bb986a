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

for (const cls of [GroupedConv2D, Subtract, Normalization, FullReLU, HardSwish, GlobalAveragePoolingKeepdims, Passthrough])
  tf.serialization.registerClass(cls);

module.exports = { GroupedConv2D, Subtract, Normalization, FullReLU, HardSwish, GlobalAveragePoolingKeepdims, Passthrough };
