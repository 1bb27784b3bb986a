#include "formats/keras/hdf5_file.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "engine/error.h"

namespace dermal::formats::keras {

namespace {

// HDF5 prints its error stack to stderr by default; we report errors ourselves.
void quiet_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// Closes one HDF5 handle of any kind when it goes out of scope.
class Handle {
 public:
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
};

const char* object_name(const std::string& path) { return path.empty() ? "." : path.c_str(); }

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

uint64_t little_endian(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// HDF5 1.10 (Debian 12's) never returns from reading a global heap collection ("GCOL", where
// variable-length strings such as model_config live) in which an object's size makes the walk
// over its objects stand still or go backwards (a free-space object of size 0, or a size that
// wraps around), and reads out of bounds when an object runs past its collection (both found by
// fuzz/keras_file.cpp). Each collection in the file is walked here first, as
// H5HG__cache_heap_deserialize walks it, and such a file is refused before HDF5 sees it (the
// trial read in a child process, formats/keras/trial_read.h, catches what this does not).
void check_global_heaps(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 16) return;
  // The superblock says how wide a length is (version 0/1: byte 14, version 2/3: byte 10).
  const int version = data[8];
  const int length_bytes = version <= 1 ? (size > 14 ? data[14] : 8) : data[10];
  if (length_bytes != 2 && length_bytes != 4 && length_bytes != 8) return;  // HDF5 refuses the file itself
  const uint64_t header = 8 + static_cast<uint64_t>(length_bytes);             // "GCOL", version, reserved, size
  const uint64_t object_header = 8 + static_cast<uint64_t>(length_bytes);      // index, refs, reserved, size
  for (const uint8_t* at = data; (at = static_cast<const uint8_t*>(memmem(at, size - (at - data), "GCOL", 4)));
       at += 4) {
    const uint64_t start = static_cast<uint64_t>(at - data);
    if (start + header > size || at[4] != 1) continue;  // not a collection HDF5 would load
    const uint64_t collection = little_endian(at + 8, length_bytes);
    if (collection < header || collection > size - start) continue;  // HDF5 fails to read it: no loop
    const uint64_t end = start + collection;
    uint64_t p = start + header;
    while (p < end) {
      if (end - p < object_header) break;  // the rest is free space
      const uint64_t index = little_endian(data + p, 2);
      const uint64_t object = little_endian(data + p + 8, length_bytes);
      // As HDF5 computes it, in 64-bit arithmetic that may wrap.
      const uint64_t need = index > 0 ? object_header + ((object + 7) & ~uint64_t{7}) : object;
      const uint64_t next = p + need;
      if (next <= p || need > end - p)
        throw Error(ErrorKind::invalid_model, what + " has a corrupt HDF5 global heap at byte " + std::to_string(start) +
                                                  " (object " + std::to_string(index) + " of size " + std::to_string(object) +
                                                  "): it runs past its collection or stands still");
      p = next;
    }
  }
}

// The same for a file on disk, mapped for the walk.
void check_global_heaps(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // H5Fopen reports it
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      try {
        check_global_heaps(static_cast<const uint8_t*>(map), static_cast<size_t>(st.st_size), "'" + path + "'");
      } catch (...) {
        ::munmap(map, static_cast<size_t>(st.st_size));
        ::close(fd);
        throw;
      }
      ::munmap(map, static_cast<size_t>(st.st_size));
    }
  }
  ::close(fd);
}

}  // namespace

Hdf5File::Hdf5File(int64_t id, std::string description, ReleaseRange release)
    : id_(id), description_(std::move(description)), release_(std::move(release)) {}

