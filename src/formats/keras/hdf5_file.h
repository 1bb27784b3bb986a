// A read-only HDF5 file (HDF5 C library), opened from a path or in place from memory (the
// model.weights.h5 inside a .keras zip), with the few reads the Keras importer needs.
//
//   Hdf5File f = Hdf5File::open_memory(bytes, size, release);
//   if (f.exists("layers/conv2d/vars")) {
//     auto names = f.children("layers/conv2d/vars");            // "0", "1"
//     engine::Tensor k = f.read_floats("layers/conv2d/vars/0");  // f32, the dataset's shape
//   }
//   std::string config = f.string_attr("", "model_config");      // "" is the root group
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dermal::formats::keras {

class Hdf5File {
 public:
  // Called after each dataset is read with the byte range it occupied in the in-memory image,
  // so the caller can drop those pages: the weights are then held once, in the graph.
  using ReleaseRange = std::function<void(uint64_t offset, uint64_t size)>;

  static Hdf5File open_path(const std::string& path);
  // `data` must outlive the file; it is read, never copied or written.
  static Hdf5File open_memory(const void* data, size_t size, ReleaseRange release = nullptr);
  // Whether the bytes start with HDF5's signature.
  static bool has_signature(const void* data, size_t size);

  Hdf5File(Hdf5File&& other) noexcept;
  Hdf5File& operator=(Hdf5File&& other) noexcept;
  Hdf5File(const Hdf5File&) = delete;
  Hdf5File& operator=(const Hdf5File&) = delete;
  ~Hdf5File();

  // Paths are relative to the root, '/'-separated; a name may hold backslashes.
  bool exists(const std::string& path) const;
  bool is_group(const std::string& path) const;
  std::vector<std::string> children(const std::string& group) const;  // in name order
  bool has_attr(const std::string& object, const std::string& name) const;
  // A scalar string attribute (fixed or variable length); nullopt if absent.
  std::optional<std::string> string_attr(const std::string& object, const std::string& name) const;
  // A 1-D list of strings. Keras splits long lists into name0, name1, ... when they exceed
  // HDF5's header limit: those chunks are joined. An empty numeric array reads as no strings.
  std::vector<std::string> string_list_attr(const std::string& object, const std::string& name) const;
  // A numeric dataset converted to float32, with its shape (a scalar has shape {}).
  engine::Tensor read_floats(const std::string& path) const;
  // The same in two steps, for a caller that reads into its own buffer.
  engine::Shape dataset_shape(const std::string& path) const;
  void read_floats_into(const std::string& path, float* dst, int64_t count) const;

  const std::string& description() const { return description_; }

 private:
  Hdf5File(int64_t id, std::string description, ReleaseRange release);
  int64_t id_ = -1;  // hid_t
  std::string description_;
  ReleaseRange release_;
};

}  // namespace dermal::formats::keras
