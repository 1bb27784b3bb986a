// A zip archive read in place (a .keras file): the file is memory-mapped, libzip lists and
// inflates entries, and a stored (uncompressed) entry is handed out as a pointer into the
// mapping, so model.weights.h5 is never copied.
//
//   ZipArchive zip = ZipArchive::open("model.keras");
//   std::string config = zip.read("config.json");
//   ZipArchive::Entry w = zip.entry("model.weights.h5");   // in place when stored
//   ... read w.data / w.size ...
//   zip.release(offset_in_entry, bytes, w);                 // drop pages already consumed
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dermal::formats::keras {

class ZipArchive {
 public:
  struct Entry {
    const uint8_t* data = nullptr;
    size_t size = 0;
    bool in_place = false;                // points into the file mapping (stored entry)
    std::shared_ptr<uint8_t[]> inflated;  // owns the bytes of a compressed entry
  };

  static ZipArchive open(const std::string& path);
  // Whether the bytes start like a zip archive (a local file header).
  static bool has_signature(const void* data, size_t size);

  ZipArchive(ZipArchive&& other) noexcept;
  ZipArchive& operator=(ZipArchive&&) = delete;
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;
  ~ZipArchive();

  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  std::string read(const std::string& name) const;  // the whole entry, inflated
  Entry entry(const std::string& name) const;
  // Drops the pages of [offset, offset + size) of an in-place entry from this process's
  // memory (they are re-read from the file if touched again). A no-op for inflated entries.
  void release(const Entry& e, uint64_t offset, uint64_t size) const;

  const std::string& path() const { return path_; }

 private:
  ZipArchive() = default;
  // Where a stored entry's bytes start in the file, from the central directory.
  uint64_t data_offset(const std::string& name) const;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  void* zip_ = nullptr;  // zip_t
};

}  // namespace dermal::formats::keras
