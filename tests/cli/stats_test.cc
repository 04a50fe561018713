// SPDX-License-Identifier: Apache-2.0
// The --stats printer (tools/cli/stats.h): the table and the JSON carry the
// counts of a real store stack.
#include "cli/stats.h"

#include <gtest/gtest.h>

#include "hyperfile/file.h"
#include "hyperfile/object_store.h"

namespace {

using namespace hyperfile;

TEST(CliStats, TableAndJsonShowTheStackCounts) {
  StoreOptions so;
  so.metrics = true;
  auto stack = OpenStoreStack("memory://cli-stats", so);
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  cli::StatsRecorder recorder;
  CreateOptions co;
  co.block_size = 4096;
  auto file = File::Create(stack->store, co);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::string data(8192, 'x');
  ASSERT_TRUE((*file)->PWrite(0, data.data(), data.size()).ok());
  ASSERT_TRUE((*file)->Flush().ok());
  std::string back(8192, '\0');
  ASSERT_TRUE((*file)->PRead(0, back.data(), back.size()).ok());
  auto stat = (*file)->Stat();
  ASSERT_TRUE(stat.ok());
  StoreMetricsSnapshot m = stack->metrics->Snapshot();
  ASSERT_GE(m.count(StoreVerb::kPut), 2u);  // the create and the flush

  cli::CommandStats stats = recorder.Collect(m, *stat);
  std::string table = cli::FormatStatsTable(stats);
  EXPECT_NE(table.find("request"), std::string::npos) << table;
  EXPECT_NE(table.find("put " + std::string(6, ' ')), std::string::npos) << table;
  EXPECT_NE(table.find("commits   " + std::to_string(m.commit_latency.count)), std::string::npos)
      << table;
  EXPECT_NE(table.find("cache     block hits"), std::string::npos) << table;
  EXPECT_EQ(table.find("delete"), std::string::npos) << table;  // verbs never used are left out

  nlohmann::json j = cli::StatsJson(stats);
  EXPECT_EQ(j["requests"]["put"]["count"].get<uint64_t>(), m.count(StoreVerb::kPut));
  EXPECT_EQ(j["requests"]["put"]["outcomes"]["ok"].get<uint64_t>(), m.count(StoreVerb::kPut));
  EXPECT_EQ(j["bytes_out"].get<uint64_t>(), m.bytes_out);
  EXPECT_EQ(j["commits"]["count"].get<uint64_t>(), m.commit_latency.count);
  EXPECT_GE(j["commits"]["count"].get<uint64_t>(), 2u);
  EXPECT_EQ(j["file"]["checkpoint"].get<uint64_t>(), stat->checkpoint);
  EXPECT_EQ(j["file"]["block_cache_hits"].get<uint64_t>() +
                j["file"]["block_cache_misses"].get<uint64_t>(),
            stat->block_cache_hits + stat->block_cache_misses);
  EXPECT_GE(j["elapsed_s"].get<double>(), 0.0);
  // No file: no "file" object, and the table has no cache line.
  cli::CommandStats bare = recorder.Collect(m, std::nullopt);
  EXPECT_FALSE(cli::StatsJson(bare).contains("file"));
  EXPECT_EQ(cli::FormatStatsTable(bare).find("cache"), std::string::npos);
  ASSERT_TRUE((*file)->Close().ok());
}

}  // namespace
