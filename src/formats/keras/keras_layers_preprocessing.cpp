// Keras' image preprocessing layers that change the image's size: Resizing and CenterCrop (the
// value preprocessing, Rescaling and Normalization, is with the normalising layers; augmentation
// layers, the identity at inference, with the shape layers). Their semantics are TensorFlow's
// (tf.image.resize, Keras 2's smart_resize and Keras 3's TensorFlow backend): the engine's Resize
// op has a mode for each of tf.image.resize's methods. A crop or pad that depends on the input's
// size needs that size stated in the model; Resizing alone does not.
#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

using engine::Attributes;
using engine::Tensor;

// The input's H and W, which the model must state for this layer.
std::pair<int64_t, int64_t> spatial_size(const LayerCall& c, const char* why) {
  const engine::Shape s = c.b->static_shape(c.in().name);  // N,C,H,W in the graph
  if (s.size() != 4) c.fail(std::string("needs its input's height and width, which the model does not state (") + why + ")");
  return {s[2], s[3]};
}

// x[:, :, top:top+h, left:left+w] (NCHW), named `out`.
std::string crop(const LayerCall& c, const std::string& x, int64_t top, int64_t left, int64_t h, int64_t w, const std::string& out) {
  const std::string starts = c.constant("crop_starts", Tensor::from_ints({2}, {top, left}));
  const std::string ends = c.constant("crop_ends", Tensor::from_ints({2}, {top + h, left + w}));
  const std::string axes = c.constant("crop_axes", Tensor::from_ints({2}, {2, 3}));
  return c.op("Slice", {x, starts, ends, axes}, out);
}

// A Resizing or CenterCrop target side: a whole number of pixels, 1 to 65536 (the image sides
// Dermal decodes), read before any arithmetic so that none can overflow.
int64_t target_side(const LayerCall& c, const char* key) {
  const double v = c.number(key, 0);
  if (!(v >= 1 && v <= 65536) || v != static_cast<double>(static_cast<int64_t>(v)))
    c.fail(std::string(key) + " must be a whole number of pixels from 1 to 65536", ErrorKind::invalid_model);
  return static_cast<int64_t>(v);
}

// Keras' sizes for a change of aspect ratio, in its float32 arithmetic truncated to int: the
// height an H x W image has at the ratio target_h x target_w from its width, the width from its
// height; and the offset that centres `inner` in `outer`.
std::pair<int64_t, int64_t> aspect_sides(int64_t H, int64_t W, int64_t target_h, int64_t target_w) {
  return {static_cast<int64_t>(static_cast<float>(W * target_h) / static_cast<float>(target_w)),
          static_cast<int64_t>(static_cast<float>(H * target_w) / static_cast<float>(target_h))};
}
int64_t centred(int64_t outer, int64_t inner) { return static_cast<int64_t>(static_cast<float>(outer - inner) / 2); }

// The central crop of an H x W image with the aspect ratio of target_h x target_w, as Keras'
// crop_to_aspect_ratio and smart_resize compute it.
std::string crop_to_aspect(const LayerCall& c, const std::string& x, int64_t H, int64_t W, int64_t target_h, int64_t target_w) {
  const auto [h, w] = aspect_sides(H, W, target_h, target_w);
  const int64_t ch = std::max<int64_t>(1, std::min(H, h)), cw = std::max<int64_t>(1, std::min(W, w));
  return ch == H && cw == W ? x : crop(c, x, centred(H, ch), centred(W, cw), ch, cw, c.out + "/crop");
}

// Pads an H x W image with `fill` to the aspect ratio of target_h x target_w, centred (Keras 3's
// pad_to_aspect_ratio).
std::string pad_to_aspect(const LayerCall& c, const std::string& x, int64_t H, int64_t W, int64_t target_h, int64_t target_w) {
  const auto [h, w] = aspect_sides(H, W, target_h, target_w);
  const int64_t ph = std::max(H, h), pw = std::max(W, w);
  if (ph == H && pw == W) return x;
  const int64_t top = centred(ph, H), left = centred(pw, W);
  const std::string pads = c.constant("pads", Tensor::from_ints({8}, {0, 0, top, left, 0, 0, ph - H - top, pw - W - left}));
  const std::string fill = c.scalar("fill_value", static_cast<float>(c.number("fill_value", 0.0)));
  return c.op("Pad", {x, pads, fill}, c.out + "/pad");
}

