// CellTable: occupancy, per-sequence index, free-cell search, journal undo.
#include <gtest/gtest.h>

#include "memory/cells.h"

namespace tandem::memory {
namespace {

SeqSet set_of(std::initializer_list<int> s) {
  SeqSet r;
  for (int x : s) r.set(x);
  return r;
}

TEST(Cells, OccupyIndexAndFree) {
  CellTable t(8, 4);
  EXPECT_EQ(t.n_free(), 8);
  EXPECT_EQ(t.used_end(), 0);
  t.occupy(0, 5, set_of({0, 2}));
  t.occupy(3, 6, set_of({0}));
  EXPECT_EQ(t.n_used(), 2);
  EXPECT_EQ(t.used_end(), 4);
  EXPECT_EQ(t.pos_min(0), 5);
  EXPECT_EQ(t.pos_max(0), 6);
  EXPECT_EQ(t.pos_max(2), 5);
  EXPECT_EQ(t.pos_max(1), -1);
  EXPECT_EQ(t.find(0, 6), 3);
  EXPECT_EQ(t.find(2, 6), -1);
  EXPECT_EQ(t.find_free(0), 1);
  // Removing the last sequence of a cell frees it; used_end shrinks.
  t.rm_seq(3, 0);
  EXPECT_TRUE(t[3].is_free());
  EXPECT_EQ(t.used_end(), 1);
  EXPECT_EQ(t.pos_max(0), 5);
  t.rm_seq(0, 0);
  EXPECT_FALSE(t[0].is_free());  // still used by sequence 2
  t.rm_seq(0, 2);
  EXPECT_EQ(t.n_used(), 0);
  EXPECT_EQ(t.find_free(0), 0);  // freed cells are reused first
}

TEST(Cells, PinsKeepCellsAlive) {
  CellTable t(4, 2);
  t.occupy(1, 0, set_of({1}));
  t.pin(1);
  t.rm_seq(1, 1);
  EXPECT_FALSE(t[1].is_free());
  EXPECT_EQ(t.pos_max(1), -1);
  EXPECT_EQ(t.find_free(1), 2);
  t.unpin(1);
  EXPECT_TRUE(t[1].is_free());
}

TEST(Cells, SetPosReindexesEverySequence) {
  CellTable t(4, 3);
  t.occupy(2, 7, set_of({0, 1}));
  t.set_pos(2, 3);
  EXPECT_EQ(t.find(0, 3), 2);
  EXPECT_EQ(t.find(1, 3), 2);
  EXPECT_EQ(t.find(0, 7), -1);
}

TEST(Cells, JournalUndoRestoresExactly) {
  CellTable t(6, 3);
  t.occupy(0, 0, set_of({0}));
  t.occupy(1, 1, set_of({0, 1}));
  t.pin(1);
  std::vector<Cell> before;
  for (int c = 0; c < t.size(); ++c) before.push_back(t[c]);
  t.begin_journal();
  t.occupy(2, 2, set_of({0}));
  t.add_seq(0, 2);
  t.rm_seq(1, 1);
  t.set_pos(0, 9);
  t.unpin(1);
  t.rm_seq(1, 0);  // frees cell 1
  t.occupy(1, 4, set_of({2}));
  t.undo_journal();
  for (int c = 0; c < t.size(); ++c) EXPECT_EQ(t[c], before[c]) << "cell " << c;
  EXPECT_EQ(t.pos_max(0), 1);
  EXPECT_EQ(t.pos_max(2), -1);
  EXPECT_EQ(t.find(1, 1), 1);
  EXPECT_EQ(t.n_used(), 2);
  EXPECT_EQ(t.used_end(), 2);
}

}  // namespace
}  // namespace tandem::memory
