#include "serve/rate_limit.h"

#include <algorithm>

namespace dermal::serve {

RateLimiter::RateLimiter(double per_second, int burst) : per_second_(per_second), burst_(std::max(1, burst)) {}

bool RateLimiter::take(const std::string& client, double& retry_after_s) {
  retry_after_s = 0;
  if (!enabled()) return true;
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  if (buckets_.size() > 4096 || now - last_sweep_ > std::chrono::minutes(1)) forget_full_buckets(now);
  if (buckets_.size() > 65536) buckets_.clear();  // more active addresses than that: start afresh
  auto [it, fresh] = buckets_.try_emplace(client, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst_, b.tokens + std::chrono::duration<double>(now - b.updated).count() * per_second_);
    b.updated = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  retry_after_s = (1 - b.tokens) / per_second_;
  return false;
}

void RateLimiter::forget_full_buckets(Clock::time_point now) {
  // A bucket that would have refilled by now holds nothing a fresh one would not.
  const double refill_s = burst_ / per_second_;
  for (auto it = buckets_.begin(); it != buckets_.end();)
    it = std::chrono::duration<double>(now - it->second.updated).count() >= refill_s ? buckets_.erase(it) : std::next(it);
  last_sweep_ = now;
}

size_t RateLimiter::tracked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buckets_.size();
}

}  // namespace dermal::serve
