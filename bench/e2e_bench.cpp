// dermal_bench_e2e --image JPEG [--model M] --threads T --iters N: from JPEG bytes to
// probabilities (predict), and to probabilities plus a Grad-CAM overlay PNG (explain), through
// the same Classifier the CLI and the server use. Prints one JSON object; bench/e2e.py compares
// it with bench/e2e_torch.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/dnnl_util.h"
#include "explain/classifier.h"
#include "vision/colormap.h"
#include "vision/encode.h"
#include "vision/overlay.h"

using namespace dermal;
using Clock = std::chrono::steady_clock;

template <class F>
double median_ms(F&& f, int iters, int warmup) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto start = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  std::string model = "models/skinnet_mnv2_ham_isic224.onnx", image;
  int threads = 1, iters = 30, warmup = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--image") image = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--iters") iters = std::stoi(v);
    else if (k == "--warmup") warmup = std::stoi(v);
  }
  if (image.empty()) {
    std::fprintf(stderr, "usage: dermal_bench_e2e --image JPEG [--model M] [--threads T] [--iters N]\n");
    return 2;
  }
  engine::dnnl_util::set_threads(threads);
  auto clf = explain::Classifier::load(model);
  std::ifstream f(image, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  size_t png_bytes = 0;
  auto predict = [&] {
    explain::Timings t;
    clf->predict(clf->decode(bytes.data(), bytes.size(), t), t);
  };
  auto explain = [&] {
    explain::Timings t;
    vision::Image img = clf->decode(bytes.data(), bytes.size(), t);
    explain::Explanation e = clf->explain(img, explain::ExplainRequest{}, t);
    png_bytes = vision::encode_png(vision::blend(img, vision::colorize(e.heatmap, vision::Colormap::jet), 0.4f)).size();
  };
  auto gradcam = [&] {  // the map alone: what Grad-CAM adds to a prediction
    explain::Timings t;
    clf->explain(clf->decode(bytes.data(), bytes.size(), t), explain::ExplainRequest{}, t);
  };
  const double p = median_ms(predict, iters, warmup), e = median_ms(explain, iters, warmup);
  const double g = median_ms(gradcam, iters, warmup);
  nlohmann::json j{{"impl", "dermal"}, {"threads", threads}, {"iters", iters}, {"predict_ms", p},
                   {"predict_gradcam_ms", g}, {"predict_gradcam_overlay_ms", e}, {"overlay_png_bytes", png_bytes}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
