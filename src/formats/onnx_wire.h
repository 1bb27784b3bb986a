// An ONNX file split in two as it is read: the model's structure, a ModelProto whose graph
// initializers carry no raw_data (a few kilobytes for protobuf to parse), and each initializer's
// raw_data, read straight into a buffer of its own (engine::allocate_buffer). Parsed whole,
// protobuf copies every weight byte into a string of its own first: for the 45 MB ResNet-18 that
// copy and its page faults were most of the load.
//
//   SplitModel split = split_onnx_file(fd, size);
//   onnx::ModelProto model;  model.ParseFromString(split.structure);
//   // model.graph().initializer(i)'s raw_data is split.raw[i] (when split.raw[i].present)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dermal::formats {

struct RawData {
  bool present = false;  // the initializer had a raw_data field (the last one wins, as in protobuf)
  std::shared_ptr<void> owner;
  const char* data = nullptr;
  size_t size = 0;
};

struct SplitModel {
  std::string structure;      // a serialized ModelProto
  std::vector<RawData> raw;   // one per graph initializer, in the order protobuf lists them
};

// Throws Error(invalid_model) when the bytes are not a well-formed protobuf message.
SplitModel split_onnx_file(int fd, uint64_t size);
SplitModel split_onnx_bytes(const char* data, uint64_t size);

}  // namespace dermal::formats
