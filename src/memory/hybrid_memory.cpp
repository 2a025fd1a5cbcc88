// HybridMemory: construction, the decode transaction (apply/commit/rollback),
// the views handed to the forward pass, and accounting.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/env.h"
#include "memory/hybrid_impl.h"

namespace tandem::memory {

namespace {

Status validate(const std::vector<LayerSpec>& layers, const MemoryOptions& o) {
  bool attn = false;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerSpec& L = layers[l];
    if (has_attention(L.kind)) {
      attn = true;
      const AttentionSpec& a = L.attn;
      if (a.n_kv_heads <= 0 || a.head_dim_k <= 0 || a.head_dim_v <= 0)
        return TANDEM_ERR(kInvalidArgument,
                          "layer {}: attention spec needs n_kv_heads, head_dim_k, head_dim_v > 0 (got {}, {}, {})",
                          l, a.n_kv_heads, a.head_dim_k, a.head_dim_v);
      if (a.rope && (a.rope->n_rot <= 0 || a.rope->n_rot > a.head_dim_k || a.rope->n_rot % 2 != 0))
        return TANDEM_ERR(kInvalidArgument, "layer {}: rope n_rot {} must be even and in (0, head_dim_k = {}]",
                          l, a.rope->n_rot, a.head_dim_k);
    }
    if (has_recurrent(L.kind)) {
      const RecurrentSpec& r = L.rec;
      if (r.conv_channels <= 0 || r.conv_width <= 0 || r.n_head <= 0 || r.head_dim <= 0 || r.d_state <= 0)
        return TANDEM_ERR(kInvalidArgument,
                          "layer {}: recurrent spec needs conv_channels, conv_width, n_head, head_dim, d_state > 0 "
                          "(got {}, {}, {}, {}, {})",
                          l, r.conv_channels, r.conv_width, r.n_head, r.head_dim, r.d_state);
    }
  }
  if (o.n_seq_max < 1 || o.n_seq_max > kMaxSeq)
    return TANDEM_ERR(kInvalidArgument, "n_seq_max {} out of range [1, {}]", o.n_seq_max, kMaxSeq);
  if (attn && o.n_ctx < 1)
    return TANDEM_ERR(kInvalidArgument, "n_ctx {} must be >= 1 for a model with attention layers", o.n_ctx);
  if (o.n_ubatch < 1) return TANDEM_ERR(kInvalidArgument, "n_ubatch {} must be >= 1", o.n_ubatch);
  if (o.kv_type != DType::F16 && o.kv_type != DType::F32)
    return TANDEM_ERR(kInvalidArgument, "kv_type {} unsupported (F16 or F32)", dtype_name(o.kv_type));
  if (o.snapshot_slots < 0)
    return TANDEM_ERR(kInvalidArgument, "snapshot_slots {} must be >= 0", o.snapshot_slots);
  if (o.state_type != DType::F32 && o.state_type != DType::BF16)
    return TANDEM_ERR(kInvalidArgument, "state_type {} unsupported (F32 or BF16)", dtype_name(o.state_type));
  return Status::ok();
}

// TANDEM_DOUBLE_BUFFER=0 (read once) turns double buffering off: decode steps
// then back up each state and update it in place, as before, so the two can
// be compared in one binary (docs/benchmarks.md).
bool double_buffering() {
  static const bool on = env_switch_on("TANDEM_DOUBLE_BUFFER");
  return on;
}

size_t meta_bytes(const std::vector<LayerSpec>& layers, const MemoryOptions& o) {
  bool attn = false;
  for (const auto& l : layers) attn = attn || has_attention(l.kind);
  return (attn ? size_t(o.n_ctx) * (sizeof(Cell) + sizeof(uint64_t)) : 0) +
         size_t(o.n_seq_max) * (sizeof(RecurrentStore::SeqState) + sizeof(int32_t)) +
         size_t(o.snapshot_slots) * sizeof(Snapshot);
}

}  // namespace

