// Memory state files: the whole memory or one sequence, snapshots included.
// Loading parses and validates everything into temporaries (views into the
// input bytes) before the first change to memory, so a truncated, corrupt or
// foreign file leaves memory exactly as it was. Format: state_format.h.
//
// Whole-memory sections:
//   OPTS  i32 n_ctx | i32 n_seq_max
//   CELL  u32 count | count × (u32 cell, i32 pos, i32 pins, u64 seq words[kMaxSeq/64])
//   KVDT  count × cell bytes (per attention layer: K row, V row), cells in CELL order
//   RECS  u32 n_slots | i32 refcount[n_slots] | u32 n_seq | n_seq × (i32 slot, i32 pos_min, i32 pos_max)
//         | per used slot (ascending): slot floats
//   SNAP  u64 next_id | u64 clock | u32 count | count × (u64 id, i32 pos, i32 origin, u8 has_state,
//         u64 last_use, u64 valid words[], u32 n_cells, u32 cells[n_cells], [slot floats])
// Sequence sections:
//   SATT  u32 n | i32 pos[n] (ascending) | n × cell bytes
//   SREC  u8 has_state | i32 pos_min | i32 pos_max | [slot floats]
//   SSNP  u32 count | count × (i32 pos, i32 origin, u8 has_state, [slot floats]), oldest first
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "memory/hybrid_impl.h"
#include "memory/state_format.h"

namespace tandem::memory {

using state::Reader;
using state::Writer;

namespace {

constexpr int kSeqWords = kMaxSeq / 64;
constexpr uint32_t kOpts = state::tag("OPTS"), kCell = state::tag("CELL"), kKvdt = state::tag("KVDT"),
                   kRecs = state::tag("RECS"), kSnap = state::tag("SNAP"), kSatt = state::tag("SATT"),
                   kSrec = state::tag("SREC"), kSsnp = state::tag("SSNP"), kStyp = state::tag("STYP");

// Recurrent state storage type recorded in a file (section STYP: u32). Files
// without the section were written before bf16 state existed: f32.
constexpr uint32_t kStateF32 = 0, kStateBf16 = 1;

void put_state_type(state::FileBuilder& fb, const RecurrentStore& rec) {
  std::vector<uint8_t> buf;
  Writer w(buf);
  w.put<uint32_t>(rec.bf16() ? kStateBf16 : kStateF32);
  fb.section(kStyp, buf);
}

// The file's state type must be the memory's: slot bytes are stored as is.
Status check_state_type(const state::ParsedFile& pf, const RecurrentStore& rec) {
  uint32_t t = kStateF32;
  if (const auto* sec = pf.find(kStyp)) {
    Reader r(*sec);
    if (!r.get(t) || r.remaining() || (t != kStateF32 && t != kStateBf16))
      return TANDEM_ERR(kCorrupt, "memory state: corrupt section STYP (bad recurrent state type)");
  }
  const uint32_t want = rec.bf16() ? kStateBf16 : kStateF32;
  if (t != want)
    return TANDEM_ERR(kInvalidArgument,
                      "memory state: the file stores recurrent state as {}, this context uses --state-type {} "
                      "(create the context with the same state type to load it)",
                      t == kStateBf16 ? "bf16" : "f32", want == kStateBf16 ? "bf16" : "f32");
  return Status::ok();
}

void put_set(Writer& w, const SeqSet& s) {
  for (int k = 0; k < kSeqWords; ++k) {
    uint64_t word = 0;
    for (int b = 0; b < 64; ++b)
      if (s.test(k * 64 + b)) word |= uint64_t(1) << b;
    w.put<uint64_t>(word);
  }
}

bool get_set(Reader& r, SeqSet& s, int n_seq_max) {
  s.reset();
  for (int k = 0; k < kSeqWords; ++k) {
    uint64_t word = 0;
    if (!r.get(word)) return false;
    for (int b = 0; b < 64; ++b) {
      if (!(word >> b & 1)) continue;
      if (k * 64 + b >= n_seq_max) return false;
      s.set(k * 64 + b);
    }
  }
  return true;
}


Status corrupt(const char* section, const char* what) {
  return TANDEM_ERR(kCorrupt, "memory state: section {}: {}", section, what);
}

Status write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return TANDEM_ERR(kIo, "cannot create {}", tmp);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return TANDEM_ERR(kIo, "cannot write {}", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return TANDEM_ERR(kIo, "cannot rename {} to {}", tmp, path);
  }
  return Status::ok();
}

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return TANDEM_ERR(kNotFound, "cannot open memory state file {}", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return TANDEM_ERR(kIo, "cannot read {}", path);
  return bytes;
}

}  // namespace

