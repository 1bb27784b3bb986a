// One worker thread runs every inference, in arrival order, with all the cores oneDNN is given;
// at most `max_waiting` jobs wait behind the one running. The HTTP threads only parse, submit
// and wait, so the compute threads never fight each other.
//
//   InferenceQueue q(/*max_waiting=*/16, [] { engine::dnnl_util::set_threads(2); });
//   auto ctx = std::make_shared<Work>(...);            // the job owns what it reads
//   switch (q.run([ctx] { ctx->answer = compute(ctx->input); }, /*timeout_s=*/30)) {
//     case InferenceQueue::Outcome::done: ...         // the job's exception, if any, is rethrown
//     case InferenceQueue::Outcome::queue_full: ...   // 503 + Retry-After
//     case InferenceQueue::Outcome::timed_out: ...    // 504; a queued job is dropped
//   }
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace dermal::serve {

class InferenceQueue {
 public:
  enum class Outcome { done, queue_full, timed_out, stopped };

  // on_worker_start runs on the worker thread before any job (per-thread OpenMP settings).
  explicit InferenceQueue(size_t max_waiting, std::function<void()> on_worker_start = {});
  ~InferenceQueue();

  // Queues `job` unless max_waiting jobs already wait or the queue is stopping.
  bool try_submit(std::function<void()> job);
  // Queues `work` and waits for it at most timeout_s. On timeout a job still waiting is dropped;
  // one already running finishes and its result is discarded, so `work` must own its data.
  Outcome run(std::function<void()> work, double timeout_s);

  size_t waiting() const;
  bool busy() const { return busy_; }
  // Seconds a client should wait before retrying: the queue ahead of it at the recent job time.
  int retry_after_s() const;
  // Runs every queued job, then joins the worker. Later submissions are refused.
  void stop();

 private:
  // `done` runs after the worker counts itself idle again, so that a caller woken by it can
  // queue its next job at once even with max_waiting 0.
  struct Job {
    std::function<void()> work, done;
  };
  bool submit(Job job);
  void work_loop(std::function<void()> on_start);

  const size_t max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::atomic<bool> busy_{false};
  std::atomic<double> mean_job_ms_{50};
  std::thread worker_;
};

}  // namespace dermal::serve
