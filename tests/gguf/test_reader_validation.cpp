// The reader on handcrafted files: one valid layout it must accept (v2 and v3),
// then one broken file per rejection path, each error naming the problem, the
// file and the byte offset; and every truncation of a valid file refused.
#include <gtest/gtest.h>

#include <cstring>

#include <filesystem>

#include "gguf/gguf.h"
#include "gguf_bytes.h"

namespace tandem::gguf {
namespace {

using testing::Bytes;

Status parse(const Bytes& b, std::string name = "test.gguf") {
  auto r = File::from_bytes(b.b, std::move(name));
  return r.is_ok() ? Status::ok() : r.status();
}

// Expects a refusal whose message contains every one of `parts`.
void expect_refused(const Bytes& b, std::initializer_list<std::string_view> parts) {
  Status st = parse(b);
  ASSERT_FALSE(st.is_ok()) << "accepted a bad file";
  EXPECT_NE(st.message().find("test.gguf: byte "), std::string::npos) << st.message();
  for (std::string_view p : parts)
    EXPECT_NE(st.message().find(p), std::string::npos) << "missing '" << p << "' in: " << st.message();
}

// A small valid file: 2 metadata keys, 2 f32 tensors of 8 and 16 elements
// (32 and 64 bytes, so the data section ends exactly at the end of the file).
Bytes valid_file(uint32_t version = 3) {
  Bytes b;
  b.header(2, 2, version);
  b.kv_str("general.architecture", "test");
  b.kv_u32("test.block_count", 2);
  b.tensor("a", {8}, 0, 0);
  b.tensor("b", {4, 4}, 0, 32);
  b.pad_to(32);
  for (int i = 0; i < 24; ++i) b.f32(static_cast<float>(i));
  return b;
}

TEST(GgufReader, AcceptsHandcraftedV3AndV2) {
  for (uint32_t version : {3u, 2u}) {
    Bytes b = valid_file(version);
    auto r = File::from_bytes(b.b, "ok.gguf");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    const File& f = **r;
    EXPECT_EQ(f.version(), version);
    EXPECT_EQ(f.alignment(), 32u);
    ASSERT_EQ(f.metadata().size(), 2u);
    EXPECT_EQ(*f.get_string("general.architecture"), "test");
    EXPECT_EQ(*f.get_u32("test.block_count"), 2u);
    ASSERT_EQ(f.tensors().size(), 2u);
    const TensorInfo* t = f.find_tensor("b");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{4, 4}));
    EXPECT_EQ(t->n_elements(), 16);
    EXPECT_EQ(t->bytes, 64u);
    // The header is 4+4+8+8 = 24 bytes; data starts at the first multiple of 32
    // after the tensor infos; tensor b holds the floats 8..23.
    EXPECT_EQ(f.data_offset() % 32, 0u);
    EXPECT_EQ(f.data_offset() + 96, b.b.size());
    float first;
    std::memcpy(&first, t->data, 4);
    EXPECT_EQ(first, 8.0f);
  }
}

