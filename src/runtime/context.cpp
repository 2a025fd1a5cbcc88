// tandem::Context: creation and the all-or-nothing decode.
#include <unistd.h>

#include <algorithm>
#include <new>
#include <thread>

#include "core/log.h"
#include "runtime/context_impl.h"

namespace tandem {

using runtime::to_outcome;

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;

Expected<std::unique_ptr<Context>> Context::create(const Model& model, const ContextOptions& opts_in) {
  auto impl = std::make_unique<Impl>();
  impl->model = &model;
  impl->m = model.impl().model.get();
  ContextOptions o = opts_in;
  if (o.n_ctx <= 0) o.n_ctx = impl->m->config().n_ctx_train > 0 ? impl->m->config().n_ctx_train : 4096;
  if (o.n_seq_max < 1 || o.n_seq_max > memory::kMaxSeq)
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("n_seq_max {} outside [1, {}]", o.n_seq_max, memory::kMaxSeq));
  if (o.n_ubatch < 1) return Outcome(Errc::kInvalidArgument, fmt::format("n_ubatch {} < 1", o.n_ubatch));
  if (o.n_threads <= 0) o.n_threads = std::max(1u, std::thread::hardware_concurrency());
  // Absurd values must be refused, not turned into 100000 threads or a
  // multi-terabyte allocation (an uncaught exception or an OOM kill).
  constexpr int kMaxThreads = 1024;
  if (o.n_threads > kMaxThreads)
    return Outcome(Errc::kInvalidArgument, fmt::format("n_threads {} exceeds the limit of {} threads", o.n_threads, kMaxThreads));
  if (o.snapshot_slots < 0)
    return Outcome(Errc::kInvalidArgument, fmt::format("snapshot_slots {} < 0", o.snapshot_slots));
  if (o.auto_snapshot && o.snapshot_slots == 0)
    return Outcome(Errc::kInvalidArgument, "auto_snapshot needs snapshot_slots > 0");
  if (impl->m->config().n_ctx_train > 0 && o.n_ctx > impl->m->config().n_ctx_train)
    TANDEM_LOG_INFO("n_ctx {} exceeds the model's training context {}", o.n_ctx,
                    impl->m->config().n_ctx_train);

  memory::MemoryOptions mo;
  mo.n_ctx = o.n_ctx;
  mo.n_seq_max = o.n_seq_max;
  mo.n_ubatch = o.n_ubatch;
  mo.kv_type = o.kv_type == KvType::kF32 ? DType::F32 : DType::F16;
  mo.state_type = o.state_type == StateType::kBF16 ? DType::BF16 : DType::F32;
  mo.snapshot_slots = o.snapshot_slots;
  auto est = memory::HybridMemory::estimate(impl->m->layer_specs(), mo);
  if (!est) return to_outcome(est.status());
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const double gib = 1024.0 * 1024.0 * 1024.0;
  if (pages > 0 && page > 0 && est->total() / static_cast<size_t>(page) > static_cast<size_t>(pages))
    return Outcome(Errc::kOutOfMemory,
                   fmt::format("n_ctx {} with {} sequences needs {:.1f} GiB of context memory, more than the "
                               "machine's {:.1f} GiB",
                               o.n_ctx, o.n_seq_max, static_cast<double>(est->total()) / gib,
                               static_cast<double>(pages) * static_cast<double>(page) / gib));
  try {
    auto mem = memory::HybridMemory::create(impl->m->layer_specs(), mo);
    if (!mem) return to_outcome(mem.status());
    impl->mem = std::move(mem).value();
    impl->runner = std::make_unique<model::Runner>(*impl->m, o.n_ubatch);
  } catch (const std::bad_alloc&) {
    return Outcome(Errc::kOutOfMemory, fmt::format("out of memory allocating the context (n_ctx {}, n_ubatch {}, {} sequences)",
                                                   o.n_ctx, o.n_ubatch, o.n_seq_max));
  }
  impl->pool = std::make_unique<kernels::ThreadPool>(o.n_threads);
  impl->fingerprint = fmt::format("tandem-model:{:016x}", impl->m->fingerprint());
  impl->hist.resize(o.n_seq_max);
  impl->opts = o;
  return std::unique_ptr<Context>(new Context(std::move(impl)));
}

const Model& Context::model() const { return *impl_->model; }
const ContextOptions& Context::options() const { return impl_->opts; }
int Context::n_vocab() const { return impl_->m->config().n_vocab; }

