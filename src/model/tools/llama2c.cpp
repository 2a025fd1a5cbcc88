// llama2.c checkpoint -> GGUF `llama`. See llama2c.h for the byte layouts.
#include "model/tools/llama2c.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "gguf/writer.h"
#include "model/tools/mapped_file.h"

namespace tandem::model {

namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;  // "ak42" read as a little-endian u32
constexpr size_t kV1HeaderBytes = 256;
constexpr int64_t kMaxDim = int64_t{1} << 24;  // keeps every size product inside int64

int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Float counts of each weight group, in elements.
struct Sizes {
  int64_t emb, norm_layers, wq, wkv, wo, ffn, final_norm, freq_cis, wcls;
};

Sizes sizes_of(const Llama2cConfig& c) {
  const int64_t L = c.n_layers, D = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t hs = D / c.n_heads, kv = hs * c.n_kv_heads;
  Sizes s{};
  s.emb = V * D;
  s.norm_layers = L * D;
  s.wq = L * D * D;
  s.wkv = L * kv * D;
  s.wo = L * D * D;
  s.ffn = L * H * D;
  s.final_norm = D;
  s.freq_cis = c.version == 0 ? int64_t{c.seq_len} * hs / 2 : 0;  // each of real, imag
  s.wcls = c.shared_classifier ? 0 : V * D;
  return s;
}

int64_t total_floats(const Sizes& s) {
  return s.emb + 2 * s.norm_layers + s.wq + 2 * s.wkv + s.wo + 3 * s.ffn + s.final_norm +
         2 * s.freq_cis + s.wcls;
}

}  // namespace

Result<Llama2cConfig> parse_llama2c_header(const uint8_t* data, size_t size, const std::string& name) {
  Llama2cConfig c;
  size_t p = 0;
  if (size >= 8 && load_i32(data) == static_cast<int32_t>(kMagicV1)) {
    const int32_t version = load_i32(data + 4);
    if (version != 1) {
      return TANDEM_ERR(kUnsupported,
                        "{}: llama2.c checkpoint version {} is not supported (only the f32 "
                        "legacy format and version 1)",
                        name, version);
    }
    if (size < kV1HeaderBytes) {
      return TANDEM_ERR(kCorrupt, "{}: truncated: {} bytes, the v1 header alone is {}", name, size,
                        kV1HeaderBytes);
    }
    c.version = 1;
    p = 8;
  } else if (size < 28) {
    return TANDEM_ERR(kCorrupt, "{}: truncated: {} bytes, the llama2.c header is 28", name, size);
  }
  int32_t h[7];
  for (int i = 0; i < 7; ++i) h[i] = load_i32(data + p + 4 * i);
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.seq_len = h[6];
  if (c.version == 1) {
    c.vocab_size = h[5];
    const uint8_t shared = data[p + 28];
    if (shared > 1) return TANDEM_ERR(kCorrupt, "{}: shared_classifier flag is {}, not 0/1", name, shared);
    c.shared_classifier = shared == 1;
    c.header_bytes = kV1HeaderBytes;
  } else {
    // Legacy: a negative vocab size marks an unshared classifier.
    c.shared_classifier = h[5] > 0;
    const int64_t v = h[5] < 0 ? -static_cast<int64_t>(h[5]) : h[5];
    c.vocab_size = v > kMaxDim ? 0 : static_cast<int>(v);  // 0: rejected below
    c.header_bytes = 28;
  }
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int vals[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len};
  for (int i = 0; i < 7; ++i) {
    if (vals[i] <= 0 || vals[i] > kMaxDim) {
      return TANDEM_ERR(kCorrupt, "{}: not a llama2.c checkpoint: header field {} = {} is out of range",
                        name, names[i], h[i]);
    }
  }
  if (c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || (c.dim / c.n_heads) % 2 != 0) {
    return TANDEM_ERR(kCorrupt,
                      "{}: inconsistent header: dim {} / n_heads {} / n_kv_heads {} (need dim divisible "
                      "by n_heads into an even head size, and n_heads by n_kv_heads)",
                      name, c.dim, c.n_heads, c.n_kv_heads);
  }
  const Sizes s = sizes_of(c);
  const int64_t expect = static_cast<int64_t>(c.header_bytes) + 4 * total_floats(s);
  if (static_cast<int64_t>(size) != expect) {
    return TANDEM_ERR(kCorrupt,
                      "{}: {}: the header (dim {}, hidden {}, {} layers, {} heads, {} kv heads, vocab {}, "
                      "seq {}, {} classifier) implies {} bytes, the file has {}",
                      name, static_cast<int64_t>(size) < expect ? "truncated" : "size mismatch", c.dim,
                      c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
                      c.shared_classifier ? "shared" : "unshared", expect, size);
  }
  return c;
}

