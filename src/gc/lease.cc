// SPDX-License-Identifier: Apache-2.0
// Reader leases (hyperfile/gc.h): lease/<16 hex> objects a collection honours.
#include "file/file_impl.h"
#include "file/lease_renewer.h"
#include "file/open_internal.h"
#include "format/gc_records.h"
#include "hyperfile/gc.h"

namespace hyperfile {

struct Lease::State {
  std::shared_ptr<ObjectStore> store;
  uint64_t checkpoint = 0;
  std::string key;
  std::string bytes;
  int64_t ttl_ms = 0;
  std::unique_ptr<file::LeaseRenewer> renewer;  // last: stopped before the rest goes
};

Result<std::unique_ptr<Lease>> Lease::Acquire(std::shared_ptr<ObjectStore> store, const At& at,
                                              int64_t ttl_ms, std::string holder) {
  if (!store) return Status::InvalidArgument("lease: no store");
  if (ttl_ms < 10000 || ttl_ms > 86400000) {
    return Status::InvalidArgument("lease: ttl_ms " + std::to_string(ttl_ms) +
                                   " must be 10 s .. 1 day");
  }
  if (holder.size() > 255) return Status::InvalidArgument("lease: holder longer than 255 bytes");
  for (char c : holder) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return Status::InvalidArgument("lease: holder has a control character");
    }
  }
  HF_ASSIGN_OR_RETURN(uint64_t id, ResolveAt(store, at));
  auto state = std::make_unique<State>();
  state->store = store;
  state->checkpoint = id;
  state->ttl_ms = ttl_ms;
  state->key = format::LeaseKey(file::RandomU64());
  state->bytes = format::EncodeLease({id, static_cast<uint64_t>(ttl_ms), holder});
  HF_RETURN_IF_ERROR(
      store->Put(state->key, {state->bytes}, PutOptions{})
          .WithContext("lease checkpoint " + std::to_string(id) + " of " + store->Name()));
  // A collection that decided before our lease was visible may have expired
  // the checkpoint: it writes its decision before it looks at leases again,
  // and we look at its decision after our lease exists, so one of us sees
  // the other.
  Status st = file::CheckNotExpired(store.get(), id);
  if (!st.ok()) {
    (void)store->Delete(state->key);
    return st;
  }
  std::unique_ptr<Lease> lease(new Lease(std::move(state)));
  State* s = lease->state_.get();
  s->renewer = std::make_unique<file::LeaseRenewer>(
      s->ttl_ms, [s] { return s->store->Put(s->key, {s->bytes}, PutOptions{}); });
  return lease;
}

Lease::Lease(std::unique_ptr<State> state) : state_(std::move(state)) {}

Lease::~Lease() {
  state_->renewer->Stop();  // no renewal can bring the lease back after the delete
  (void)state_->store->Delete(state_->key);
}

uint64_t Lease::checkpoint() const { return state_->checkpoint; }

Status Lease::Renew() { return state_->renewer->RenewNow(); }

Status Lease::status() const { return state_->renewer->status(); }

}  // namespace hyperfile