uint64_t geometry_hash(const std::vector<LayerSpec>& layers, DType kv_type) {
  std::vector<int64_t> v;
  v.push_back(static_cast<int64_t>(layers.size()));
  v.push_back(static_cast<int64_t>(kv_type));
  for (const auto& l : layers) {
    v.push_back(static_cast<int>(l.kind));
    if (has_attention(l.kind)) {
      v.insert(v.end(), {l.attn.n_kv_heads, l.attn.head_dim_k, l.attn.head_dim_v, l.attn.rope.has_value()});
      if (l.attn.rope) {
        uint32_t fb, fs;
        std::memcpy(&fb, &l.attn.rope->freq_base, 4);
        std::memcpy(&fs, &l.attn.rope->freq_scale, 4);
        v.insert(v.end(), {static_cast<int>(l.attn.rope->style), l.attn.rope->n_rot, fb, fs});
      }
    }
    if (has_recurrent(l.kind))
      v.insert(v.end(), {l.rec.conv_channels, l.rec.conv_width, l.rec.n_head, l.rec.head_dim, l.rec.d_state});
  }
  return state::fnv1a(v.data(), v.size() * sizeof(int64_t));
}

// ------------------------------------------------------------------ whole memory

Result<std::vector<uint8_t>> HybridMemory::serialize(std::string_view fingerprint) const {
  const Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("serialize"));
  state::FileBuilder fb(state::kKindWhole, geometry_hash(m.layers, m.opts.kv_type), fingerprint);
  std::vector<uint8_t> buf;
  {
    Writer w(buf);
    w.put<int32_t>(m.has_attn() ? m.kv.n_ctx() : 0);
    w.put<int32_t>(m.opts.n_seq_max);
    fb.section(kOpts, buf);
  }
  std::vector<int32_t> used;
  if (m.has_attn())
    for (int c = 0; c < m.kv.n_ctx(); ++c)
      if (!m.kv.cells()[c].is_free()) used.push_back(c);
  buf.clear();
  {
    Writer w(buf);
    w.put<uint32_t>(static_cast<uint32_t>(used.size()));
    for (int32_t c : used) {
      const Cell& cell = m.kv.cells()[c];
      w.put<uint32_t>(static_cast<uint32_t>(c));
      w.put<int32_t>(cell.pos);
      w.put<int32_t>(cell.pins);
      put_set(w, cell.seq);
    }
    fb.section(kCell, buf);
  }
  buf.clear();
  {
    buf.resize(used.size() * m.kv.cell_bytes());
    for (size_t i = 0; i < used.size(); ++i) m.kv.read_cell(used[i], buf.data() + i * m.kv.cell_bytes());
    fb.section(kKvdt, buf);
  }
  buf.clear();
  {
    Writer w(buf);
    const int n_slots = m.has_rec() ? m.rec.n_slots() : 0;
    w.put<uint32_t>(static_cast<uint32_t>(n_slots));
    for (int i = 0; i < n_slots; ++i) w.put<int32_t>(m.rec.refcount(i));
    const int n_seq = m.has_rec() ? m.opts.n_seq_max : 0;
    w.put<uint32_t>(static_cast<uint32_t>(n_seq));
    for (int s = 0; s < n_seq; ++s) {
      w.put<int32_t>(m.rec.seq(s).slot);
      w.put<int32_t>(m.rec.seq(s).pos_min);
      w.put<int32_t>(m.rec.seq(s).pos_max);
    }
    std::vector<uint8_t> tmp(m.rec.slot_bytes());
    for (int i = 0; i < n_slots; ++i) {
      if (m.rec.refcount(i) == 0) continue;
      m.rec.read_slot_raw(i, tmp.data());
      w.bytes(tmp.data(), tmp.size());
    }
    fb.section(kRecs, buf);
  }
  buf.clear();
  {
    Writer w(buf);
    w.put<uint64_t>(m.snaps.next_id());
    w.put<uint64_t>(m.snaps.clock());
    w.put<uint32_t>(static_cast<uint32_t>(m.snaps.n_used()));
    for (int i = 0; i < m.snaps.capacity(); ++i) {
      if (!m.snaps.used(i)) continue;
      const Snapshot& sn = m.snaps.at(i);
      w.put<uint64_t>(sn.id);
      w.put<int32_t>(sn.pos);
      w.put<int32_t>(sn.origin);
      w.put<uint8_t>(sn.has_state ? 1 : 0);
      w.put<uint64_t>(sn.last_use);
      put_set(w, sn.valid);
      w.put<uint32_t>(static_cast<uint32_t>(sn.cells.size()));
      for (int32_t c : sn.cells) w.put<uint32_t>(static_cast<uint32_t>(c));
      if (sn.has_state) w.bytes(m.snaps.state(i), m.snaps.state_bytes());
    }
    fb.section(kSnap, buf);
  }
  put_state_type(fb, m.rec);
  return fb.finish();
}

