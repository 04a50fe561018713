// SPDX-License-Identifier: Apache-2.0
// The write buffer alone: batches record writes without reading, and
// ReadThroughLayers / LayerOver state which dirty data wins. Checked against
// a plain byte model over random stacks of batches.
#include "file/write_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace hyperfile::file {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kSpan = 10 * kBlock;

// Applies one random mutation to the batch and to the model (the file's
// bytes as the layers below the batch plus the batch should show them).
void RandomMutation(std::mt19937_64& r, Batch* batch, std::string* model, uint64_t* size) {
  const uint64_t off = r() % kSpan;
  const uint64_t len = 1 + r() % (2 * kBlock);
  const uint64_t end = std::min(off + len, kSpan);
  switch (r() % 6) {
    case 0: {  // truncate (shrink only: growth needs no batch change)
      const uint64_t to = r() % (*size + 1);
      batch->TruncateTo(to, kBlock);
      std::fill(model->begin() + static_cast<long>(to), model->end(), '\0');
      *size = to;
      return;
    }
    case 1:  // zeros (whole blocks become punches)
      for (uint64_t b = off / kBlock; b * kBlock < end; b++) {
        const uint64_t s = std::max(off, b * kBlock), e = std::min(end, (b + 1) * kBlock);
        batch->Write(b, s - b * kBlock, e - b * kBlock, nullptr, kBlock);
      }
      std::fill(model->begin() + static_cast<long>(off), model->begin() + static_cast<long>(end),
                '\0');
      break;
    default: {
      std::string d(end - off, '\0');
      for (char& c : d) c = static_cast<char>('a' + r() % 26);
      for (uint64_t b = off / kBlock; b * kBlock < end; b++) {
        const uint64_t s = std::max(off, b * kBlock), e = std::min(end, (b + 1) * kBlock);
        batch->Write(b, s - b * kBlock, e - b * kBlock, d.data() + (s - off), kBlock);
      }
      model->replace(off, d.size(), d);
    }
  }
  *size = std::max(*size, end);
}

