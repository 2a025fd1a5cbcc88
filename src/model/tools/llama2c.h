#pragma once
// llama2.c checkpoint + tokenizer -> GGUF (arch `llama`), laid out the way the
// reference engine's llama2.c converter lays it out (same tensor names, types,
// shapes and bytes; SentencePiece-style vocab with byte/control token types).
//
// Checkpoint formats (little endian, all weights f32):
//  * legacy (v0): 7 x i32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//    vocab_size, seq_len}; vocab_size < 0 means an unshared classifier. Then
//    tok_emb[V][dim], rms_att[L][dim], wq[L][dim][dim], wk[L][kv_dim][dim],
//    wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hid][dim],
//    w2[L][dim][hid], w3[L][hid][dim], rms_final[dim],
//    freq_cis_real[seq][hs/2], freq_cis_imag[seq][hs/2], (wcls[V][dim] if unshared).
//  * v1: u32 magic 0x616b3432 ("ak42"), i32 version 1, the same 7 x i32, u8
//    shared_classifier, zero padding to 256 bytes. Then rms_att[L][dim],
//    rms_ffn[L][dim], rms_final[dim], tok_emb, wq, wk, wv, wo, w1, w2, w3,
//    (wcls if unshared). No freq_cis tables.
// Tokenizer (tokenizer.bin): i32 max_token_length, then per token: f32 score,
// i32 length, `length` bytes.
//
// Weights are copied unchanged: llama2.c rotates adjacent pairs (2i, 2i+1),
// which is exactly what GGUF `llama` files expect, so wq/wk need no permutation
// (unlike HF checkpoints, whose rotate-half layout the HF converter undoes).
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tandem::model {

struct Llama2cConfig {
  int version = 0;         // 0 = legacy, 1 = "ak42" v1
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;      // always positive here
  int seq_len = 0;
  bool shared_classifier = true;
  size_t header_bytes = 0; // where the weights start
};

// Parses and validates the header of an in-memory checkpoint, including that
// the byte count matches the weights the header implies exactly.
Result<Llama2cConfig> parse_llama2c_header(const uint8_t* data, size_t size, const std::string& name);

struct Llama2cVocab {
  std::vector<std::string> tokens;  // GGUF spelling: spaces as U+2581, <s>, </s>, <unk>
  std::vector<float> scores;
  std::vector<int32_t> types;       // 1 normal, 2 unknown, 3 control, 6 byte
};
// Reads a llama2.c tokenizer.bin holding exactly `vocab_size` tokens.
Result<Llama2cVocab> read_llama2c_tokenizer(const std::string& path, int vocab_size);

struct ConvertLlama2cOptions {
  int context_length = 0;        // llama.context_length; 0 = the checkpoint's seq_len
  std::string name = "llama";    // general.name
};

// Converts and writes `out_path` (temp file + rename: nothing is left behind on
// failure). Errors name the file and what is wrong with it.
Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_path, const ConvertLlama2cOptions& opts = {});

}  // namespace tandem::model