Result<Llama2cVocab> read_llama2c_tokenizer(const std::string& path, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return TANDEM_ERR(kNotFound, "{}: cannot open tokenizer", path);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (b.size() < 4) return TANDEM_ERR(kCorrupt, "{}: truncated tokenizer ({} bytes)", path, b.size());
  const int32_t max_len = load_i32(b.data());
  if (max_len <= 0 || max_len > (1 << 20)) {
    return TANDEM_ERR(kCorrupt, "{}: max_token_length {} is out of range", path, max_len);
  }
  Llama2cVocab v;
  v.tokens.reserve(vocab_size);
  v.scores.reserve(vocab_size);
  v.types.reserve(vocab_size);
  size_t p = 4;
  for (int id = 0; id < vocab_size; ++id) {
    if (b.size() - p < 8) {
      return TANDEM_ERR(kCorrupt, "{}: truncated at token {} of {} (byte {})", path, id, vocab_size, p);
    }
    float score;
    std::memcpy(&score, b.data() + p, 4);
    const int32_t len = load_i32(b.data() + p + 4);
    p += 8;
    if (len < 0 || len > max_len || static_cast<size_t>(len) > b.size() - p) {
      return TANDEM_ERR(kCorrupt, "{}: token {} has length {} (max {}, {} bytes left)", path, id, len,
                        max_len, b.size() - p);
    }
    std::string text(reinterpret_cast<const char*>(b.data() + p), static_cast<size_t>(len));
    p += static_cast<size_t>(len);
    int32_t type = 1;  // normal
    if (id == 0) {
      text = "<unk>";
      type = 2;
    } else if (id == 1) {
      text = "<s>";  // llama2.c stores "\n<s>\n"
      type = 3;
    } else if (id == 2) {
      text = "</s>";
      type = 3;
    } else if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
      type = 6;  // byte fallback token
    } else {
      // SentencePiece spells the word-boundary space as U+2581.
      std::string t;
      t.reserve(text.size() + 8);
      for (char ch : text) {
        if (ch == ' ') t += "\xE2\x96\x81";
        else t += ch;
      }
      text = std::move(t);
    }
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  if (p != b.size()) {
    return TANDEM_ERR(kCorrupt, "{}: {} bytes left after {} tokens: the tokenizer does not match the "
                      "checkpoint's vocab size", path, b.size() - p, vocab_size);
  }
  return v;
}

Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_path, const ConvertLlama2cOptions& opts) {
  TANDEM_ASSIGN_OR_RETURN(auto ckpt, MappedFile::open(checkpoint_path));
  TANDEM_ASSIGN_OR_RETURN(Llama2cConfig c, parse_llama2c_header(ckpt->data(), ckpt->size(), checkpoint_path));
  TANDEM_ASSIGN_OR_RETURN(Llama2cVocab vocab, read_llama2c_tokenizer(tokenizer_path, c.vocab_size));

  const Sizes s = sizes_of(c);
  const int64_t L = c.n_layers, D = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t kv_dim = D / c.n_heads * c.n_kv_heads;

  // Walk the weight groups in file order; each group holds one slab per layer.
  const float* base = reinterpret_cast<const float*>(ckpt->data() + c.header_bytes);
  const float* cur = base;
  auto take = [&cur](int64_t n) {
    const float* r = cur;
    cur += n;
    return r;
  };
  const float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
  if (c.version == 0) {
    emb = take(s.emb);
    rms_att = take(s.norm_layers);
    wq = take(s.wq);
    wk = take(s.wkv);
    wv = take(s.wkv);
    wo = take(s.wo);
    rms_ffn = take(s.norm_layers);
    w1 = take(s.ffn);
    w2 = take(s.ffn);
    w3 = take(s.ffn);
    rms_final = take(s.final_norm);
    take(2 * s.freq_cis);  // RoPE tables: recomputed by the engine
  } else {
    rms_att = take(s.norm_layers);
    rms_ffn = take(s.norm_layers);
    rms_final = take(s.final_norm);
    emb = take(s.emb);
    wq = take(s.wq);
    wk = take(s.wkv);
    wv = take(s.wkv);
    wo = take(s.wo);
    w1 = take(s.ffn);
    w2 = take(s.ffn);
    w3 = take(s.ffn);
  }
  wcls = c.shared_classifier ? emb : take(s.wcls);

  gguf::Writer w;
  w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  w.set_i32_array("tokenizer.ggml.token_type", vocab.types);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", opts.name);
  w.set_u32("general.file_type", 0);  // all F32
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("llama.context_length", static_cast<uint32_t>(opts.context_length > 0 ? opts.context_length : c.seq_len));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.dim / c.n_heads));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  // Row-major [out][in] torch matrices are ggml [in, out] (ne0 = row length).
  auto add = [&w](std::string name, std::vector<int64_t> shape, const float* p) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    w.add_tensor(std::move(name), DType::F32, std::move(shape), p, static_cast<size_t>(n) * 4);
  };
  add("token_embd.weight", {D, V}, emb);
  add("output_norm.weight", {D}, rms_final);
  add("output.weight", {D, V}, wcls);  // the reference writes it even when tied
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    add(p + "attn_q.weight", {D, D}, wq + l * D * D);
    add(p + "attn_k.weight", {D, kv_dim}, wk + l * kv_dim * D);
    add(p + "attn_v.weight", {D, kv_dim}, wv + l * kv_dim * D);
    add(p + "attn_output.weight", {D, D}, wo + l * D * D);
    add(p + "attn_norm.weight", {D}, rms_att + l * D);
    add(p + "ffn_gate.weight", {D, H}, w1 + l * H * D);
    add(p + "ffn_down.weight", {H, D}, w2 + l * H * D);
    add(p + "ffn_up.weight", {D, H}, w3 + l * H * D);
    add(p + "ffn_norm.weight", {D}, rms_ffn + l * D);
  }
  return w.write(out_path);
}

}  // namespace tandem::model