TEST(GgufReader, EveryValueTypeIncludingNestedArrays) {
  Bytes b;
  b.header(0, 14);
  b.key("u8", 0).u8(200);
  b.key("i8", 1).u8(0xff);              // -1
  b.key("u16", 2).le(60000, 2);
  b.key("i16", 3).le(0x8000, 2);        // -32768
  b.key("u32", 4).u32(4000000000u);
  b.key("i32", 5).u32(0xfffffffe);      // -2
  b.key("f32", 6).f32(0.25f);
  b.key("bool", 7).u8(1);
  b.key("str", 8).str("héllo");
  b.key("u64", 10).u64(~uint64_t{0});
  b.key("i64", 11).u64(~uint64_t{0});   // -1
  b.key("f64", 12).u64(0x3ff8000000000000ull);  // 1.5
  b.key("strs", 9).u32(8).u64(3).str("a").str("").str("ccc");
  // [[1, 2], [], [3]] of i32
  b.key("nested", 9).u32(9).u64(3);
  b.u32(5).u64(2).u32(1).u32(2);
  b.u32(5).u64(0);
  b.u32(5).u64(1).u32(3);
  auto r = File::from_bytes(b.b, "types.gguf");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const File& f = **r;
  EXPECT_EQ(f.find("u8")->as_u64(), 200u);
  EXPECT_EQ(f.find("i8")->as_i64(), -1);
  EXPECT_EQ(f.find("u16")->as_u64(), 60000u);
  EXPECT_EQ(f.find("i16")->as_i64(), -32768);
  EXPECT_EQ(*f.get_u32("u32"), 4000000000u);
  EXPECT_EQ(*f.get_int("i32"), -2);
  EXPECT_EQ(*f.get_f32("f32"), 0.25f);
  EXPECT_TRUE(*f.get_bool("bool"));
  EXPECT_EQ(*f.get_string("str"), "héllo");
  EXPECT_EQ(f.find("u64")->as_u64(), ~uint64_t{0});
  EXPECT_EQ(*f.get_int("i64"), -1);
  EXPECT_EQ(*f.get_f32("f64"), 1.5f);
  EXPECT_EQ(*f.get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  const Value* n = f.find("nested");
  ASSERT_TRUE(n && n->is_array());
  EXPECT_EQ(n->elem_type(), ValueType::kArray);
  ASSERT_EQ(n->size(), 3u);
  EXPECT_EQ(n->at(0).size(), 2u);
  EXPECT_EQ(n->at(0).at(1).as_i64(), 2);
  EXPECT_EQ(n->at(1).size(), 0u);
  EXPECT_EQ(n->at(2).at(0).as_i64(), 3);
  // Metadata keeps file order.
  EXPECT_EQ(f.metadata().front().first, "u8");
  EXPECT_EQ(f.metadata().back().first, "nested");
}

TEST(GgufReader, TypedGettersNameKeyAndProblem) {
  Bytes b;
  b.header(0, 5);
  b.key("neg", 5).u32(0xffffffff);     // i32 -1
  b.key("big", 10).u64(~uint64_t{0});  // u64 max
  b.kv_str("s", "x");
  b.key("ints", 9).u32(5).u64(2).u32(7).u32(0xfffffff9);  // [7, -7]
  b.key("flag", 7).u8(0);
  auto r = File::from_bytes(b.b, "get.gguf");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const File& f = **r;
  auto missing = f.get_int("nope");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'nope' is missing"), std::string::npos);
  auto wrong = f.get_int("s");
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("'s' has type string"), std::string::npos);
  EXPECT_FALSE(f.get_u32("neg").is_ok());      // negative does not fit in u32
  EXPECT_FALSE(f.get_int("big").is_ok());      // above INT64_MAX
  EXPECT_FALSE(f.get_u32("big").is_ok());
  EXPECT_EQ(*f.get_int_array("ints"), (std::vector<int64_t>{7, -7}));
  EXPECT_FALSE(f.get_f32_array("ints").is_ok());
  EXPECT_FALSE(f.get_string_array("ints").is_ok());
  EXPECT_FALSE(*f.get_bool("flag"));
  // _or: default when absent, error when present with the wrong type.
  EXPECT_EQ(*f.get_int_or("absent", 42), 42);
  EXPECT_EQ(*f.get_f32_or("absent", 0.5f), 0.5f);
  EXPECT_TRUE(*f.get_bool_or("absent", true));
  EXPECT_EQ(*f.get_string_or("absent", "d"), "d");
  EXPECT_EQ(*f.get_int_or("neg", 42), -1);
  EXPECT_FALSE(f.get_f32_or("s", 0.5f).is_ok());
  EXPECT_FALSE(f.get_bool_or("s", true).is_ok());
}

