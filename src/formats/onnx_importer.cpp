#include "formats/onnx_importer.h"

#include <onnx/onnx_pb.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string_view>

#include "formats/onnx_wire.h"

namespace dermal::formats {

using engine::Attributes;
using engine::DType;
using engine::Graph;
using engine::Shape;
using engine::Tensor;

namespace {

// Opsets 1-6 load too: ops whose latest version dates from them (Elu, GlobalAveragePool...) are
// exported with those numbers, and each op rejects the legacy attributes it does not implement.
constexpr int kMinOpset = 1;
constexpr int kMaxOpset = 18;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(ErrorKind::invalid_model, "cannot open '" + path + "'");
  const std::streamsize size = f.tellg();
  std::string bytes(static_cast<size_t>(std::max<std::streamsize>(size, 0)), '\0');
  f.seekg(0);
  // One read into a buffer of the right size: a stringstream copy costs more than the parse.
  if (size > 0 && !f.read(bytes.data(), size)) throw Error(ErrorKind::invalid_model, "cannot read '" + path + "'");
  return bytes;
}

const char* elem_type_name(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT16: return "float16";
    case onnx::TensorProto::BFLOAT16: return "bfloat16";
    case onnx::TensorProto::STRING: return "string";
    case onnx::TensorProto::COMPLEX64: return "complex64";
    case onnx::TensorProto::COMPLEX128: return "complex128";
    default: return "this";
  }
}

// Which engine dtype holds an ONNX element type; throws for those it cannot.
DType dtype_for(int elem_type, const std::string& what) {
  switch (elem_type) {
    case onnx::TensorProto::FLOAT: return DType::f32;
    case onnx::TensorProto::DOUBLE: return DType::f64;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
    case onnx::TensorProto::BOOL: return DType::i64;
    default:
      throw Error(ErrorKind::unsupported, what + ": " + elem_type_name(elem_type) + " element type (" +
                                              std::to_string(elem_type) + ") is not supported");
  }
}

// Bytes of one element as stored in raw_data.
size_t raw_size(int elem_type) {
  switch (elem_type) {
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL: return 1;
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16: return 2;
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32: return 4;
    default: return 8;
  }
}

template <class Raw>
void widen(const char* src, int64_t n, int64_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    Raw v;
    std::memcpy(&v, src + i * sizeof(Raw), sizeof(Raw));
    dst[i] = static_cast<int64_t>(v);
  }
}

// Raw bytes must be exactly the shape's elements, each as stored (raw_size).
void check_raw_size(size_t bytes, int elem_type, const Shape& shape, const std::string& what) {
  const size_t need = static_cast<size_t>(engine::shape_numel(shape)) * raw_size(elem_type);
  if (bytes != need)
    throw Error(ErrorKind::invalid_model, what + ": holds " + std::to_string(bytes) + " bytes, shape " +
                                              engine::shape_str(shape) + " needs " + std::to_string(need));
}

void fill_from_raw(std::string_view raw, int elem_type, Tensor& t, const std::string& what) {
  const int64_t n = t.numel();
  check_raw_size(raw.size(), elem_type, t.shape(), what);
  const char* p = raw.data();
  switch (elem_type) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64: std::memcpy(t.raw(), p, raw.size()); return;
    case onnx::TensorProto::UINT64: std::memcpy(t.raw(), p, raw.size()); return;
    case onnx::TensorProto::INT8: widen<int8_t>(p, n, t.data<int64_t>()); return;
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL: widen<uint8_t>(p, n, t.data<int64_t>()); return;
    case onnx::TensorProto::INT16: widen<int16_t>(p, n, t.data<int64_t>()); return;
    case onnx::TensorProto::UINT16: widen<uint16_t>(p, n, t.data<int64_t>()); return;
    case onnx::TensorProto::INT32: widen<int32_t>(p, n, t.data<int64_t>()); return;
    case onnx::TensorProto::UINT32: widen<uint32_t>(p, n, t.data<int64_t>()); return;
    default: break;
  }
  throw Error(ErrorKind::unsupported, what + ": element type " + std::to_string(elem_type));
}

// An external data offset or length: a whole number of bytes, written in decimal.
int64_t byte_count(const std::string& value, const std::string& what, const std::string& key) {
  if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw Error(ErrorKind::invalid_model, what + ": external data " + key + " '" + value.substr(0, 32) + "' is not a number of bytes");
  return std::stoll(value);
}

std::string external_bytes(const onnx::TensorProto& proto, const std::string& base_dir, const std::string& what) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = byte_count(kv.value(), what, kv.key());
    else if (kv.key() == "length") length = byte_count(kv.value(), what, kv.key());
  }
  // The location must stay inside the model's folder: a model file must not read /etc/passwd.
  std::filesystem::path rel(location);
  if (location.empty() || rel.is_absolute() || location.find("..") != std::string::npos)
    throw Error(ErrorKind::invalid_model, what + ": external data location '" + location + "' is not a file beside the model");
  std::string path = (std::filesystem::path(base_dir) / rel).string();
  std::error_code ec;
  std::ifstream f(path, std::ios::binary);
  if (!f || !std::filesystem::is_regular_file(path, ec))
    throw Error(ErrorKind::invalid_model, what + ": cannot open external data file '" + path + "'");
  f.seekg(0, std::ios::end);
  const int64_t size = f.tellg();
  if (length < 0) length = size - offset;
  if (offset > size || length < 0 || length > size - offset)
    throw Error(ErrorKind::invalid_model, what + ": external data range is outside '" + path + "'");
  std::string bytes(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(bytes.data(), length);
  return bytes;
}

