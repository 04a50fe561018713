// SPDX-License-Identifier: Apache-2.0
// What a cold sequential read costs in requests, on every data path: the
// data in GETs of the read unit (readahead is not evicted before it is
// read, even with a cache smaller than the window wants), and the index in
// about one GET per segment (the leaves one flush wrote lie back to back and
// a scan fetches them together), not one per leaf.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <random>
#include <string>

#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Counts GETs of segments (headers and index nodes) and of data objects.
class CountingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      (key.starts_with("dat/") ? data_gets : segment_gets)++;
    }
    return StoreWrapper::Get(key, offset, length, out, info);
  }
  using ObjectStore::Get;
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    data_gets = segment_gets = 0;
  }
  uint64_t data_gets = 0, segment_gets = 0;

 private:
  std::mutex mu_;
};

class ReadCost : public testing::DataPathTest {};
HF_INSTANTIATE_DATA_PATHS(ReadCost);

TEST_P(ReadCost, ColdSequentialReadFetchesEachUnitOnceAndLeavesTogether) {
  constexpr uint64_t kFlush = 32 * kMiB, kFlushes = 3, kSize = kFlush * kFlushes;
  auto base = NewMemoryStore("read-cost");
  std::string data(kSize, '\0');
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < data.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  {
    auto f = File::Create(base, Co()).value();
    for (uint64_t off = 0; off < kSize; off += kFlush) {
      ASSERT_TRUE(f->PWrite(off, data.data() + off, kFlush).ok());
      ASSERT_TRUE(f->Flush().ok());  // one segment and one data object each
    }
    ASSERT_TRUE(f->Close().ok());
  }
  auto store = std::make_shared<CountingStore>(base);
  OpenOptions o = Oo();
  o.read_only = true;
  // A cache a third of the file: readahead in 4 MiB requests, up to a
  // window of half the cache ahead.
  o.block_cache_bytes = 32 * kMiB;
  o.max_read_request_bytes = 4 * kMiB;
  auto f = File::Open(store, o).value();
  std::string buf(kMiB, '\0');
  for (uint64_t off = 0; off < kSize; off += kMiB) {
    ASSERT_EQ(f->PRead(off, buf.data(), kMiB).value(), kMiB);
    ASSERT_EQ(0, std::memcmp(buf.data(), data.data() + off, kMiB)) << "at " << off;
  }
  // Data: one GET per 4 MiB unit, plus one per object boundary and the two
  // reads before the stream is detected. A thrashing cache re-fetches.
  EXPECT_LE(store->data_gets, kSize / (4 * kMiB) + kFlushes + 2);
  // Index: the head's header (which brings the upper nodes), then about one
  // GET per segment's leaves; framed data has a leaf per 64 blocks, so one
  // GET per leaf would be 8 per segment.
  EXPECT_LE(store->segment_gets, 1 + 2 * kFlushes);
}

}  // namespace
}  // namespace hyperfile
