#pragma once
// Internal side of the public API: what the pimpl structs hold, and the
// Status -> Outcome bridge. Only src/runtime/*.cpp include this.
#include <memory>
#include <string>

#include "core/status.h"
#include "model/model.h"
#include "tandem/tandem.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

struct Model::Impl {
  std::string path;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

namespace runtime {

inline Errc to_errc(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return Errc::kOk;
    case StatusCode::kInvalidArgument: return Errc::kInvalidArgument;
    case StatusCode::kNotFound: return Errc::kNotFound;
    case StatusCode::kCorrupt: return Errc::kCorrupt;
    case StatusCode::kUnsupported: return Errc::kUnsupported;
    case StatusCode::kOutOfMemory: return Errc::kOutOfMemory;
    case StatusCode::kIo: return Errc::kIo;
    case StatusCode::kCancelled: return Errc::kCancelled;
    case StatusCode::kInternal: return Errc::kInternal;
  }
  return Errc::kInternal;
}

inline Outcome to_outcome(const Status& s) {
  return s.is_ok() ? Outcome() : Outcome(to_errc(s.code()), s.message());
}

}  // namespace runtime
}  // namespace tandem
