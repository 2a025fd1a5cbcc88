// Context state files: the memory's own serialized bytes (versioned,
// checksummed, fingerprinted by the memory) wrapped with the token histories
// the context needs for replays.
//
// Layout (little endian):
//   "TNDCTX01" | u32 kind (1 = whole context, 2 = one sequence) | u32 n_hist
//   | u64 mem_len | mem bytes
//   | n_hist x { u64 count | count x (i32 pos, i32 token) }
//   | u64 n_snap | n_snap x { u64 id | u64 count | count x (i32 pos, i32 token) }   (kind 1 only)
//   | u64 FNV-1a 64 of everything before
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/context_impl.h"

namespace tandem {

using runtime::to_outcome;

namespace {

constexpr char kMagic[8] = {'T', 'N', 'D', 'C', 'T', 'X', '0', '1'};
constexpr uint32_t kWhole = 1, kOneSeq = 2;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

struct Writer {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void bytes(const std::vector<uint8_t>& v) { b.insert(b.end(), v.begin(), v.end()); }
  void history(const History& h) {
    put<uint64_t>(h.size());
    for (const auto& [p, t] : h) {
      put<int32_t>(p);
      put<int32_t>(t);
    }
  }
};

struct Reader {
  const uint8_t* p;
  size_t n, off = 0;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (n - off < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
  bool history(History& h) {
    const auto count = get<uint64_t>();
    if (!ok || count > (n - off) / 8) return ok = false;
    h.resize(count);
    for (auto& e : h) {
      e.first = get<int32_t>();
      e.second = get<int32_t>();
    }
    return ok;
  }
};

Status write_file(const std::string& path, std::vector<uint8_t> bytes) {
  const uint64_t sum = fnv1a(bytes.data(), bytes.size());
  const auto* sp = reinterpret_cast<const uint8_t*>(&sum);
  bytes.insert(bytes.end(), sp, sp + 8);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return TANDEM_ERR(kIo, "{}: cannot create", tmp);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) return TANDEM_ERR(kIo, "{}: write failed", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return TANDEM_ERR(kIo, "{}: rename from {} failed: {}", path, tmp, ec.message());
  return Status::ok();
}

// Reads, checks magic, kind and checksum; returns the payload after the magic.
Result<std::vector<uint8_t>> read_file(const std::string& path, uint32_t want_kind) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return TANDEM_ERR(kNotFound, "{}: cannot open state file", path);
  const auto size = static_cast<size_t>(f.tellg());
  std::vector<uint8_t> b(size);
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(size)))
    return TANDEM_ERR(kIo, "{}: read failed", path);
  if (size < sizeof(kMagic) + 4 + 8 || std::memcmp(b.data(), kMagic, sizeof(kMagic)) != 0)
    return TANDEM_ERR(kCorrupt, "{}: not a Tandem context state file (bad magic or truncated)", path);
  uint64_t sum;
  std::memcpy(&sum, b.data() + size - 8, 8);
  if (fnv1a(b.data(), size - 8) != sum)
    return TANDEM_ERR(kCorrupt, "{}: checksum mismatch (truncated or corrupt)", path);
  uint32_t kind;
  std::memcpy(&kind, b.data() + sizeof(kMagic), 4);
  if (kind != want_kind)
    return TANDEM_ERR(kInvalidArgument, "{}: holds {} but {} was asked for", path,
                      kind == kWhole ? "a whole context" : "one sequence",
                      want_kind == kWhole ? "a whole context" : "one sequence");
  b.resize(size - 8);
  b.erase(b.begin(), b.begin() + sizeof(kMagic) + 4);
  return b;
}

}  // namespace

