#include "engine/planner.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "engine/error.h"

namespace dermal::engine {

namespace {

size_t align_up(size_t n) { return (std::max<size_t>(n, 1) + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

// Free blocks of the arena by offset; the arena grows at its end when nothing fits.
class FreeList {
 public:
  size_t allocate(size_t bytes) {
    auto best = blocks_.end();
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
      if (it->second >= bytes && (best == blocks_.end() || it->second < best->second)) best = it;
    if (best != blocks_.end()) {
      size_t offset = best->first, size = best->second;
      blocks_.erase(best);
      if (size > bytes) blocks_[offset + bytes] = size - bytes;
      return offset;
    }
    // Nothing fits: extend a free block that ends at the arena's end, or grow the arena.
    if (!blocks_.empty()) {
      auto last = std::prev(blocks_.end());
      if (last->first + last->second == end_) {
        size_t offset = last->first;
        blocks_.erase(last);
        end_ = offset + bytes;
        return offset;
      }
    }
    size_t offset = end_;
    end_ += bytes;
    return offset;
  }

  void release(size_t offset, size_t bytes) {
    auto [it, inserted] = blocks_.emplace(offset, bytes);
    DERMAL_ASSERT(inserted);
    // Merge with the following and preceding neighbours.
    auto next = std::next(it);
    if (next != blocks_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      blocks_.erase(next);
    }
    if (it != blocks_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        blocks_.erase(it);
      }
    }
  }

  size_t end() const { return end_; }

 private:
  std::map<size_t, size_t> blocks_;  // offset -> size
  size_t end_ = 0;
};

bool live_together(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

// Greedy by size (Pisarchyk and Lee, "Efficient Memory Management for Deep Neural Net Inference",
// 2020; TensorFlow Lite's arena planner): the largest buffers are placed first, each at the
// smallest gap between the buffers already placed that live at the same time. Offsets only.
std::vector<size_t> place_by_size(const std::vector<BufferRequest>& requests) {
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> offsets(requests.size(), 0);
  std::vector<size_t> placed;  // sorted by offset
  for (size_t i : order) {
    const size_t bytes = align_up(requests[i].bytes);
    size_t end = 0, best = 0, best_gap = SIZE_MAX;
    for (size_t j : placed) {
      if (!live_together(requests[i], requests[j])) continue;
      if (offsets[j] >= end + bytes && offsets[j] - end < best_gap) {
        best = end;
        best_gap = offsets[j] - end;
      }
      end = std::max(end, offsets[j] + align_up(requests[j].bytes));
    }
    offsets[i] = best_gap == SIZE_MAX ? end : best;
    placed.insert(std::upper_bound(placed.begin(), placed.end(), offsets[i], [&](size_t off, size_t j) { return off < offsets[j]; }),
                  i);
  }
  return offsets;
}

}  // namespace

ArenaPlan plan_arena(const std::vector<BufferRequest>& requests) {
  ArenaPlan plan;
  plan.offsets.assign(requests.size(), 0);
  int last_step = 0;
  for (const auto& r : requests) {
    DERMAL_ASSERT(r.last_step >= r.first_step);
    last_step = std::max(last_step, r.first_step);
    if (r.last_step != BufferRequest::kPinned) last_step = std::max(last_step, r.last_step);
    plan.total_bytes += align_up(r.bytes);
  }
  std::vector<std::vector<size_t>> born(last_step + 1), dies(last_step + 1);
  for (size_t i = 0; i < requests.size(); ++i) {
    born[requests[i].first_step].push_back(i);
    if (requests[i].last_step != BufferRequest::kPinned) dies[requests[i].last_step].push_back(i);
  }
  FreeList arena;
  size_t live = 0;
  for (int s = 0; s <= last_step; ++s) {
    // Largest buffers first: fewer holes.
    std::sort(born[s].begin(), born[s].end(), [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
    for (size_t i : born[s]) {
      plan.offsets[i] = arena.allocate(align_up(requests[i].bytes));
      live += align_up(requests[i].bytes);
    }
    plan.largest_live_bytes = std::max(plan.largest_live_bytes, live);
    for (size_t i : dies[s]) {
      arena.release(plan.offsets[i], align_up(requests[i].bytes));
      live -= align_up(requests[i].bytes);
    }
  }
  plan.arena_bytes = arena.end();
  // Placing by size usually leaves fewer holes than placing in step order; keep the smaller.
  std::vector<size_t> by_size = place_by_size(requests);
  size_t by_size_bytes = 0;
  for (size_t i = 0; i < requests.size(); ++i) by_size_bytes = std::max(by_size_bytes, by_size[i] + align_up(requests[i].bytes));
  if (by_size_bytes < plan.arena_bytes) {
    plan.offsets = std::move(by_size);
    plan.arena_bytes = by_size_bytes;
  }
  return plan;
}

}  // namespace dermal::engine
