#include "scheduler/concurrency_gate.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace dialer {
namespace {

TEST(concurrency_gate, constructor_rejects_capacity_below_one) {
  EXPECT_THROW(concurrency_gate(0), std::invalid_argument);
  EXPECT_THROW(concurrency_gate(-1), std::invalid_argument);
  EXPECT_NO_THROW(concurrency_gate(1));
}

TEST(concurrency_gate, starts_empty_and_available) {
  const concurrency_gate gate(3);
  EXPECT_EQ(gate.capacity(), 3);
  EXPECT_EQ(gate.in_use(), 0);
  EXPECT_EQ(gate.peak(), 0);
  EXPECT_EQ(gate.release_bugs(), 0u);
  EXPECT_TRUE(gate.available());
}

TEST(concurrency_gate, grants_up_to_capacity_then_refuses) {
  concurrency_gate gate(3);
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_TRUE(gate.available());
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_FALSE(gate.available());
  EXPECT_FALSE(gate.try_acquire());
  EXPECT_FALSE(gate.try_acquire());
  EXPECT_EQ(gate.in_use(), 3);
}

TEST(concurrency_gate, release_frees_exactly_one_slot) {
  concurrency_gate gate(2);
  ASSERT_TRUE(gate.try_acquire());
  ASSERT_TRUE(gate.try_acquire());
  gate.release();
  EXPECT_EQ(gate.in_use(), 1);
  EXPECT_TRUE(gate.available());
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_FALSE(gate.try_acquire());
}

TEST(concurrency_gate, in_use_never_exceeds_capacity_over_many_cycles) {
  concurrency_gate gate(5);
  for (int round = 0; round < 1000; ++round) {
    while (gate.try_acquire()) {
    }
    ASSERT_EQ(gate.in_use(), 5);
    for (int i = 0; i < round % 5 + 1; ++i) {
      gate.release();
    }
  }
  EXPECT_EQ(gate.peak(), 5);
  EXPECT_EQ(gate.release_bugs(), 0u);
}

TEST(concurrency_gate, peak_records_the_high_water_mark_and_survives_release) {
  concurrency_gate gate(10);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(gate.try_acquire());
  }
  for (int i = 0; i < 4; ++i) {
    gate.release();
  }
  ASSERT_TRUE(gate.try_acquire());
  EXPECT_EQ(gate.in_use(), 1);
  EXPECT_EQ(gate.peak(), 4);
}

TEST(concurrency_gate, refused_acquire_does_not_move_peak) {
  concurrency_gate gate(2);
  ASSERT_TRUE(gate.try_acquire());
  ASSERT_TRUE(gate.try_acquire());
  ASSERT_FALSE(gate.try_acquire());
  EXPECT_EQ(gate.peak(), 2);
}

TEST(concurrency_gate, lower_capacity_revokes_nothing_and_grants_nothing_until_below_it) {
  concurrency_gate gate(5);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(gate.try_acquire());
  }
  gate.set_capacity(3);
  EXPECT_EQ(gate.capacity(), 3);
  EXPECT_EQ(gate.in_use(), 5);
  EXPECT_FALSE(gate.available());

  gate.release();
  gate.release();
  EXPECT_EQ(gate.in_use(), 3);
  EXPECT_FALSE(gate.try_acquire());

  gate.release();
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_FALSE(gate.try_acquire());
  EXPECT_EQ(gate.in_use(), 3);
  EXPECT_EQ(gate.peak(), 5);
}

TEST(concurrency_gate, higher_capacity_grants_at_once) {
  concurrency_gate gate(1);
  ASSERT_TRUE(gate.try_acquire());
  ASSERT_FALSE(gate.try_acquire());
  gate.set_capacity(3);
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_FALSE(gate.try_acquire());
}

TEST(concurrency_gate, set_capacity_rejects_below_one_and_keeps_the_old_capacity) {
  concurrency_gate gate(4);
  EXPECT_THROW(gate.set_capacity(0), std::invalid_argument);
  EXPECT_THROW(gate.set_capacity(-2), std::invalid_argument);
  EXPECT_EQ(gate.capacity(), 4);
}

TEST(concurrency_gate_death_test, release_without_acquire_is_a_bug) {
#ifdef NDEBUG
  // Release builds: counted, never negative.
  concurrency_gate gate(2);
  gate.release();
  EXPECT_EQ(gate.release_bugs(), 1u);
  EXPECT_EQ(gate.in_use(), 0);
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_TRUE(gate.try_acquire());
  EXPECT_FALSE(gate.try_acquire());
#else
  // The default build (-O2 with assertions) stops at the broken invariant.
  concurrency_gate gate(2);
  EXPECT_DEATH(gate.release(), "release without acquire");
  EXPECT_EQ(gate.in_use(), 0);
#endif
}

}  // namespace
}  // namespace dialer
