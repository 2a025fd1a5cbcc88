#pragma once
// Per-layer kind listing for `tandem inspect` (header-only so the model library
// itself stays free of JSON): loads the file as a model and lists, per layer,
// its memory kind (attention / recurrent / both / none), mixer and FFN.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/weights.h"

namespace tandem::model {

inline const char* layer_kind_name(memory::LayerKind k) {
  switch (k) {
    case memory::LayerKind::kNone: return "none";
    case memory::LayerKind::kAttention: return "attention";
    case memory::LayerKind::kRecurrent: return "recurrent";
    case memory::LayerKind::kBoth: return "both";
  }
  return "?";
}

// One line per layer, e.g. "  2  attention  attention (4 heads, 2 kv, NoPE)  ffn swiglu (128)".
inline std::string layer_line(const ModelConfig& c, const memory::LayerSpec& s, int il) {
  std::string mixer = mixer_kind_name(c.mixer[il]);
  if (memory::has_attention(s.kind)) {
    mixer += fmt::format(" ({} heads, {} kv, head {}/{}, {})", c.n_head[il], c.n_head_kv[il], c.head_dim_k,
                         c.head_dim_v, c.use_rope ? "RoPE" : "NoPE");
  }
  if (memory::has_recurrent(s.kind)) {
    mixer += fmt::format(" (conv {}x{}, state {}x{}x{})", s.rec.conv_width, s.rec.conv_channels, s.rec.n_head,
                         s.rec.head_dim, s.rec.d_state);
  }
  std::string ffn = ffn_kind_name(c.ffn[il]);
  if (c.ffn[il] == FfnKind::kMoE) {
    ffn += fmt::format(" ({} experts, top {}, ff {}{})", c.n_expert, c.n_expert_used, c.n_ff[il],
                       c.n_ff_shexp > 0 ? fmt::format(", shared {}", c.n_ff_shexp) : std::string());
  } else if (c.ffn[il] != FfnKind::kNone) {
    ffn += fmt::format(" ({})", c.n_ff[il]);
  }
  return fmt::format("  {:>3}  {:<9}  {}  ffn {}", il, layer_kind_name(s.kind), mixer, ffn);
}

// Text listing appended to `tandem inspect` output. Files without tensors
// (vocabularies) print nothing; files Tandem cannot run say why.
inline void print_layer_kinds(const gguf::File& f) {
  if (f.tensors().empty()) return;
  auto m = Model::load(f.path());
  if (!m.is_ok()) {
    std::printf("\nlayers: not runnable by Tandem: %s\n", m.status().message().c_str());
    return;
  }
  const ModelConfig& c = (*m)->config();
  std::printf("\nlayers (%s, %s, %d layers, n_embd %d, n_vocab %d%s):\n", c.arch.c_str(),
              model_kind_name(c.kind()), c.n_layer, c.n_embd, c.n_vocab,
              (*m)->weights().output_tied ? ", tied output" : "");
  for (int il = 0; il < c.n_layer; ++il) {
    std::printf("%s\n", layer_line(c, (*m)->layer_specs()[il], il).c_str());
  }
}

// JSON mirror: {"arch", "kind", "layers": [{index, kind, mixer, ffn, ...}]} or {"error": ...}.
inline nlohmann::ordered_json layer_kinds_json(const gguf::File& f) {
  nlohmann::ordered_json j;
  if (f.tensors().empty()) return j;
  auto m = Model::load(f.path());
  if (!m.is_ok()) {
    j["error"] = m.status().message();
    return j;
  }
  const ModelConfig& c = (*m)->config();
  j["arch"] = c.arch;
  j["kind"] = model_kind_name(c.kind());
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (int il = 0; il < c.n_layer; ++il) {
    const memory::LayerSpec& s = (*m)->layer_specs()[il];
    nlohmann::ordered_json e;
    e["index"] = il;
    e["kind"] = layer_kind_name(s.kind);
    e["mixer"] = mixer_kind_name(c.mixer[il]);
    e["ffn"] = ffn_kind_name(c.ffn[il]);
    if (memory::has_attention(s.kind)) {
      e["n_head"] = c.n_head[il];
      e["n_head_kv"] = c.n_head_kv[il];
      e["rope"] = c.use_rope;
    }
    if (c.ffn[il] != FfnKind::kNone) e["n_ff"] = c.n_ff[il];
    layers.push_back(std::move(e));
  }
  j["layers"] = std::move(layers);
  return j;
}

}  // namespace tandem::model
