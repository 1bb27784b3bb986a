#include "formats/onnx_wire.h"

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/error.h"
#include "engine/tensor.h"

namespace dermal::formats {

namespace {

// Protobuf's wire format (protobuf.dev/programming-guides/encoding): each field is a varint tag,
// field number << 3 | wire type, then a varint, 8 or 4 bytes, or a varint length and that many bytes.
enum WireType : uint64_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

Error malformed() { return Error(ErrorKind::invalid_model, "not an ONNX model (the protobuf does not parse)"); }

// Reads a file (pread, through a 64 KiB buffer for the small fields) or bytes in memory, forward.
class WireReader {
 public:
  WireReader(int fd, uint64_t size) : fd_(fd), size_(size), buffer_(size_t{64} << 10) {}
  WireReader(const char* data, uint64_t size) : memory_(data), size_(size) {}

  uint64_t pos() const { return pos_; }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto byte = static_cast<uint8_t>(next_byte());
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    throw malformed();
  }

  // Checks that n more bytes fit before `end` (the end of the enclosing message) and returns n.
  uint64_t fits(uint64_t n, uint64_t end) const {
    if (pos_ > end || n > end - pos_) throw malformed();
    return n;
  }
  uint64_t length(uint64_t end) { return fits(varint(), end); }

  void append_to(std::string& out, uint64_t n) {
    const size_t at = out.size();
    out.resize(at + n);
    read_into(out.data() + at, n);
  }

  void read_into(void* dst, uint64_t n) {
    if (n > size_ - pos_) throw malformed();
    char* to = static_cast<char*>(dst);
    if (memory_) {
      std::memcpy(to, memory_ + pos_, n);
      pos_ += n;
      return;
    }
    // What the buffer holds first; the rest straight from the file into dst, one copy only.
    if (pos_ >= buffer_start_ && pos_ < buffer_start_ + buffer_len_) {
      const uint64_t k = std::min<uint64_t>(n, buffer_start_ + buffer_len_ - pos_);
      std::memcpy(to, buffer_.data() + (pos_ - buffer_start_), k);
      to += k;
      pos_ += k;
      n -= k;
    }
    while (n > 0) {
      const ssize_t got = ::pread(fd_, to, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(pos_));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw Error(ErrorKind::invalid_model, "the model file could not be read (it may have changed while loading)");
      to += got;
      pos_ += static_cast<uint64_t>(got);
      n -= static_cast<uint64_t>(got);
    }
  }

 private:
  char next_byte() {
    if (pos_ >= size_) throw malformed();
    if (memory_) return memory_[pos_++];
    if (pos_ < buffer_start_ || pos_ >= buffer_start_ + buffer_len_) {
      buffer_start_ = pos_;
      buffer_len_ = 0;
      const uint64_t want = std::min<uint64_t>(buffer_.size(), size_ - pos_);
      while (buffer_len_ < want) {
        const ssize_t got = ::pread(fd_, buffer_.data() + buffer_len_, want - buffer_len_, static_cast<off_t>(pos_ + buffer_len_));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) throw Error(ErrorKind::invalid_model, "the model file could not be read (it may have changed while loading)");
        buffer_len_ += static_cast<uint64_t>(got);
      }
    }
    return buffer_[pos_++ - buffer_start_];
  }

  int fd_ = -1;
  const char* memory_ = nullptr;
  uint64_t size_ = 0, pos_ = 0;
  std::vector<char> buffer_;
  uint64_t buffer_start_ = 0, buffer_len_ = 0;
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Copies one field's value (its tag already read and written) as it is.
void copy_value(WireReader& r, uint64_t tag, uint64_t end, std::string& out) {
  switch (tag & 7) {
    case kVarint: put_varint(out, r.varint()); break;
    case kFixed64: r.append_to(out, r.fits(8, end)); break;
    case kFixed32: r.append_to(out, r.fits(4, end)); break;
    case kLengthDelimited: {
      const uint64_t n = r.length(end);
      put_varint(out, n);
      r.append_to(out, n);
      break;
    }
    default: throw malformed();  // groups (deprecated) and undefined wire types
  }
}

// Copies the message that ends at `end` field by field; take(tag, out) may consume a field
// itself (writing what it likes to out) by returning true.
template <class Take>
std::string copy_fields(WireReader& r, uint64_t end, Take take) {
  std::string out;
  while (r.pos() < end) {
    const uint64_t tag = r.varint();
    if (tag >> 3 == 0) throw malformed();
    if (take(tag, out)) continue;
    put_varint(out, tag);
    copy_value(r, tag, end, out);
  }
  if (r.pos() != end) throw malformed();
  return out;
}

constexpr uint64_t length_delimited_tag(uint64_t field) { return field << 3 | kLengthDelimited; }

// A sub-message in `field` is replaced by what rewrite(end of that sub-message) returns, with its
// new length; every other field is copied as it is.
template <class Rewrite>
std::string rewrite_field(WireReader& r, uint64_t end, uint64_t field, Rewrite rewrite) {
  return copy_fields(r, end, [&](uint64_t tag, std::string& out) {
    if (tag != length_delimited_tag(field)) return false;
    const uint64_t n = r.length(end);
    const std::string sub = rewrite(r.pos() + n);
    put_varint(out, tag);
    put_varint(out, sub.size());
    out += sub;
    return true;
  });
}

SplitModel split(WireReader& r, uint64_t size) {
  SplitModel result;
  // An initializer (TensorProto): copied without its raw_data, which goes to a buffer of its own.
  auto initializer = [&](uint64_t end) {
    RawData raw;
    std::string out = copy_fields(r, end, [&](uint64_t tag, std::string&) {
      if (tag != length_delimited_tag(onnx::TensorProto::kRawDataFieldNumber)) return false;
      raw.present = true;
      raw.size = r.length(end);
      raw.owner = engine::allocate_buffer(raw.size);
      raw.data = static_cast<const char*>(raw.owner.get());
      r.read_into(raw.owner.get(), raw.size);
      return true;
    });
    result.raw.push_back(std::move(raw));
    return out;
  };
  auto graph = [&](uint64_t end) { return rewrite_field(r, end, onnx::GraphProto::kInitializerFieldNumber, initializer); };
  result.structure = rewrite_field(r, size, onnx::ModelProto::kGraphFieldNumber, graph);
  return result;
}

}  // namespace

SplitModel split_onnx_file(int fd, uint64_t size) {
  WireReader r(fd, size);
  return split(r, size);
}

SplitModel split_onnx_bytes(const char* data, uint64_t size) {
  WireReader r(data, size);
  return split(r, size);
}

}  // namespace dermal::formats
