// `import dermal`: the classifier inside a Python process (a Django or Flask view), on the one
// path the CLI and the server take (explain::Classifier and explain::answer, whose JSON the API
// documents). python/dermal/__init__.py re-exports this extension (dermal._core) with the
// Python-side conveniences.
//
//   m = dermal.Model("models/skinnet_mnv2_ham_isic224.onnx")
//   r = m.predict(jpeg_bytes)          # or a PIL image, or an HxWx3 uint8 numpy array
//   r["top"][0]["label"], r["probabilities"]["mel"], r["lesion_check"], r["timings_ms"]
//   h = m.explain(image, method="gradcam", target="mel")   # HxW float32 in [0, 1]
//   png = m.overlay(image, h, alpha=0.4, colormap="jet")
//
// The GIL is released while an image is decoded and the model runs; the Classifier serialises
// its own calls, so a Model may be shared by threads. Errors are Python exceptions carrying the
// CLI's messages: InvalidImage (bad or too large input; ValueError), InvalidModel and
// UnsupportedModel (the model file; a kind of InvalidModel), OutOfResources (MemoryError), all
// subclasses of dermal.Error.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/dnnl_util.h"
#include "explain/answer.h"
#include "explain/classifier.h"
#include "serve/memory.h"
#include "vision/colormap.h"
#include "vision/encode.h"
#include "vision/overlay.h"
#include "vision/resize.h"

namespace py = pybind11;

namespace dermal::python {
namespace {

py::object from_json(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// An image as Python hands it over: encoded bytes (bytes, bytearray, memoryview of bytes) are
// decoded like an upload; a PIL image is converted to RGB; a numpy array is H x W (gray), H x W x 3
// (RGB) or H x W x 4 (RGBA, alpha dropped) of uint8.
struct ImageInput {
  std::string encoded;      // bytes to decode, or empty
  vision::Image pixels;     // already decoded
  vision::SourceSize source;
};

vision::Image from_array(const py::array& any) {
  if (any.dtype().kind() != 'u' || any.dtype().itemsize() != 1)
    throw Error(ErrorKind::invalid_input, "an image array must be uint8, got dtype " + std::string(py::str(any.dtype())));
  const py::array_t<uint8_t, py::array::c_style | py::array::forcecast> a(any);
  const int nd = static_cast<int>(a.ndim());
  const int64_t channels = nd == 2 ? 1 : nd == 3 ? a.shape(2) : 0;
  if (channels != 1 && channels != 3 && channels != 4)
    throw Error(ErrorKind::invalid_input, "an image array must be H x W, H x W x 3 or H x W x 4 (uint8)");
  if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) > 65536 || a.shape(1) > 65536)
    throw Error(ErrorKind::invalid_input, "an image array's sides must be 1 to 65536 pixels");
  vision::Image img;
  img.height = static_cast<int>(a.shape(0));
  img.width = static_cast<int>(a.shape(1));
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  const uint8_t* src = a.data();
  for (size_t i = 0, n = static_cast<size_t>(img.width) * img.height; i < n; ++i)
    for (int c = 0; c < 3; ++c) img.rgb[i * 3 + c] = src[i * channels + (channels == 1 ? 0 : c)];
  return img;
}

ImageInput image_input(const py::handle& obj) {
  ImageInput in;
  if (py::isinstance<py::bytes>(obj) || py::isinstance<py::bytearray>(obj) || py::isinstance<py::memoryview>(obj)) {
    const py::buffer_info b = py::reinterpret_borrow<py::buffer>(obj).request();
    if (b.itemsize != 1 || b.ndim != 1)
      throw Error(ErrorKind::invalid_input, "image bytes must be a flat buffer of bytes (an encoded JPEG, PNG or WebP)");
    in.encoded.assign(static_cast<const char*>(b.ptr), static_cast<size_t>(b.size));
    if (in.encoded.empty()) throw Error(ErrorKind::invalid_input, "the image is empty (0 bytes)");
    return in;
  }
  if (py::hasattr(obj, "convert") && py::hasattr(obj, "tobytes") && py::hasattr(obj, "size")) {  // PIL.Image
    const py::object rgb = obj.attr("convert")("RGB");
    const auto size = rgb.attr("size").cast<std::pair<int, int>>();
    const std::string raw = rgb.attr("tobytes")().cast<std::string>();
    in.pixels.width = size.first;
    in.pixels.height = size.second;
    if (raw.size() != static_cast<size_t>(size.first) * size.second * 3)
      throw Error(ErrorKind::invalid_input, "the PIL image's RGB bytes do not match its size");
    in.pixels.rgb.assign(raw.begin(), raw.end());
  } else if (py::isinstance<py::array>(obj)) {
    in.pixels = from_array(py::reinterpret_borrow<py::array>(obj));
  } else {
    throw Error(ErrorKind::invalid_input, "an image must be bytes of a JPEG/PNG/WebP file, a PIL image or an "
                                          "H x W x 3 uint8 numpy array, got " + std::string(py::str(obj.get_type())));
  }
  in.source = {in.pixels.width, in.pixels.height};
  return in;
}

class Model {
 public:
  Model(const std::string& path, const std::string& card, const std::string& lesion_check, int threads, double temperature,
        const std::vector<std::string>& backbone_dirs, int display_size, const std::string& precision,
        const std::optional<std::vector<std::string>>& f32_nodes,
        const std::optional<std::map<std::string, double>>& logit_offsets) {
    if (threads > 0) engine::dnnl_util::set_threads(threads);
    explain::LesionCheckOptions check;
    check.mode = explain::parse_lesion_check_mode(lesion_check);
    check.backbone_dirs = backbone_dirs;
    formats::CardOverrides overrides;
    overrides.temperature = temperature;
    overrides.precision = precision;
    overrides.f32_nodes = f32_nodes;
    if (logit_offsets) overrides.logit_offsets.emplace(logit_offsets->begin(), logit_offsets->end());
    py::gil_scoped_release unlocked;
    clf_ = explain::Classifier::load(path, card, overrides, check);
    clf_->set_working_side(display_size);
    path_ = path;
  }