Status HybridMemory::deserialize(std::span<const uint8_t> bytes, std::string_view fingerprint) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("load memory state"));
  TANDEM_ASSIGN_OR_RETURN(state::ParsedFile pf,
                          state::parse_file(bytes, state::kKindWhole, geometry_hash(m.layers, m.opts.kv_type),
                                            fingerprint));
  for (uint32_t t : {kOpts, kCell, kKvdt, kRecs, kSnap})
    if (!pf.find(t)) return TANDEM_ERR(kCorrupt, "memory state: a section is missing");
  TANDEM_TRY(check_state_type(pf, m.rec));
  const int n_ctx = m.has_attn() ? m.kv.n_ctx() : 0;
  const int n_seq_max = m.opts.n_seq_max;
  {
    Reader r(*pf.find(kOpts));
    int32_t f_ctx = 0, f_seq = 0;
    if (!r.get(f_ctx) || !r.get(f_seq) || r.remaining()) return corrupt("OPTS", "bad size");
    if (f_ctx != n_ctx || f_seq != n_seq_max)
      return TANDEM_ERR(kInvalidArgument,
                        "memory state: saved with n_ctx = {}, n_seq_max = {}; this memory has n_ctx = {}, "
                        "n_seq_max = {}",
                        f_ctx, f_seq, n_ctx, n_seq_max);
  }
  // ---- cells
  std::vector<Cell> cells(n_ctx);
  std::vector<int32_t> used;
  {
    Reader r(*pf.find(kCell));
    uint32_t count = 0;
    if (!r.get(count) || count > static_cast<uint32_t>(n_ctx)) return corrupt("CELL", "bad cell count");
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t c = 0;
      Cell cell;
      if (!r.get(c) || !r.get(cell.pos) || !r.get(cell.pins) || !get_set(r, cell.seq, n_seq_max))
        return corrupt("CELL", "truncated or bad sequence set");
      if (c >= static_cast<uint32_t>(n_ctx) || (!used.empty() && static_cast<int32_t>(c) <= used.back()))
        return corrupt("CELL", "cell index out of range or not ascending");
      if (cell.pos < 0 || cell.pins < 0 || cell.is_free()) return corrupt("CELL", "bad cell metadata");
      cells[c] = cell;
      used.push_back(static_cast<int32_t>(c));
    }
    if (r.remaining()) return corrupt("CELL", "trailing bytes");
  }
  const std::span<const uint8_t> kv = *pf.find(kKvdt);
  if (kv.size() != used.size() * m.kv.cell_bytes()) return corrupt("KVDT", "size does not match the cell count");
  // ---- recurrent
  const size_t slot_bytes = m.rec.slot_bytes();
  std::vector<int32_t> rc;
  std::vector<RecurrentStore::SeqState> seqs(n_seq_max);
  std::vector<std::pair<int, std::span<const uint8_t>>> slot_data;
  {
    Reader r(*pf.find(kRecs));
    uint32_t n_slots = 0, n_seq = 0;
    const uint32_t want_slots = m.has_rec() ? m.rec.n_slots() : 0;
    if (!r.get(n_slots) || n_slots != want_slots) return corrupt("RECS", "slot count differs");
    rc.resize(n_slots);
    for (auto& x : rc)
      if (!r.get(x) || x < 0) return corrupt("RECS", "bad refcount");
    if (!r.get(n_seq) || n_seq != (m.has_rec() ? static_cast<uint32_t>(n_seq_max) : 0u))
      return corrupt("RECS", "sequence count differs");
    std::vector<int32_t> count(n_slots, 0);
    for (uint32_t s = 0; s < n_seq; ++s) {
      auto& st = seqs[s];
      if (!r.get(st.slot) || !r.get(st.pos_min) || !r.get(st.pos_max)) return corrupt("RECS", "truncated");
      if (st.slot < -1 || st.slot >= static_cast<int32_t>(n_slots)) return corrupt("RECS", "slot out of range");
      if (st.slot < 0 ? (st.pos_min != -1 || st.pos_max != -1) : (st.pos_min < 0 || st.pos_min > st.pos_max))
        return corrupt("RECS", "bad positions");
      if (st.slot >= 0) ++count[st.slot];
    }
    if (count != rc) return corrupt("RECS", "refcounts do not match the sequences");
    for (uint32_t i = 0; i < n_slots; ++i) {
      if (rc[i] == 0) continue;
      std::span<const uint8_t> d;
      if (!r.view(slot_bytes, d)) return corrupt("RECS", "truncated state data");
      slot_data.emplace_back(static_cast<int>(i), d);
    }
    if (r.remaining()) return corrupt("RECS", "trailing bytes");
  }
  // ---- snapshots
  std::vector<Snapshot> snaps;
  std::vector<std::span<const uint8_t>> snap_states;
  uint64_t next_id = 0, clock = 0;
  {
    Reader r(*pf.find(kSnap));
    uint32_t count = 0;
    if (!r.get(next_id) || !r.get(clock) || !r.get(count)) return corrupt("SNAP", "truncated");
    if (count > static_cast<uint32_t>(m.snaps.capacity()))
      return TANDEM_ERR(kOutOfMemory, "memory state: {} snapshots saved, this memory's pool holds {}", count,
                        m.snaps.capacity());
    std::vector<int32_t> pins(n_ctx, 0);
    for (uint32_t i = 0; i < count; ++i) {
      Snapshot sn;
      uint8_t has = 0;
      uint32_t nc = 0;
      if (!r.get(sn.id) || !r.get(sn.pos) || !r.get(sn.origin) || !r.get(has) || !r.get(sn.last_use) ||
          !get_set(r, sn.valid, n_seq_max) || !r.get(nc))
        return corrupt("SNAP", "truncated");
      if (sn.id == 0 || sn.id >= next_id || sn.last_use > clock || sn.pos < 0 || has > 1 ||
          (has == 1) != m.has_rec() || nc > static_cast<uint32_t>(n_ctx))
        return corrupt("SNAP", "bad snapshot header");
      for (const auto& o : snaps)
        if (o.id == sn.id) return corrupt("SNAP", "duplicate snapshot id");
      sn.has_state = has == 1;
      for (uint32_t k = 0; k < nc; ++k) {
        uint32_t c = 0;
        if (!r.get(c)) return corrupt("SNAP", "truncated cell list");
        if (c >= static_cast<uint32_t>(n_ctx) || cells[c].is_free()) return corrupt("SNAP", "bad cell reference");
        ++pins[c];
        sn.cells.push_back(static_cast<int32_t>(c));
      }
      std::span<const uint8_t> d;
      if (sn.has_state && !r.view(slot_bytes, d)) return corrupt("SNAP", "truncated state data");
      snaps.push_back(std::move(sn));
      snap_states.push_back(d);
    }
    if (r.remaining()) return corrupt("SNAP", "trailing bytes");
    for (int c = 0; c < n_ctx; ++c)
      if (pins[c] != cells[c].pins) return corrupt("SNAP", "cell pins do not match the snapshots");
  }

  // ---- everything checked: commit
  if (m.has_attn()) {
    m.kv.cells().assign(std::move(cells));
    for (size_t i = 0; i < used.size(); ++i) m.kv.write_cell(used[i], kv.data() + i * m.kv.cell_bytes());
  }
  if (m.has_rec()) {
    m.rec.set_refcounts(rc);
    m.rec.set_seqs(seqs);
    for (auto& [slot, d] : slot_data) m.rec.write_slot_raw(slot, d.data());
  }
  m.snaps.clear(nullptr);
  for (size_t i = 0; i < snaps.size(); ++i) {
    if (snaps[i].has_state) std::memcpy(m.snaps.state(static_cast<int>(i)), snap_states[i].data(), slot_bytes);
    m.snaps.put(static_cast<int>(i), std::move(snaps[i]));
  }
  m.snaps.set_counters(next_id, clock);
  m.bump();
  return Status::ok();
}

