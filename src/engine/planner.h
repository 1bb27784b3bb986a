// Activation memory planning: given when each buffer is written first and read last, place all
// of them in one arena so that buffers whose lifetimes do not overlap share memory.
//
//   std::vector<BufferRequest> r = {{4096, 0, 1}, {4096, 1, 2}, {4096, 2, 3}};
//   ArenaPlan p = plan_arena(r);   // p.arena_bytes == 8192: the first and third share memory
//
// Two placements, the smaller arena kept: greedy best fit over a free list in step order (ggml's
// allocator), and greedy by size (TensorFlow Lite's: largest buffers first, each in the smallest
// gap left by the buffers it lives with). Either way a step's outputs never share memory with its
// inputs, so a kernel never reads and writes the same memory. Pinned buffers (last_step =
// kPinned) are never released.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

namespace dermal::engine {

struct BufferRequest {
  size_t bytes = 0;
  int first_step = 0;  // the step that writes it (graph inputs: 0)
  int last_step = 0;   // the last step that reads it, or kPinned
  static constexpr int kPinned = std::numeric_limits<int>::max();
};

struct ArenaPlan {
  std::vector<size_t> offsets;    // one per request
  size_t arena_bytes = 0;         // peak: the arena's size
  size_t largest_live_bytes = 0;  // the largest total of buffers alive at one step (a lower bound)
  size_t total_bytes = 0;         // the sum of all buffers (what no reuse would cost)
};

constexpr size_t kArenaAlignment = 64;

ArenaPlan plan_arena(const std::vector<BufferRequest>& requests);

}  // namespace dermal::engine
