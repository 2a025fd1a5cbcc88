// Batch planning: validation, then the split into micro-batches.
//  * attention-only memory: simple split, consecutive rows up to n_ubatch;
//  * memory with recurrent layers: equal split. Rows are grouped into
//    *segments*: maximal runs of rows with the same sequence set and
//    consecutive positions. A segment is one stream (one recurrent state).
//    A micro-batch takes ready segments with disjoint sequence sets and the
//    same number T of tokens from each; a segment is ready when, for each of
//    its sequences, every earlier segment of that sequence is finished.
// Nothing here mutates memory.
#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "memory/hybrid_impl.h"

namespace tandem::memory {

namespace {

struct Segment {
  std::vector<int32_t> seqs;  // sorted
  SeqSet set;
  std::vector<int> rows;      // caller rows, consecutive positions
  int cursor = 0;
  int remaining() const { return static_cast<int>(rows.size()) - cursor; }
};

void emit_ubatch(Plan& plan, const Batch& b, const std::vector<int32_t>& out_idx,
                 const std::vector<std::vector<int32_t>>& rs, const std::vector<int>& rows,
                 int n_seqs, int n_seq_tokens, std::vector<std::vector<int32_t>> stream_seqs) {
  PlannedUBatch p;
  p.ub.n_tokens = static_cast<int>(rows.size());
  p.ub.n_seqs = n_seqs;
  p.ub.n_seq_tokens = n_seq_tokens;
  for (int r : rows) {
    p.ub.tokens.push_back(b.tokens[r]);
    p.ub.pos.push_back(static_cast<float>(b.pos[r]));
    p.ub.out_index.push_back(out_idx[r]);
    p.src_row.push_back(r);
    p.row_seqs.push_back(rs[r]);
  }
  p.stream_seqs = std::move(stream_seqs);
  plan.ubatches.push_back(std::move(p));
}

Status check_start(const HybridMemory::Impl& m, int s, int32_t q) {
  if (m.has_rec()) {
    const auto& st = m.rec.seq(s);
    if (st.pos_max >= 0) {
      if (q != st.pos_max + 1)
        return TANDEM_ERR(kInvalidArgument,
                          "position gap: sequence {} must continue at pos {} (its recurrent state ends "
                          "at pos {}) but the batch starts it at pos {}",
                          s, st.pos_max + 1, st.pos_max, q);
      return Status::ok();
    }
    if (m.has_attn() && m.kv.cells().pos_min(s) >= 0 && q != m.kv.cells().pos_min(s))
      return TANDEM_ERR(kInvalidArgument,
                        "position gap: sequence {} has an empty recurrent state and attention cells "
                        "from pos {}: it must be replayed from pos {}, the batch starts at pos {}",
                        s, m.kv.cells().pos_min(s), m.kv.cells().pos_min(s), q);
    return Status::ok();
  }
  const int32_t pm = m.kv.cells().pos_max(s);
  if (pm >= 0 && q != pm + 1)
    return TANDEM_ERR(kInvalidArgument,
                      "position gap: sequence {} must continue at pos {} (its last cell has pos {}) but "
                      "the batch starts it at pos {}",
                      s, pm + 1, pm, q);
  return Status::ok();
}

// Attention: rows that rewrite an existing cell (replay) must agree on it;
// the others need free cells.
Status check_cells(const HybridMemory::Impl& m, const Batch& b, const std::vector<std::vector<int32_t>>& rs) {
  const int n = b.size();
  if (m.has_attn()) {
    const CellTable& cells = m.kv.cells();
    int new_cells = 0;
    for (int r = 0; r < n; ++r) {
      const int c0 = cells.find(rs[r][0], b.pos[r]);
      for (size_t k = 1; k < rs[r].size(); ++k) {
        if (cells.find(rs[r][k], b.pos[r]) != c0)
          return TANDEM_ERR(kInvalidArgument,
                            "incompatible sequence sets: batch row {} (pos {}) belongs to sequences "
                            "{} but sequences {} and {} do not share an attention cell at that position",
                            r, b.pos[r], fmt::join(rs[r], ","), rs[r][0], rs[r][k]);
      }
      if (c0 < 0) ++new_cells;
    }
    if (new_cells > cells.n_free())
      return TANDEM_ERR(kOutOfMemory,
                        "no room in the attention cache: the batch needs {} new cells, {} of n_ctx = {} "
                        "are free",
                        new_cells, cells.n_free(), cells.size());
  }
  return Status::ok();
}

}  // namespace

Result<Plan> build_plan(const HybridMemory::Impl& m, const Batch& b) {
  const int n = b.size();
  const int n_seq_max = m.opts.n_seq_max;
  if (n == 0) return TANDEM_ERR(kInvalidArgument, "empty batch");
  if (static_cast<int>(b.pos.size()) != n || static_cast<int>(b.seq.size()) != n ||
      (!b.output.empty() && static_cast<int>(b.output.size()) != n))
    return TANDEM_ERR(kInvalidArgument,
                      "batch arrays differ in length: tokens {}, pos {}, seq {}, output {}", n,
                      b.pos.size(), b.seq.size(), b.output.size());

  // ---- rows: sequence sets and outputs
  std::vector<std::vector<int32_t>> rs(n);
  std::vector<int32_t> out_idx(n, -1);
  int n_out = 0;
  for (int r = 0; r < n; ++r) {
    if (b.seq[r].empty()) return TANDEM_ERR(kInvalidArgument, "batch row {} belongs to no sequence", r);
    if (b.pos[r] < 0 || b.pos[r] > kMaxPos)
      return TANDEM_ERR(kInvalidArgument, "batch row {} has position {} outside [0, {}]", r, b.pos[r], kMaxPos);
    rs[r] = b.seq[r];
    std::sort(rs[r].begin(), rs[r].end());
    for (size_t k = 0; k < rs[r].size(); ++k) {
      const int s = rs[r][k];
      if (s < 0 || s >= n_seq_max)
        return TANDEM_ERR(kInvalidArgument, "sequence id {} out of range [0, {}) at batch row {}", s,
                          n_seq_max, r);
      if (k > 0 && rs[r][k - 1] == s)
        return TANDEM_ERR(kInvalidArgument, "batch row {} lists sequence {} twice", r, s);
    }
    const bool want = b.output.empty() ? (r == n - 1) : b.output[r] != 0;
    if (want) out_idx[r] = n_out++;
  }

  // ---- per sequence: consecutive positions continuing the memory
  std::vector<std::vector<int>> rows_of(n_seq_max);
  for (int r = 0; r < n; ++r)
    for (int s : rs[r]) rows_of[s].push_back(r);
  for (int s = 0; s < n_seq_max; ++s) {
    if (rows_of[s].empty()) continue;
    const int32_t q = b.pos[rows_of[s][0]];
    for (size_t k = 1; k < rows_of[s].size(); ++k) {
      const int r = rows_of[s][k];
      if (b.pos[r] != q + static_cast<int32_t>(k))
        return TANDEM_ERR(kInvalidArgument,
                          "position gap: sequence {} has pos {} at batch row {} where pos {} was "
                          "expected (a sequence's rows must have consecutive positions in batch order)",
                          s, b.pos[r], r, q + static_cast<int32_t>(k));
    }
    TANDEM_TRY(check_start(m, s, q));
  }

  Plan plan;
  plan.n_tokens = n;
  plan.n_outputs = n_out;
  plan.generation = m.generation;
  plan.plan_id = m.next_plan_id++;
  const int n_ubatch = std::max(1, m.opts.n_ubatch);

  if (!m.has_rec()) {
    for (int r0 = 0; r0 < n; r0 += n_ubatch) {
      std::vector<int> rows;
      for (int r = r0; r < std::min(n, r0 + n_ubatch); ++r) rows.push_back(r);
      const int nt = static_cast<int>(rows.size());
      emit_ubatch(plan, b, out_idx, rs, rows, 1, nt, {});
    }
    TANDEM_TRY(check_cells(m, b, rs));
    return plan;
  }

  // ---- equal split: segments
  std::vector<Segment> segs;
  std::map<std::vector<int32_t>, int> open;
  for (int r = 0; r < n; ++r) {
    auto it = open.find(rs[r]);
    if (it != open.end() && b.pos[segs[it->second].rows.back()] + 1 == b.pos[r]) {
      segs[it->second].rows.push_back(r);
      continue;
    }
    Segment g;
    g.seqs = rs[r];
    for (int s : g.seqs) g.set.set(s);
    g.rows.push_back(r);
    open[rs[r]] = static_cast<int>(segs.size());
    segs.push_back(std::move(g));
  }
  // Each sequence's segments in position order.
  std::vector<std::vector<int>> segs_of(n_seq_max);
  {
    std::vector<int> seg_of_row(n, -1);
    for (int g = 0; g < static_cast<int>(segs.size()); ++g)
      for (int r : segs[g].rows) seg_of_row[r] = g;
    for (int s = 0; s < n_seq_max; ++s)
      for (int r : rows_of[s])
        if (segs_of[s].empty() || segs_of[s].back() != seg_of_row[r]) segs_of[s].push_back(seg_of_row[r]);
  }
  std::vector<int> head(n_seq_max, 0);
  // Recurrent state identity per sequence: its slot, -1 for empty (all empty states
  // are the same zero state), fresh ids for states made in this batch.
  std::vector<int64_t> ident(n_seq_max);
  for (int s = 0; s < n_seq_max; ++s) ident[s] = m.rec.seq(s).slot;
  int64_t next_ident = m.rec.n_slots() + 1;

  int done = 0;
  while (done < static_cast<int>(segs.size())) {
    std::vector<int> chosen;
    SeqSet used;
    for (int g = 0; g < static_cast<int>(segs.size()) && static_cast<int>(chosen.size()) < n_ubatch; ++g) {
      const Segment& sg = segs[g];
      if (sg.remaining() == 0 || (sg.set & used).any()) continue;
      bool ready = true;
      for (int s : sg.seqs) ready = ready && segs_of[s][head[s]] == g;
      if (!ready) continue;
      chosen.push_back(g);
      used |= sg.set;
    }
    if (chosen.empty())
      return TANDEM_ERR(kInternal, "batch planning made no progress ({} of {} segments done)", done, segs.size());
    int T = n_ubatch / static_cast<int>(chosen.size());
    for (int g : chosen) T = std::min(T, segs[g].remaining());

    std::vector<int> rows;
    std::vector<std::vector<int32_t>> stream_seqs;
    for (int g : chosen) {
      Segment& sg = segs[g];
      if (sg.cursor == 0) {
        for (int s : sg.seqs) {
          if (ident[s] != ident[sg.seqs[0]])
            return TANDEM_ERR(kInvalidArgument,
                              "incompatible sequence sets: batch row {} (pos {}) is shared by sequences "
                              "{} but sequences {} and {} hold different recurrent states at that point "
                              "(fork one from the other with seq_cp, or decode them separately)",
                              sg.rows[0], b.pos[sg.rows[0]], fmt::join(sg.seqs, ","), sg.seqs[0], s);
        }
        const int64_t id = next_ident++;
        for (int s : sg.seqs) ident[s] = id;
      }
      for (int t = 0; t < T; ++t) rows.push_back(sg.rows[sg.cursor + t]);
      sg.cursor += T;
      stream_seqs.push_back(sg.seqs);
      if (sg.remaining() == 0) {
        ++done;
        for (int s : sg.seqs) ++head[s];
      }
    }
    emit_ubatch(plan, b, out_idx, rs, rows, static_cast<int>(chosen.size()), T, std::move(stream_seqs));
  }
  TANDEM_TRY(check_cells(m, b, rs));
  return plan;
}

}  // namespace tandem::memory