// ------------------------------------------------------------------ one sequence

Result<std::vector<uint8_t>> HybridMemory::serialize_seq(int s, std::string_view fingerprint) const {
  const Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("serialize_seq"));
  TANDEM_TRY(m.check_seq(s, "serialize_seq"));
  state::FileBuilder fb(state::kKindSeq, geometry_hash(m.layers, m.opts.kv_type), fingerprint);
  std::vector<uint8_t> buf;
  {
    Writer w(buf);
    std::vector<int32_t> cs;
    if (m.has_attn())
      for (const auto& [p, c] : m.kv.cells().seq_cells(s)) cs.push_back(c);
    w.put<uint32_t>(static_cast<uint32_t>(cs.size()));
    for (int32_t c : cs) w.put<int32_t>(m.kv.cells()[c].pos);
    std::vector<uint8_t> row(m.kv.cell_bytes());
    for (int32_t c : cs) {
      m.kv.read_cell(c, row.data());
      w.bytes(row.data(), row.size());
    }
    fb.section(kSatt, buf);
  }
  buf.clear();
  std::vector<uint8_t> tmp(m.rec.slot_bytes());
  {
    Writer w(buf);
    const bool has = m.has_rec() && m.rec.seq(s).slot >= 0;
    w.put<uint8_t>(has ? 1 : 0);
    w.put<int32_t>(has ? m.rec.seq(s).pos_min : -1);
    w.put<int32_t>(has ? m.rec.seq(s).pos_max : -1);
    if (has) {
      m.rec.read_slot_raw(m.rec.seq(s).slot, tmp.data());
      w.bytes(tmp.data(), tmp.size());
    }
    fb.section(kSrec, buf);
  }
  buf.clear();
  {
    std::vector<int> idx;
    for (int i = 0; i < m.snaps.capacity(); ++i)
      if (m.snaps.used(i) && m.snaps.at(i).valid.test(s)) idx.push_back(i);
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return m.snaps.at(a).last_use < m.snaps.at(b).last_use; });
    Writer w(buf);
    w.put<uint32_t>(static_cast<uint32_t>(idx.size()));
    for (int i : idx) {
      const Snapshot& sn = m.snaps.at(i);
      w.put<int32_t>(sn.pos);
      w.put<int32_t>(sn.origin);
      w.put<uint8_t>(sn.has_state ? 1 : 0);
      if (sn.has_state) w.bytes(m.snaps.state(i), m.snaps.state_bytes());
    }
    fb.section(kSsnp, buf);
  }
  put_state_type(fb, m.rec);
  return fb.finish();
}

