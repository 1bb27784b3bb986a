// A token bucket per client address for the routes that compute (predict, explain, OIP infer):
// each address may send `burst` requests at once and `per_second` on average; past that the
// answer is 429 with Retry-After. Buckets of addresses that have been quiet long enough to refill
// are forgotten, so that the table cannot grow without bound.
//
//   RateLimiter limiter(2.0, 20);          // per_second 0: no limit
//   double wait_s = 0;
//   if (!limiter.take(req.remote_addr, wait_s)) throw HttpError(429, "...", ceil(wait_s));
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace dermal::serve {

class RateLimiter {
 public:
  RateLimiter(double per_second, int burst);
  bool enabled() const { return per_second_ > 0; }
  // Takes a token for `client`; false (and the seconds until one is there) when none is left.
  bool take(const std::string& client, double& retry_after_s);
  size_t tracked() const;  // addresses with a bucket

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  void forget_full_buckets(Clock::time_point now);

  double per_second_;
  double burst_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
  Clock::time_point last_sweep_ = Clock::now();
};

}  // namespace dermal::serve
