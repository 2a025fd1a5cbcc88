// Sampler chain: greedy is the argmax, a fixed seed reproduces, and top-k /
// top-p / min-p never pick outside the set each one defines (computed here
// independently from the definitions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "tandem/sampler.h"

namespace {

std::vector<float> random_logits(int n, uint32_t seed, float spread = 3.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<double> probs(const std::vector<float>& l) {
  const double mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double s = 0;
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp(l[i] - mx);
  for (auto& x : p) x /= s;
  return p;
}

// Indices sorted by descending logit (ties: lower id).
std::vector<int> order(const std::vector<float>& l) {
  std::vector<int> o(l.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](int a, int b) { return l[a] > l[b]; });
  return o;
}

tandem::SamplerOptions plain(float temp) {
  tandem::SamplerOptions o;
  o.temperature = temp;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  o.typical_p = 1.0f;
  return o;
}

TEST(Sampler, GreedyIsArgmax) {
  for (uint32_t s = 0; s < 20; ++s) {
    auto l = random_logits(300, s);
    tandem::Sampler smp(plain(0.0f));
    const int want = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(smp.sample(l.data(), 300), want);
  }
  // Ties go to the lower id.
  std::vector<float> t = {1, 5, 2, 5};
  tandem::Sampler smp(plain(0.0f));
  EXPECT_EQ(smp.sample(t.data(), 4), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  auto l = random_logits(200, 7, 1.0f);
  auto run = [&](uint32_t seed) {
    auto o = plain(1.0f);
    o.seed = seed;
    tandem::Sampler smp(o);
    std::vector<int> out;
    for (int i = 0; i < 64; ++i) out.push_back(smp.sample(l.data(), 200));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));  // 64 draws over a flat-ish distribution
  // reset() re-seeds.
  auto o = plain(1.0f);
  o.seed = 5;
  tandem::Sampler smp(o);
  const int a = smp.sample(l.data(), 200), b = smp.sample(l.data(), 200);
  smp.reset();
  EXPECT_EQ(smp.sample(l.data(), 200), a);
  EXPECT_EQ(smp.sample(l.data(), 200), b);
}

TEST(Sampler, TopKStaysInTopK) {
  for (uint32_t s = 0; s < 10; ++s) {
    auto l = random_logits(100, s);
    const auto o = order(l);
    std::set<int> allowed(o.begin(), o.begin() + 5);
    auto opt = plain(1.5f);
    opt.top_k = 5;
    opt.seed = s;
    tandem::Sampler smp(opt);
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(allowed.count(smp.sample(l.data(), 100)));
    EXPECT_EQ(smp.candidates(l.data(), 100).size(), 5u);
  }
}

TEST(Sampler, TopPStaysInNucleus) {
  for (uint32_t s = 0; s < 10; ++s) {
    auto l = random_logits(100, s + 100, 2.0f);
    const auto p = probs(l);
    const auto o = order(l);
    std::set<int> allowed;  // smallest prefix by probability with mass >= 0.7
    double cum = 0;
    for (int id : o) {
      allowed.insert(id);
      cum += p[id];
      if (cum >= 0.7) break;
    }
    auto opt = plain(2.0f);  // a hot temperature would pick outside if the filter leaked
    opt.top_p = 0.7f;
    opt.seed = s;
    tandem::Sampler smp(opt);
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(allowed.count(smp.sample(l.data(), 100)));
  }
}

TEST(Sampler, MinPStaysAboveThreshold) {
  for (uint32_t s = 0; s < 10; ++s) {
    auto l = random_logits(100, s + 200, 2.0f);
    const auto p = probs(l);
    const double pmax = *std::max_element(p.begin(), p.end());
    std::set<int> allowed;
    for (int i = 0; i < 100; ++i)
      if (p[i] >= 0.2 * pmax) allowed.insert(i);
    auto opt = plain(3.0f);
    opt.min_p = 0.2f;
    opt.seed = s;
    tandem::Sampler smp(opt);
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(allowed.count(smp.sample(l.data(), 100)));
    EXPECT_EQ(smp.candidates(l.data(), 100).size(), allowed.size());
  }
}

TEST(Sampler, DrawFollowsDistribution) {
  // Two tokens with p = 0.25 / 0.75 (logits log 1, log 3): frequencies within a few sigma.
  std::vector<float> l = {0.0f, std::log(3.0f)};
  auto opt = plain(1.0f);
  opt.seed = 1;
  tandem::Sampler smp(opt);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += smp.sample(l.data(), 2);
  EXPECT_NEAR(ones / double(n), 0.75, 0.015);
}

TEST(Sampler, PenaltiesAndBias) {
  std::vector<float> l = {2.0f, 1.9f, -1.0f};
  auto opt = plain(0.0f);
  opt.repeat_penalty = 2.0f;  // token 0: 2.0 -> 1.0, now below token 1
  tandem::Sampler smp(opt);
  EXPECT_EQ(smp.sample(l.data(), 3), 0);
  smp.accept(0);
  EXPECT_EQ(smp.sample(l.data(), 3), 1);

  auto o2 = plain(0.0f);
  o2.presence_penalty = 0.5f;
  o2.frequency_penalty = 0.1f;  // token 0 seen twice: 2.0 - 0.2 - 0.5 = 1.3 < 1.9
  tandem::Sampler s2(o2);
  s2.accept(0);
  s2.accept(0);
  EXPECT_EQ(s2.sample(l.data(), 3), 1);

  auto o3 = plain(0.0f);
  o3.logit_bias = {{2, 5.0f}, {0, -INFINITY}};
  tandem::Sampler s3(o3);
  EXPECT_EQ(s3.sample(l.data(), 3), 2);
  auto o4 = plain(1.0f);
  o4.logit_bias = {{0, -INFINITY}, {1, -INFINITY}};
  tandem::Sampler s4(o4);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s4.sample(l.data(), 3), 2);  // the only unbanned token
}

TEST(Sampler, TypicalKeepsClosestToEntropy) {
  // Uniform over 4 tokens + one dominant: typical_p small keeps a token whose
  // surprisal is nearest the entropy, never an excluded one.
  std::vector<float> l = {3.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  auto opt = plain(1.0f);
  opt.typical_p = 0.2f;
  tandem::Sampler smp(opt);
  const auto p = probs(l);
  double H = 0;
  for (double x : p) H -= x * std::log(x);
  // The candidate kept first is the one with the smallest |−log p − H|.
  int best = 0;
  for (int i = 1; i < 5; ++i)
    if (std::fabs(-std::log(p[i]) - H) < std::fabs(-std::log(p[best]) - H)) best = i;
  auto c = smp.candidates(l.data(), 5);
  ASSERT_FALSE(c.empty());
  bool has_best = false;
  for (const auto& t : c) has_best = has_best || t.id == best;
  EXPECT_TRUE(has_best);
}

}  // namespace
