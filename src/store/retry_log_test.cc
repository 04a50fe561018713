// SPDX-License-Identifier: Apache-2.0
// The log hook (hyperfile/log.h) sees the retry layer's retries, throttling,
// give-ups and slow requests.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "hyperfile/log.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {
namespace {

// Records every log line while alive; restores the previous handler after.
class LogCapture {
 public:
  LogCapture() {
    previous_ = SetLogHandler([this](LogLevel level, std::string_view msg) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(level, std::string(msg));
    });
  }
  ~LogCapture() { SetLogHandler(std::move(previous_)); }
  std::vector<std::pair<LogLevel, std::string>> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  LogHandler previous_;
  std::mutex mu_;
  std::vector<std::pair<LogLevel, std::string>> lines_;
};

RetryOptions FastRetry(int attempts) {
  RetryOptions ro;
  ro.max_attempts = attempts;
  ro.base_delay_ms = 0;
  ro.max_delay_ms = 0;
  ro.seed = 7;
  ro.slow_request_ms = 0;
  return ro;
}

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(RetryLog, ThrottlingAndRetryReachTheHook) {
  LogCapture log;
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore("retrylog"));
  auto store = NewRetryStore(faulty, FastRetry(4));
  faulty->FailCall(0, Status::Throttled("503 SlowDown"));
  faulty->FailCall(1, Status::Transient("connection reset"));
  ASSERT_TRUE(store->Put("seg/1", "v").ok());
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].first, LogLevel::kWarning);
  EXPECT_TRUE(Has(lines[0].second, "throttled, retry 2/4 of put memory://retrylog seg/1"))
      << lines[0].second;
  EXPECT_TRUE(Has(lines[0].second, "503 SlowDown")) << lines[0].second;
  EXPECT_EQ(lines[1].first, LogLevel::kWarning);
  EXPECT_FALSE(Has(lines[1].second, "throttled")) << lines[1].second;
  EXPECT_TRUE(Has(lines[1].second, "retry 3/4 of put")) << lines[1].second;
  EXPECT_TRUE(Has(lines[1].second, "Transient: connection reset")) << lines[1].second;
  EXPECT_EQ(lines[2].first, LogLevel::kInfo);
  EXPECT_TRUE(Has(lines[2].second, "succeeded on attempt 3")) << lines[2].second;
}

TEST(RetryLog, GivingUpIsAnError) {
  LogCapture log;
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore("retrylog2"));
  auto store = NewRetryStore(faulty, FastRetry(2));
  faulty->FailWhen([](const StoreCall&) { return true; }, Status::Transient("down"));
  std::string out;
  EXPECT_TRUE(store->Get("seg/2", &out).IsTransient());
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].first, LogLevel::kError);
  EXPECT_TRUE(Has(lines[1].second, "get memory://retrylog2 seg/2")) << lines[1].second;
  EXPECT_TRUE(Has(lines[1].second, "gave up after 2 attempts")) << lines[1].second;
}

TEST(RetryLog, NoRetryNoLine) {
  LogCapture log;
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  auto store = NewRetryStore(faulty, FastRetry(4));
  faulty->FailCall(0, Status::NotFound("gone"));
  EXPECT_TRUE(store->Head("k", nullptr).IsNotFound());
  ASSERT_TRUE(store->Put("k", "v").ok());
  EXPECT_TRUE(log.lines().empty());
}

TEST(RetryLog, SlowRequestIsReported) {
  LogCapture log;
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore("slow"));
  RetryOptions ro = FastRetry(1);
  ro.slow_request_ms = 1;
  auto store = NewRetryStore(faulty, ro);
  // Every attempt takes at least 20 ms, so it is always at least 1 ms.
  faulty->SetLatency(std::chrono::milliseconds(20));
  ASSERT_TRUE(store->Put("big", "v").ok());
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, LogLevel::kWarning);
  EXPECT_TRUE(Has(lines[0].second, "slow request: put memory://slow big took")) << lines[0].second;
  EXPECT_TRUE(Has(lines[0].second, "(slow_request_ms 1)")) << lines[0].second;
}

TEST(RetryLog, OpenStorePassesSlowRequestMsAndValidatesIt) {
  StoreOptions o;
  o.slow_request_ms = -1;
  auto bad = OpenStore("memory://slowopt", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Has(bad.status().message(), "slow_request_ms")) << bad.status().ToString();
}

TEST(LogHook, RemovedHandlerIsNotCalledAndThrowingHandlerIsContained) {
  int calls = 0;
  LogHandler previous = SetLogHandler([&](LogLevel, std::string_view) {
    calls++;
    throw std::runtime_error("handler failure");
  });
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  auto store = NewRetryStore(faulty, FastRetry(3));
  faulty->FailCall(0, Status::Transient("reset"));
  EXPECT_TRUE(store->Put("k", "v").ok());  // the throwing handler fails nothing
  EXPECT_EQ(calls, 2);                     // the retry and the success after it
  SetLogHandler(nullptr);
  faulty->FailCall(faulty->calls(), Status::Transient("reset"));
  EXPECT_TRUE(store->Put("k", "v").ok());
  EXPECT_EQ(calls, 2);
  SetLogHandler(std::move(previous));
  EXPECT_EQ(LogLevelName(LogLevel::kWarning), "warning");
  EXPECT_EQ(LogLevelName(LogLevel::kError), "error");
}

}  // namespace
}  // namespace hyperfile
