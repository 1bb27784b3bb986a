// The ONNX reader splits a file as it reads it (formats/onnx_wire.h): the structure goes to
// protobuf, each initializer's raw_data to a buffer of its own. Checked against protobuf parsing
// the whole file itself (the independent reference), on the real models and on files built to
// have the unusual orders protobuf allows; and truncated or corrupted files must fail with a
// clear error, never crash (the sanitizer build runs these too).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <unistd.h>

#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/error.h"
#include "formats/onnx_importer.h"
#include "formats/onnx_wire.h"
#include "error_check.h"

namespace dermal::test {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// All three, always: a missing one fails the test that reads it, naming the path.
std::vector<std::string> real_models() {
  return {std::string(DERMAL_SOURCE_DIR) + "/models/skinnet_mnv2_ham_isic224.onnx",
          std::string(DERMAL_SHARED_DIR) + "/models/mobilenet_v2_ham192.onnx",
          std::string(DERMAL_SHARED_DIR) + "/models/resnet18_ham192.onnx"};
}

void expect_same_tensor(const engine::Tensor& got, const engine::Tensor& want, const std::string& name) {
  ASSERT_TRUE(got.defined()) << name;
  EXPECT_EQ(got.dtype(), want.dtype()) << name;
  EXPECT_EQ(got.shape(), want.shape()) << name;
  ASSERT_EQ(got.bytes(), want.bytes()) << name;
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.bytes()), 0) << name;
}

// Every initializer as load_onnx gives it equals protobuf's own parse of the whole file, bit for
// bit, and the split-off structure is the model with its initializers' raw_data cleared.
TEST(OnnxWire, RealModelsMatchProtobufsOwnParse) {
  for (const std::string& path : real_models()) {
    SCOPED_TRACE(path);
    if (!fs::is_regular_file(path)) {
      ADD_FAILURE() << path << " is missing";
      continue;
    }
    const std::string bytes = read_bytes(path);
    onnx::ModelProto whole;
    ASSERT_TRUE(whole.ParseFromString(bytes));
    ASSERT_GT(whole.graph().initializer_size(), 10);
    const engine::Graph g = formats::load_onnx(path);
    for (const auto& init : whole.graph().initializer())
      expect_same_tensor(g.constants.at(init.name()), formats::tensor_from_proto(init, ""), init.name());

    const formats::SplitModel split = formats::split_onnx_bytes(bytes.data(), bytes.size());
    onnx::ModelProto structure;
    ASSERT_TRUE(structure.ParseFromString(split.structure));
    ASSERT_EQ(split.raw.size(), static_cast<size_t>(whole.graph().initializer_size()));
    size_t raw_bytes = 0;
    for (int i = 0; i < whole.graph().initializer_size(); ++i) {
      auto* init = whole.mutable_graph()->mutable_initializer(i);
      const formats::RawData& raw = split.raw[static_cast<size_t>(i)];
      ASSERT_EQ(raw.present, init->has_raw_data());
      ASSERT_EQ(std::string(raw.data, raw.size), init->raw_data());
      raw_bytes += raw.size;
      init->clear_raw_data();
    }
    EXPECT_EQ(structure.SerializeAsString(), whole.SerializeAsString());
    EXPECT_LT(split.structure.size(), bytes.size() - raw_bytes + 64);  // the weights are not in it
  }
}

std::string field(int number, const std::string& payload) {
  std::string out;
  auto varint = [&](uint64_t v) {
    for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    out.push_back(static_cast<char>(v));
  };
  varint(static_cast<uint64_t>(number) << 3 | 2);
  varint(payload.size());
  return out + payload;
}

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

void add_node(onnx::GraphProto& graph, const std::string& op, const std::vector<std::string>& inputs,
              const std::string& output) {
  auto* node = graph.add_node();
  node->set_op_type(op);
  for (const auto& in : inputs) node->add_input(in);
  node->add_output(output);
}

