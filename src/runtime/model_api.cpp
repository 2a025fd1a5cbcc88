// Public tandem::Model and tandem::TextStream over model::Model + Tokenizer.
#include <algorithm>
#include <filesystem>
#include <set>

#include "core/dtype.h"
#include "model/inspect_layers.h"
#include "runtime/internal.h"
#include "tokenizer/chat_template.h"

namespace tandem {

// The public kinds mirror the internal ones value for value; the names live
// with the internal enums (src/model, src/model/inspect_layers.h).
static_assert(int(ModelKind::kAttentionOnly) == int(model::ModelKind::kAttentionOnly) &&
              int(ModelKind::kRecurrent) == int(model::ModelKind::kRecurrent) &&
              int(ModelKind::kHybrid) == int(model::ModelKind::kHybrid));
static_assert(int(LayerKind::kNone) == int(memory::LayerKind::kNone) &&
              int(LayerKind::kAttention) == int(memory::LayerKind::kAttention) &&
              int(LayerKind::kRecurrent) == int(memory::LayerKind::kRecurrent) &&
              int(LayerKind::kBoth) == int(memory::LayerKind::kBoth));

const char* model_kind_name(ModelKind k) { return model::model_kind_name(static_cast<model::ModelKind>(k)); }
const char* layer_kind_name(LayerKind k) { return model::layer_kind_name(static_cast<memory::LayerKind>(k)); }

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  model::LoadOptions lo;
  switch (opts.weights) {
    case WeightLoad::kAuto: lo.load = gguf::File::Load::kAuto; break;
    case WeightLoad::kMmap: lo.load = gguf::File::Load::kMmap; break;
    case WeightLoad::kRead: lo.load = gguf::File::Load::kRead; break;
  }
  auto m = model::Model::load(path, lo);
  if (!m) return runtime::to_outcome(m.status());
  impl->model = std::move(m).value();
  auto t = Tokenizer::from_gguf(impl->model->file());
  if (!t) return Outcome(runtime::to_errc(t.status().code()), path + ": tokenizer: " + t.status().message());
  impl->tokenizer = std::move(t).value();
  if (impl->tokenizer->n_vocab() < impl->model->config().n_vocab)
    return Outcome(Errc::kCorrupt, path + ": the tokenizer has " + std::to_string(impl->tokenizer->n_vocab()) +
                                       " tokens but the model's output has " +
                                       std::to_string(impl->model->config().n_vocab));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::path() const { return impl_->path; }
std::string Model::arch() const { return impl_->model->config().arch; }
std::string Model::name() const {
  auto n = impl_->model->file().get_string_or("general.name", "");
  if (n && !n->empty()) return *n;
  return std::filesystem::path(impl_->path).stem().string();
}

ModelKind Model::kind() const { return static_cast<ModelKind>(impl_->model->config().kind()); }

std::vector<LayerKind> Model::layer_kinds() const {
  std::vector<LayerKind> out;
  for (const auto& s : impl_->model->layer_specs()) out.push_back(static_cast<LayerKind>(s.kind));
  return out;
}

int Model::n_layer() const { return impl_->model->config().n_layer; }
int Model::n_vocab() const { return impl_->model->config().n_vocab; }
int Model::n_embd() const { return impl_->model->config().n_embd; }
int Model::n_ctx_train() const { return impl_->model->config().n_ctx_train; }

bool Model::is_quantized() const {
  for (const auto& t : impl_->model->file().tensors())
    if (dtype_info(t.type).quantized) return true;
  return false;
}

std::vector<std::string> Model::tensor_types() const {
  std::set<std::string> s;
  for (const auto& t : impl_->model->file().tensors()) s.insert(std::string(dtype_name(t.type)));
  return {s.begin(), s.end()};
}

uint64_t Model::n_params() const {
  uint64_t n = 0;
  for (const auto& t : impl_->model->file().tensors()) n += static_cast<uint64_t>(t.n_elements());
  return n;
}

bool Model::weights_in_memory() const { return impl_->model->file().read_into_memory(); }

uint64_t Model::size_bytes() const {
  uint64_t n = 0;
  for (const auto& t : impl_->model->file().tensors()) n += t.bytes;
  return n;
}

std::string Model::meta(std::string_view key) const {
  const gguf::Value* v = impl_->model->file().find(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->as_string());
  return v->to_string();
}

std::vector<int32_t> Model::tokenize(std::string_view text, bool add_special, bool parse_special) const {
  return impl_->tokenizer->encode(text, add_special, parse_special);
}

std::string Model::detokenize(std::span<const int32_t> tokens, bool special) const {
  return impl_->tokenizer->decode(std::vector<int32_t>(tokens.begin(), tokens.end()), special);
}

std::string Model::token_to_piece(int32_t token, bool special) const {
  return impl_->tokenizer->token_to_piece(token, special);
}

int32_t Model::bos() const { return impl_->tokenizer->bos(); }
int32_t Model::eos() const { return impl_->tokenizer->eos(); }
bool Model::add_bos() const { return impl_->tokenizer->add_bos(); }
bool Model::is_eog(int32_t token) const { return impl_->tokenizer->is_eog(token); }
std::string Model::chat_template() const { return impl_->tokenizer->chat_template(); }

std::string Model::format_chat(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const {
  std::vector<ChatMessage> msgs;
  msgs.reserve(turns.size());
  for (const auto& t : turns) msgs.push_back({t.role, t.content});
  return render_chat(*impl_->tokenizer, msgs, add_generation_prompt).text;
}

// ------------------------------------------------------------------ TextStream
namespace {
// Bytes of s that end on a complete UTF-8 character (an incomplete trailing
// sequence is held back; invalid bytes are passed through as they are).
size_t complete_prefix(const std::string& s) {
  const size_t n = s.size();
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= std::min<size_t>(n, 4); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}
}  // namespace

TextStream::TextStream(const Model& model, bool strip_leading_space, bool special)
    : model_(&model), strip_(strip_leading_space), special_(special) {}

std::string TextStream::push(int32_t token) {
  pending_ += model_->token_to_piece(token, special_);
  if (strip_ && at_start_ && !pending_.empty()) {
    if (pending_[0] == ' ') pending_.erase(0, 1);
    if (!pending_.empty()) at_start_ = false;
  }
  const size_t k = complete_prefix(pending_);
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string TextStream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace tandem
