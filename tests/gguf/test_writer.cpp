// Writer: write -> read gives identical keys, values (every type, nested
// arrays) and tensor bytes; layout is aligned; failures leave no file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fixture_cache.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace tandem::gguf {
namespace {

namespace fs = std::filesystem;

// A fresh empty directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            fmt::format("tandem-gguf-{}-{}", ::getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(path_), fs::directory_iterator())); }

 private:
  fs::path path_;
};

using testing::slurp;

Writer every_type_writer() {
  Writer w;
  w.set_string("general.architecture", "roundtrip");
  w.set_u8("t.u8", 255);
  w.set_i8("t.i8", -128);
  w.set_u16("t.u16", 65535);
  w.set_i16("t.i16", -1234);
  w.set_u32("t.u32", 4294967295u);
  w.set_i32("t.i32", -2147483647 - 1);
  w.set_u64("t.u64", 18446744073709551615ull);
  w.set_i64("t.i64", -9223372036854775807ll - 1);
  w.set_f32("t.f32", -0.0f);
  w.set_f64("t.f64", 3.141592653589793);
  w.set_bool("t.bool", true);
  w.set_string("t.empty", "");
  w.set_string("t.binary", std::string("a\0b\xff", 4));
  w.set_string_array("t.strings", {"<s>", "", "\xe2\x96\x81hello"});
  w.set_i32_array("t.i32s", {0, 0, 2, 0, 0, 2});
  w.set_u32_array("t.u32s", {});
  w.set_i64_array("t.i64s", {-1, 1ll << 40});
  w.set_f32_array("t.f32s", {1.5f, -2.25f, 1e-30f});
  w.set_bool_array("t.bools", {true, false});
  // [[["x"]], [], [["y", "z"], []]]: three levels of nesting.
  Value x = Value::array(ValueType::kString, {Value::string("x")});
  Value yz = Value::array(ValueType::kString, {Value::string("y"), Value::string("z")});
  Value none = Value::array(ValueType::kString, {});
  w.set("t.nested", Value::array(ValueType::kArray,
                                 {Value::array(ValueType::kArray, {x}), Value::array(ValueType::kArray, {}),
                                  Value::array(ValueType::kArray, {yz, none})}));
  return w;
}

TEST(GgufWriter, RoundTripEveryTypeAndTensors) {
  TempDir dir;
  Writer w = every_type_writer();
  w.set_alignment(64);
  std::vector<float> a(7 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f - 3.0f;
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff};
  std::vector<uint8_t> q(2 * 34);  // two q8_0 blocks
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>(i * 7 + 1);
  w.add_tensor("a", DType::F32, {7, 3}, a.data(), a.size() * 4);
  w.add_tensor("h", DType::F16, {3}, h.data(), h.size() * 2);
  w.add_tensor("q", DType::Q8_0, {32, 2}, q.data(), q.size());
  const std::string path = dir.file("rt.gguf");
  Status st = w.write(path);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(dir.entries(), 1u);  // no temporary left behind

  auto r = File::open(path);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const File& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  // Same keys, same order, same typed values (floats bitwise, so -0.0 survives).
  Writer ref = every_type_writer();
  ref.set_alignment(64);
  auto ref_bytes = ref.to_bytes();
  ASSERT_TRUE(ref_bytes.is_ok());
  auto ref_file = File::from_bytes(*ref_bytes, "ref");
  ASSERT_TRUE(ref_file.is_ok()) << ref_file.status().message();
  ASSERT_EQ(f.metadata().size(), 22u);
  EXPECT_EQ(f.metadata(), (*ref_file)->metadata());
  EXPECT_EQ(f.find("t.u64")->as_u64(), 18446744073709551615ull);
  EXPECT_EQ(*f.get_int("t.i64"), -9223372036854775807ll - 1);
  EXPECT_TRUE(std::signbit(*f.get_f32("t.f32")));
  EXPECT_EQ(f.find("t.f64")->as_f64(), 3.141592653589793);
  EXPECT_EQ(*f.get_string("t.binary"), std::string("a\0b\xff", 4));
  EXPECT_EQ(*f.get_string_array("t.strings"), (std::vector<std::string>{"<s>", "", "\xe2\x96\x81hello"}));
  EXPECT_EQ(*f.get_int_array("t.i32s"), (std::vector<int64_t>{0, 0, 2, 0, 0, 2}));
  EXPECT_EQ(f.find("t.i32s")->elem_type(), ValueType::kI32);
  EXPECT_EQ(f.find("t.u32s")->size(), 0u);
  EXPECT_EQ(f.find("t.u32s")->elem_type(), ValueType::kU32);
  EXPECT_EQ(*f.get_f32_array("t.f32s"), (std::vector<float>{1.5f, -2.25f, 1e-30f}));
  const Value* n = f.find("t.nested");
  ASSERT_TRUE(n && n->size() == 3);
  EXPECT_EQ(n->at(2).at(0).at(1).as_string(), "z");
  EXPECT_EQ(n->at(2).at(1).size(), 0u);

  ASSERT_EQ(f.tensors().size(), 3u);
  struct Want {
    const char* name;
    DType type;
    std::vector<int64_t> shape;
    const void* data;
    size_t bytes;
  };
  for (const Want& want : {Want{"a", DType::F32, {7, 3}, a.data(), 84}, Want{"h", DType::F16, {3}, h.data(), 6},
                           Want{"q", DType::Q8_0, {32, 2}, q.data(), 68}}) {
    const TensorInfo* t = f.find_tensor(want.name);
    ASSERT_NE(t, nullptr) << want.name;
    EXPECT_EQ(t->type, want.type);
    EXPECT_EQ(t->shape, want.shape);
    ASSERT_EQ(t->bytes, want.bytes);
    EXPECT_EQ(std::memcmp(t->data, want.data, want.bytes), 0) << want.name;
    EXPECT_EQ(t->offset % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 64, 0u);  // mmap is page aligned
  }
  // write() and to_bytes() produce the same bytes.
  std::vector<uint8_t> want_bytes = *[&] {
    Writer w2 = every_type_writer();
    w2.set_alignment(64);
    w2.add_tensor("a", DType::F32, {7, 3}, a.data(), a.size() * 4);
    w2.add_tensor("h", DType::F16, {3}, h.data(), h.size() * 2);
    w2.add_tensor("q", DType::Q8_0, {32, 2}, q.data(), q.size());
    return w2.to_bytes();
  }();
  EXPECT_EQ(slurp(path), want_bytes);
}