  // The answer the API and `dermal predict --json` give (with `explain`, `dermal explain --json`).
  py::object predict(const py::handle& image, int top_k, bool force, bool explain, const std::string& method,
                     const std::string& target, const std::string& layer, bool aug_smooth) {
    explain::AnswerRequest req;
    req.top_k = top_k;
    req.force = force;
    req.explain = explain;
    req.include_cam = explain;
    req.cam = cam_request(method, target, layer, aug_smooth);
    ImageInput in = image_input(image);
    nlohmann::json j;
    {
      py::gil_scoped_release unlocked;
      explain::Timings timings;
      const vision::Image img = decoded(in, timings);
      const explain::Answer a = explain::answer(*clf_, img, in.source, req, timings);
      j = explain::answer_json(a, req, timings);
    }
    j["model"] = name();
    return from_json(j);
  }

  // The map over the image as decoded (H x W float32 in [0, 1]); the lesion check does not stop it.
  py::array_t<float> explain(const py::handle& image, const std::string& method, const std::string& target,
                             const std::string& layer, bool aug_smooth) {
    const explain::ExplainRequest req = cam_request(method, target, layer, aug_smooth);
    ImageInput in = image_input(image);
    vision::FloatMap map;
    {
      py::gil_scoped_release unlocked;
      explain::Timings timings;
      const vision::Image img = decoded(in, timings);
      map = clf_->explain(img, req, timings).heatmap;
    }
    py::array_t<float> out({map.height, map.width});
    std::memcpy(out.mutable_data(), map.values.data(), map.values.size() * sizeof(float));
    return out;
  }

