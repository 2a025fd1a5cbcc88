#include <gtest/gtest.h>

#include "core/dtype.h"
#include "core/status.h"

namespace tandem {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return TANDEM_ERR(kInvalidArgument, "value {} is not positive", v);
  return v;
}

Status twice(int v, int* out) {
  TANDEM_ASSIGN_OR_RETURN(int x, parse_positive(v));
  *out = 2 * x;
  return Status::ok();
}

TEST(Status, ResultCarriesValueOrError) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().to_string(), "invalid argument: value -1 is not positive");
}

TEST(Status, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(twice(4, &out).is_ok());
  EXPECT_EQ(out, 8);
  Status st = twice(0, &out);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("not positive"), std::string::npos);
}

TEST(DType, BlockGeometryMatchesGguf) {
  EXPECT_EQ(row_bytes(DType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(DType::Q6_K, 256), 210u);
  EXPECT_EQ(row_bytes(DType::BF16, 3), 6u);
  EXPECT_FALSE(dtype_info(4u).has_value());  // removed Q4_2
  EXPECT_FALSE(dtype_info(1000u).has_value());
  EXPECT_EQ(dtype_from_name("Q5_K"), DType::Q5_K);
  EXPECT_FALSE(dtype_from_name("q9_9").has_value());
}

}  // namespace
}  // namespace tandem
