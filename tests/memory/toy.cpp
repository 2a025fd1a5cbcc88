#include "toy.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/fp16.h"

namespace tandem::memory::toy {

namespace {

float md(double v) { return static_cast<float>(std::fmod(v, kMod)); }

float read_elem(DType t, const void* row, int j) {
  if (t == DType::F32) return static_cast<const float*>(row)[j];
  return fp16_to_f32(static_cast<const uint16_t*>(row)[j]);
}

void write_row(DType t, void* row, int n, float first, float second) {
  for (int j = 0; j < n; ++j) {
    const float v = j == 0 ? first : (j == 1 ? second : 0.0f);
    if (t == DType::F32) {
      static_cast<float*>(row)[j] = v;
    } else {
      static_cast<uint16_t*>(row)[j] = f32_to_fp16(v);
    }
  }
}

}  // namespace

void ToyModel::forward(const UBatch& ub, LayerMemory& mem, float* out) const {
  const int n = ub.n_tokens;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = md(ub.tokens[i] + 1.0);
  for (size_t l = 0; l < specs_.size(); ++l) {
    const LayerSpec& L = specs_[l];
    std::fill(y.begin(), y.end(), 0.0f);
    if (has_attention(L.kind)) {
      KvView kv = mem.kv(static_cast<int>(l));
      const int nk = L.attn.n_kv_heads * L.attn.head_dim_k, nv = L.attn.n_kv_heads * L.attn.head_dim_v;
      for (int i = 0; i < n; ++i) {
        const int c = kv.dst_cells[i];
        write_row(kv.type, static_cast<uint8_t*>(kv.k) + size_t(c) * kv.k_row_bytes, nk, x[i], float(l));
        write_row(kv.type, static_cast<uint8_t*>(kv.v) + size_t(c) * kv.v_row_bytes, nv, x[i], 0.0f);
      }
      for (int i = 0; i < n; ++i) {
        double a = 0;
        int cnt = 0;
        for (int c = 0; c < kv.n_kv; ++c) {
          const float mk = kv.mask[size_t(i) * kv.n_kv + c];
          if (mk == 0.0f) {
            a += read_elem(kv.type, static_cast<const uint8_t*>(kv.v) + size_t(c) * kv.v_row_bytes, 0);
            ++cnt;
          } else if (!(std::isinf(mk) && mk < 0)) {
            a += 1e9;  // a mask value other than 0 / -inf: poison the result
          }
        }
        y[i] += md(7.0 * a + 13.0 * cnt);
      }
    }
    if (has_recurrent(L.kind)) {
      StateView sv = mem.state(static_cast<int>(l));
      const int T = ub.n_seq_tokens, C = L.rec.conv_channels, W = L.rec.conv_width - 1;
      for (int j = 0; j < sv.n_seqs; ++j) {
        float* conv = sv.conv[j];
        float* ssm = sv.ssm[j];
        // The view's contract: read the old state from ssm_src (a double-
        // buffered step) and write every value of ssm.
        if (sv.ssm_src && sv.ssm_src[j] != ssm)
          std::copy_n(sv.ssm_src[j], size_t(L.rec.n_head) * L.rec.head_dim * L.rec.d_state, ssm);
        for (int t = 0; t < T; ++t) {
          const int i = j * T + t;
          if (W > 0) {
            for (int k = 0; k + 1 < W; ++k) conv[size_t(k) * C] = conv[size_t(k + 1) * C];
            conv[size_t(W - 1) * C] = x[i];
          }
          ssm[0] = md(31.0 * ssm[0] + x[i]);
          ssm[1] += 1.0f;
          y[i] += md(ssm[0] + 3.0 * (W > 0 ? conv[0] : 0.0f));
        }
      }
    }
    for (int i = 0; i < n; ++i) x[i] = md(5.0 * x[i] + y[i]);
  }
  for (int i = 0; i < n; ++i)
    if (ub.out_index[i] >= 0) out[ub.out_index[i]] = x[i];
}

Reference::Reference(std::vector<LayerSpec> specs, int n_seq_max) : specs_(std::move(specs)), hist_(n_seq_max) {
  for (const auto& L : specs_) {
    n_attn_ += has_attention(L.kind);
    n_rec_ += has_recurrent(L.kind);
  }
}

RecState Reference::empty_state() const {
  RecState st;
  for (const auto& L : specs_) {
    if (!has_recurrent(L.kind)) continue;
    st.ssm0.push_back(0);
    st.ssm1.push_back(0);
    st.window.emplace_back(L.rec.conv_width - 1, 0.0f);
  }
  return st;
}

float Reference::decode_row(const std::vector<int32_t>& seqs, int32_t tok, int32_t pos) {
  const std::vector<Entry>& H = hist_[seqs[0]];
  Entry e;
  e.tok = tok;
  e.pos = pos;
  RecState st = H.empty() ? empty_state() : H.back().after;
  float x = md(tok + 1.0);
  int ai = 0, ri = 0;
  for (const auto& L : specs_) {
    double y = 0;
    if (has_attention(L.kind)) {
      e.v.push_back(x);
      double a = x;
      int cnt = 1;
      for (const Entry& h : H)
        if (h.pos <= pos) {
          a += h.v[ai];
          ++cnt;
        }
      y += md(7.0 * a + 13.0 * cnt);
      ++ai;
    }
    if (has_recurrent(L.kind)) {
      auto& w = st.window[ri];
      if (!w.empty()) {
        w.erase(w.begin());
        w.push_back(x);
      }
      st.ssm0[ri] = md(31.0 * st.ssm0[ri] + x);
      st.ssm1[ri] += 1.0f;
      y += md(st.ssm0[ri] + 3.0 * (w.empty() ? 0.0f : w[0]));
      ++ri;
    }
    x = md(5.0 * x + y);
  }
  e.after = st;
  e.out = x;
  for (int s : seqs) hist_[s].push_back(e);
  return x;
}

std::vector<float> Reference::expected_slot(const RecState& st) const {
  std::vector<float> out;
  int ri = 0;
  for (const auto& L : specs_) {
    if (!has_recurrent(L.kind)) continue;
    const int C = L.rec.conv_channels, W = L.rec.conv_width - 1;
    std::vector<float> conv(size_t(W) * C, 0.0f);
    for (int k = 0; k < W; ++k) conv[size_t(k) * C] = st.window[ri][k];
    std::vector<float> ssm(size_t(L.rec.n_head) * L.rec.head_dim * L.rec.d_state, 0.0f);
    ssm[0] = st.ssm0[ri];
    ssm[1] = st.ssm1[ri];
    out.insert(out.end(), conv.begin(), conv.end());
    out.insert(out.end(), ssm.begin(), ssm.end());
    ++ri;
  }
  return out;
}

Status decode(HybridMemory& mem, const ToyModel& model, const Batch& b, std::vector<float>& out, int fail_at,
              int* n_ubatches) {
  Result<Plan> plan = mem.plan(b);
  if (!plan) return plan.status();
  if (n_ubatches) *n_ubatches = plan->n_ubatch();
  out.assign(plan->n_outputs, std::nanf(""));
  for (int i = 0; i < plan->n_ubatch(); ++i) {
    Result<Applied> a = mem.apply(*plan, i);
    if (!a) {
      mem.rollback(*plan);
      return a.status();
    }
    model.forward(*a->ubatch, *a->memory, out.data());
    if (i == fail_at) {
      mem.rollback(*plan);
      return TANDEM_ERR(kCancelled, "injected failure in micro-batch {}", i);
    }
  }
  mem.commit(*plan);
  return Status::ok();
}

std::string compare(const HybridMemory& mem, const Reference& ref) {
  const HybridMemory::Impl& m = mem.impl();
  for (int s = 0; s < mem.options().n_seq_max; ++s) {
    const std::vector<Entry>& H = ref.hist(s);
    if (m.has_attn()) {
      using Row = std::pair<int32_t, std::vector<float>>;
      std::vector<Row> want, got;
      for (const Entry& e : H) want.emplace_back(e.pos, e.v);
      for (const auto& [p, c] : m.kv.cells().seq_cells(s)) {
        std::vector<float> v;
        for (int i = 0; i < m.kv.n_layers(); ++i) {
          const float k0 = read_elem(m.kv.type(), m.kv.k_row(i, c), 0);
          const float k1 = read_elem(m.kv.type(), m.kv.k_row(i, c), 1);
          const float v0 = read_elem(m.kv.type(), m.kv.v_row(i, c), 0);
          if (k0 != v0 || k1 != float(m.kv.layer(i).model_layer))
            return fmt::format("seq {} cell {} pos {} layer {}: K = [{}, {}] but V[0] = {}", s, c, p, i, k0, k1, v0);
          v.push_back(v0);
        }
        got.emplace_back(p, v);
      }
      std::sort(want.begin(), want.end());
      std::sort(got.begin(), got.end());
      if (want != got) {
        std::string w, g;
        for (auto& r : want) w += fmt::format("{}:{} ", r.first, r.second.empty() ? -1.f : r.second[0]);
        for (auto& r : got) g += fmt::format("{}:{} ", r.first, r.second.empty() ? -1.f : r.second[0]);
        return fmt::format("seq {} attention cells differ:\n  want {}\n  got  {}", s, w, g);
      }
    }
    if (m.has_rec()) {
      const auto& st = m.rec.seq(s);
      if (H.empty()) {
        if (st.slot >= 0) return fmt::format("seq {} should be empty but owns slot {}", s, st.slot);
        continue;
      }
      if (st.slot < 0) return fmt::format("seq {} has {} tokens but no recurrent slot", s, H.size());
      if (st.pos_max != H.back().pos)
        return fmt::format("seq {} recurrent pos_max {} != {}", s, st.pos_max, H.back().pos);
      if (st.pos_min != H.front().pos)
        return fmt::format("seq {} recurrent pos_min {} != {}", s, st.pos_min, H.front().pos);
      std::vector<float> got(m.rec.slot_floats());
      m.rec.read_slot(st.slot, got.data());
      if (got != ref.expected_slot(H.back().after)) return fmt::format("seq {} recurrent state differs", s);
    }
  }
  return {};
}

LayerSpec attn_layer(int n_kv_heads, int head_dim) {
  LayerSpec l;
  l.kind = LayerKind::kAttention;
  l.attn.n_kv_heads = n_kv_heads;
  l.attn.head_dim_k = head_dim;
  l.attn.head_dim_v = head_dim;
  return l;
}

LayerSpec rec_layer(int conv_channels, int conv_width, int n_head, int head_dim, int d_state) {
  LayerSpec l;
  l.kind = LayerKind::kRecurrent;
  l.rec = RecurrentSpec{conv_channels, conv_width, n_head, head_dim, d_state};
  return l;
}

LayerSpec both_layer() {
  LayerSpec l = attn_layer();
  l.kind = LayerKind::kBoth;
  l.rec = rec_layer().rec;
  return l;
}

}  // namespace tandem::memory::toy