// Y = X + W + V, W and V initializers written in orders protobuf accepts and exporters rarely
// emit: raw_data before the dims, raw_data twice (the last one wins), the graph in two pieces
// (protobuf merges them), and an int32 tensor whose raw bytes need widening.
std::string unusual_model() {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(13);
  onnx::GraphProto first_piece;
  first_piece.set_name("unusual");
  add_node(first_piece, "Add", {"X", "W"}, "XW");
  auto* x = first_piece.add_input();
  x->set_name("X");
  x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);

  onnx::TensorProto w_raw_first, w_rest;
  w_raw_first.set_raw_data(floats_bytes({9, 9, 9}));  // replaced by the later raw_data
  w_rest.add_dims(3);
  w_rest.set_data_type(onnx::TensorProto::FLOAT);
  w_rest.set_name("W");
  onnx::TensorProto w_last_raw;
  w_last_raw.set_raw_data(floats_bytes({1.5f, -2.0f, 0.25f}));
  // raw_data, then dims/type/name, then raw_data again: one TensorProto, fields out of order.
  const std::string w = w_raw_first.SerializeAsString() + w_rest.SerializeAsString() + w_last_raw.SerializeAsString();

  onnx::GraphProto second_piece;
  add_node(second_piece, "Add", {"XW", "V"}, "Y");
  auto* y = second_piece.add_output();
  y->set_name("Y");
  y->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorProto v;
  v.add_dims(3);
  v.set_data_type(onnx::TensorProto::FLOAT);
  v.set_name("V");
  v.add_float_data(10);
  v.add_float_data(20);
  v.add_float_data(30);
  auto* steps = second_piece.add_initializer();  // an int32 initializer nothing reads
  steps->add_dims(2);
  steps->set_data_type(onnx::TensorProto::INT32);
  steps->set_name("steps");
  const int32_t step_values[2] = {-7, 40000};
  steps->set_raw_data(std::string(reinterpret_cast<const char*>(step_values), sizeof step_values));

  const std::string graph1 = first_piece.SerializeAsString() + field(onnx::GraphProto::kInitializerFieldNumber, w);
  const std::string graph2 = second_piece.SerializeAsString() +
                             field(onnx::GraphProto::kInitializerFieldNumber, v.SerializeAsString());
  return field(onnx::ModelProto::kGraphFieldNumber, graph1) + model.SerializeAsString() +
         field(onnx::ModelProto::kGraphFieldNumber, graph2);
}

TEST(OnnxWire, UnusualFieldOrdersLoadAsProtobufReadsThem) {
  const std::string bytes = unusual_model();
  onnx::ModelProto reference;
  ASSERT_TRUE(reference.ParseFromString(bytes));
  ASSERT_EQ(reference.graph().initializer_size(), 3);
  const engine::Graph g = formats::load_onnx_array(bytes.data(), bytes.size(), "");
  ASSERT_EQ(g.constants.size(), 3u);
  for (const auto& init : reference.graph().initializer())
    expect_same_tensor(g.constants.at(init.name()), formats::tensor_from_proto(init, ""), init.name());
  // And the values are the ones written last, widened where needed.
  EXPECT_EQ(g.constants.at("W").to_doubles(), (std::vector<double>{1.5, -2.0, 0.25}));
  EXPECT_EQ(g.constants.at("V").to_doubles(), (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(g.constants.at("steps").to_ints(), (std::vector<int64_t>{-7, 40000}));
  EXPECT_EQ(g.nodes.size(), 2u);
}

// Loads the bytes from a file (the pread path) and from memory; returns the error's kind, or
// nothing when the bytes load.
std::optional<ErrorKind> load_error(const std::string& bytes, const fs::path& file) {
  std::optional<ErrorKind> from_memory, from_file;
  try {
    formats::load_onnx_array(bytes.data(), bytes.size(), "");
  } catch (const Error& e) {
    from_memory = e.kind();
  }
  {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  }
  try {
    formats::load_onnx(file.string());
  } catch (const Error& e) {
    from_file = e.kind();
  }
  EXPECT_EQ(from_memory.has_value(), from_file.has_value());
  return from_file;
}

TEST(OnnxWire, TruncatedFilesFailWithAClearError) {
  const std::string bytes = read_bytes(std::string(DERMAL_SOURCE_DIR) + "/models/skinnet_mnv2_ham_isic224.onnx");
  ASSERT_GT(bytes.size(), 1000000u);
  const fs::path file = fs::temp_directory_path() / "dermal_onnx_wire_truncated.onnx";
  std::vector<size_t> cuts;
  for (size_t n = 1; n < 600; n += 7) cuts.push_back(n);                            // inside the first headers
  for (size_t k = 1; k < 40; ++k) cuts.push_back(bytes.size() * k / 40);            // inside weights
  for (size_t n = 1; n < 400; n += 13) cuts.push_back(bytes.size() - n);            // the nodes at the end
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::optional<ErrorKind> kind = load_error(bytes.substr(0, cut), file);
    ASSERT_TRUE(kind.has_value());
    EXPECT_EQ(*kind, ErrorKind::invalid_model);
  }
  fs::remove(file);
}

TEST(OnnxWire, CorruptedBytesNeverCrash) {
  const std::string good = unusual_model();
  const fs::path file = fs::temp_directory_path() / "dermal_onnx_wire_corrupt.onnx";
  std::mt19937 rng(11);
  int failed = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = good;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (load_error(bytes, file)) ++failed;  // any Error is fine; anything else fails the test
  }
  EXPECT_GT(failed, 50);  // the corruption did reach the reader
  fs::remove(file);
}

