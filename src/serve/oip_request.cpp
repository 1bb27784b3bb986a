#include "serve/oip_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "serve/router.h"

namespace dermal::serve {

namespace {

[[noreturn]] void bad_request(const std::string& message) { throw HttpError(400, message); }

void flatten(const nlohmann::json& data, InferInput& in) {
  if (data.is_array()) {
    for (const auto& d : data) flatten(d, in);
  } else if (in.datatype == "BYTES") {
    if (!data.is_string()) bad_request("input '" + in.name + "': BYTES data must be strings (base64)");
    in.strings.push_back(data.get<std::string>());
  } else {
    if (!data.is_number()) bad_request("input '" + in.name + "': FP32 data must be numbers");
    // A number beyond float's range would become infinity, and the model's answer NaN.
    const double v = data.get<double>();
    if (!(std::fabs(v) <= std::numeric_limits<float>::max()))
      bad_request("input '" + in.name + "': FP32 data must be within float's range");
    in.floats.push_back(static_cast<float>(v));
  }
}

}  // namespace

InferJob parse_infer_request(const std::string& body) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body, [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
      if ((event == nlohmann::json::parse_event_t::array_start || event == nlohmann::json::parse_event_t::object_start) &&
          depth > kMaxInferJsonDepth)
        bad_request("the JSON is nested more than " + std::to_string(kMaxInferJsonDepth) + " levels deep");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number beyond a double's range
    bad_request(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].empty())
    bad_request("the request needs \"inputs\": a non-empty array of tensors");
  if (j["inputs"].size() != 1) bad_request("one input tensor is expected (the model's image input, or \"image\" BYTES)");
  const auto& t = j["inputs"][0];
  InferJob job;
  if (j.contains("id") && j["id"].is_string()) job.id = j["id"].get<std::string>().substr(0, 256);
  InferInput& in = job.input;
  if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("datatype") ||
      !t["datatype"].is_string() || !t.contains("shape") || !t["shape"].is_array() || !t.contains("data"))
    bad_request("each input needs \"name\", \"shape\", \"datatype\" and \"data\"");
  in.name = t["name"].get<std::string>().substr(0, 128);
  in.datatype = t["datatype"].get<std::string>().substr(0, 16);
  if (in.datatype != "FP32" && in.datatype != "BYTES")
    bad_request("input '" + in.name + "': datatype " + in.datatype + " is not supported (FP32, or BYTES for \"image\")");
  int64_t count = 1;
  for (const auto& d : t["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (1 << 24))
      bad_request("input '" + in.name + "': shape must hold non-negative whole numbers");
    in.shape.push_back(d.get<int64_t>());
    count *= in.shape.back();
    if (count > (int64_t{1} << 28)) bad_request("input '" + in.name + "': the shape is too large");
  }
  flatten(t["data"], in);
  const int64_t got = in.datatype == "BYTES" ? static_cast<int64_t>(in.strings.size()) : static_cast<int64_t>(in.floats.size());
  if (in.shape.empty() || got != count)
    bad_request("input '" + in.name + "': shape holds " + std::to_string(count) + " elements but data has " + std::to_string(got));
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) bad_request("\"outputs\" must be an array");
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) bad_request("each output needs a \"name\"");
      std::string name = o["name"].get<std::string>();
      if (name != "logits" && name != "probabilities")
        bad_request("unknown output '" + name.substr(0, 64) + "' (logits, probabilities)");
      job.outputs.push_back(name);
    }
  }
  if (job.outputs.empty()) job.outputs = {"logits", "probabilities"};
  return job;
}

}  // namespace dermal::serve