TEST(GgufReader, RefusesBadMagic) {
  Bytes b = valid_file();
  std::memcpy(b.b.data(), "GGML", 4);
  expect_refused(b, {"byte 0", "bad magic 'GGML'"});
}

TEST(GgufReader, RefusesBadVersion) {
  Bytes b = valid_file();
  b.b[4] = 4;
  expect_refused(b, {"byte 4", "unsupported GGUF version 4"});
  b.b[4] = 0;
  b.b[7] = 3;  // 0x03000000: a big-endian v3 file
  expect_refused(b, {"big-endian"});
  b.b[7] = 0;
  b.b[4] = 1;
  Status st = parse(b);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("GGUF version 1 is not supported"), std::string::npos) << st.message();
}

TEST(GgufReader, RefusesTruncatedHeader) {
  Bytes b;
  b.raw("GGUF", 4).u32(3).u64(0);  // n_kv missing
  expect_refused(b, {"byte 16", "file truncated", "metadata count"});
  Bytes tiny;
  tiny.raw("GG", 2);
  expect_refused(tiny, {"byte 0", "too short"});
}

TEST(GgufReader, RefusesStringLengthPastEnd) {
  Bytes b;
  b.header(0, 1);
  size_t at = b.pos();
  b.u64(1000).raw("general.x", 9).u32(4).u32(1);
  expect_refused(b, {fmt::format("byte {}", at), "metadata key #0 length 1000 runs past the end"});
  Bytes v;
  v.header(0, 1);
  v.key("k", 8);
  at = v.pos();
  v.u64(~uint64_t{0} - 3).raw("abc", 3);
  expect_refused(v, {fmt::format("byte {}", at), "string value of 'k'", "runs past the end"});
}

TEST(GgufReader, RefusesAbsurdCounts) {
  Bytes a;
  a.header(0, 1);
  a.key("arr", 9).u32(4);
  size_t at = a.pos();
  a.u64(uint64_t{1} << 60).u32(0);
  expect_refused(a, {fmt::format("byte {}", at), "'arr': array of 1152921504606846976 u32 elements "
                     "cannot fit"});
  Bytes s;  // a string array needs at least 8 bytes per element
  s.header(0, 1);
  s.key("strs", 9).u32(8).u64(3).u64(0).u64(0);
  expect_refused(s, {"'strs': array of 3 string elements cannot fit"});
  Bytes kv;
  kv.header(0, 1000000);
  kv.kv_u32("x", 1);
  expect_refused(kv, {"byte 16", "metadata count 1000000 cannot fit"});
  Bytes t;
  t.header(~uint64_t{0}, 0);
  expect_refused(t, {"byte 8", "tensor count 18446744073709551615 cannot fit"});
}

TEST(GgufReader, RefusesArraysNestedTooDeep) {
  // kMaxArrayDepth levels are fine; one more is refused.
  auto nested = [](int levels) {
    Bytes b;
    b.header(0, 1);
    b.key("deep", 9);
    for (int i = 0; i < levels - 1; ++i) b.u32(9).u64(1);
    b.u32(4).u64(1).u32(7);
    return b;
  };
  ASSERT_TRUE(parse(nested(kMaxArrayDepth)).is_ok()) << parse(nested(kMaxArrayDepth)).message();
  expect_refused(nested(kMaxArrayDepth + 1), {"'deep': arrays nested more than 8 deep"});
  expect_refused(nested(200), {"nested more than"});
}

TEST(GgufReader, RefusesDuplicateKey) {
  Bytes b;
  b.header(0, 3);
  b.kv_u32("general.file_type", 1);
  b.kv_str("general.name", "n");
  size_t at = b.pos();
  b.kv_u32("general.file_type", 2);
  expect_refused(b, {fmt::format("byte {}", at), "duplicate metadata key 'general.file_type'",
                     "first defined at byte 24"});
}

