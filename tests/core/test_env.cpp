// env_switch_on / env_switch_set: the A/B switches' reading rule.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/env.h"

namespace tandem {
namespace {

TEST(EnvSwitch, OnUnlessZeroAndSetOnlyWhenOne) {
  const char* name = "TANDEM_TEST_ENV_SWITCH";
  ::unsetenv(name);
  EXPECT_TRUE(env_switch_on(name));
  EXPECT_FALSE(env_switch_set(name));
  ::setenv(name, "0", 1);
  EXPECT_FALSE(env_switch_on(name));
  EXPECT_FALSE(env_switch_set(name));
  ::setenv(name, "00", 1);
  EXPECT_FALSE(env_switch_on(name));
  ::setenv(name, "1", 1);
  EXPECT_TRUE(env_switch_on(name));
  EXPECT_TRUE(env_switch_set(name));
  ::setenv(name, "10", 1);
  EXPECT_TRUE(env_switch_on(name));
  EXPECT_FALSE(env_switch_set(name));
  ::setenv(name, "", 1);
  EXPECT_TRUE(env_switch_on(name));
  EXPECT_FALSE(env_switch_set(name));
  ::unsetenv(name);
}

}  // namespace
}  // namespace tandem