// A tensor's dimensions; their product is bounded (2^40 elements) so that no size computed from
// them overflows, before the data's own size is checked against it.
Shape dims_of(const onnx::TensorProto& proto, const std::string& what) {
  Shape shape(proto.dims().begin(), proto.dims().end());
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(ErrorKind::invalid_model, what + ": negative dimension");
    if (d > 0 && n > (int64_t{1} << 40) / d)
      throw Error(ErrorKind::invalid_model, what + ": shape " + engine::shape_str(shape) + " is too large");
    n *= d;
  }
  return shape;
}

}  // namespace

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir) {
  const std::string what = "tensor '" + proto.name() + "'";
  const Shape shape = dims_of(proto, what);
  const int elem = proto.data_type();
  const DType dtype = dtype_for(elem, what);
  const int64_t n = engine::shape_numel(shape);
  // The data's size is checked against the shape before the shape's memory is allocated.
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.has_raw_data()) {
    const std::string external = proto.data_location() == onnx::TensorProto::EXTERNAL ? external_bytes(proto, base_dir, what) : "";
    const std::string& raw = proto.data_location() == onnx::TensorProto::EXTERNAL ? external : proto.raw_data();
    check_raw_size(raw.size(), elem, shape, what);
    Tensor t = Tensor::uninitialized(dtype, shape);
    fill_from_raw(raw, elem, t, what);
    return t;
  }
  // The typed fields: as many values as the shape needs, checked before the allocation.
  auto from_values = [&](const auto& values, auto element) {
    if (values.size() != n)
      throw Error(ErrorKind::invalid_model, what + ": has " + std::to_string(values.size()) + " values, shape " +
                                                engine::shape_str(shape) + " needs " + std::to_string(n));
    Tensor t = Tensor::uninitialized(dtype, shape);
    std::copy(values.begin(), values.end(), t.data<decltype(element)>());
    return t;
  };
  if (elem == onnx::TensorProto::FLOAT) return from_values(proto.float_data(), float{});
  if (elem == onnx::TensorProto::DOUBLE) return from_values(proto.double_data(), double{});
  if (elem == onnx::TensorProto::INT64) return from_values(proto.int64_data(), int64_t{});
  if (elem == onnx::TensorProto::UINT64 || elem == onnx::TensorProto::UINT32) return from_values(proto.uint64_data(), int64_t{});
  return from_values(proto.int32_data(), int64_t{});  // int32_data holds every narrower integer type and bool
}

namespace {

// An initializer whose raw_data the reader put in a buffer of its own (formats/onnx_wire.h): the
// tensor takes that buffer over when its bytes are already the tensor's (f32, f64, i64 and u64 are
// stored as is), so the weights are never copied; anything else is converted from it.
Tensor initializer_tensor(const onnx::TensorProto& proto, const RawData& raw, const std::string& base_dir) {
  if (!raw.present || proto.data_location() == onnx::TensorProto::EXTERNAL) return tensor_from_proto(proto, base_dir);
  const std::string what = "tensor '" + proto.name() + "'";
  Shape shape = dims_of(proto, what);
  const int elem = proto.data_type();
  const DType dtype = dtype_for(elem, what);
  const bool same_bytes = elem == onnx::TensorProto::FLOAT || elem == onnx::TensorProto::DOUBLE ||
                          elem == onnx::TensorProto::INT64 || elem == onnx::TensorProto::UINT64;
  check_raw_size(raw.size, elem, shape, what);  // before any allocation the dims ask for
  if (same_bytes && raw.size > 0) return Tensor::adopt(dtype, std::move(shape), const_cast<char*>(raw.data), raw.owner);
  Tensor t = Tensor::uninitialized(dtype, std::move(shape));
  fill_from_raw(std::string_view(raw.data, raw.size), elem, t, what);
  return t;
}

}  // namespace

Tensor load_tensor_pb(const std::string& path) {
  onnx::TensorProto proto;
  if (!proto.ParseFromString(read_file(path))) throw Error(ErrorKind::invalid_model, "'" + path + "' is not a TensorProto");
  return tensor_from_proto(proto, std::filesystem::path(path).parent_path().string());
}