void Context::set_cancel_callback(std::function<bool()> cb) { impl_->cancel = std::move(cb); }
void Context::set_progress_callback(std::function<void(const DecodeProgress&)> cb) {
  impl_->progress = std::move(cb);
}

Status Context::Impl::run_batch(const memory::Batch& b, float* logits_out, bool report_progress) {
  TANDEM_ASSIGN_OR_RETURN(memory::Plan plan, mem->plan(b));
  int done_tokens = 0;
  for (int i = 0; i < plan.n_ubatch(); ++i) {
    if (cancel && cancel()) {
      if (i > 0) mem->rollback(plan);
      return TANDEM_ERR(kCancelled, "decode cancelled after {} of {} micro-batches", i, plan.n_ubatch());
    }
    auto a = mem->apply(plan, i);
    if (!a) {
      mem->rollback(plan);
      return a.status();
    }
    Status st = runner->forward(*a->ubatch, *a->memory, logits_out, nullptr, *pool);
    if (!st) {
      mem->rollback(plan);
      return st;
    }
    mem->end_ubatch();  // bf16 state: store the updated states back (no-op for f32)
    done_tokens += a->ubatch->n_tokens;
    if (report_progress && progress)
      progress({i + 1, plan.n_ubatch(), done_tokens, plan.n_tokens});
  }
  if (plan.n_ubatch() > 0) mem->commit(plan);
  return Status::ok();
}

Outcome Context::decode(const Batch& batch) {
  Impl& I = *impl_;
  const size_t n = batch.tokens.size();
  if (n == 0) return Outcome(Errc::kInvalidArgument, "decode: empty batch");
  if (batch.pos.size() != n || batch.seq.size() != n || (!batch.output.empty() && batch.output.size() != n))
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("decode: batch vectors differ in length (tokens {}, pos {}, seq {}, output {})", n,
                               batch.pos.size(), batch.seq.size(), batch.output.size()));
  const int n_vocab = I.m->config().n_vocab;
  for (size_t r = 0; r < n; ++r)
    if (batch.tokens[r] < 0 || batch.tokens[r] >= n_vocab)
      return Outcome(Errc::kInvalidArgument,
                     fmt::format("decode: token {} at batch row {} outside the vocabulary [0, {})",
                                 batch.tokens[r], r, n_vocab));

  memory::Batch mb;
  mb.tokens = batch.tokens;
  mb.pos = batch.pos;
  mb.seq = batch.seq;
  // Output rows: explicit flags, or (empty vector) only the last row.
  std::vector<int> rows;
  if (batch.output.empty()) {
    rows.push_back(static_cast<int>(n) - 1);
    mb.output.assign(n, 0);
    mb.output.back() = 1;
  } else {
    mb.output = batch.output;
    for (size_t r = 0; r < n; ++r)
      if (batch.output[r]) rows.push_back(static_cast<int>(r));
  }

  // The previous logits are dropped whatever happens (documented).
  I.logits.assign(rows.size() * static_cast<size_t>(n_vocab), 0.0f);
  I.output_rows.clear();
  Status st = I.run_batch(mb, rows.empty() ? nullptr : I.logits.data(), true);
  if (!st) {
    I.logits.clear();
    return to_outcome(st);
  }
  I.output_rows = std::move(rows);

  // Committed: extend the token histories (positions continue each sequence).
  for (size_t r = 0; r < n; ++r)
    for (int32_t s : batch.seq[r]) I.hist[s].emplace_back(batch.pos[r], batch.tokens[r]);

  if (I.opts.auto_snapshot) {
    std::vector<uint8_t> touched(I.hist.size(), 0);
    for (const auto& ss : batch.seq)
      for (int32_t s : ss) touched[s] = 1;
    for (size_t s = 0; s < touched.size(); ++s) {
      if (!touched[s]) continue;
      auto id = I.mem->snapshot(static_cast<int>(s));
      if (id) I.snap_hist[*id] = I.hist[s];  // a full pool just means fewer restore points
    }
    I.prune_snapshot_histories();
  }
  return Outcome();
}

const float* Context::logits(int i) const {
  if (i < 0 || i >= n_outputs()) return nullptr;
  return impl_->logits.data() + static_cast<size_t>(i) * impl_->m->config().n_vocab;
}
int Context::n_outputs() const { return static_cast<int>(impl_->output_rows.size()); }
int Context::output_row(int i) const {
  if (i < 0 || i >= n_outputs()) return -1;
  return impl_->output_rows[i];
}

size_t Context::memory_bytes() const { return impl_->mem->bytes().total(); }

}  // namespace tandem