  // The image with `heatmap` (H x W in [0, 1], resized to the image when its size differs) drawn
  // over it, encoded as PNG or JPEG bytes.
  py::bytes overlay(const py::handle& image, const py::array_t<float, py::array::c_style | py::array::forcecast>& heatmap,
                    float alpha, const std::string& colormap, const std::string& format) {
    if (heatmap.ndim() != 2) throw Error(ErrorKind::invalid_input, "the heatmap must be a 2-D array (H x W)");
    if (!(alpha >= 0 && alpha <= 1)) throw Error(ErrorKind::invalid_input, "alpha must be between 0 and 1");
    const vision::Colormap cmap = vision::parse_colormap(colormap);
    vision::ImageFormat fmt;
    if (format == "png") fmt = vision::ImageFormat::png;
    else if (format == "jpeg" || format == "jpg") fmt = vision::ImageFormat::jpeg;
    else throw Error(ErrorKind::invalid_input, "format must be png or jpeg, got '" + format + "'");
    ImageInput in = image_input(image);
    vision::FloatMap map{static_cast<int>(heatmap.shape(1)), static_cast<int>(heatmap.shape(0)),
                         std::vector<float>(heatmap.data(), heatmap.data() + heatmap.size())};
    std::vector<uint8_t> bytes;
    {
      py::gil_scoped_release unlocked;
      explain::Timings timings;
      const vision::Image img = decoded(in, timings);
      if (map.width != img.width || map.height != img.height) map = vision::upsample_bilinear(map, img.width, img.height);
      bytes = vision::encode(vision::overlay_heatmap(img, map, cmap, alpha), fmt);
    }
    return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }

  std::string name() const { return std::filesystem::path(path_).stem().string(); }
  const std::string& path() const { return path_; }
  py::list labels() const {
    py::list out;
    for (const auto& l : clf_->card().labels) out.append(py::dict(py::arg("code") = l.code, py::arg("name") = l.name,
                                                                  py::arg("malignant") = l.malignant));
    return out;
  }
  py::dict input() const {
    const auto& c = clf_->card();
    return py::dict(py::arg("name") = c.input_name, py::arg("width") = c.preprocess.width,
                    py::arg("height") = c.preprocess.height, py::arg("channels") = c.preprocess.channels,
                    py::arg("layout") = c.preprocess.nhwc ? "nhwc" : "nchw");
  }
  std::string format() const { return clf_->model().format; }
  double temperature() const { return clf_->card().temperature; }
  std::map<std::string, double> logit_offsets() const {
    const auto& o = clf_->card().logit_offsets;
    return {o.begin(), o.end()};
  }
  // What the convolutions run in ("f32" or "bf16"): bf16 asked for on a CPU without it runs f32.
  std::string precision() const { return clf_->precision().running; }

 private:
  explain::ExplainRequest cam_request(const std::string& method, const std::string& target, const std::string& layer,
                                      bool aug_smooth) const {
    explain::ExplainRequest r;
    r.method = explain::parse_cam_method(method);
    r.target = target;
    r.layer = layer;
    r.aug_smooth = aug_smooth;
    return r;
  }

  vision::Image decoded(ImageInput& in, explain::Timings& timings) const {
    if (in.encoded.empty()) return std::move(in.pixels);
    return clf_->decode(reinterpret_cast<const uint8_t*>(in.encoded.data()), in.encoded.size(), timings, &in.source);
  }

  std::unique_ptr<explain::Classifier> clf_;
  std::string path_;
};

py::dict memory_status() {
  const serve::MemoryStatus m = serve::read_memory_status();
  auto mb = [](uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); };
  py::dict d(py::arg("rss_mb") = mb(m.rss_bytes), py::arg("peak_rss_mb") = mb(m.peak_rss_bytes));
  if (m.cgroup_limit_bytes) d["cgroup_limit_mb"] = mb(m.cgroup_limit_bytes);
  return d;
}

}  // namespace
}  // namespace dermal::python

