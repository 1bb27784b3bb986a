#include "serve/server.h"

#include <sys/socket.h>

#include <cstdio>
#include <cmath>
#include <random>
#include <sstream>
#include <thread>

#include "engine/dnnl_util.h"
#include "serve/context.h"
#include "serve/http_core.h"
#include "serve/memory.h"

namespace dermal::serve {

namespace {

using explain::ms_since;

// The client's X-Request-Id when it is a short token, else a fresh random one.
std::string request_id(const httplib::Request& req) {
  std::string given = req.get_header_value("X-Request-Id");
  bool ok = !given.empty() && given.size() <= 64;
  for (char c : given) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  if (ok) return given;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string fmt_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", ms);
  return buf;
}

}  // namespace

RequestScope& current_request() {
  thread_local RequestScope scope;
  return scope;
}

Context::Context(const ServeConfig& c)
    : config(c), log(c.log_level), model(c), queue(static_cast<size_t>(c.max_queue), [threads = c.threads] {
        // OpenMP thread counts are per calling thread: set them on the worker that computes.
        if (threads > 0) engine::dnnl_util::set_threads(threads);
      }),
      rate_limit(c.rate_limit_per_s, c.rate_limit_burst) {}

void check_rate_limit(Context& ctx, const httplib::Request& req) {
  double wait_s = 0;
  if (ctx.rate_limit.take(req.remote_addr, wait_s)) return;
  std::ostringstream s;
  s << "too many requests from " << req.remote_addr.substr(0, 64) << ": RATE_LIMIT_PER_S=" << ctx.config.rate_limit_per_s
    << " with bursts of RATE_LIMIT_BURST=" << ctx.config.rate_limit_burst << "; retry after the time Retry-After says";
  throw HttpError(429, s.str(), std::max(1, static_cast<int>(std::ceil(wait_s))));
}

void run_on_worker(Context& ctx, std::function<void()> work) {
  const auto submitted = Clock::now();
  auto waited = std::make_shared<std::atomic<double>>(-1);
  auto outcome = ctx.queue.run(
      [work = std::move(work), submitted, waited] {
        *waited = ms_since(submitted);
        work();
      },
      ctx.config.request_timeout_s);
  if (*waited >= 0) current_request().stages["queue"] = *waited;
  switch (outcome) {
    case InferenceQueue::Outcome::done: return;
    case InferenceQueue::Outcome::queue_full:
      throw HttpError(503, "busy: " + std::to_string(ctx.config.max_queue) + " requests are already waiting; retry later",
                      ctx.queue.retry_after_s());
    case InferenceQueue::Outcome::stopped: throw HttpError(503, "the server is shutting down", 5);
    case InferenceQueue::Outcome::timed_out: {
      std::ostringstream s;
      s << "no answer within REQUEST_TIMEOUT_S=" << ctx.config.request_timeout_s << " s";
      throw HttpError(504, s.str());
    }
  }
}

explain::Classifier& loaded_classifier(Context& ctx) {
  const bool was_loaded = ctx.model.loaded();
  try {
    explain::Classifier& clf = ctx.model.get();
    if (!was_loaded)
      ctx.log.write(LogLevel::info, "event=model_loaded model=" + Log::quote(ctx.model.name()) +
                                        " ms=" + fmt_ms(ctx.model.snapshot().load_ms));
    return clf;
  } catch (const Error& e) {
    throw HttpError(500, std::string("the model could not be loaded: ") + e.what());
  }
}

vision::Image decode_upload(explain::Classifier& clf, const std::string& bytes, explain::Timings& timings,
                            vision::SourceSize* source) {
  try {
    return clf.decode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), timings, source);
  } catch (const Error& e) {
    // Unprocessable: not an image we read, or one whose header declares more pixels than
    // MAX_IMAGE_PIXELS (a decompression bomb is refused before any pixel is allocated).
    throw HttpError(422, e.what());
  }
}

static ConnectionLimits connection_limits(const ServeConfig& c) {
  ConnectionLimits l;
  l.max_connections = c.max_connections;
  l.max_connections_per_client = c.max_connections_per_client;
  l.listen_backlog = c.listen_backlog;
  l.header_timeout_s = c.header_timeout_s;
  l.body_timeout_s = c.body_timeout_s;
  l.keep_alive_timeout_s = c.keep_alive_timeout_s;
  l.keep_alive_max = c.keep_alive_max;
  l.max_body_bytes = c.max_upload_bytes();
  l.max_buffered_bytes = static_cast<size_t>(c.max_buffered_mb * 1024 * 1024);
  std::ostringstream s;
  s << "the request body is over MAX_UPLOAD_MB=" << c.max_upload_mb << " MB";
  l.too_large_message = s.str();
  return l;
}

struct Server::Impl {
  explicit Impl(const ServeConfig& c)
      : ctx(c),
        http(connection_limits(c), c.http_threads(), [this](ConnectionEvent e) { ctx.metrics.count_connection(e); }),
        router(http, ctx.log) {}
  Context ctx;
  HttpCore http;
  Router router;
  int port = 0;
  // 0: run() not entered, 1: running, 2: returned. shutdown() before run() must not be lost.
  std::atomic<int> run_state{0};

  void log_request(const httplib::Request& req, const httplib::Response& res);
};