TEST(OnnxWire, EmptyAndNonProtobufFilesAreRefused) {
  const fs::path file = fs::temp_directory_path() / "dermal_onnx_wire_other.onnx";
  for (const std::string& bytes : {std::string("\x89PNG\r\n\x1a\n", 8), std::string(100, '\xff'), std::string("{}")}) {
    const std::optional<ErrorKind> kind = load_error(bytes, file);
    ASSERT_TRUE(kind.has_value());
    EXPECT_EQ(*kind, ErrorKind::invalid_model);
  }
  {
    std::ofstream(file, std::ios::trunc);
  }
  expect_error([&] { formats::load_onnx(file.string()); }, {ErrorKind::invalid_model}, {"empty"});
  fs::remove(file);
}

// Tensors whose declared size the file cannot back (found by fuzz/onnx.cpp): a shape whose
// element count overflows, an external data offset that is not a number, data shorter than the
// shape. Each is refused with a clear error before any memory the shape asks for is allocated.
TEST(OnnxWire, TensorsTheFileCannotBackAreRefusedBeforeAllocation) {
  const fs::path dir = fs::temp_directory_path() / ("dermal_onnx_tensors_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "weights.bin", std::ios::binary) << std::string(64, '\0');
  auto model_with = [&](const std::function<void(onnx::TensorProto&)>& edit) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(13);
    onnx::GraphProto* g = m.mutable_graph();
    g->set_name("g");
    onnx::TensorProto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    w->add_dims(4);
    w->add_float_data(1);
    w->add_float_data(2);
    w->add_float_data(3);
    w->add_float_data(4);
    edit(*w);
    onnx::NodeProto* n = g->add_node();
    n->set_op_type("Identity");
    n->add_input("w");
    n->add_output("y");
    onnx::ValueInfoProto* out = g->add_output();
    out->set_name("y");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    return m.SerializeAsString();
  };
  auto load = [&](const std::string& bytes) { formats::load_onnx_array(bytes.data(), bytes.size(), dir.string()); };
  EXPECT_NO_THROW(load(model_with([](onnx::TensorProto&) {})));
  expect_error([&] { load(model_with([](onnx::TensorProto& w) {
                 w.clear_dims();
                 for (int i = 0; i < 3; ++i) w.add_dims(int64_t{1} << 30);
               })); },
               {ErrorKind::invalid_model}, {"tensor 'w'", "is too large"});
  expect_error([&] { load(model_with([](onnx::TensorProto& w) { w.set_dims(0, int64_t{1} << 36); })); }, {ErrorKind::invalid_model},
               {"tensor 'w': has 4 values", "needs 68719476736"});
  auto external = [](const std::string& offset) {
    return [offset](onnx::TensorProto& w) {
      w.clear_float_data();
      w.set_data_location(onnx::TensorProto::EXTERNAL);
      auto* kv = w.add_external_data();
      kv->set_key("location");
      kv->set_value("weights.bin");
      kv = w.add_external_data();
      kv->set_key("offset");
      kv->set_value(offset);
      kv = w.add_external_data();
      kv->set_key("length");
      kv->set_value("16");
    };
  };
  EXPECT_NO_THROW(load(model_with(external("48"))));
  expect_error([&] { load(model_with(external("x12"))); }, {ErrorKind::invalid_model},
               {"external data offset 'x12' is not a number of bytes"});
  expect_error([&] { load(model_with(external("9223372036854775800"))); }, {ErrorKind::invalid_model},
               {"is not a number of bytes"});
  expect_error([&] { load(model_with(external("56"))); }, {ErrorKind::invalid_model}, {"external data range is outside"});
  fs::remove_all(dir);
}

// Big buffers are placed for huge pages; every size is usable end to end (the sanitizer build
// would flag an overrun of the small ones).
TEST(AllocateBuffer, AlignedAndWholeAtEverySize) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4096}, (size_t{2} << 20) - 1, size_t{2} << 20,
                       (size_t{2} << 20) + 1, size_t{9437184}, size_t{9437184} + 12345}) {
    std::shared_ptr<void> p = engine::allocate_buffer(bytes);
    ASSERT_NE(p.get(), nullptr);
    const auto address = reinterpret_cast<uintptr_t>(p.get());
    EXPECT_EQ(address % 64, 0u) << bytes;
    if (bytes >= (size_t{2} << 20)) {
      EXPECT_EQ(address % (size_t{2} << 20), 0u) << bytes;
    }
    std::memset(p.get(), 0xab, bytes);
    if (bytes) {
      EXPECT_EQ(static_cast<unsigned char*>(p.get())[bytes - 1], 0xab);
    }
  }
}

}  // namespace
}  // namespace dermal::test