namespace {

Attributes read_attributes(const onnx::NodeProto& node, const std::string& base_dir, const std::string& where) {
  Attributes attrs;
  for (const auto& a : node.attribute()) {
    switch (a.type()) {
      case onnx::AttributeProto::INT: attrs.set(a.name(), static_cast<int64_t>(a.i())); break;
      case onnx::AttributeProto::FLOAT: attrs.set(a.name(), static_cast<double>(a.f())); break;
      case onnx::AttributeProto::STRING: attrs.set(a.name(), a.s()); break;
      case onnx::AttributeProto::INTS: attrs.set(a.name(), std::vector<int64_t>(a.ints().begin(), a.ints().end())); break;
      case onnx::AttributeProto::FLOATS: attrs.set(a.name(), std::vector<double>(a.floats().begin(), a.floats().end())); break;
      case onnx::AttributeProto::TENSOR: attrs.set(a.name(), tensor_from_proto(a.t(), base_dir)); break;
      default:
        // Graphs, sparse tensors, string lists: no op we support takes them.
        throw Error(ErrorKind::unsupported, where + ": attribute '" + a.name() + "' has an unsupported type (" +
                                                std::to_string(a.type()) + ")");
    }
  }
  return attrs;
}

engine::ValueInfo value_info(const onnx::ValueInfoProto& v) {
  engine::ValueInfo info;
  info.name = v.name();
  if (v.type().has_tensor_type()) {
    const auto& tt = v.type().tensor_type();
    info.dtype = dtype_for(tt.elem_type(), "graph value '" + v.name() + "'");
    if (tt.has_shape())
      for (const auto& d : tt.shape().dim()) info.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  } else {
    throw Error(ErrorKind::unsupported, "graph value '" + v.name() + "' is not a tensor (sequences and maps are not supported)");
  }
  return info;
}

}  // namespace

namespace {

// Builds the graph from a split model (formats/onnx_wire.h): the structure parsed by protobuf, the
// initializers' raw bytes taken over from their own buffers.
Graph graph_from_split(const SplitModel& split, const std::string& base_dir, OnnxModelInfo* info) {
  onnx::ModelProto model;
  if (!model.ParseFromString(split.structure)) throw Error(ErrorKind::invalid_model, "not an ONNX model (the protobuf does not parse)");
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw Error(ErrorKind::invalid_model, "not an ONNX model (it has no graph)");
  int opset = 0;
  for (const auto& imp : model.opset_import()) {
    if (imp.domain().empty() || imp.domain() == "ai.onnx") opset = static_cast<int>(imp.version());
  }
  if (opset == 0 && model.opset_import_size() == 0) opset = 1;  // IR v2 files without opset_import
  if (opset < kMinOpset || opset > kMaxOpset)
    throw Error(ErrorKind::unsupported, "ONNX opset " + std::to_string(opset) + " is not supported (supported: " +
                                            std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
  if (info) {
    info->ir_version = model.ir_version();
    info->opset = opset;
    info->producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
    for (const auto& kv : model.metadata_props()) info->metadata[kv.key()] = kv.value();
  }
  const onnx::GraphProto& gp = model.graph();
  Graph g;
  g.name = gp.name();
  // The structure's initializers are the ones split.raw lists, in the same order.
  if (static_cast<size_t>(gp.initializer_size()) != split.raw.size())
    throw Error(ErrorKind::invalid_model, "not an ONNX model (the protobuf does not parse)");
  for (int i = 0; i < gp.initializer_size(); ++i)
    g.constants[gp.initializer(i).name()] = initializer_tensor(gp.initializer(i), split.raw[static_cast<size_t>(i)], base_dir);
  if (gp.sparse_initializer_size() > 0) throw Error(ErrorKind::unsupported, "sparse initializers are not supported");
  for (const auto& in : gp.input())
    if (!g.constants.count(in.name())) g.inputs.push_back(value_info(in));
  for (const auto& out : gp.output()) g.outputs.push_back(value_info(out));
  int index = 0;
  for (const auto& node : gp.node()) {
    std::string name = node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
    ++index;
    std::string where = "op '" + node.op_type() + "' (node '" + name + "', opset " + std::to_string(opset) + ")";
    if (!node.domain().empty() && node.domain() != "ai.onnx")
      throw Error(ErrorKind::unsupported, where + ": operator domain '" + node.domain() + "' is not supported");
    Attributes attrs = read_attributes(node, base_dir, where);
    g.add_node(node.op_type(), name, {node.input().begin(), node.input().end()},
               {node.output().begin(), node.output().end()}, attrs, opset);
  }
  g.finalize();
  return g;
}

}  // namespace

Graph load_onnx_array(const char* data, size_t size, const std::string& base_dir, OnnxModelInfo* info) {
  if (size == 0) throw Error(ErrorKind::invalid_model, "not an ONNX model (the file is empty)");
  return graph_from_split(split_onnx_bytes(data, size), base_dir, info);
}

Graph load_onnx(const std::string& path, OnnxModelInfo* info) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorKind::invalid_model, "cannot open '" + path + "'");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    ::close(fd);
    throw Error(ErrorKind::invalid_model, "'" + path + "' is not a regular, non-empty file");
  }
  SplitModel split;
  try {
    split = split_onnx_file(fd, static_cast<uint64_t>(st.st_size));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return graph_from_split(split, std::filesystem::path(path).parent_path().string(), info);
}

}  // namespace dermal::formats