// ------------------------------------------------------------------ create

HybridMemory::HybridMemory(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HybridMemory::~HybridMemory() = default;

Result<std::unique_ptr<HybridMemory>> HybridMemory::create(std::vector<LayerSpec> layers,
                                                           const MemoryOptions& opts) {
  TANDEM_TRY(validate(layers, opts));
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  impl->kv = KvStore(layers, opts.n_ctx, opts.n_seq_max, opts.kv_type);
  impl->rec = RecurrentStore(layers, opts.n_seq_max, opts.state_type == DType::BF16,
                             RecurrentStore::n_slots_for(opts.n_seq_max) - opts.n_seq_max);
  impl->snaps = SnapshotPool(opts.snapshot_slots, impl->rec.slot_bytes());
  impl->conv_ptrs.resize(impl->rec.n_layers());
  impl->ssm_ptrs.resize(impl->rec.n_layers());
  impl->ssm_src_ptrs.resize(impl->rec.n_layers());
  impl->layers = std::move(layers);
  return std::unique_ptr<HybridMemory>(new HybridMemory(std::move(impl)));
}

Result<MemoryBytes> HybridMemory::estimate(const std::vector<LayerSpec>& layers, const MemoryOptions& opts) {
  TANDEM_TRY(validate(layers, opts));
  MemoryBytes b;
  const size_t cell = KvStore::cell_bytes_for(layers, opts.kv_type);
  const size_t slot = RecurrentStore::slot_bytes_for(layers, opts.state_type == DType::BF16);
  b.attention = cell * (cell ? size_t(opts.n_ctx) : 0);
  b.recurrent = slot * size_t(RecurrentStore::n_slots_for(opts.n_seq_max));
  b.snapshots = slot * opts.snapshot_slots;
  b.metadata = meta_bytes(layers, opts);
  return b;
}

const std::vector<LayerSpec>& HybridMemory::layers() const { return impl_->layers; }
const MemoryOptions& HybridMemory::options() const { return impl_->opts; }
bool HybridMemory::has_attention() const { return impl_->has_attn(); }
bool HybridMemory::has_recurrent() const { return impl_->has_rec(); }
bool HybridMemory::in_transaction() const { return impl_->tx_plan != 0; }

Status HybridMemory::Impl::check_idle(const char* op) const {
  if (tx_plan != 0)
    return TANDEM_ERR(kInvalidArgument, "{}: a decode is in progress (commit or roll back first)", op);
  return Status::ok();
}

Status HybridMemory::Impl::check_seq(int s, const char* op) const {
  if (s < 0 || s >= opts.n_seq_max)
    return TANDEM_ERR(kInvalidArgument, "{}: sequence id {} out of range [0, {})", op, s, opts.n_seq_max);
  return Status::ok();
}

// ------------------------------------------------------------------ decode

Result<Plan> HybridMemory::plan(const Batch& batch) const { return build_plan(*impl_, batch); }

Result<Applied> HybridMemory::apply(const Plan& plan, int i) {
  Impl& m = *impl_;
  if (i < 0 || i >= plan.n_ubatch())
    return TANDEM_ERR(kInvalidArgument, "apply: micro-batch {} out of range [0, {})", i, plan.n_ubatch());
  if (i == 0) {
    if (m.tx_plan != 0) return TANDEM_ERR(kInvalidArgument, "apply: another decode is in progress");
    if (plan.generation != m.generation)
      return TANDEM_ERR(kInvalidArgument, "apply: stale plan (memory changed since plan() was called)");
    m.tx_plan = plan.plan_id;
    m.tx_next = 0;
    m.kv_backed_up.clear();
    m.kv_backups.clear();
    if (m.has_attn()) m.kv.cells().begin_journal();
    if (m.has_rec()) m.rec.begin_journal();
    m.bump();
  } else if (m.tx_plan != plan.plan_id || i != m.tx_next) {
    return TANDEM_ERR(kInvalidArgument, "apply: micro-batch {} out of order (expected {} of the open plan)", i,
                      m.tx_next);
  }
  m.flush_staging();  // the previous micro-batch's bf16 state, if the caller did not end it
  const PlannedUBatch& P = plan.ubatches[i];
  const int n = P.ub.n_tokens;

  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    m.dst_cells.assign(n, -1);
    std::vector<SeqSet> row_sets(n);
    std::vector<int32_t> pos(n);
    int cursor = 0;
    for (int r = 0; r < n; ++r) {
      for (int s : P.row_seqs[r]) row_sets[r].set(s);
      pos[r] = static_cast<int32_t>(P.ub.pos[r]);
      int c = cells.find(P.row_seqs[r][0], pos[r]);
      if (c >= 0) {
        // Replay: the cell exists and is rewritten in place; keep its old rows.
        if (m.kv_backed_up.insert(c).second) {
          std::vector<uint8_t> rows(m.kv.cell_bytes());
          m.kv.read_cell(c, rows.data());
          m.kv_backups.emplace_back(c, std::move(rows));
        }
      } else {
        c = cells.find_free(cursor);
        if (c < 0) {
          m.undo_tx();
          return TANDEM_ERR(kOutOfMemory, "apply: no free attention cell for batch row {} (pos {})", P.src_row[r],
                            pos[r]);
        }
        cells.occupy(c, pos[r], row_sets[r]);
        cursor = c + 1;
      }
      m.dst_cells[r] = c;
    }
    m.n_kv = cells.used_end();
    m.mask.resize(size_t(n) * m.n_kv);
    m.kv.build_mask(row_sets, pos, m.n_kv, m.mask.data());
  }

  if (m.has_rec()) {
    const int T = P.ub.n_seq_tokens;
    m.n_streams = P.ub.n_seqs;
    const bool bf16 = m.rec.bf16();
    const size_t sf = m.rec.slot_floats();
    if (bf16) {  // sized before any pointer into it is taken
      if (m.staging.size() < size_t(m.n_streams) * sf) m.staging.resize(size_t(m.n_streams) * sf);
      m.staged_slots.assign(m.n_streams, -1);
    }
    for (int li = 0; li < m.rec.n_layers(); ++li) {
      m.conv_ptrs[li].assign(m.n_streams, nullptr);
      m.ssm_ptrs[li].assign(m.n_streams, nullptr);
      m.ssm_src_ptrs[li].assign(m.n_streams, nullptr);
    }
    m.copy_src.assign(m.n_streams, -1);
    m.copy_dst.assign(m.n_streams, -1);
    m.copied.assign(size_t(m.rec.n_layers()) * m.n_streams, 1);
    for (int j = 0; j < m.n_streams; ++j) {
      const std::vector<int32_t>& S = P.stream_seqs[j];
      const int32_t first = static_cast<int32_t>(P.ub.pos[size_t(j) * T]);
      const int32_t last = static_cast<int32_t>(P.ub.pos[size_t(j) * T + T - 1]);
      const int slot = m.rec.seq(S[0]).slot;
      int y = slot;
      int src = slot;  // where the stream's state is read from (y unless double-buffered)
      if (slot < 0) {  // fresh: a zeroed slot shared by the whole stream
        y = m.rec.alloc_slot();
        if (y < 0) {
          m.undo_tx();
          return TANDEM_ERR(kInternal, "apply: no free recurrent slot for sequence {}", S[0]);
        }
        m.rec.zero_slot(y);
        src = y;
        for (int s : S) {
          m.rec.attach(s, y);
          m.rec.seq_mut(s).pos_min = first;
        }
      } else if (m.rec.refcount(slot) > static_cast<int32_t>(S.size())) {
        // Shared with sequences outside this stream: copy on first write.
        y = m.rec.alloc_slot();
        if (y < 0) {
          m.undo_tx();
          return TANDEM_ERR(kInternal, "apply: no free recurrent slot to copy sequence {}'s state", S[0]);
        }
        // Nothing is copied here: the scan reads the shared state from `slot`
        // (StateView::ssm_src) and the conv state is copied per layer.
        m.rec.move_seqs(S, y);
      } else if (const int y2 = (m.rec.fresh_in_journal(slot) || !double_buffering()) ? -1 : m.rec.alloc_slot();
                 y2 >= 0) {
        // Double buffering: the stream's new state goes to the free slot y2
        // and `slot` stays as it was — the rollback copy, at no cost. The
        // state crosses memory once (read from slot, written to y2) instead
        // of being copied to a backup and then updated in place.
        m.rec.hold_slot(slot);
        m.rec.move_seqs(S, y2);
        y = y2;
      } else {
        m.rec.backup_slot(slot);  // written in place: keep the pre-call state for rollback
      }
      if (src != y && !bf16) {  // f32: the scan reads src; the rest is copied per layer (copy_layer_states)
        m.copy_src[j] = src;
        m.copy_dst[j] = y;
        for (int li = 0; li < m.rec.n_layers(); ++li) m.copied[size_t(li) * m.n_streams + j] = 0;
      }
      for (int s : S) m.rec.seq_mut(s).pos_max = last;
      if (bf16) {
        // Widen (exactly) into the stream's staging row; the kernels update it
        // in f32 and end_ubatch() narrows it back into slot y.
        float* row = m.staging.data() + size_t(j) * sf;
        m.rec.read_slot(src, row);
        m.staged_slots[j] = y;
        for (int li = 0; li < m.rec.n_layers(); ++li) {
          const RecurrentStore::Layer& L = m.rec.layer(li);
          m.conv_ptrs[li][j] = row;
          m.ssm_ptrs[li][j] = row + L.conv_elems;
          m.ssm_src_ptrs[li][j] = m.ssm_ptrs[li][j];  // widened copy: updated in place
          row += L.conv_elems + L.ssm_elems;
        }
      } else {
        for (int li = 0; li < m.rec.n_layers(); ++li) {
          m.conv_ptrs[li][j] = m.rec.conv(li, y);
          m.ssm_ptrs[li][j] = m.rec.ssm(li, y);
          m.ssm_src_ptrs[li][j] = m.rec.ssm(li, src);  // == the destination unless double-buffered
        }
      }
    }
    m.staging_pending = bf16;
  }
  m.tx_next = i + 1;
  return Applied{&P.ub, &m.layer_memory};
}