Hdf5File Hdf5File::open_path(const std::string& path) {
  quiet_hdf5();
  check_global_heaps(path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw Error(ErrorKind::invalid_model, "'" + path + "' is not a readable HDF5 file");
  return Hdf5File(id, "'" + path + "'", nullptr);
}

Hdf5File Hdf5File::open_memory(const void* data, size_t size, ReleaseRange release) {
  quiet_hdf5();
  if (!has_signature(data, size)) throw Error(ErrorKind::invalid_model, "the weights are not an HDF5 file");
  check_global_heaps(static_cast<const uint8_t*>(data), size, "the weights file");
  // Neither copied nor freed by HDF5: the image stays where it is (the zip's mapping).
  hid_t id = H5LTopen_file_image(const_cast<void*>(data), size, H5LT_FILE_IMAGE_DONT_COPY | H5LT_FILE_IMAGE_DONT_RELEASE);
  if (id < 0) throw Error(ErrorKind::invalid_model, "the weights file (HDF5, " + std::to_string(size) + " bytes) does not open");
  return Hdf5File(id, "the weights file", std::move(release));
}

bool Hdf5File::has_signature(const void* data, size_t size) {
  return size >= 8 && std::memcmp(data, "\x89HDF\r\n\x1a\n", 8) == 0;
}

Hdf5File::Hdf5File(Hdf5File&& other) noexcept
    : id_(other.id_), description_(std::move(other.description_)), release_(std::move(other.release_)) {
  other.id_ = -1;
}

Hdf5File& Hdf5File::operator=(Hdf5File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    id_ = other.id_;
    description_ = std::move(other.description_);
    release_ = std::move(other.release_);
    other.id_ = -1;
  }
  return *this;
}

Hdf5File::~Hdf5File() {
  if (id_ >= 0) H5Fclose(id_);
}

