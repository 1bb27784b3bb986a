#include "formats/keras/zip_archive.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cstring>

#include "engine/error.h"

namespace dermal::formats::keras {

namespace {

zip_t* as_zip(void* p) { return static_cast<zip_t*>(p); }

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool ZipArchive::has_signature(const void* data, size_t size) {
  return size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0;
}

ZipArchive ZipArchive::open(const std::string& path) {
  ZipArchive z;
  z.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorKind::invalid_model, "cannot open '" + path + "'");
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw Error(ErrorKind::invalid_model, "'" + path + "' is empty");
  }
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw Error(ErrorKind::invalid_model, "cannot map '" + path + "' into memory");
  z.map_ = static_cast<const uint8_t*>(map);
  z.map_size_ = static_cast<size_t>(st.st_size);
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(z.map_, z.map_size_, 0, &err);
  zip_t* zip = src ? zip_open_from_source(src, ZIP_RDONLY, &err) : nullptr;
  if (!zip) {
    if (src) zip_source_free(src);
    std::string why = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw Error(ErrorKind::invalid_model, "'" + path + "' is not a readable zip archive: " + why);
  }
  zip_error_fini(&err);
  z.zip_ = zip;
  return z;
}

ZipArchive::ZipArchive(ZipArchive&& other) noexcept
    : path_(std::move(other.path_)), map_(other.map_), map_size_(other.map_size_), zip_(other.zip_) {
  other.map_ = nullptr;
  other.zip_ = nullptr;
}

ZipArchive::~ZipArchive() {
  if (zip_) zip_discard(as_zip(zip_));
  if (map_) munmap(const_cast<uint8_t*>(map_), map_size_);
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> out;
  const zip_int64_t n = zip_get_num_entries(as_zip(zip_), 0);
  for (zip_int64_t i = 0; i < n; ++i)
    if (const char* name = zip_get_name(as_zip(zip_), static_cast<zip_uint64_t>(i), 0)) out.emplace_back(name);
  return out;
}

bool ZipArchive::has(const std::string& name) const { return zip_name_locate(as_zip(zip_), name.c_str(), 0) >= 0; }

std::string ZipArchive::read(const std::string& name) const {
  Entry e = entry(name);
  return std::string(reinterpret_cast<const char*>(e.data), e.size);
}

ZipArchive::Entry ZipArchive::entry(const std::string& name) const {
  const std::string what = "'" + path_ + "': entry '" + name + "'";
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(as_zip(zip_), name.c_str(), 0, &st) != 0) throw Error(ErrorKind::invalid_model, what + " is missing");
  Entry e;
  e.size = static_cast<size_t>(st.size);
  if (st.comp_method == ZIP_CM_STORE) {
    const uint64_t offset = data_offset(name);
    if (offset + e.size > map_size_) throw Error(ErrorKind::invalid_model, what + " runs past the end of the file");
    e.data = map_ + offset;
    e.in_place = true;
    return e;
  }
  // Re-zipped with compression: inflate into memory (held until the load ends).
  e.inflated = std::shared_ptr<uint8_t[]>(new uint8_t[e.size > 0 ? e.size : 1]);
  zip_file_t* f = zip_fopen(as_zip(zip_), name.c_str(), 0);
  if (!f) throw Error(ErrorKind::invalid_model, what + " does not open (" + zip_strerror(as_zip(zip_)) + ")");
  zip_int64_t got = zip_fread(f, e.inflated.get(), e.size);
  zip_fclose(f);
  if (got < 0 || static_cast<size_t>(got) != e.size) throw Error(ErrorKind::invalid_model, what + " does not inflate");
  e.data = e.inflated.get();
  return e;
}

void ZipArchive::release(const Entry& e, uint64_t offset, uint64_t size) const {
  if (!e.in_place || size == 0 || offset >= e.size) return;
  const long page = sysconf(_SC_PAGESIZE);
  const uintptr_t begin = reinterpret_cast<uintptr_t>(e.data) + offset;
  const uintptr_t end = begin + std::min<uint64_t>(size, e.size - offset);
  // Only whole pages inside the range: neighbouring metadata stays mapped.
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

uint64_t ZipArchive::data_offset(const std::string& name) const {
  const std::string what = "'" + path_ + "': zip directory";
  const uint8_t* p = map_;
  const size_t n = map_size_;
  if (n < 22) throw Error(ErrorKind::invalid_model, what + " is missing");
  // End of central directory record: the last "PK\5\6" within the final 64 KiB + 22 bytes.
  size_t eocd = n - 22;
  const size_t stop = n > 22 + 65535 ? n - 22 - 65535 : 0;
  while (le(p + eocd, 4) != 0x06054b50) {
    if (eocd == stop) throw Error(ErrorKind::invalid_model, what + " is missing");
    --eocd;
  }
  uint64_t count = le(p + eocd + 10, 2), cd = le(p + eocd + 16, 4);
  if ((cd == 0xFFFFFFFFu || count == 0xFFFFu) && eocd >= 20 && le(p + eocd - 20, 4) == 0x07064b50) {
    const uint64_t z64 = le(p + eocd - 20 + 8, 8);  // zip64 end of central directory record
    if (z64 + 56 > n || le(p + z64, 4) != 0x06064b50) throw Error(ErrorKind::invalid_model, what + ": bad zip64 record");
    count = le(p + z64 + 32, 8);
    cd = le(p + z64 + 48, 8);
  }
  uint64_t at = cd;
  for (uint64_t i = 0; i < count; ++i) {
    if (at + 46 > n || le(p + at, 4) != 0x02014b50) throw Error(ErrorKind::invalid_model, what + " is damaged");
    const uint64_t name_len = le(p + at + 28, 2), extra_len = le(p + at + 30, 2), comment_len = le(p + at + 32, 2);
    if (at + 46 + name_len + extra_len > n) throw Error(ErrorKind::invalid_model, what + " is damaged");
    const std::string entry_name(reinterpret_cast<const char*>(p + at + 46), name_len);
    if (entry_name == name) {
      uint64_t local = le(p + at + 42, 4);
      if (local == 0xFFFFFFFFu) {  // the real offset is in the zip64 extra field
        const bool usize64 = le(p + at + 24, 4) == 0xFFFFFFFFu, csize64 = le(p + at + 20, 4) == 0xFFFFFFFFu;
        for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
          const uint64_t tag = le(p + x, 2), len = le(p + x + 2, 2);
          if (tag == 1) local = le(p + x + 4 + 8 * (usize64 + csize64), 8);
          x += 4 + len;
        }
      }
      if (local + 30 > n || le(p + local, 4) != 0x04034b50)
        throw Error(ErrorKind::invalid_model, what + ": the local header of '" + name + "' is damaged");
      return local + 30 + le(p + local + 26, 2) + le(p + local + 28, 2);
    }
    at += 46 + name_len + extra_len + comment_len;
  }
  throw Error(ErrorKind::invalid_model, what + " has no entry '" + name + "'");
}

}  // namespace dermal::formats::keras
