#pragma once
// Reading the reference engine's golden manifests and logits
// (TANDEM_FIXTURES/golden/<model>.json + .logits, see fixtures/README.md).
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::testing {

inline std::string fixtures() { return TANDEM_FIXTURES; }

struct GoldenDecode {
  std::vector<int32_t> tokens, pos, out, argmax;
  std::vector<std::vector<int>> seq;
  size_t logits_offset = 0;
};

struct Golden {
  int n_vocab = 0;
  nlohmann::json manifest;
  std::vector<float> logits;

  bool load(const std::string& model) {
    std::ifstream j(fixtures() + "/golden/" + model + ".json");
    if (!j) return false;
    manifest = nlohmann::json::parse(j);
    n_vocab = manifest.at("n_vocab").get<int>();
    std::ifstream l(fixtures() + "/golden/" + model + ".logits", std::ios::binary | std::ios::ate);
    if (!l) return false;
    const std::streamsize n = l.tellg();
    l.seekg(0);
    logits.resize(static_cast<size_t>(n) / sizeof(float));
    l.read(reinterpret_cast<char*>(logits.data()), n);
    return static_cast<bool>(l);
  }

  // The decode steps of a scenario, in order (memory ops skipped).
  std::vector<GoldenDecode> decodes(const std::string& scenario) const {
    std::vector<GoldenDecode> r;
    for (const auto& sc : manifest.at("scenarios")) {
      if (sc.at("name") != scenario) continue;
      for (const auto& st : sc.at("steps")) {
        if (st.at("op") != "decode") continue;
        GoldenDecode d;
        d.tokens = st.at("tokens").get<std::vector<int32_t>>();
        d.pos = st.at("pos").get<std::vector<int32_t>>();
        d.out = st.at("out").get<std::vector<int32_t>>();
        d.argmax = st.at("argmax").get<std::vector<int32_t>>();
        d.seq = st.at("seq").get<std::vector<std::vector<int>>>();
        d.logits_offset = st.at("logits_offset").get<size_t>();
        r.push_back(std::move(d));
      }
    }
    return r;
  }

  const float* row(const GoldenDecode& d, size_t k) const { return logits.data() + d.logits_offset + k * n_vocab; }
};

// Σ(a−b)² / Σb²
inline double nmse(const float* a, const float* b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? num / den : num;
}

inline int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// Gap between the largest and second largest value.
inline float top2_margin(const float* x, int n) {
  float a = -INFINITY, b = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (x[i] > a) {
      b = a;
      a = x[i];
    } else if (x[i] > b) {
      b = x[i];
    }
  }
  return a - b;
}

}  // namespace tandem::testing
