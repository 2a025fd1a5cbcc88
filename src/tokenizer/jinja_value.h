#pragma once
// Values of the Jinja-subset interpreter used for chat templates. The model is
// Python's: none, bool, int, float, str, list and dict (insertion ordered,
// string keys), with reference semantics for lists and dicts; plus
// "undefined" (a missing variable / key) and native functions.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tandem::jinja {

// Objects keep their key order, as Python dicts (and therefore tojson) do.
using Json = nlohmann::ordered_json;

class Value;
using List = std::vector<Value>;
using KwArgs = std::vector<std::pair<std::string, Value>>;
using NativeFn = std::function<Result<Value>(std::vector<Value>& args, KwArgs& kwargs)>;

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // namespace(): attributes may be assigned with `set ns.x = ...`
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(List items = {});
  static Value dict(Dict d = {});
  static Value function(NativeFn fn);
  static Value from_json(const Json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return b_; }
  int64_t as_int() const;    // bool / int / float (truncated)
  double as_double() const;  // bool / int / float
  const std::string& str() const { return s_; }
  List& items() const { return *list_; }
  Dict& entries() const { return *dict_; }
  const NativeFn& fn() const { return *fn_; }

  bool truthy() const;
  // Python str(): strings as is, None -> "None", True -> "True", containers as repr.
  std::string to_string() const;
  // Python repr(): strings quoted.
  std::string repr() const;
  // json.dumps(x, ensure_ascii=False, indent=indent) (indent < 0: one line).
  std::string to_json(int indent = -1) const;
  Json to_nlohmann() const;
  const char* type_name() const;

  bool operator==(const Value& o) const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0.0;
  std::string s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<NativeFn> fn_;
};

// While a ContainerArena is alive on this thread, every list, dict and
// function value made is recorded; when the arena closes it empties the ones
// still alive. Templates can build reference cycles (a list appended to
// itself, a namespace holding itself) that shared ownership alone would leak,
// and nothing made during a render outlives it (renders return strings).
class ContainerArena {
 public:
  ContainerArena();
  ~ContainerArena();
  ContainerArena(const ContainerArena&) = delete;
  ContainerArena& operator=(const ContainerArena&) = delete;

 private:
  friend class Value;
  static ContainerArena*& current();
  ContainerArena* prev_;
  std::vector<std::weak_ptr<List>> lists_;
  std::vector<std::weak_ptr<Dict>> dicts_;
  std::vector<std::weak_ptr<NativeFn>> fns_;
};

}  // namespace tandem::jinja
