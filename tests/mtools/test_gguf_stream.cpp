// The streaming writer must produce exactly the bytes gguf::Writer produces
// for the same content (the gguf helper's writer is the reference here), and
// leave nothing behind when abandoned or misused.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "model/tools/gguf_stream.h"
#include "tmpdir.h"

namespace tandem::model {
namespace {

struct T {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

std::vector<T> sample_tensors() {
  std::vector<T> ts = {{"a.weight", DType::F32, {3, 5}, {}},     // 60 bytes: next offset padded
                       {"b.weight", DType::Q8_0, {64, 2}, {}},   // 4 blocks of 34 bytes
                       {"c", DType::F16, {7}, {}},
                       {"d.weight", DType::Q4_K, {256, 1, 1}, {}}};
  uint8_t x = 1;
  for (auto& t : ts) {
    t.data.resize(row_bytes(t.type, t.shape[0]) * static_cast<size_t>(t.shape.size() > 1 ? t.shape[1] : 1));
    for (auto& b : t.data) b = x++;
  }
  return ts;
}

void fill_metadata(auto& w) {
  w.set("general.architecture", gguf::Value::string("test"));
  w.set("k.u8", gguf::Value::u8(200));
  w.set("k.i16", gguf::Value::i16(-3));
  w.set("k.u64", gguf::Value::u64(1ull << 40));
  w.set("k.f64", gguf::Value::f64(0.1));
  w.set("k.f32", gguf::Value::f32(-2.5f));
  w.set("k.bool", gguf::Value::boolean(true));
  std::vector<gguf::Value> inner = {gguf::Value::i32(1), gguf::Value::i32(-2)};
  std::vector<gguf::Value> outer = {gguf::Value::array(gguf::ValueType::kI32, inner),
                                    gguf::Value::array(gguf::ValueType::kI32, {})};
  w.set("k.nested", gguf::Value::array(gguf::ValueType::kArray, outer));
  w.set("k.strs", gguf::Value::array(gguf::ValueType::kString, {gguf::Value::string("x"), gguf::Value::string("")}));
  w.set("k.u8", gguf::Value::u8(7));  // replaced in place
}

TEST(GgufStream, SameBytesAsWriter) {
  for (uint32_t align : {32u, 64u}) {
    std::vector<T> ts = sample_tensors();
    gguf::Writer ref;
    fill_metadata(ref);
    if (align != 32) ref.set_u32("general.alignment", align);
    for (const T& t : ts) ref.add_tensor(t.name, t.type, t.shape, t.data.data(), t.data.size());
    auto want = ref.to_bytes();
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();

    mtools_test::TempDir dir;
    GgufStreamWriter w;
    fill_metadata(w);
    if (align != 32) w.set_u32("general.alignment", align);
    for (const T& t : ts) w.add_tensor(t.name, t.type, t.shape);
    ASSERT_TRUE(w.begin(dir.file("s.gguf")).is_ok());
    for (const T& t : ts) ASSERT_TRUE(w.write_tensor(t.data.data(), t.data.size()).is_ok());
    ASSERT_TRUE(w.finish().is_ok());
    EXPECT_EQ(mtools_test::read_all(dir.file("s.gguf")), *want) << "alignment " << align;
    auto f = gguf::File::open(dir.file("s.gguf"));
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    EXPECT_EQ((*f)->tensors().size(), ts.size());
    EXPECT_EQ(dir.entries().size(), 1u);
  }
}

TEST(GgufStream, NoTensors) {
  gguf::Writer ref;
  fill_metadata(ref);
  mtools_test::TempDir dir;
  GgufStreamWriter w;
  fill_metadata(w);
  ASSERT_TRUE(w.begin(dir.file("m.gguf")).is_ok());
  ASSERT_TRUE(w.finish().is_ok());
  EXPECT_EQ(mtools_test::read_all(dir.file("m.gguf")), ref.to_bytes().value());
}

TEST(GgufStream, MisuseLeavesNothingBehind) {
  std::vector<T> ts = sample_tensors();
  mtools_test::TempDir dir;
  {
    GgufStreamWriter w;  // abandoned after one tensor
    for (const T& t : ts) w.add_tensor(t.name, t.type, t.shape);
    ASSERT_TRUE(w.begin(dir.file("a.gguf")).is_ok());
    ASSERT_TRUE(w.write_tensor(ts[0].data.data(), ts[0].data.size()).is_ok());
  }
  EXPECT_TRUE(dir.entries().empty());
  {
    GgufStreamWriter w;  // wrong byte count
    for (const T& t : ts) w.add_tensor(t.name, t.type, t.shape);
    ASSERT_TRUE(w.begin(dir.file("b.gguf")).is_ok());
    EXPECT_FALSE(w.write_tensor(ts[0].data.data(), ts[0].data.size() - 1).is_ok());
    EXPECT_FALSE(w.finish().is_ok());
  }
  {
    GgufStreamWriter w;  // finish too early
    for (const T& t : ts) w.add_tensor(t.name, t.type, t.shape);
    ASSERT_TRUE(w.begin(dir.file("c.gguf")).is_ok());
    EXPECT_FALSE(w.finish().is_ok());
  }
  {
    GgufStreamWriter w;  // bad declarations are refused before any file exists
    w.add_tensor("x", DType::Q8_0, {33});
    EXPECT_FALSE(w.begin(dir.file("d.gguf")).is_ok());
    GgufStreamWriter w2;
    w2.add_tensor("x", DType::F32, {4});
    w2.add_tensor("x", DType::F32, {4});
    EXPECT_FALSE(w2.begin(dir.file("e.gguf")).is_ok());
  }
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace tandem::model
