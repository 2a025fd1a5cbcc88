#pragma once
// Grammar-constrained sampling: a TokenConstraint (include/tandem/sampler.h)
// that bans every token whose bytes cannot continue the grammar.
//
// Masking walks a byte trie of the vocabulary (shared prefixes are checked
// once) through the lazily built byte automaton of the grammar (matcher.h),
// pruning a whole subtree as soon as a prefix is dead. The allowed-token
// bitset of each automaton state is cached, so a state seen before (e.g.
// "inside a JSON string") costs one pass over the candidates. End-of-generation
// tokens are allowed exactly when the grammar can end; tokens with no text
// (control tokens) are never allowed otherwise.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "runtime/grammar/gbnf.h"
#include "runtime/grammar/matcher.h"
#include "tandem/sampler.h"

namespace tandem {
class Model;
}

namespace tandem::grammar {

// The vocabulary as a byte trie, in DFS preorder (node 0 is the root).
class GrammarVocab {
 public:
  // pieces[i]: the bytes of token i ("" for tokens that stand for no text);
  // eog[i]: token i ends the generation.
  GrammarVocab(std::vector<std::string> pieces, std::vector<bool> eog);
  // From a model's vocabulary (token_to_piece without specials, is_eog), cached per model.
  static std::shared_ptr<const GrammarVocab> of(const Model& model);

  struct Node {
    uint32_t end = 0;        // one past the last node of this subtree
    uint32_t tok_begin = 0;  // tokens whose bytes end here: node_tokens[tok_begin, tok_end)
    uint32_t tok_end = 0;
    uint16_t depth = 0;
    uint8_t byte = 0;
  };
  int n_vocab() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int32_t t) const { return pieces_[static_cast<size_t>(t)]; }
  bool is_eog(int32_t t) const { return eog_[static_cast<size_t>(t)] != 0; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& node_tokens() const { return node_tokens_; }
  int max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> pieces_;
  std::vector<uint8_t> eog_;
  std::vector<Node> nodes_;
  std::vector<int32_t> node_tokens_;
  int max_depth_ = 0;
};

class GrammarConstraint final : public TokenConstraint {
 public:
  // Parses GBNF text (errors name `what` and the line).
  static Result<std::shared_ptr<GrammarConstraint>> create(std::string_view gbnf,
                                                           std::shared_ptr<const GrammarVocab> vocab,
                                                           std::string_view what = "grammar");

  void apply(TokenCandidate* cands, size_t n) override;
  bool accept(int32_t token) override;
  bool can_end() const override { return state_.can_end(); }
  void reset() override;
  std::unique_ptr<TokenConstraint> clone() const override;

  // The allowed tokens now (EOG included when the grammar can end), ascending.
  std::vector<int32_t> allowed_tokens();
  const Grammar& grammar() const { return shared_->grammar; }
  bool ended() const { return ended_; }

 private:
  struct Shared {
    Grammar grammar;
    std::shared_ptr<const GrammarVocab> vocab;
    std::mutex m;  // the automaton and the masks are shared by every clone
    ByteDfa dfa;
    std::unordered_map<int32_t, std::vector<uint64_t>> masks;  // automaton state -> allowed-token bitset
    explicit Shared(Grammar g) : grammar(std::move(g)), dfa(grammar) {}
  };
  explicit GrammarConstraint(std::shared_ptr<Shared> s);
  // The bitset of the current state (computed on a miss). Caller holds shared_->m.
  const std::vector<uint64_t>& mask_locked();

  std::shared_ptr<Shared> shared_;
  ParseState state_;
  bool ended_ = false;
};

}  // namespace tandem::grammar