// tf.image.resize(x, [h, w], method, antialias) as the engine's Resize op.
std::string resize(const LayerCall& c, const std::string& x, int64_t h, int64_t w, const std::string& method, bool antialias,
                   const std::string& out) {
  static const std::map<std::string, std::string> modes{
      {"bilinear", "tf_bilinear"}, {"bicubic", "tf_bicubic"},   {"area", "tf_area"},
      {"lanczos3", "tf_lanczos3"}, {"lanczos5", "tf_lanczos5"}, {"gaussian", "tf_gaussian"},
      {"mitchellcubic", "tf_mitchellcubic"}, {"nearest", "nearest"}};
  auto mode = modes.find(method);
  if (mode == modes.end()) c.fail("interpolation '" + method + "' is not one of Keras' (bilinear, nearest, bicubic, area, lanczos3, lanczos5, gaussian, mitchellcubic)", ErrorKind::invalid_model);
  if (h < 1 || w < 1 || h > 65536 || w > 65536) c.fail("size " + std::to_string(h) + "x" + std::to_string(w) + " is not between 1 and 65536", ErrorKind::invalid_model);
  Attributes a;
  a.set("mode", mode->second);
  a.set("axes", std::vector<int64_t>{2, 3});
  if (mode->second == "nearest") {  // resize_nearest_neighbor with half-pixel centres
    a.set("coordinate_transformation_mode", std::string("tf_half_pixel_for_nn"));
    a.set("nearest_mode", std::string("floor"));
  }
  if (antialias) a.set("antialias", int64_t{1});
  const std::string sizes = c.constant("sizes", Tensor::from_ints({2}, {h, w}));
  return c.op("Resize", {x, "", "", sizes}, out, a, 18);
}

KTensor resizing(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const int64_t h = target_side(c, "height"), w = target_side(c, "width");
  const std::string method = c.str("interpolation", "bilinear");
  const bool crop_aspect = c.flag("crop_to_aspect_ratio", false), pad_aspect = c.flag("pad_to_aspect_ratio", false);
  if (crop_aspect && pad_aspect) c.fail("crop_to_aspect_ratio and pad_to_aspect_ratio are both set", ErrorKind::invalid_model);
  std::string x = c.in().name;
  if (crop_aspect || pad_aspect) {
    const auto [H, W] = spatial_size(c, crop_aspect ? "crop_to_aspect_ratio" : "pad_to_aspect_ratio");
    x = crop_aspect ? crop_to_aspect(c, x, H, W, h, w) : pad_to_aspect(c, x, H, W, h, w);
  }
  return KTensor{resize(c, x, h, w, method, c.flag("antialias", false), c.out), 4};
}

// Keras' CenterCrop: the central height x width window (offsets (H - height) / 2, rounded down);
// an input smaller than that on either side is smart-resized up to it (cropped to the aspect
// ratio, then bilinear).
KTensor center_crop(LayerCall& c) {
  c.need_rank(4);
  c.need_channels_last();
  const int64_t h = target_side(c, "height"), w = target_side(c, "width");
  if (h < 1 || w < 1) c.fail("height and width must be positive", ErrorKind::invalid_model);
  const auto [H, W] = spatial_size(c, "the crop's offsets");
  if (H >= h && W >= w) {
    if (H == h && W == w) return c.in();
    return KTensor{crop(c, c.in().name, (H - h) / 2, (W - w) / 2, h, w, c.out), 4};
  }
  return KTensor{resize(c, crop_to_aspect(c, c.in().name, H, W, h, w), h, w, "bilinear", false, c.out), 4};
}

const LayerRegistration registration{
    {"Resizing", resizing},
    {"CenterCrop", center_crop},
};

}  // namespace
}  // namespace dermal::formats::keras
