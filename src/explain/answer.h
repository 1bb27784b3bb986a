// One image answered the way every front end reports it (`dermal predict/explain --json`,
// POST /api/predict and /api/explain, the Python module): the ranked classes, the lesion check,
// on request a class activation map drawn over the image, and the time each stage took; and the
// one JSON schema for it.
//
//   explain::AnswerRequest req;                   // classes only, top 3
//   req.explain = true;                           // + Grad-CAM of the top class
//   req.overlay = vision::ImageFormat::jpeg;      // + the overlay, encoded
//   explain::Answer a = explain::answer(*clf, image, source, req, timings);
//   nlohmann::json j = explain::answer_json(a, req);   // front ends add their own fields
//                                                      // (file names, base64 pictures, request id)
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>

#include "explain/classifier.h"
#include "vision/colormap.h"
#include "vision/encode.h"

namespace dermal::explain {

struct AnswerRequest {
  int top_k = 3;
  bool force = false;       // show the classes (and the map) even when the lesion check withholds them
  bool explain = false;     // also a class activation map, drawn at the display size
  ExplainRequest cam;       // which map: method, layer, class
  int display_size = 0;     // the map's and pictures' longer side at most (0: the image as decoded)
  bool include_cam = false; // the raw map at the layer's resolution in the JSON ("cam": rows)
  vision::Colormap colormap = vision::Colormap::jet;
  float alpha = 0.4f;                          // the heatmap's opacity in the overlay
  std::optional<vision::ImageFormat> overlay;  // encode the overlay (the image with the heatmap over it)
  std::optional<vision::ImageFormat> heatmap;  // encode the coloured heatmap alone
};

struct Answer {
  vision::SourceSize source;            // the image as sent
  int decoded_width = 0, decoded_height = 0;  // as decoded (reduced while decoding when big)
  Prediction prediction;
  bool diagnosis_withheld = false;      // the lesion check refused the image and force was not asked
  std::optional<Explanation> explanation;  // when asked and not withheld
  int display_width = 0, display_height = 0;  // the size the map and the pictures were drawn at
  std::vector<uint8_t> overlay, heatmap;      // encoded as the request says (empty when not asked)
};

// Runs the request on a decoded image. Stages go into `timings` (display, encode besides the
// classifier's own). When the diagnosis is withheld, no map is kept and no picture is drawn.
Answer answer(Classifier& clf, const vision::Image& image, const vision::SourceSize& source, const AnswerRequest& req,
              Timings& timings);

// {"image", "lesion_check", "diagnosis_withheld", "top", "probabilities", "gradcam", "timings_ms"}:
// the fields README's API section documents. "gradcam" is null without a map; the pictures are
// left to the front end (base64 in the API, file names in the CLI).
nlohmann::json answer_json(const Answer& a, const AnswerRequest& req, const Timings& timings);
// Milliseconds per stage and "total", rounded to the microsecond.
nlohmann::json timings_json(const Timings& timings);
double total_ms(const Timings& timings);

}  // namespace dermal::explain
