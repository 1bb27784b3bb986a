// What a request to /api/predict or /api/explain asks (the query string, on top of the
// configuration's defaults) and the image it uploads (multipart field `image`, or the raw body):
// untrusted input checked apart from the routes, so that it can be fuzzed (fuzz/http_request.cpp).
//
//   ApiParams p = parse_params(req, config);   // HttpError 400 naming the parameter
//   std::string bytes = upload_bytes(req);     // HttpError 400 saying how to send the file
#pragma once

#include <httplib.h>

#include <string>

#include "explain/answer.h"
#include "serve/config.h"
#include "vision/image.h"

namespace dermal::serve {

// What the query string asks, on top of ServeConfig's defaults.
struct ApiParams {
  explain::AnswerRequest answer;  // top_k, force, the map (method, layer, class) and its pictures
  bool overlay = true;            // the blended overlay (the page, which blends itself, says false)
  bool heatmap = false;           // the coloured heatmap alone (the page blends it itself)
  vision::ImageFormat overlay_format = vision::ImageFormat::jpeg;  // a photo: a tenth of the PNG's bytes
  int display_size = 0;           // the overlay's longer side at most (0: DISPLAY_SIZE; never above it)
};

ApiParams parse_params(const httplib::Request& req, const ServeConfig& config);
std::string upload_bytes(const httplib::Request& req);

}  // namespace dermal::serve
