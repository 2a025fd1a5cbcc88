// Token masking with a vocabulary trie and the grammar's byte automaton (see constraint.h).
#include "runtime/grammar/constraint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <tuple>

#include "tandem/tandem.h"

namespace tandem::grammar {

// ------------------------------------------------------------------ GrammarVocab
GrammarVocab::GrammarVocab(std::vector<std::string> pieces, std::vector<bool> eog)
    : pieces_(std::move(pieces)), eog_(pieces_.size(), 0) {
  for (size_t i = 0; i < eog.size() && i < eog_.size(); ++i) eog_[i] = eog[i] ? 1 : 0;
  std::vector<int32_t> order;
  for (size_t i = 0; i < pieces_.size(); ++i)
    if (!pieces_[i].empty() && !eog_[i]) order.push_back(static_cast<int32_t>(i));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return pieces_[a] < pieces_[b]; });

  nodes_.push_back({});           // root
  std::vector<uint32_t> path{0};  // open nodes: path[d] is the node at depth d
  const std::string* prev = nullptr;
  for (int32_t t : order) {
    const std::string& p = pieces_[static_cast<size_t>(t)];
    size_t lcp = 0;
    if (prev)
      while (lcp < p.size() && lcp < prev->size() && p[lcp] == (*prev)[lcp]) ++lcp;
    while (path.size() - 1 > lcp) {
      nodes_[path.back()].end = static_cast<uint32_t>(nodes_.size());
      path.pop_back();
    }
    for (size_t d = lcp + 1; d <= p.size(); ++d) {
      Node n;
      n.depth = static_cast<uint16_t>(std::min<size_t>(d, 65535));
      n.byte = static_cast<uint8_t>(p[d - 1]);
      path.push_back(static_cast<uint32_t>(nodes_.size()));
      nodes_.push_back(n);
    }
    Node& leaf = nodes_[path.back()];
    if (leaf.tok_end == leaf.tok_begin) leaf.tok_begin = leaf.tok_end = static_cast<uint32_t>(node_tokens_.size());
    node_tokens_.push_back(t);  // identical pieces are adjacent in the sorted order
    leaf.tok_end = static_cast<uint32_t>(node_tokens_.size());
    max_depth_ = std::max(max_depth_, static_cast<int>(p.size()));
    prev = &p;
  }
  while (!path.empty()) {
    nodes_[path.back()].end = static_cast<uint32_t>(nodes_.size());
    path.pop_back();
  }
}

std::shared_ptr<const GrammarVocab> GrammarVocab::of(const Model& model) {
  // Keyed by the model object and its identity (path, size) so a reused address is not mistaken.
  static std::mutex m;
  static std::map<std::tuple<const Model*, std::string, int>, std::weak_ptr<const GrammarVocab>> cache;
  const auto key = std::make_tuple(&model, model.path(), model.n_vocab());
  std::lock_guard<std::mutex> lock(m);
  if (auto it = cache.find(key); it != cache.end())
    if (auto sp = it->second.lock()) return sp;
  const int n = model.n_vocab();
  std::vector<std::string> pieces(static_cast<size_t>(n));
  std::vector<bool> eog(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    pieces[t] = model.token_to_piece(t, /*special=*/false);
    eog[t] = model.is_eog(t);
  }
  auto v = std::make_shared<const GrammarVocab>(std::move(pieces), std::move(eog));
  cache[key] = v;
  return v;
}

// ------------------------------------------------------------------ GrammarConstraint
namespace {
constexpr size_t kMaxDfaStates = 16384;  // ~16 MiB of transitions; cleared when exceeded
constexpr size_t kMaxMasks = 256;        // cached bitsets (n_vocab / 8 bytes each)
}  // namespace

Result<std::shared_ptr<GrammarConstraint>> GrammarConstraint::create(std::string_view gbnf,
                                                                     std::shared_ptr<const GrammarVocab> vocab,
                                                                     std::string_view what) {
  TANDEM_ASSIGN_OR_RETURN(Grammar g, parse_gbnf(gbnf, what));
  auto shared = std::make_shared<Shared>(std::move(g));
  shared->vocab = std::move(vocab);
  auto c = std::shared_ptr<GrammarConstraint>(new GrammarConstraint(std::move(shared)));
  if (c->state_.dead()) return TANDEM_ERR(kInvalidArgument, "{}: the grammar matches nothing", what);
  return c;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<Shared> s) : shared_(std::move(s)) {
  state_ = initial_state(shared_->grammar);
}

