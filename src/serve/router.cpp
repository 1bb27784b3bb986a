#include "serve/router.h"

#include <regex>

#include "serve/context.h"

namespace dermal::serve {

namespace {

const char* reason_for(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "the request body is over the upload limit";
    case 414: return "the URI is too long";
    case 416: return "range not satisfiable";
    case 429: return "too many requests";
    case 500: return "internal error";
    case 503: return "unavailable";
    default: return "error";
  }
}

}  // namespace

std::string to_json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_json(httplib::Response& res, const nlohmann::json& j, int status) {
  res.status = status;
  res.set_content(to_json_text(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

int status_for(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::invalid_input: return 400;
    case ErrorKind::too_large: return 413;
    case ErrorKind::resources: return 503;
    case ErrorKind::invalid_model:
    case ErrorKind::unsupported:
    case ErrorKind::internal: return 500;
  }
  return 500;
}

Router::Handler Router::wrap(const std::string& route, Handler h) {
  return [this, route, h](const httplib::Request& req, httplib::Response& res) {
    current_request().route = route;
    try {
      h(req, res);
    } catch (const HttpError& e) {
      if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
      send_error(res, e.status, e.what());
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::resources) res.set_header("Retry-After", "5");
      send_error(res, status_for(e), e.what());
    } catch (const std::bad_alloc&) {  // the server's memory, not the request's fault: retry later
      res.set_header("Retry-After", "5");
      send_error(res, 503, "out of memory while answering; retry later");
    } catch (const std::exception& e) {
      log_.write(LogLevel::error, "id=" + current_request().id + " unexpected=" + Log::quote(e.what()));
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
    if (res.status >= 500) log_.write(LogLevel::error, "id=" + current_request().id + " error=" + Log::quote(res.body));
  };
}

void Router::get(const std::string& pattern, const std::string& route, Handler h) {
  http_.Get(pattern, wrap(route, std::move(h)));
  entries_.push_back({"GET", pattern});
}

void Router::post(const std::string& pattern, const std::string& route, Handler h) {
  http_.Post(pattern, wrap(route, std::move(h)));
  entries_.push_back({"POST", pattern});
}

std::string Router::allowed_methods(const std::string& path) const {
  std::string out;
  for (const auto& e : entries_) {
    if (!std::regex_match(path, std::regex(e.pattern))) continue;
    const std::string m = e.method == "GET" ? "GET, HEAD" : e.method;
    if (out.find(m) == std::string::npos) out += (out.empty() ? "" : ", ") + m;
  }
  return out;
}

void Router::answer_refusal(const httplib::Request& req, httplib::Response& res, const std::string& too_large) const {
  std::string message = reason_for(res.status);
  if (res.status == 404) {
    if (std::string allowed = allowed_methods(req.path); !allowed.empty()) {
      res.status = 405;
      res.set_header("Allow", allowed);
      message = req.method + " is not allowed on " + req.path.substr(0, 128) + " (allowed: " + allowed + ")";
    } else {
      message = "no route " + req.method + " " + req.path.substr(0, 128) + " (see docs/api.md)";
    }
  } else if (res.status == 413) {
    message = too_large;
  }
  send_error(res, res.status, message);
}

}  // namespace dermal::serve