// Rewriting a fixture (made by the reference engine's writer) with its own
// metadata and tensors reproduces the same keys, values and tensor bytes.
TEST(GgufWriter, RewriteFixtureKeepsEverything) {
  auto src = File::open(std::string(TANDEM_FIXTURES) + "/models/tiny-granitehybrid.gguf");
  ASSERT_TRUE(src.is_ok()) << src.status().message();
  Writer w;
  w.copy_metadata(**src);
  for (const auto& t : (*src)->tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.bytes);
  TempDir dir;
  const std::string path = dir.file("copy.gguf");
  ASSERT_TRUE(w.write(path).is_ok());
  auto copy = File::open(path);
  ASSERT_TRUE(copy.is_ok()) << copy.status().message();
  EXPECT_EQ((*copy)->metadata(), (*src)->metadata());
  ASSERT_EQ((*copy)->tensors().size(), (*src)->tensors().size());
  for (size_t i = 0; i < (*src)->tensors().size(); ++i) {
    const TensorInfo& a = (*src)->tensors()[i];
    const TensorInfo& b = (*copy)->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.offset, b.offset);
    ASSERT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes), 0) << a.name;
  }
}

// The fixtures were written by the reference engine's GGUF writer; rewriting
// their metadata and tensors in file order must reproduce them byte for byte
// (same header, value encodings, alignment padding and data layout).
TEST(GgufWriter, RewritesReferenceFilesByteForByte) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(std::string(TANDEM_FIXTURES) + "/models"))
    if (e.path().extension() == ".gguf") files.push_back("models/" + e.path().filename().string());
  ASSERT_GE(files.size(), 18u);
  // Two vocabulary-only files (no tensors, so no data section or final padding).
  files.push_back("vocab/ggml-vocab-gpt-2.gguf");
  files.push_back("vocab/ggml-vocab-llama-spm.gguf");
  for (const std::string& rel : files) {
    SCOPED_TRACE(rel);
    const File* src = testing::fixture(rel);
    ASSERT_NE(src, nullptr);
    Writer w;
    w.copy_metadata(*src);
    for (const auto& t : src->tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.bytes);
    auto bytes = w.to_bytes();
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().message();
    ASSERT_EQ(bytes->size(), src->file_size());
    EXPECT_EQ(std::memcmp(bytes->data(), src->raw_bytes(), bytes->size()), 0);
  }
}

TEST(GgufWriter, FailuresLeaveNoFile) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  std::vector<float> a(8);
  {
    Writer w;
    w.add_tensor("a", DType::F32, {8}, a.data(), 31);  // 32 bytes expected
    Status st = w.write(path);
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("tensor 'a': 31 bytes given but 8 elements of f32 take 32"),
              std::string::npos) << st.message();
  }
  {
    Writer w;
    w.add_tensor("a", DType::F32, {8}, a.data(), 32);
    w.add_tensor("a", DType::F32, {8}, a.data(), 32);
    EXPECT_NE(w.write(path).message().find("duplicate tensor 'a'"), std::string::npos);
  }
  {
    Writer w;
    w.add_tensor("q", DType::Q8_0, {16}, a.data(), 17);
    EXPECT_NE(w.write(path).message().find("not a multiple of the q8_0 block size"), std::string::npos);
  }
  {
    Writer w;
    w.set("mixed", Value::array(ValueType::kU32, {Value::u32(1), Value::i32(2)}));
    EXPECT_NE(w.write(path).message().find("key 'mixed': item 1 has type i32 in an array of u32"),
              std::string::npos);
  }
  {
    Writer w;
    w.set_alignment(48);
    EXPECT_NE(w.write(path).message().find("general.alignment 48 is not a power of two"), std::string::npos);
  }
  EXPECT_EQ(dir.entries(), 0u);
  // Unwritable target directory: an I/O error naming the path, nothing created.
  Writer ok;
  ok.set_u32("k", 1);
  Status st = ok.write(dir.file("missing-dir/x.gguf"));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kIo);
  EXPECT_NE(st.message().find("missing-dir/x.gguf"), std::string::npos);
  EXPECT_EQ(dir.entries(), 0u);
}

TEST(GgufWriter, ReplacingAKeyKeepsItsPosition) {
  Writer w;
  w.set_u32("a", 1);
  w.set_u32("b", 2);
  w.set_string("a", "now a string");
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  auto f = File::from_bytes(*bytes, "replace");
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  ASSERT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ((*f)->metadata()[0].first, "a");
  EXPECT_EQ(*(*f)->get_string("a"), "now a string");
}

}  // namespace
}  // namespace tandem::gguf