void HybridMemory::Impl::copy_layer_states(int li, bool with_ssm) {
  RecurrentStore::Layer& L = rec.layer(li);
  for (int j = 0; j < n_streams; ++j) {
    uint8_t& done = copied[size_t(li) * n_streams + j];
    if (done) continue;
    done = 1;
    if (L.conv_elems) std::memcpy(rec.conv(li, copy_dst[j]), rec.conv(li, copy_src[j]), L.conv_elems * sizeof(float));
    if (with_ssm) std::memcpy(rec.ssm(li, copy_dst[j]), rec.ssm(li, copy_src[j]), L.ssm_elems * sizeof(float));
  }
}

void HybridMemory::Impl::finish_copies() {
  for (int li = 0; li < rec.n_layers(); ++li) copy_layer_states(li, /*with_ssm=*/true);
}

void HybridMemory::Impl::flush_staging() {
  finish_copies();  // f32: layers the forward pass did not ask for (none in a full pass)
  if (!staging_pending) return;
  staging_pending = false;
  const size_t sf = rec.slot_floats();
  for (size_t j = 0; j < staged_slots.size(); ++j)
    if (staged_slots[j] >= 0) rec.write_slot(staged_slots[j], staging.data() + j * sf);
}

void HybridMemory::end_ubatch() {
  if (impl_->tx_plan != 0) impl_->flush_staging();
}