bool Hdf5File::exists(const std::string& path) const {
  std::string prefix;
  for (const std::string& part : split_path(path)) {
    prefix += (prefix.empty() ? "" : "/") + part;
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

bool Hdf5File::is_group(const std::string& path) const {
  if (!path.empty() && !exists(path)) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name(id_, object_name(path), &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> Hdf5File::children(const std::string& group) const {
  std::vector<std::string> names;
  if (!is_group(group)) return names;
  H5G_info_t info;
  if (H5Gget_info_by_name(id_, object_name(group), &info, H5P_DEFAULT) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(id_, object_name(group), H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(id_, object_name(group), H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  return names;
}

bool Hdf5File::has_attr(const std::string& object, const std::string& name) const {
  if (!object.empty() && !exists(object)) return false;
  return H5Aexists_by_name(id_, object_name(object), name.c_str(), H5P_DEFAULT) > 0;
}

namespace {

// Every string of a string attribute (scalar or 1-D, fixed or variable length).
std::vector<std::string> read_strings(hid_t attr, const std::string& what) {
  Handle type(H5Aget_type(attr)), space(H5Aget_space(attr));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<std::string> out;
  if (n <= 0) return out;
  if (H5Tget_class(type.get()) != H5T_STRING) throw Error(ErrorKind::invalid_model, what + " is not a string attribute");
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
    if (H5Aread(attr, mem.get(), ptrs.data()) < 0) throw Error(ErrorKind::invalid_model, what + " does not read");
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    const size_t width = H5Tget_size(type.get());
    std::vector<char> buf(width * static_cast<size_t>(n));
    if (H5Aread(attr, type.get(), buf.data()) < 0) throw Error(ErrorKind::invalid_model, what + " does not read");
    for (hssize_t i = 0; i < n; ++i) {
      const char* p = buf.data() + static_cast<size_t>(i) * width;
      out.emplace_back(p, strnlen(p, width));  // fixed-length strings are NUL-padded
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> Hdf5File::string_attr(const std::string& object, const std::string& name) const {
  if (!has_attr(object, name)) return std::nullopt;
  Handle attr(H5Aopen_by_name(id_, object_name(object), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  const std::string what = description_ + ": attribute '" + name + "' of '/" + object + "'";
  if (!attr.ok()) throw Error(ErrorKind::invalid_model, what + " does not open");
  std::vector<std::string> all = read_strings(attr.get(), what);
  if (all.size() != 1) throw Error(ErrorKind::invalid_model, what + " is not a single string");
  return all[0];
}

std::vector<std::string> Hdf5File::string_list_attr(const std::string& object, const std::string& name) const {
  auto read_one = [&](const std::string& attr_name) {
    Handle attr(H5Aopen_by_name(id_, object_name(object), attr_name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
    const std::string what = description_ + ": attribute '" + attr_name + "' of '/" + object + "'";
    if (!attr.ok()) throw Error(ErrorKind::invalid_model, what + " does not open");
    return read_strings(attr.get(), what);
  };
  if (has_attr(object, name)) return read_one(name);
  std::vector<std::string> all;
  for (int chunk = 0; has_attr(object, name + std::to_string(chunk)); ++chunk) {
    std::vector<std::string> part = read_one(name + std::to_string(chunk));
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

namespace {

struct Dataset {
  Handle id;
  engine::Shape shape;
};

Dataset open_dataset(hid_t file, const std::string& path, const std::string& what) {
  Dataset d{Handle(H5Dopen2(file, path.c_str(), H5P_DEFAULT)), {}};
  if (!d.id.ok()) throw Error(ErrorKind::invalid_model, what + " is not a dataset");
  Handle type(H5Dget_type(d.id.get())), space(H5Dget_space(d.id.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) throw Error(ErrorKind::unsupported, what + " is not numeric");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw Error(ErrorKind::invalid_model, what + " has no simple shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  // The values it declares must be what it stores (found by fuzz/keras_file.cpp: a shape of 2^52
  // values in a 30 KB file), before anything is allocated for them: at most 2^31, and no more than
  // deflate could expand the stored bytes to (about 1032:1).
  uint64_t count = 1;
  for (hsize_t n : dims) {
    if (n > 0 && count > (uint64_t{1} << 31) / n)
      throw Error(ErrorKind::invalid_model, what + " declares more than 2^31 values");
    count *= n;
  }
  const uint64_t stored = H5Dget_storage_size(d.id.get());
  const uint64_t bytes = count * H5Tget_size(type.get());
  if (count > 0 && (stored == 0 || bytes > stored * 2048 + 4096))
    throw Error(ErrorKind::invalid_model, what + " declares " + std::to_string(count) + " values but stores " + std::to_string(stored) +
                                              " bytes");
  d.shape.assign(dims.begin(), dims.end());
  return d;
}

}  // namespace

engine::Shape Hdf5File::dataset_shape(const std::string& path) const {
  const std::string what = description_ + ": dataset '/" + path + "'";
  if (!exists(path)) throw Error(ErrorKind::invalid_model, what + " is missing");
  return open_dataset(id_, path, what).shape;
}

void Hdf5File::read_floats_into(const std::string& path, float* dst, int64_t count) const {
  const std::string what = description_ + ": dataset '/" + path + "'";
  if (!exists(path)) throw Error(ErrorKind::invalid_model, what + " is missing");
  Dataset d = open_dataset(id_, path, what);
  if (engine::shape_numel(d.shape) != count) throw Error(ErrorKind::internal, what + ": buffer size mismatch");
  if (count > 0 && H5Dread(d.id.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
    throw Error(ErrorKind::invalid_model, what + " does not read as float32");
  if (release_) {
    const haddr_t offset = H5Dget_offset(d.id.get());  // undefined for chunked storage
    if (offset != HADDR_UNDEF) release_(offset, H5Dget_storage_size(d.id.get()));
  }
}

engine::Tensor Hdf5File::read_floats(const std::string& path) const {
  engine::Tensor t = engine::Tensor::zeros(engine::DType::f32, dataset_shape(path));
  read_floats_into(path, t.data<float>(), t.numel());
  return t;
}

}  // namespace dermal::formats::keras