PYBIND11_MODULE(_core, m) {
  using dermal::python::Model;
  m.doc() = "Dermal's engine: skin-lesion classification with Grad-CAM explanations (not a medical device)";
  m.attr("__version__") = DERMAL_VERSION;
  // pybind11 looks numpy's C API up once, in a function-local static whose initialiser imports
  // numpy: Python code, which hands the GIL to other threads. A second thread reaching that static
  // with the GIL then waits on it forever while the first waits for the GIL (the first requests of
  // a threaded server, all at once). Look it up now, while the import is single-threaded.
  (void)py::array_t<float>(0);

  // dermal.Error and its kinds; InvalidImage is a ValueError and OutOfResources a MemoryError too.
  // The module holds the types; the translator borrows them (no static py::object: its destructor
  // would run after the interpreter is gone).
  auto make = [&m](const char* name, py::handle bases) {
    const std::string qualified = std::string("dermal.") + name;
    py::object type = py::reinterpret_steal<py::object>(PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr));
    m.attr(name) = type;
    return py::handle(type);
  };
  static py::handle error = make("Error", PyExc_Exception);
  static py::handle invalid_image = make("InvalidImage", py::make_tuple(error, py::handle(PyExc_ValueError)));
  static py::handle invalid_model = make("InvalidModel", error);
  static py::handle unsupported = make("UnsupportedModel", invalid_model);
  static py::handle resources = make("OutOfResources", py::make_tuple(error, py::handle(PyExc_MemoryError)));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dermal::Error& e) {
      py::handle type = error;
      switch (e.kind()) {
        case dermal::ErrorKind::invalid_input:
        case dermal::ErrorKind::too_large: type = invalid_image; break;
        case dermal::ErrorKind::invalid_model: type = invalid_model; break;
        case dermal::ErrorKind::unsupported: type = unsupported; break;
        case dermal::ErrorKind::resources: type = resources; break;
        case dermal::ErrorKind::internal: break;
      }
      PyErr_SetString(type.ptr(), e.what());
    }
  });

  py::class_<Model>(m, "Model")
      .def(py::init<const std::string&, const std::string&, const std::string&, int, double, const std::vector<std::string>&,
                    int, const std::string&, const std::optional<std::vector<std::string>>&,
                    const std::optional<std::map<std::string, double>>&>(),
           py::arg("path"), py::arg("card") = "", py::arg("lesion_check") = "on", py::arg("threads") = 0,
           py::arg("temperature") = 0.0, py::arg("backbone_dirs") = std::vector<std::string>{},
           py::arg("display_size") = dermal::explain::Classifier::kDefaultWorkingSide, py::arg("precision") = "",
           py::arg("f32_nodes") = py::none(), py::arg("logit_offsets") = py::none())
      .def("predict", &Model::predict, py::arg("image"), py::arg("top_k") = 3, py::arg("force") = false,
           py::arg("explain") = false, py::arg("method") = "gradcam", py::arg("target") = "top", py::arg("layer") = "auto",
           py::arg("aug_smooth") = false)
      .def("explain", &Model::explain, py::arg("image"), py::arg("method") = "gradcam", py::arg("target") = "top",
           py::arg("layer") = "auto", py::arg("aug_smooth") = false)
      .def("overlay", &Model::overlay, py::arg("image"), py::arg("heatmap"), py::arg("alpha") = 0.4f,
           py::arg("colormap") = "jet", py::arg("format") = "png")
      .def_property_readonly("name", &Model::name)
      .def_property_readonly("path", &Model::path)
      .def_property_readonly("labels", &Model::labels)
      .def_property_readonly("input", &Model::input)
      .def_property_readonly("format", &Model::format)
      .def_property_readonly("temperature", &Model::temperature)
      .def_property_readonly("logit_offsets", &Model::logit_offsets)
      .def_property_readonly("precision", &Model::precision);
  m.def("memory_status", &dermal::python::memory_status, "The process's resident memory in MiB (rss_mb, peak_rss_mb)");
  m.def("set_threads", [](int n) { dermal::engine::dnnl_util::set_threads(n); }, py::arg("threads"),
        "Compute threads for every model in the process");
}