void HybridMemory::Impl::undo_tx() {
  staging_pending = false;  // the states are rolled back: drop what the forward pass wrote
  std::fill(copied.begin(), copied.end(), uint8_t{1});  // and the copies not made yet
  if (tx_plan == 0) return;
  if (has_attn()) {
    kv.cells().undo_journal();
    for (auto& [c, rows] : kv_backups) kv.write_cell(c, rows.data());
  }
  if (has_rec()) rec.undo_journal();
  kv_backups.clear();
  kv_backed_up.clear();
  tx_plan = 0;
  tx_next = 0;
  bump();
}

void HybridMemory::commit(const Plan& plan) {
  Impl& m = *impl_;
  if (m.tx_plan == 0 || m.tx_plan != plan.plan_id) return;
  m.flush_staging();
  if (m.has_attn()) m.kv.cells().end_journal();
  if (m.has_rec()) m.rec.end_journal();
  m.kv_backups.clear();
  m.kv_backed_up.clear();
  m.tx_plan = 0;
  m.tx_next = 0;
  m.bump();
}

void HybridMemory::rollback(const Plan& plan) {
  if (impl_->tx_plan != 0 && impl_->tx_plan == plan.plan_id) impl_->undo_tx();
}

KvView AppliedLayerMemory::kv(int layer) {
  KvView v;
  const int li = m_->kv.local_index(layer);
  if (li < 0) return v;
  KvStore::Layer& L = m_->kv.layer(li);
  v.type = m_->kv.type();
  v.k = L.k.data();
  v.v = L.v.data();
  v.k_row_bytes = L.k_row;
  v.v_row_bytes = L.v_row;
  v.dst_cells = m_->dst_cells.data();
  v.n_kv = m_->n_kv;
  v.mask = m_->mask.data();
  return v;
}