Status HybridMemory::deserialize_seq(std::span<const uint8_t> bytes, int dst, std::string_view fingerprint) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("load sequence state"));
  TANDEM_TRY(m.check_seq(dst, "load sequence state"));
  if (!seq_empty(dst))
    return TANDEM_ERR(kInvalidArgument, "load sequence state: sequence {} is not empty (seq_rm it first)", dst);
  TANDEM_ASSIGN_OR_RETURN(state::ParsedFile pf,
                          state::parse_file(bytes, state::kKindSeq, geometry_hash(m.layers, m.opts.kv_type),
                                            fingerprint));
  for (uint32_t t : {kSatt, kSrec, kSsnp})
    if (!pf.find(t)) return TANDEM_ERR(kCorrupt, "memory state: a section is missing");
  TANDEM_TRY(check_state_type(pf, m.rec));
  const size_t slot_bytes = m.rec.slot_bytes();
  // ---- attention cells
  std::vector<int32_t> pos;
  std::span<const uint8_t> kv;
  {
    Reader r(*pf.find(kSatt));
    uint32_t n = 0;
    if (!r.get(n) || (!m.has_attn() && n != 0) || n > r.remaining() / 4) return corrupt("SATT", "bad cell count");
    pos.resize(n);
    for (auto& p : pos)
      if (!r.get(p) || p < 0 || (&p != pos.data() && p < *(&p - 1))) return corrupt("SATT", "bad positions");
    if (!r.view(size_t(n) * m.kv.cell_bytes(), kv) || r.remaining()) return corrupt("SATT", "bad K/V size");
    if (n > 0 && static_cast<int>(n) > m.kv.cells().n_free())
      return TANDEM_ERR(kOutOfMemory, "load sequence state: needs {} attention cells, {} are free", n,
                        m.kv.cells().n_free());
  }
  // ---- recurrent state
  uint8_t has = 0;
  int32_t pmin = -1, pmax = -1;
  std::span<const uint8_t> rec;
  {
    Reader r(*pf.find(kSrec));
    if (!r.get(has) || !r.get(pmin) || !r.get(pmax) || has > 1 || (has && !m.has_rec()))
      return corrupt("SREC", "bad header");
    if (has ? (pmin < 0 || pmin > pmax) : (pmin != -1 || pmax != -1)) return corrupt("SREC", "bad positions");
    if ((has && !r.view(slot_bytes, rec)) || r.remaining()) return corrupt("SREC", "bad state size");
  }
  // ---- snapshots
  struct Snap { int32_t pos, origin; bool has; std::span<const uint8_t> state; };
  std::vector<Snap> snaps;
  {
    Reader r(*pf.find(kSsnp));
    uint32_t count = 0;
    if (!r.get(count) || count > r.remaining() / 9) return corrupt("SSNP", "bad count");
    for (uint32_t i = 0; i < count; ++i) {
      Snap sn{};
      uint8_t h = 0;
      if (!r.get(sn.pos) || !r.get(sn.origin) || !r.get(h) || h > 1 || (h == 1) != m.has_rec() || sn.pos < 0)
        return corrupt("SSNP", "bad snapshot header");
      sn.has = h == 1;
      if (sn.has && !r.view(slot_bytes, sn.state)) return corrupt("SSNP", "truncated state data");
      snaps.push_back(sn);
    }
    if (r.remaining()) return corrupt("SSNP", "trailing bytes");
  }

  // ---- commit
  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    SeqSet only;
    only.set(dst);
    int cursor = 0;
    for (size_t i = 0; i < pos.size(); ++i) {
      const int c = cells.find_free(cursor);
      cells.occupy(c, pos[i], only);
      m.kv.write_cell(c, kv.data() + i * m.kv.cell_bytes());
      cursor = c + 1;
    }
  }
  if (has) {
    const int y = m.rec.alloc_slot();
    m.rec.write_slot_raw(y, rec.data());
    m.rec.attach(dst, y);
    m.rec.seq_mut(dst).pos_min = pmin;
    m.rec.seq_mut(dst).pos_max = pmax;
  }
  // Keep the newest snapshots the pool can hold.
  const size_t skip = snaps.size() > size_t(m.snaps.capacity()) ? snaps.size() - m.snaps.capacity() : 0;
  for (size_t i = skip; i < snaps.size(); ++i) {
    CellTable& cells = m.kv.cells();
    const int idx = m.snaps.acquire(cells);
    Snapshot sn;
    sn.pos = snaps[i].pos;
    sn.origin = snaps[i].origin;
    sn.has_state = snaps[i].has;
    if (m.has_attn()) {
      for (const auto& [p, c] : cells.seq_cells(dst)) {
        if (p > sn.pos) break;
        sn.cells.push_back(c);
        cells.pin(c);
      }
    }
    if (sn.has_state) std::memcpy(m.snaps.state(idx), snaps[i].state.data(), slot_bytes);
    sn.valid.set(dst);
    m.snaps.install(idx, std::move(sn));
  }
  m.bump();
  return Status::ok();
}

// ------------------------------------------------------------------ files

Status HybridMemory::save_file(const std::string& path, std::string_view fingerprint) const {
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, serialize(fingerprint));
  return write_file(path, bytes);
}

Status HybridMemory::load_file(const std::string& path, std::string_view fingerprint) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(path));
  Status st = deserialize(bytes, fingerprint);
  if (!st) return Status(st.code(), fmt::format("{}: {}", path, st.message()));
  return st;
}

Status HybridMemory::save_seq_file(const std::string& path, int s, std::string_view fingerprint) const {
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, serialize_seq(s, fingerprint));
  return write_file(path, bytes);
}

Status HybridMemory::load_seq_file(const std::string& path, int dst, std::string_view fingerprint) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(path));
  Status st = deserialize_seq(bytes, dst, fingerprint);
  if (!st) return Status(st.code(), fmt::format("{}: {}", path, st.message()));
  return st;
}

}  // namespace tandem::memory
