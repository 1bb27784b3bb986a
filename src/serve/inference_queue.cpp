#include "serve/inference_queue.h"

#include <chrono>
#include <cmath>
#include <exception>

namespace dermal::serve {

InferenceQueue::InferenceQueue(size_t max_waiting, std::function<void()> on_worker_start)
    : max_waiting_(max_waiting), worker_([this, f = std::move(on_worker_start)] { work_loop(f); }) {}

InferenceQueue::~InferenceQueue() { stop(); }

bool InferenceQueue::try_submit(std::function<void()> job) { return submit({std::move(job), {}}); }

bool InferenceQueue::submit(Job job) {
  std::lock_guard<std::mutex> lock(mutex_);
  // The running job does not count: MAX_QUEUE=0 still runs one request at a time.
  if (stopping_ || jobs_.size() >= max_waiting_ + (busy_ ? 0 : 1)) return false;
  jobs_.push_back(std::move(job));
  wake_.notify_one();
  return true;
}

InferenceQueue::Outcome InferenceQueue::run(std::function<void()> work, double timeout_s) {
  struct State {
    std::mutex m;
    std::condition_variable cv;
    bool finished = false, abandoned = false;
    std::exception_ptr error;
  };
  auto st = std::make_shared<State>();
  Job job;
  job.work = [st, work = std::move(work)] {
    {
      std::lock_guard<std::mutex> lock(st->m);
      if (st->abandoned) return;
    }
    try {
      work();
    } catch (...) {
      st->error = std::current_exception();  // read by the caller only after `finished`
    }
  };
  job.done = [st] {
    std::lock_guard<std::mutex> lock(st->m);
    st->finished = true;
    st->cv.notify_all();
  };
  const bool queued = submit(std::move(job));
  if (!queued) {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_ ? Outcome::stopped : Outcome::queue_full;
  }
  std::unique_lock<std::mutex> lock(st->m);
  if (!st->cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return st->finished; })) {
    st->abandoned = true;
    return Outcome::timed_out;
  }
  if (st->error) std::rethrow_exception(st->error);
  return Outcome::done;
}

size_t InferenceQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

int InferenceQueue::retry_after_s() const {
  const double ahead = static_cast<double>(waiting()) + (busy_ ? 1 : 0);
  return std::max(1, static_cast<int>(std::ceil(ahead * mean_job_ms_ / 1000.0)));
}

void InferenceQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

void InferenceQueue::work_loop(std::function<void()> on_start) {
  if (on_start) on_start();
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything queued has run
      job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
    }
    auto start = std::chrono::steady_clock::now();
    try {
      job.work();
    } catch (...) {
      // run() catches for its callers; a bare try_submit job that throws must not end the worker
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    mean_job_ms_ = 0.8 * mean_job_ms_ + 0.2 * ms;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
    }
    if (job.done) job.done();
  }
}

}  // namespace dermal::serve