void Server::Impl::log_request(const httplib::Request& req, const httplib::Response& res) {
  RequestScope& scope = current_request();
  const double ms = scope.active ? ms_since(scope.start) : 0;
  ctx.metrics.count_request(scope.route, res.status, ms / 1000.0);
  std::string stages;
  for (const auto& [stage, stage_ms] : scope.stages) {
    ctx.metrics.observe_stage(stage, stage_ms);
    stages += " " + stage + "_ms=" + fmt_ms(stage_ms);
  }
  if (ctx.log.enabled(LogLevel::info)) {
    std::string path = req.path.substr(0, 128);
    size_t bytes_in = req.body.size();  // a multipart upload's parts are parsed out of the body
    for (const auto& [name, part] : req.files) bytes_in += part.content.size();
    ctx.log.write(LogLevel::info, "id=" + (scope.active ? scope.id : "-") + " method=" + Log::quote(req.method) +
                                      " route=" + Log::quote(scope.route) + " path=" + Log::quote(path) +
                                      " status=" + std::to_string(res.status) + " ms=" + fmt_ms(ms) + stages +
                                      " bytes_in=" + std::to_string(bytes_in) +
                                      " bytes_out=" + std::to_string(res.body.size()));
  }
  scope = RequestScope{};
}

Server::Server(const ServeConfig& config) : impl_(std::make_unique<Impl>(config)) {
  Context& ctx = impl_->ctx;
  httplib::Server& http = impl_->http;
  ctx.open_connections = [this] { return impl_->http.open_connections(); };
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second server
  // silently share the port.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // On every answer (the page replaces the CSP with its own): nothing is sniffed, cached, framed,
  // or leaked through Referer; a JSON or image answer may load nothing.
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                            {"Cache-Control", "no-store"},
                            {"Referrer-Policy", "no-referrer"},
                            {"X-Frame-Options", "DENY"},
                            {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"}});

  // Requests reach the handlers only once whole (HttpCore); one that was being received when
  // draining began is answered like any other.
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    RequestScope& scope = current_request();
    scope = RequestScope{};
    scope.active = true;
    scope.start = Clock::now();
    scope.id = request_id(req);
    res.set_header("X-Request-Id", scope.id);
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib's own refusals (no route, body over the limit, malformed request) get a JSON body;
  // a path that exists under another method is a 405, not a 404.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    impl_->router.answer_refusal(req, res, impl_->http.limits().too_large_message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal error: " + what);
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) { impl_->log_request(req, res); });

  add_page_routes(impl_->router, ctx);
  add_api_routes(impl_->router, ctx);
  add_health_routes(impl_->router, ctx);
  add_oip_routes(impl_->router, ctx);

  if (config.preload_model) {
    // Load on the worker, where inference runs (its OpenMP settings apply to the plans).
    std::exception_ptr error;
    ctx.queue.run(
        [&ctx, &error] {
          try {
            ctx.model.get();
          } catch (...) {
            error = std::current_exception();
          }
        },
        1e9);
    if (error) std::rethrow_exception(error);
    ctx.log.write(LogLevel::info, "event=model_loaded model=" + Log::quote(ctx.model.name()) +
                                      " ms=" + fmt_ms(ctx.model.snapshot().load_ms));
  }
}

Server::~Server() {
  shutdown();
  impl_->ctx.queue.stop();
}

int Server::bind() {
  const ServeConfig& c = impl_->ctx.config;
  const int port = impl_->http.bind_and_listen(c.host, c.port);
  if (port <= 0)
    throw Error(ErrorKind::invalid_input,
                "cannot listen on " + c.host + ":" + std::to_string(c.port) + " (HOST/PORT): in use or not an address of this machine");
  impl_->port = port;
  return port;
}

void Server::run() {
  Context& ctx = impl_->ctx;
  impl_->run_state = 1;
  if (ctx.draining) {
    ctx.queue.stop();
    impl_->run_state = 2;
    return;
  }
  ctx.log.write(LogLevel::info, "event=listening url=http://" + ctx.config.host + ":" + std::to_string(impl_->port) +
                                    " model=" + Log::quote(ctx.model.name()) +
                                    " loaded=" + (ctx.model.loaded() ? "true" : "false") +
                                    " compute_threads=" + std::to_string(ctx.config.threads) +
                                    " http_threads=" + std::to_string(ctx.config.http_threads()) +
                                    " max_queue=" + std::to_string(ctx.config.max_queue));
  if (ctx.log.enabled(LogLevel::debug)) {
    std::string settings;
    for (const auto& [name, value] : config_values(ctx.config))
      settings += " " + name + "=" + Log::quote(value) + "(" + setting_source_name(ctx.config.sources[name]) + ")";
    ctx.log.write(LogLevel::debug, "event=settings" + settings);
  }
  impl_->http.listen_after_bind();  // returns after stop(), once the listener is closed
  impl_->http.wait_drained();       // every request that was in flight answered
  ctx.queue.stop();
  impl_->run_state = 2;
  ctx.log.write(LogLevel::info, "event=stopped");
}

void Server::shutdown() {
  Context& ctx = impl_->ctx;
  if (ctx.draining.exchange(true)) return;
  if (impl_->run_state == 0) return;  // run() will see `draining` and return at once
  ctx.log.write(LogLevel::info, "event=draining");
  impl_->http.begin_drain();
  // stop() only acts on a listening server: wait out the moment between run() and listen.
  while (impl_->run_state == 1 && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
}

const ServeConfig& Server::config() const { return impl_->ctx.config; }
ModelHost& Server::model() { return impl_->ctx.model; }
InferenceQueue& Server::queue() { return impl_->ctx.queue; }

}  // namespace dermal::serve