// Reads [0, kSpan) through `layers` over `below` (the committed bytes).
std::string ReadAll(const std::vector<Layer>& layers, const std::string& below, int* below_calls) {
  std::string out(kSpan, '\x55');
  Status st = ReadThroughLayers({Window{0, kSpan, out.data()}}, layers, kBlock,
                                [&](const std::vector<BelowRead>& reads) {
                                  (*below_calls)++;
                                  for (const BelowRead& r : reads) {
                                    EXPECT_GE(r.offset, r.b0 * kBlock);
                                    EXPECT_LE(r.offset + r.len, r.b1 * kBlock);
                                    std::memcpy(r.buf, below.data() + r.offset, r.len);
                                  }
                                  return Status::OK();
                                });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST(WriteBuffer, StacksOfBatchesReadAsTheModelAndLayerOverKeepsIt) {
  for (uint64_t seed = 1; seed <= 300; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 r(seed);
    std::string below(kSpan, '\0');
    for (char& c : below) c = static_cast<char>('A' + r() % 26);
    std::string model = below;
    uint64_t size = kSpan;
    // Up to 4 layers, oldest first; each one's mutations land on the model.
    std::vector<Batch> batches(1 + r() % 4);
    for (Batch& b : batches) {
      for (int i = 0, n = static_cast<int>(r() % 12); i < n; i++) {
        RandomMutation(r, &b, &model, &size);
      }
    }
    std::vector<Layer> layers;
    for (size_t i = batches.size(); i-- > 0;) layers.push_back({&batches[i], nullptr});
    int calls = 0;
    ASSERT_EQ(ReadAll(layers, below, &calls), model);
    EXPECT_LE(calls, 1);

    // A frozen layer whose flush merged its partial blocks reads the same.
    std::map<uint64_t, std::string> merged;
    {
      std::vector<Layer> under;
      for (size_t i = batches.size() - 1; i-- > 0;) under.push_back({&batches[i], nullptr});
      for (const auto& entry : batches.back().blocks) {
        if (entry.second.full(kBlock)) continue;
        std::string block(kBlock, '\0');
        std::vector<Layer> with_top = under;
        with_top.insert(with_top.begin(), {&batches.back(), nullptr});
        std::string all = ReadAll(with_top, below, &calls);
        block = all.substr(entry.first * kBlock, kBlock);
        merged[entry.first] = block;
      }
    }
    layers[0].merged = &merged;
    ASSERT_EQ(ReadAll(layers, below, &calls), model) << "with merged blocks";

    // Laying every batch over the older ones gives one batch that reads the same.
    Batch one = batches[0];
    for (size_t i = 1; i < batches.size(); i++) LayerOver(Batch(batches[i]), &one, kBlock);
    ASSERT_EQ(ReadAll({Layer{&one, nullptr}}, below, &calls), model) << "after LayerOver";
  }
}

TEST(WriteBuffer, WritesNeverNeedTheBaseAndPunchesWinOrLoseByOrder) {
  Batch b;
  std::string d(100, 'x');
  b.Write(3, 10, 110, d.data(), kBlock);
  ASSERT_EQ(b.blocks.size(), 1u);
  EXPECT_FALSE(b.blocks.at(3).full(kBlock));
  EXPECT_TRUE(b.blocks.at(3).valid.Covers(10, 110));
  // A whole block of zeros is a punch and erases the dirty block.
  b.Write(3, 0, kBlock, nullptr, kBlock);
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_TRUE(b.punched.Contains(3));
  // A write after the punch starts from known zeros: full, no base needed.
  b.Write(3, 10, 20, d.data(), kBlock);
  EXPECT_TRUE(b.blocks.at(3).full(kBlock));
  // Truncate: the kept tail is zero-filled as a range, the rest punched.
  Batch t;
  t.TruncateTo(kBlock + 100, kBlock);
  EXPECT_TRUE(t.blocks.at(1).valid.Covers(100, kBlock));
  EXPECT_FALSE(t.blocks.at(1).valid.Covers(0, 100));
  EXPECT_TRUE(t.punched.Contains(2));
  EXPECT_TRUE(t.punched.Contains(1u << 30));
  EXPECT_FALSE(t.punched.Contains(1));
}

TEST(WriteBuffer, BelowIsAskedOnceForEverythingNoLayerCovers) {
  Batch top;
  std::string d(kBlock, 'z');
  top.Write(1, 0, kBlock, d.data(), kBlock);  // full: covers block 1
  top.Write(4, 0, 10, d.data(), kBlock);      // partial: needs its base
  std::vector<BelowRead> seen;
  std::string out(6 * kBlock, '\0');
  ASSERT_TRUE(ReadThroughLayers({Window{0, 6 * kBlock, out.data()}}, {Layer{&top, nullptr}}, kBlock,
                                [&](const std::vector<BelowRead>& reads) {
                                  seen = reads;
                                  for (const BelowRead& r : reads) std::memset(r.buf, 'b', r.len);
                                  return Status::OK();
                                })
                  .ok());
  // Blocks 0, 2-5 (2-3 and 4-5 coalesced: 2..6 in one piece) come from below.
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].b0, 0u);
  EXPECT_EQ(seen[0].b1, 1u);
  EXPECT_EQ(seen[1].b0, 2u);
  EXPECT_EQ(seen[1].b1, 6u);
  EXPECT_EQ(out[kBlock], 'z');
  EXPECT_EQ(out[4 * kBlock + 5], 'z');
  EXPECT_EQ(out[4 * kBlock + 10], 'b');
  // An error from below is returned as is.
  Status st = ReadThroughLayers(
      {Window{0, kBlock, out.data()}}, {Layer{&top, nullptr}}, kBlock,
      [](const std::vector<BelowRead>&) { return Status::IOError("below failed"); });
  EXPECT_EQ(st.code(), Status::IOError("x").code());
}

}  // namespace
}  // namespace hyperfile::file