void GrammarConstraint::reset() {
  state_ = initial_state(shared_->grammar);
  ended_ = false;
}

std::unique_ptr<TokenConstraint> GrammarConstraint::clone() const {
  auto c = std::unique_ptr<GrammarConstraint>(new GrammarConstraint(shared_));
  c->state_ = state_;
  c->ended_ = ended_;
  return c;
}

const std::vector<uint64_t>& GrammarConstraint::mask_locked() {
  Shared& sh = *shared_;
  if (sh.dfa.size() > kMaxDfaStates) {
    sh.dfa.clear();
    sh.masks.clear();
  }
  const int32_t sid = sh.dfa.intern(state_);
  if (auto it = sh.masks.find(sid); it != sh.masks.end()) return it->second;
  if (sh.masks.size() >= kMaxMasks) sh.masks.clear();

  const GrammarVocab& v = *sh.vocab;
  std::vector<uint64_t> bits((static_cast<size_t>(v.n_vocab()) + 63) / 64, 0);
  if (sid != ByteDfa::kDead) {
    // Preorder walk: st[d] is the automaton state after the first d bytes of
    // the current trie path; a dead prefix skips its whole subtree.
    const auto& nodes = v.nodes();
    const auto& toks = v.node_tokens();
    std::vector<int32_t> st(static_cast<size_t>(v.max_depth()) + 1);
    st[0] = sid;
    for (size_t i = 1; i < nodes.size();) {
      const GrammarVocab::Node& nd = nodes[i];
      const int32_t s = sh.dfa.next(st[nd.depth - 1u], nd.byte);
      if (s == ByteDfa::kDead) {
        i = nd.end;
        continue;
      }
      st[nd.depth] = s;
      for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k) {
        const auto t = static_cast<uint32_t>(toks[k]);
        bits[t >> 6] |= uint64_t{1} << (t & 63);
      }
      ++i;
    }
  }
  return sh.masks.emplace(sid, std::move(bits)).first->second;
}

void GrammarConstraint::apply(TokenCandidate* cands, size_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const GrammarVocab& v = *shared_->vocab;
  if (ended_) {
    for (size_t i = 0; i < n; ++i) cands[i].logit = kNegInf;
    return;
  }
  const bool end_ok = state_.can_end();
  std::lock_guard<std::mutex> lock(shared_->m);
  const std::vector<uint64_t>& bits = mask_locked();
  for (size_t i = 0; i < n; ++i) {
    TokenCandidate& c = cands[i];
    if (c.logit == kNegInf) continue;
    const int32_t t = c.id;
    if (t < 0 || t >= v.n_vocab()) {
      c.logit = kNegInf;
    } else if (v.is_eog(t)) {
      if (!end_ok) c.logit = kNegInf;
    } else if (!((bits[static_cast<size_t>(t) >> 6] >> (t & 63)) & 1)) {
      c.logit = kNegInf;
    }
  }
}

bool GrammarConstraint::accept(int32_t token) {
  const GrammarVocab& v = *shared_->vocab;
  if (ended_ || token < 0 || token >= v.n_vocab()) return false;
  if (v.is_eog(token)) {
    if (!state_.can_end()) return false;
    ended_ = true;
    return true;
  }
  const std::string& p = v.piece(token);
  if (p.empty()) return false;
  std::lock_guard<std::mutex> lock(shared_->m);
  ByteDfa& dfa = shared_->dfa;
  int32_t s = dfa.intern(state_);
  for (char c : p) {
    if (s == ByteDfa::kDead) break;
    s = dfa.next(s, static_cast<uint8_t>(c));
  }
  if (s == ByteDfa::kDead) return false;
  state_ = dfa.state(s);
  return true;
}

std::vector<int32_t> GrammarConstraint::allowed_tokens() {
  const GrammarVocab& v = *shared_->vocab;
  std::vector<TokenCandidate> c(static_cast<size_t>(v.n_vocab()));
  for (int i = 0; i < v.n_vocab(); ++i) c[i] = {i, 0.0f, 0.0f};
  apply(c.data(), c.size());
  std::vector<int32_t> out;
  for (const auto& t : c)
    if (t.logit == 0.0f) out.push_back(t.id);
  return out;
}

}  // namespace tandem::grammar
