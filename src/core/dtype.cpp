#include "core/dtype.h"

#include <array>
#include <cctype>

namespace tandem {
namespace {

struct Entry {
  uint32_t id;
  DTypeInfo info;
};

// Block geometry from the GGUF specification (ggml block structs).
constexpr std::array<Entry, 32> kTypes{{
    {0, {"f32", 1, 4, false}},       {1, {"f16", 1, 2, false}},
    {2, {"q4_0", 32, 18, true}},     {3, {"q4_1", 32, 20, true}},
    {6, {"q5_0", 32, 22, true}},     {7, {"q5_1", 32, 24, true}},
    {8, {"q8_0", 32, 34, true}},     {9, {"q8_1", 32, 36, true}},
    {10, {"q2_k", 256, 84, true}},   {11, {"q3_k", 256, 110, true}},
    {12, {"q4_k", 256, 144, true}},  {13, {"q5_k", 256, 176, true}},
    {14, {"q6_k", 256, 210, true}},  {15, {"q8_k", 256, 292, true}},
    {16, {"iq2_xxs", 256, 66, true}}, {17, {"iq2_xs", 256, 74, true}},
    {18, {"iq3_xxs", 256, 98, true}}, {19, {"iq1_s", 256, 50, true}},
    {20, {"iq4_nl", 32, 18, true}},  {21, {"iq3_s", 256, 110, true}},
    {22, {"iq2_s", 256, 82, true}},  {23, {"iq4_xs", 256, 136, true}},
    {24, {"i8", 1, 1, false}},       {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},      {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},      {29, {"iq1_m", 256, 56, true}},
    {30, {"bf16", 1, 2, false}},     {34, {"tq1_0", 256, 54, true}},
    {35, {"tq2_0", 256, 66, true}},  {39, {"mxfp4", 32, 17, true}},
}};

}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t id) {
  for (const Entry& e : kTypes)
    if (e.id == id) return e.info;
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType t) {
  for (const Entry& e : kTypes)
    if (e.id == static_cast<uint32_t>(t)) return e.info;
  return kTypes[0].info;  // unreachable for a defined DType
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const Entry& e : kTypes) {
    if (e.info.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(name[i])) != e.info.name[i]) eq = false;
    if (eq) return static_cast<DType>(e.id);
  }
  return std::nullopt;
}

}  // namespace tandem
