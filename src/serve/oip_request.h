// The body of an Open Inference Protocol v2 infer request (POST /v2/models/{name}/infer), parsed
// and checked apart from the model: untrusted JSON in, one input tensor out, or HttpError 400
// naming what is wrong. Apart from routes_oip.cpp so that it can be fuzzed (fuzz/oip_infer.cpp).
//
//   InferJob job = parse_infer_request(req.body);   // job.input.{name, datatype, shape, floats | strings}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "explain/classifier.h"

namespace dermal::serve {

// Arrays nested deeper than this are refused before anything walks them (an attacker's
// "[[[[..." would otherwise cost a recursion level per byte).
constexpr int kMaxInferJsonDepth = 32;

// A parsed "inputs" entry.
struct InferInput {
  std::string name, datatype;  // datatype: FP32, or BYTES (base64 image files) for "image"
  std::vector<int64_t> shape;
  std::vector<float> floats;
  std::vector<std::string> strings;
};

struct InferJob {
  std::string id;  // echoed back when the request has one
  InferInput input;
  std::vector<std::string> outputs;  // requested output names, in order
  // results
  std::vector<int64_t> out_shape;
  std::vector<float> logits, probabilities;
  explain::Timings timings;
};

InferJob parse_infer_request(const std::string& body);

}  // namespace dermal::serve