TEST(GgufReader, RefusesDuplicateTensor) {
  Bytes b;
  b.header(2, 0);
  b.tensor("w", {8}, 0, 0);
  size_t at = b.pos();
  b.tensor("w", {8}, 0, 32);
  b.pad_to(32).fill(64, 0);
  expect_refused(b, {fmt::format("byte {}", at), "duplicate tensor name 'w'"});
}

TEST(GgufReader, RefusesUnknownTypeIds) {
  Bytes t;
  t.header(1, 0);
  t.str("w").u32(1).u64(32);
  size_t at = t.pos();
  t.u32(4).u64(0);  // ids 4 and 5 were removed from ggml (q4_2, q4_3)
  t.pad_to(32).fill(128, 0);
  expect_refused(t, {fmt::format("byte {}", at), "tensor 'w': unknown tensor type id 4"});
  Bytes v;
  v.header(0, 1);
  size_t vat = v.pos() + 8 + 1;
  v.key("k", 13).u32(0);
  expect_refused(v, {fmt::format("byte {}", vat), "'k': unknown value type id 13"});
  Bytes a;
  a.header(0, 1);
  a.key("k", 9).u32(77).u64(0);
  expect_refused(a, {"'k': unknown array element type id 77"});
  Bytes bo;
  bo.header(0, 1);
  bo.key("flag", 7).u8(2);
  expect_refused(bo, {"'flag': bool value 2 is neither 0 nor 1"});
}

TEST(GgufReader, RefusesBadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Bytes b;
    b.header(0, 1);
    b.kv_u32("general.alignment", a);
    expect_refused(b, {fmt::format("general.alignment {} is not a power of two", a)});
  }
  Bytes s;
  s.header(0, 1);
  s.kv_str("general.alignment", "32");
  expect_refused(s, {"general.alignment has type string"});
  // A valid non-default alignment moves the data section.
  Bytes ok;
  ok.header(1, 1);
  ok.kv_u32("general.alignment", 64);
  ok.tensor("w", {16}, 0, 0);
  ok.pad_to(64).fill(64, 0);
  auto r = File::from_bytes(ok.b, "a64.gguf");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ((*r)->alignment(), 64u);
  EXPECT_EQ((*r)->data_offset() % 64, 0u);
}

TEST(GgufReader, RefusesUnalignedTensorOffset) {
  Bytes b;
  b.header(1, 0);
  b.str("w").u32(1).u64(8).u32(0);
  size_t at = b.pos();
  b.u64(4);
  b.pad_to(32).fill(64, 0);
  expect_refused(b, {fmt::format("byte {}", at), "tensor 'w': data offset 4 is not a multiple of "
                     "the alignment 32"});
}

TEST(GgufReader, RefusesTensorPastEnd) {
  Bytes b;
  b.header(2, 0);
  b.tensor("a", {8}, 0, 0);
  b.tensor("b", {9}, 0, 32);  // 36 bytes at 32: one float beyond the 64 present
  b.pad_to(32).fill(64, 0);
  expect_refused(b, {"tensor 'b': data [32, +36) runs past the end of the data section (64 bytes"});
  Bytes huge;
  huge.header(1, 0);
  huge.tensor("h", {8}, 0, ~uint64_t{0} - 31);  // aligned, offset + bytes overflows u64
  huge.pad_to(32).fill(32, 0);
  expect_refused(huge, {"tensor 'h': data", "runs past the end"});
  Bytes nodata;  // tensors but the file ends before the data section starts
  nodata.header(1, 0);
  nodata.tensor("w", {8}, 0, 0);
  expect_refused(nodata, {"truncated", "data section"});
}

TEST(GgufReader, RefusesOverlappingTensors) {
  Bytes b;
  b.header(2, 0);
  b.tensor("a", {16}, 0, 0);   // [0, 64)
  b.tensor("b", {8}, 0, 32);   // [32, 64): inside a
  b.pad_to(32).fill(64, 0);
  expect_refused(b, {"tensor 'b' (data offset 32) overlaps tensor 'a'"});
}

