// The Open Inference Protocol's infer body (serve/oip_request.cpp) on untrusted JSON, with the
// base64 image strings it carries decoded (serve/base64.cpp). A parsed request must hold as many
// elements as its shape says: the worker indexes the data by the shape.
#include "fuzz/fuzz_common.h"
#include "serve/base64.h"
#include "serve/oip_request.h"
#include "serve/router.h"

using namespace dermal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    fuzz::refusals_allowed([&] {
      serve::InferJob job = serve::parse_infer_request(body);
      int64_t count = 1;
      for (int64_t d : job.input.shape) count *= d;
      const size_t got = job.input.datatype == "BYTES" ? job.input.strings.size() : job.input.floats.size();
      if (job.input.shape.empty() || static_cast<int64_t>(got) != count) fuzz::finding("data and shape disagree");
      for (const auto& s : job.input.strings) (void)serve::base64_decode(s);
    });
  } catch (const serve::HttpError& e) {
    if (e.status != 400) fuzz::finding("status " + std::to_string(e.status));
  }
  return 0;
}
