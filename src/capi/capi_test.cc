// SPDX-License-Identifier: Apache-2.0
// The C API: error paths (NULL handles and pointers, bad arguments, closed
// handles) return codes and messages and never crash (the suite runs under
// ASan+UBSan in CI); and one pass over every call on a memory:// file.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/hyperfile.h"
#include "hyperfile/store_layers.h"
#include "hyperfile/version.h"

namespace {

std::string Uri(const std::string& name) {
  return "memory://capi-" + name + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

bool ErrorMentions(const char* part) { return std::strstr(hf_last_error(), part) != nullptr; }

TEST(CApi, VersionAndStatusNames) {
  EXPECT_STREQ(hf_version(), HYPERFILE_VERSION_STRING);
  EXPECT_STREQ(hf_status_name(HF_OK), "OK");
  EXPECT_STREQ(hf_status_name(HF_ENOTFOUND), "NotFound");
  EXPECT_STREQ(hf_status_name(HF_ERANGE), "OutOfRange");
  EXPECT_STREQ(hf_status_name(HF_ECLOSED), "Closed");
  EXPECT_STREQ(hf_status_name(-1), "Unknown");
  EXPECT_STREQ(hf_status_name(14), "Unknown");
  EXPECT_STREQ(hf_status_name(1000), "Unknown");
}

TEST(CApi, NullArgumentsAreInvalid) {
  hf_file* f = nullptr;
  char buf[8];
  size_t n = 0;
  uint64_t id = 0;
  EXPECT_EQ(hf_create(nullptr, 0, 0, &f), HF_EINVAL);
  EXPECT_TRUE(ErrorMentions("hf_create: uri is NULL")) << hf_last_error();
  EXPECT_EQ(hf_create(Uri("a").c_str(), 0, 0, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_open(nullptr, 0, &f), HF_EINVAL);
  EXPECT_EQ(hf_open(Uri("a").c_str(), 0, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_open_at(nullptr, "latest", &f), HF_EINVAL);
  EXPECT_EQ(hf_open_at(Uri("a").c_str(), nullptr, &f), HF_EINVAL);
  EXPECT_EQ(hf_open_at(Uri("a").c_str(), "latest", nullptr), HF_EINVAL);
  EXPECT_EQ(f, nullptr);  // outputs untouched on failure

  EXPECT_EQ(hf_close(nullptr), HF_EINVAL);
  hf_free(nullptr);  // no-op
  EXPECT_EQ(hf_pread(nullptr, buf, sizeof buf, 0, &n), HF_EINVAL);
  EXPECT_TRUE(ErrorMentions("hf_pread: file handle is NULL")) << hf_last_error();
  EXPECT_EQ(hf_pwrite(nullptr, buf, sizeof buf, 0), HF_EINVAL);
  EXPECT_EQ(hf_append(nullptr, buf, sizeof buf, &id), HF_EINVAL);
  EXPECT_EQ(hf_truncate(nullptr, 0), HF_EINVAL);
  EXPECT_EQ(hf_punch_hole(nullptr, 0, 1), HF_EINVAL);
  EXPECT_EQ(hf_write_zeroes(nullptr, 0, 1), HF_EINVAL);
  EXPECT_EQ(hf_flush(nullptr, &id), HF_EINVAL);
  hf_stat st;
  EXPECT_EQ(hf_fstat(nullptr, &st), HF_EINVAL);

  hf_checkpoint* cps = nullptr;
  hf_snapshot* snaps = nullptr;
  size_t count = 0;
  EXPECT_EQ(hf_list_checkpoints(nullptr, 0, &cps, &count), HF_EINVAL);
  EXPECT_EQ(hf_list_checkpoints(Uri("a").c_str(), 0, nullptr, &count), HF_EINVAL);
  EXPECT_EQ(hf_list_checkpoints(Uri("a").c_str(), 0, &cps, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_resolve(nullptr, "latest", &id), HF_EINVAL);
  EXPECT_EQ(hf_resolve(Uri("a").c_str(), nullptr, &id), HF_EINVAL);
  EXPECT_EQ(hf_resolve(Uri("a").c_str(), "latest", nullptr), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_create(nullptr, "s", nullptr), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_create(Uri("a").c_str(), nullptr, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_list(nullptr, &snaps, &count), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_list(Uri("a").c_str(), nullptr, &count), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_list(Uri("a").c_str(), &snaps, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_delete(nullptr, "s"), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_delete(Uri("a").c_str(), nullptr), HF_EINVAL);
  EXPECT_EQ(hf_restore(nullptr, "1", &id), HF_EINVAL);
  EXPECT_EQ(hf_restore(Uri("a").c_str(), nullptr, &id), HF_EINVAL);
  EXPECT_EQ(hf_clone(nullptr, nullptr, Uri("b").c_str(), &id), HF_EINVAL);
  EXPECT_EQ(hf_clone(Uri("a").c_str(), nullptr, nullptr, &id), HF_EINVAL);
  hf_free_checkpoints(nullptr);
  hf_free_snapshots(nullptr, 3);
}

TEST(CApi, BadArgumentsAreErrorsNotCrashes) {
  hf_file* f = nullptr;
  EXPECT_EQ(hf_create(Uri("f").c_str(), 1000, 0, &f), HF_EINVAL);  // not a power of two
  EXPECT_EQ(hf_create("s3://", 0, 0, &f), HF_EINVAL);
  EXPECT_EQ(hf_create("nope://x", 0, 0, &f), HF_EINVAL);
  EXPECT_EQ(hf_open(Uri("missing").c_str(), 0, &f), HF_ENOTFOUND);
  EXPECT_EQ(hf_open(Uri("missing").c_str(), 0x80, &f), HF_EINVAL);
  EXPECT_TRUE(ErrorMentions("unknown flags")) << hf_last_error();
  EXPECT_EQ(f, nullptr);

  ASSERT_EQ(hf_create(Uri("f").c_str(), 4096, 0, &f), HF_OK) << hf_last_error();
  EXPECT_EQ(hf_create(Uri("f").c_str(), 4096, 0, &f), HF_EEXIST);
  char buf[16] = {};
  size_t n = 99;
  EXPECT_EQ(hf_pread(f, nullptr, 4, 0, &n), HF_EINVAL);
  EXPECT_EQ(hf_pread(f, buf, 4, 0, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_pwrite(f, nullptr, 4, 0), HF_EINVAL);
  EXPECT_EQ(hf_append(f, nullptr, 4, nullptr), HF_EINVAL);
  EXPECT_EQ(hf_fstat(f, nullptr), HF_EINVAL);
  // Zero-length calls with NULL buffers are fine.
  EXPECT_EQ(hf_pwrite(f, nullptr, 0, 0), HF_OK) << hf_last_error();
  EXPECT_EQ(hf_pread(f, nullptr, 0, 0, &n), HF_OK) << hf_last_error();
  EXPECT_EQ(n, 0u);
  // Past the format's limits.
  EXPECT_NE(hf_pwrite(f, buf, sizeof buf, UINT64_MAX - 4), HF_OK);
  EXPECT_NE(hf_truncate(f, UINT64_MAX), HF_OK);
  EXPECT_NE(hf_write_zeroes(f, UINT64_MAX - 1, 100), HF_OK);

  uint64_t id = 0;
  EXPECT_EQ(hf_snapshot_create(Uri("f").c_str(), "1bad", nullptr), HF_EINVAL);
  EXPECT_EQ(hf_snapshot_create(Uri("f").c_str(), "ok", "not a selector!"), HF_EINVAL);
  EXPECT_EQ(hf_resolve(Uri("f").c_str(), "", &id), HF_EINVAL);
  EXPECT_EQ(hf_open_at(Uri("f").c_str(), "99", &f), HF_ENOTFOUND);
  EXPECT_EQ(hf_restore(Uri("f").c_str(), "%%", &id), HF_EINVAL);
  EXPECT_EQ(hf_clone(Uri("f").c_str(), "$", Uri("g").c_str(), &id), HF_EINVAL);
  EXPECT_EQ(hf_close(f), HF_OK) << hf_last_error();
  hf_free(f);
}

TEST(CApi, ClosedHandleIsAnErrorUntilFreed) {
  hf_file* f = nullptr;
  ASSERT_EQ(hf_create(Uri("c").c_str(), 0, 0, &f), HF_OK) << hf_last_error();
  ASSERT_EQ(hf_pwrite(f, "abc", 3, 0), HF_OK);
  ASSERT_EQ(hf_close(f), HF_OK) << hf_last_error();
  char buf[4];
  size_t n = 0;
  uint64_t id = 0;
  hf_stat st;
  EXPECT_EQ(hf_close(f), HF_ECLOSED);
  EXPECT_TRUE(ErrorMentions("already closed")) << hf_last_error();
  EXPECT_EQ(hf_pread(f, buf, 3, 0, &n), HF_ECLOSED);
  EXPECT_TRUE(ErrorMentions("hf_pread: the handle is closed")) << hf_last_error();
  EXPECT_EQ(hf_pwrite(f, "x", 1, 0), HF_ECLOSED);
  EXPECT_EQ(hf_append(f, "x", 1, &id), HF_ECLOSED);
  EXPECT_EQ(hf_truncate(f, 0), HF_ECLOSED);
  EXPECT_EQ(hf_punch_hole(f, 0, 1), HF_ECLOSED);
  EXPECT_EQ(hf_write_zeroes(f, 0, 1), HF_ECLOSED);
  EXPECT_EQ(hf_flush(f, &id), HF_ECLOSED);
  EXPECT_EQ(hf_fstat(f, &st), HF_ECLOSED);
  hf_free(f);
  // The close flushed: the data is there.
  ASSERT_EQ(hf_open(Uri("c").c_str(), HF_OPEN_READ_ONLY, &f), HF_OK) << hf_last_error();
  ASSERT_EQ(hf_pread(f, buf, sizeof buf, 0, &n), HF_OK);
  EXPECT_EQ(std::string(buf, n), "abc");
  EXPECT_EQ(hf_pwrite(f, "x", 1, 0), HF_EROFS);
  hf_free(f);  // free without close: closes
}

TEST(CApi, ReadOnlyAndTimeTravelHandlesRefuseWrites) {
  hf_file* f = nullptr;
  uint64_t first = 0;
  ASSERT_EQ(hf_create(Uri("ro").c_str(), 0, 0, &f), HF_OK);
  ASSERT_EQ(hf_pwrite(f, "one", 3, 0), HF_OK);
  ASSERT_EQ(hf_flush(f, &first), HF_OK);
  hf_free(f);
  ASSERT_EQ(hf_open_at(Uri("ro").c_str(), std::to_string(first).c_str(), &f), HF_OK)
      << hf_last_error();
  EXPECT_EQ(hf_pwrite(f, "x", 1, 0), HF_EROFS);
  EXPECT_EQ(hf_truncate(f, 0), HF_EROFS);
  EXPECT_EQ(hf_punch_hole(f, 0, 1), HF_EROFS);
  hf_stat st;
  ASSERT_EQ(hf_fstat(f, &st), HF_OK);
  EXPECT_EQ(st.read_only, 1);
  EXPECT_EQ(st.checkpoint, first);
  EXPECT_EQ(hf_close(f), HF_OK);
  hf_free(f);
}

TEST(CApi, EveryCallOnAFile) {
  std::string uri = Uri("all");
  hf_file* f = nullptr;
  ASSERT_EQ(hf_create(uri.c_str(), 4096, 0, &f), HF_OK) << hf_last_error();
  ASSERT_EQ(hf_pwrite(f, "hello", 5, 0), HF_OK);
  uint64_t at = 0;
  ASSERT_EQ(hf_append(f, " world", 6, &at), HF_OK);
  EXPECT_EQ(at, 5u);
  uint64_t c1 = 0;
  ASSERT_EQ(hf_flush(f, &c1), HF_OK);
  ASSERT_EQ(hf_snapshot_create(uri.c_str(), "first", nullptr), HF_OK) << hf_last_error();
  ASSERT_EQ(hf_pwrite(f, "HELLO", 5, 0), HF_OK);
  ASSERT_EQ(hf_write_zeroes(f, 20000, 100), HF_OK);
  ASSERT_EQ(hf_punch_hole(f, 0, 4096), HF_OK);
  uint64_t c2 = 0;
  ASSERT_EQ(hf_flush(f, &c2), HF_OK);
  EXPECT_GT(c2, c1);
  // The name is taken by a snapshot of another checkpoint.
  EXPECT_EQ(hf_snapshot_create(uri.c_str(), "first", std::to_string(c2).c_str()), HF_EEXIST);
  hf_stat st;
  ASSERT_EQ(hf_fstat(f, &st), HF_OK);
  EXPECT_EQ(st.size, 20100u);
  EXPECT_EQ(st.block_size, 4096u);
  EXPECT_EQ(st.checkpoint, c2);
  EXPECT_EQ(st.read_only, 0);
  char buf[32];
  size_t n = 0;
  ASSERT_EQ(hf_pread(f, buf, 11, 0, &n), HF_OK);
  EXPECT_EQ(std::string(buf, n), std::string(11, '\0'));  // punched
  ASSERT_EQ(hf_truncate(f, 3), HF_OK);
  ASSERT_EQ(hf_pread(f, buf, sizeof buf, 0, &n), HF_OK);
  EXPECT_EQ(n, 3u);
  ASSERT_EQ(hf_close(f), HF_OK);
  hf_free(f);

  // History.
  hf_checkpoint* cps = nullptr;
  size_t count = 0;
  ASSERT_EQ(hf_list_checkpoints(uri.c_str(), 0, &cps, &count), HF_OK) << hf_last_error();
  ASSERT_GE(count, 3u);
  EXPECT_GT(cps[0].id, cps[1].id);  // newest first
  EXPECT_EQ(cps[0].size, 3u);
  hf_free_checkpoints(cps);
  ASSERT_EQ(hf_list_checkpoints(uri.c_str(), 1, &cps, &count), HF_OK);
  EXPECT_EQ(count, 1u);
  hf_free_checkpoints(cps);

  hf_snapshot* snaps = nullptr;
  ASSERT_EQ(hf_snapshot_list(uri.c_str(), &snaps, &count), HF_OK);
  ASSERT_EQ(count, 1u);
  EXPECT_STREQ(snaps[0].name, "first");
  EXPECT_EQ(snaps[0].checkpoint, c1);
  hf_free_snapshots(snaps, count);
  uint64_t id = 0;
  ASSERT_EQ(hf_resolve(uri.c_str(), "first", &id), HF_OK);
  EXPECT_EQ(id, c1);

  ASSERT_EQ(hf_open_at(uri.c_str(), "first", &f), HF_OK);
  ASSERT_EQ(hf_pread(f, buf, sizeof buf, 0, &n), HF_OK);
  EXPECT_EQ(std::string(buf, n), "hello world");
  hf_free(f);

  std::string clone = Uri("clone");
  uint64_t cc = 0;
  ASSERT_EQ(hf_clone(uri.c_str(), "first", clone.c_str(), &cc), HF_OK) << hf_last_error();
  EXPECT_EQ(hf_clone(uri.c_str(), "first", clone.c_str(), &cc), HF_EEXIST);
  ASSERT_EQ(hf_open(clone.c_str(), 0, &f), HF_OK) << hf_last_error();
  ASSERT_EQ(hf_pread(f, buf, sizeof buf, 0, &n), HF_OK);
  EXPECT_EQ(std::string(buf, n), "hello world");
  hf_free(f);

  uint64_t restored = 0;
  ASSERT_EQ(hf_restore(uri.c_str(), "first", &restored), HF_OK) << hf_last_error();
  EXPECT_GT(restored, c2);
  ASSERT_EQ(hf_open(uri.c_str(), HF_OPEN_READ_ONLY, &f), HF_OK);
  ASSERT_EQ(hf_pread(f, buf, sizeof buf, 0, &n), HF_OK);
  EXPECT_EQ(std::string(buf, n), "hello world");
  hf_free(f);

  ASSERT_EQ(hf_snapshot_delete(uri.c_str(), "first"), HF_OK);
  ASSERT_EQ(hf_snapshot_list(uri.c_str(), &snaps, &count), HF_OK);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(snaps, nullptr);
  hf_free_snapshots(snaps, count);
}

TEST(CApi, LastErrorIsPerThread) {
  EXPECT_EQ(hf_open(nullptr, 0, nullptr), HF_EINVAL);
  std::string mine = hf_last_error();
  std::string theirs;
  std::thread t([&] {
    hf_file* f = nullptr;
    (void)hf_open(Uri("nothing-here").c_str(), 0, &f);
    theirs = hf_last_error();
  });
  t.join();
  EXPECT_EQ(hf_last_error(), mine);
  EXPECT_NE(theirs, mine);
  EXPECT_NE(theirs.find("NotFound"), std::string::npos) << theirs;
}

struct Lines {
  std::vector<std::pair<int, std::string>> got;
};
void Record(int level, const char* message, void* context) {
  static_cast<Lines*>(context)->got.emplace_back(level, message);
}

TEST(CApi, LogCallbackSeesRetriesUntilRemoved) {
  Lines lines;
  hf_set_log_callback(Record, &lines);
  auto faulty = std::make_shared<hyperfile::FaultInjectionStore>(hyperfile::NewMemoryStore("cl"));
  hyperfile::RetryOptions ro;
  ro.base_delay_ms = 0;
  ro.max_delay_ms = 0;
  auto store = hyperfile::NewRetryStore(faulty, ro);
  faulty->FailCall(0, hyperfile::Status::Throttled("SlowDown"));
  ASSERT_TRUE(store->Put("k", "v").ok());
  ASSERT_EQ(lines.got.size(), 2u);  // the retry, then the success after it
  EXPECT_EQ(lines.got[0].first, HF_LOG_WARNING);
  EXPECT_NE(lines.got[0].second.find("throttled, retry 2/6 of put memory://cl k"),
            std::string::npos)
      << lines.got[0].second;
  EXPECT_EQ(lines.got[1].first, HF_LOG_INFO);
  hf_set_log_callback(nullptr, nullptr);
  faulty->FailCall(faulty->calls(), hyperfile::Status::Throttled("SlowDown"));
  ASSERT_TRUE(store->Put("k", "v").ok());
  EXPECT_EQ(lines.got.size(), 2u);
}

}  // namespace