TEST(GgufReader, RefusesBadDimensions) {
  Bytes zero;
  zero.header(1, 0);
  zero.tensor("z", {8, 0}, 0, 0);
  zero.pad_to(32).fill(32, 0);
  expect_refused(zero, {"tensor 'z': dimension 1 is zero"});
  Bytes over;
  over.header(1, 0);
  over.tensor("o", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0);
  over.pad_to(32).fill(32, 0);
  expect_refused(over, {"tensor 'o': element count overflows at dimension 1"});
  Bytes neg;  // above INT64_MAX in a single dimension
  neg.header(1, 0);
  neg.tensor("n", {~uint64_t{0}}, 0, 0);
  neg.pad_to(32).fill(32, 0);
  expect_refused(neg, {"tensor 'n': element count overflows at dimension 0"});
  Bytes bytes_over;  // element count fits in int64 but the byte size does not fit in u64
  bytes_over.header(1, 0);
  bytes_over.tensor("f", {uint64_t{1} << 62}, 0, 0);
  bytes_over.pad_to(32).fill(32, 0);
  expect_refused(bytes_over, {"tensor 'f': byte size overflows"});
  for (uint32_t n : {0u, 5u}) {
    Bytes b;
    b.header(1, 0);
    b.str("d");
    size_t at = b.pos();
    b.u32(n);
    for (uint32_t i = 0; i < n; ++i) b.u64(1);
    b.u32(0).u64(0);
    b.pad_to(32).fill(32, 0);
    expect_refused(b, {fmt::format("byte {}", at), fmt::format("tensor 'd': n_dims {} is outside 1..4", n)});
  }
}

TEST(GgufReader, RefusesRowNotMultipleOfBlock) {
  Bytes b;
  b.header(1, 0);
  b.tensor("q", {48, 2}, 8, 0);  // q8_0 blocks hold 32 elements
  b.pad_to(32).fill(128, 0);
  expect_refused(b, {"tensor 'q': row length 48 is not a multiple of the q8_0 block size 32"});
}

TEST(GgufReader, RefusesEmptyNames) {
  Bytes k;
  k.header(0, 1);
  k.kv_u32("", 1);
  expect_refused(k, {"metadata key #0 is empty"});
  Bytes t;
  t.header(1, 0);
  t.tensor("", {8}, 0, 0);
  t.pad_to(32).fill(32, 0);
  expect_refused(t, {"tensor #0 has an empty name"});
}

