// SPDX-License-Identifier: Apache-2.0
// The extents of a checkpoint's index, read the way a handle reads them
// (its lineage, and for an encrypted file the key), for the tests that look
// at where and how blocks were stored (frames, data objects, clones' shares).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "file/sealing.h"
#include "file/segment_io.h"
#include "format/format.h"
#include "hyperfile/encryption.h"
#include "hyperfile/object_store.h"
#include "index/btree.h"

namespace hyperfile::testing {

// Every extent of checkpoint `id`'s index (0: the newest checkpoint), in
// ascending block order. `key`: the file's key if it is encrypted (null:
// it is not); `resolver` finds a clone's origins. A failure to read fails
// the calling test (and returns what was read).
inline std::vector<format::ExtentEntry> IndexExtents(std::shared_ptr<ObjectStore> store,
                                                     uint64_t id = 0,
                                                     const KeySource* key = nullptr,
                                                     file::StoreResolver resolver = nullptr) {
  std::vector<format::ExtentEntry> out;
  if (id == 0) {
    auto latest = file::LatestCheckpointId(store.get());
    EXPECT_TRUE(latest.ok()) << latest.status().ToString();
    if (!latest.ok()) return out;
    id = *latest;
  }
  auto read = file::ReadHeader(store.get(), id);
  EXPECT_TRUE(read.ok()) << read.status().ToString();
  if (!read.ok()) return out;
  const format::SegmentHeader& header = read->header;
  file::Lineage lineage(store, header.origins, std::move(resolver));
  if (key) {
    auto sealer = file::UnlockFile(&lineage, header, key);
    EXPECT_TRUE(sealer.ok()) << sealer.status().ToString();
    if (!sealer.ok()) return out;
    lineage.SetSealer(*sealer);
  }
  file::NodeLoader nodes(&lineage, 1 << 20);
  index::Tree tree(&nodes, header.block_size());
  index::TreeRoot root;
  root.ref = header.self.root;
  root.height = header.self.height;
  Status st = tree.Visit(root, 0, ~uint64_t{0}, [&](const format::ExtentEntry& e) {
    out.push_back(e);
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

}  // namespace hyperfile::testing