Outcome Context::save(const std::string& path) const {
  const Impl& I = *impl_;
  auto mem = I.mem->serialize(I.fingerprint);
  if (!mem) return to_outcome(mem.status());
  Writer w;
  w.b.insert(w.b.end(), kMagic, kMagic + sizeof(kMagic));
  w.put<uint32_t>(kWhole);
  w.put<uint32_t>(static_cast<uint32_t>(I.hist.size()));
  w.put<uint64_t>(mem->size());
  w.bytes(*mem);
  for (const auto& h : I.hist) w.history(h);
  w.put<uint64_t>(I.snap_hist.size());
  for (const auto& [id, h] : I.snap_hist) {
    w.put<uint64_t>(id);
    w.history(h);
  }
  return to_outcome(write_file(path, std::move(w.b)));
}

Outcome Context::load(const std::string& path) {
  Impl& I = *impl_;
  auto b = read_file(path, kWhole);
  if (!b) return to_outcome(b.status());
  Reader r{b->data(), b->size()};
  const auto n_hist = r.get<uint32_t>();
  const auto mem_len = r.get<uint64_t>();
  if (!r.ok || n_hist != I.hist.size() || mem_len > r.n - r.off)
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("{}: made for {} sequences, this context has {} (or truncated)", path, n_hist,
                               I.hist.size()));
  std::span<const uint8_t> mem(b->data() + r.off, mem_len);
  r.off += mem_len;
  std::vector<History> hist(n_hist);
  for (auto& h : hist)
    if (!r.history(h)) return Outcome(Errc::kCorrupt, fmt::format("{}: truncated token histories", path));
  std::map<uint64_t, History> snaps;
  const auto n_snap = r.get<uint64_t>();
  for (uint64_t i = 0; r.ok && i < n_snap; ++i) {
    const auto id = r.get<uint64_t>();
    if (!r.history(snaps[id])) break;
  }
  if (!r.ok || r.off != r.n) return Outcome(Errc::kCorrupt, fmt::format("{}: malformed snapshot histories", path));
  // Everything parsed: only now touch memory (deserialize leaves it unchanged on error).
  if (Status st = I.mem->deserialize(mem, I.fingerprint); !st)
    return Outcome(runtime::to_errc(st.code()), fmt::format("{}: {}", path, st.message()));
  I.hist = std::move(hist);
  I.snap_hist = std::move(snaps);
  I.prune_snapshot_histories();
  I.logits.clear();
  I.output_rows.clear();
  return Outcome();
}

Outcome Context::save_seq(const std::string& path, int seq) const {
  const Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "save_seq"); !st) return to_outcome(st);
  auto mem = I.mem->serialize_seq(seq, I.fingerprint);
  if (!mem) return to_outcome(mem.status());
  Writer w;
  w.b.insert(w.b.end(), kMagic, kMagic + sizeof(kMagic));
  w.put<uint32_t>(kOneSeq);
  w.put<uint32_t>(1);
  w.put<uint64_t>(mem->size());
  w.bytes(*mem);
  w.history(I.hist[seq]);
  return to_outcome(write_file(path, std::move(w.b)));
}

Outcome Context::load_seq(const std::string& path, int seq) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "load_seq"); !st) return to_outcome(st);
  auto b = read_file(path, kOneSeq);
  if (!b) return to_outcome(b.status());
  Reader r{b->data(), b->size()};
  const auto n_hist = r.get<uint32_t>();
  const auto mem_len = r.get<uint64_t>();
  if (!r.ok || n_hist != 1 || mem_len > r.n - r.off)
    return Outcome(Errc::kCorrupt, fmt::format("{}: malformed sequence state file", path));
  std::span<const uint8_t> mem(b->data() + r.off, mem_len);
  r.off += mem_len;
  History h;
  if (!r.history(h) || r.off != r.n)
    return Outcome(Errc::kCorrupt, fmt::format("{}: truncated token history", path));
  if (Status st = I.mem->deserialize_seq(mem, seq, I.fingerprint); !st)
    return Outcome(runtime::to_errc(st.code()), fmt::format("{}: {}", path, st.message()));
  I.hist[seq] = std::move(h);
  return Outcome();
}

}  // namespace tandem