TEST(GgufReader, EveryTruncationIsRefused) {
  // The data section of valid_file() ends exactly at the end of the file, so
  // every strict prefix lacks bytes the header promises.
  Bytes full = valid_file();
  ASSERT_TRUE(parse(full).is_ok());
  for (size_t n = 0; n < full.b.size(); ++n) {
    Bytes cut;
    cut.b.assign(full.b.begin(), full.b.begin() + static_cast<std::ptrdiff_t>(n));
    Status st = parse(cut);
    ASSERT_FALSE(st.is_ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.message();
    EXPECT_NE(st.message().find("test.gguf: byte "), std::string::npos) << st.message();
  }
}

TEST(GgufReader, VocabOnlyFileNeedsNoDataSection) {
  // No tensors: the file may end right after the metadata (vocab files do).
  Bytes b;
  b.header(0, 1);
  b.kv_str("tokenizer.ggml.model", "gpt2");
  auto r = File::from_bytes(b.b, "vocab.gguf");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE((*r)->tensors().empty());
}

TEST(GgufReader, OpenReportsMissingFile) {
  for (File::Load how : {File::Load::kMmap, File::Load::kRead}) {
    auto r = File::open("/nonexistent/dir/model.gguf", how);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
    EXPECT_NE(r.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
  }
}

// Load::kAuto reads a file into memory only when it takes at most half of the
// available memory; the explicit choices are kept whatever the sizes.
TEST(GgufReader, AutoLoadReadsFilesThatTakeAtMostHalfTheAvailableMemory) {
  constexpr size_t kGiB = size_t{1} << 30;
  EXPECT_EQ(File::resolve_load(File::Load::kAuto, kGiB, 2 * kGiB), File::Load::kRead);
  EXPECT_EQ(File::resolve_load(File::Load::kAuto, kGiB + 1, 2 * kGiB), File::Load::kMmap);
  EXPECT_EQ(File::resolve_load(File::Load::kAuto, 1, 0), File::Load::kMmap);  // memory unknown
  EXPECT_EQ(File::resolve_load(File::Load::kMmap, 1, 64 * kGiB), File::Load::kMmap);
  EXPECT_EQ(File::resolve_load(File::Load::kRead, 64 * kGiB, 1), File::Load::kRead);
  // A fixture of a few hundred KiB on a machine that can run the suite.
  const size_t avail = File::available_memory();
  ASSERT_GT(avail, size_t{64} << 20);
  auto r = File::open(std::string(TANDEM_FIXTURES) + "/models/tiny-granitehybrid-256-q4_k_m.gguf", File::Load::kAuto);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE((*r)->read_into_memory());
}

// --no-mmap: the file read into memory holds the same bytes, metadata and
// tensors as the mapping of it.
TEST(GgufReader, ReadIntoMemoryEqualsTheMapping) {
  const std::string path = std::string(TANDEM_FIXTURES) + "/models/tiny-granitehybrid-256-q4_k_m.gguf";
  auto m = File::open(path);
  auto r = File::open(path, File::Load::kRead);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const File& a = **m;
  const File& b = **r;
  EXPECT_FALSE(a.read_into_memory());
  EXPECT_TRUE(b.read_into_memory());
  ASSERT_EQ(a.file_size(), b.file_size());
  EXPECT_NE(a.raw_bytes(), b.raw_bytes());
  EXPECT_EQ(0, std::memcmp(a.raw_bytes(), b.raw_bytes(), a.file_size()));
  EXPECT_EQ(a.metadata().size(), b.metadata().size());
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    EXPECT_EQ(a.tensors()[i].name, b.tensors()[i].name);
    EXPECT_EQ(a.tensors()[i].offset, b.tensors()[i].offset);
  }
}

}  // namespace
}  // namespace tandem::gguf

namespace tandem::gguf {
namespace {

// The fuzz seed corpus doubles as regression inputs: valid_* must load, bad_*
// (and any crash-* reproducer added after a fuzzing find) must be refused cleanly.
TEST(GgufReader, FuzzCorpusFilesBehaveAsNamed) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(TANDEM_SOURCE_DIR) / "fuzz/corpus/gguf";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int valid = 0, bad = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool want_ok = name.rfind("valid_", 0) == 0;
    if (!want_ok && name.rfind("bad_", 0) != 0 && name.rfind("crash-", 0) != 0) continue;
    auto r = File::open(e.path().string());
    EXPECT_EQ(r.is_ok(), want_ok) << name << ": " << r.status().message();
    // Read into memory (--no-mmap): the same verdict and the same message.
    auto rr = File::open(e.path().string(), File::Load::kRead);
    EXPECT_EQ(rr.is_ok(), want_ok) << name << " (read): " << rr.status().message();
    if (!r.is_ok() && !rr.is_ok()) {
      EXPECT_EQ(r.status().message(), rr.status().message()) << name;
    }
    if (rr.is_ok()) {
      EXPECT_TRUE((*rr)->read_into_memory()) << name;
    }
    (want_ok ? valid : bad)++;
  }
  EXPECT_GE(valid, 3);
  EXPECT_GE(bad, 2);
}

}  // namespace
}  // namespace tandem::gguf
