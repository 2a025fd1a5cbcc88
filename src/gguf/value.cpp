// Value: construction, accessors and rendering of GGUF metadata values.
#include <bit>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"

namespace tandem::gguf {

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "?";
}

bool value_type_is_integer(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kU16: case ValueType::kI16:
    case ValueType::kU32: case ValueType::kI32: case ValueType::kU64: case ValueType::kI64:
      return true;
    default:
      return false;
  }
}

bool value_type_is_signed(ValueType t) {
  return t == ValueType::kI8 || t == ValueType::kI16 || t == ValueType::kI32 || t == ValueType::kI64;
}

Value Value::f32(float v) {
  Value r;
  r.type_ = ValueType::kF32;
  r.bits_ = std::bit_cast<uint32_t>(v);
  return r;
}

Value Value::f64(double v) {
  Value r;
  r.type_ = ValueType::kF64;
  r.bits_ = std::bit_cast<uint64_t>(v);
  return r;
}

Value Value::boolean(bool v) {
  Value r;
  r.type_ = ValueType::kBool;
  r.bits_ = v ? 1 : 0;
  return r;
}

Value Value::string(std::string v) {
  Value r;
  r.type_ = ValueType::kString;
  r.str_ = std::move(v);
  return r;
}

Value Value::array(ValueType elem, std::vector<Value> items) {
  Value r;
  r.type_ = ValueType::kArray;
  r.elem_type_ = elem;
  r.items_ = std::move(items);
  return r;
}

uint64_t Value::as_u64() const { return is_integer() ? bits_ : 0; }

int64_t Value::as_i64() const { return is_integer() ? static_cast<int64_t>(bits_) : 0; }

bool Value::fits_i64() const {
  if (!is_integer()) return false;
  if (type_ == ValueType::kU64) return bits_ <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return true;
}

double Value::as_f64() const {
  if (type_ == ValueType::kF32) return std::bit_cast<float>(static_cast<uint32_t>(bits_));
  if (type_ == ValueType::kF64) return std::bit_cast<double>(bits_);
  if (is_integer()) {
    return value_type_is_signed(type_) ? static_cast<double>(static_cast<int64_t>(bits_))
                                       : static_cast<double>(bits_);
  }
  return 0.0;
}

bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  if (type_ == ValueType::kString) return str_ == o.str_;
  if (type_ == ValueType::kArray) return elem_type_ == o.elem_type_ && items_ == o.items_;
  return bits_ == o.bits_;
}

namespace {

// JSON-like quoting with control characters escaped, cut at max_chars bytes.
std::string quote(std::string_view s, size_t max_chars) {
  std::string out = "\"";
  size_t n = std::min(s.size(), max_chars);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s.size() > n) out += fmt::format("...({} bytes)", s.size());
  return out;
}

}  // namespace

std::string Value::to_string(size_t max_items, size_t max_chars) const {
  switch (type_) {
    case ValueType::kString:
      return quote(str_, max_chars);
    case ValueType::kBool:
      return bits_ ? "true" : "false";
    case ValueType::kF32:
      return fmt::format("{}", std::bit_cast<float>(static_cast<uint32_t>(bits_)));
    case ValueType::kF64:
      return fmt::format("{}", as_f64());
    case ValueType::kArray: {
      std::string out = "[";
      size_t n = std::min(items_.size(), max_items);
      for (size_t i = 0; i < n; ++i) {
        if (i) out += ", ";
        out += items_[i].to_string(max_items, max_chars);
      }
      if (items_.size() > n) out += fmt::format(", ... ({} items)", items_.size());
      out += "]";
      return out;
    }
    default:
      if (value_type_is_signed(type_)) return fmt::format("{}", static_cast<int64_t>(bits_));
      return fmt::format("{}", bits_);
  }
}

}  // namespace tandem::gguf
