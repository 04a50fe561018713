// SPDX-License-Identifier: Apache-2.0
// Fault injection for tests: fail chosen calls, add latency, "crash".
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "hyperfile/store_layers.h"

namespace hyperfile {

struct FaultInjectionStore::State {
  std::mutex mu;
  uint64_t calls = 0;
  std::map<uint64_t, Status> fail_at;
  std::vector<std::pair<std::function<bool(const StoreCall&)>, Status>> fail_when;
  std::vector<std::pair<std::function<bool(const StoreCall&)>, Status>> lose_when;
  std::chrono::microseconds latency{0};
  uint64_t crash_after = ~uint64_t{0};
};

FaultInjectionStore::FaultInjectionStore(std::shared_ptr<ObjectStore> base)
    : StoreWrapper(std::move(base)), state_(std::make_unique<State>()) {}
FaultInjectionStore::~FaultInjectionStore() = default;

void FaultInjectionStore::FailCall(uint64_t index, Status error) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_at[index] = std::move(error);
}
void FaultInjectionStore::FailWhen(std::function<bool(const StoreCall&)> predicate, Status error) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_when.emplace_back(std::move(predicate), std::move(error));
}
void FaultInjectionStore::SetLatency(std::chrono::microseconds latency) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->latency = latency;
}
void FaultInjectionStore::CrashAfter(uint64_t index) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->crash_after = index;
}
void FaultInjectionStore::LoseResponseWhen(std::function<bool(const StoreCall&)> predicate,
                                           Status error) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->lose_when.emplace_back(std::move(predicate), std::move(error));
}
void FaultInjectionStore::ClearFaults() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_at.clear();
  state_->fail_when.clear();
  state_->lose_when.clear();
  state_->latency = std::chrono::microseconds{0};
  state_->crash_after = ~uint64_t{0};
}
uint64_t FaultInjectionStore::calls() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->calls;
}

Status FaultInjectionStore::Intercept(const StoreCall& in, bool* lose_response) {
  StoreCall call = in;
  std::chrono::microseconds latency;
  Status result;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    call.index = state_->calls++;
    latency = state_->latency;
    if (call.index >= state_->crash_after) {
      return Status::Transient(Name() + ": crashed (fault injection, call " +
                               std::to_string(call.index) + ")");
    }
    if (auto it = state_->fail_at.find(call.index); it != state_->fail_at.end())
      result = it->second;
    for (auto& [pred, err] : state_->fail_when) {
      if (result.ok() && pred(call)) result = err;
    }
    for (auto& [pred, err] : state_->lose_when) {
      if (result.ok() && pred(call)) {
        *lose_response = true;
        result = err;
      }
    }
  }
  if (latency.count() > 0) std::this_thread::sleep_for(latency);
  return result;
}

#define HF_FAULT_CALL(verb, keyexpr, absent, forward)                          \
  bool lose = false;                                                           \
  Status injected = Intercept({verb, std::string(keyexpr), 0, absent}, &lose); \
  if (!injected.ok() && !lose) return injected;                                \
  Status forwarded = (forward);                                                \
  return lose && forwarded.ok() ? injected : forwarded

Status FaultInjectionStore::Put(std::string_view key, const Payload& data,
                                const PutOptions& options, ObjectInfo* info) {
  HF_FAULT_CALL(StoreVerb::kPut, key, options.if_absent, base()->Put(key, data, options, info));
}
Status FaultInjectionStore::Get(std::string_view key, uint64_t offset, uint64_t length,
                                std::string* out, ObjectInfo* info) {
  HF_FAULT_CALL(StoreVerb::kGet, key, false, base()->Get(key, offset, length, out, info));
}
Status FaultInjectionStore::Head(std::string_view key, ObjectInfo* info) {
  HF_FAULT_CALL(StoreVerb::kHead, key, false, base()->Head(key, info));
}
Status FaultInjectionStore::List(std::string_view prefix, std::string_view start_after,
                                 size_t limit, std::vector<ObjectInfo>* out) {
  HF_FAULT_CALL(StoreVerb::kList, prefix, false, base()->List(prefix, start_after, limit, out));
}
Status FaultInjectionStore::Delete(std::string_view key) {
  HF_FAULT_CALL(StoreVerb::kDelete, key, false, base()->Delete(key));
}
Status FaultInjectionStore::DeleteMany(const std::vector<std::string>& keys) {
  HF_FAULT_CALL(StoreVerb::kDelete, keys.empty() ? std::string() : keys[0], false,
                base()->DeleteMany(keys));
}
}  // namespace hyperfile