StateView AppliedLayerMemory::state(int layer) {
  StateView v;
  const int li = m_->rec.local_index(layer);
  if (li < 0) return v;
  // Double-buffered streams: the conv state is copied now (small, and in cache
  // for the conv kernel); the SSM state is read by the scan from its old slot.
  m_->copy_layer_states(li, /*with_ssm=*/false);
  v.n_seqs = m_->n_streams;
  v.conv = m_->conv_ptrs[li].data();
  v.ssm = m_->ssm_ptrs[li].data();
  v.ssm_src = m_->ssm_src_ptrs[li].data();
  return v;
}

// ------------------------------------------------------------------ accounting

MemoryBytes HybridMemory::bytes() const {
  const Impl& m = *impl_;
  MemoryBytes b;
  b.attention = m.has_attn() ? m.kv.cell_bytes() * size_t(m.kv.n_ctx()) : 0;
  b.recurrent = m.rec.slot_bytes() * size_t(m.rec.n_slots());
  b.snapshots = m.snaps.state_bytes() * size_t(m.snaps.capacity());
  b.metadata = meta_bytes(m.layers, m.opts);
  return b;
}

SeqBytes HybridMemory::seq_bytes(int s) const {
  const Impl& m = *impl_;
  SeqBytes b;
  if (s < 0 || s >= m.opts.n_seq_max) return b;
  if (m.has_attn()) {
    b.n_cells = m.kv.cells().n_cells_of(s);
    b.attention = m.kv.cell_bytes() * size_t(b.n_cells);
  }
  if (m.has_rec() && m.rec.seq(s).slot >= 0) b.recurrent = m.rec.slot_bytes();
  return b;
}

int HybridMemory::n_cells_used() const { return impl_->has_attn() ? impl_->kv.cells().n_used() : 0; }
int HybridMemory::n_slots_used() const { return impl_->has_rec() ? impl_->rec.n_slots_used() : 0; }

}  // namespace tandem::memory
