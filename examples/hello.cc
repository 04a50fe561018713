// SPDX-License-Identifier: Apache-2.0
// hello_cpp URI: creates a hyperfile at URI (or opens it if it exists),
// writes at 1 GiB (the gap stays a hole), flushes a checkpoint, writes again,
// and reads the first checkpoint back by time travel.
#include <hyperfile/checkpoints.h>
#include <hyperfile/file.h>
#include <hyperfile/version.h>

#include <cstdio>
#include <string>

namespace hf = hyperfile;

int Fail(const hf::Status& st) {
  std::fprintf(stderr, "hello_cpp: %s\n", st.ToString().c_str());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hello_cpp URI\n");
    return 2;
  }
  auto store = hf::OpenStore(argv[1]);
  if (!store.ok()) return Fail(store.status());
  auto file = hf::File::Open(*store);
  if (!file.ok() && file.status().IsNotFound()) file = hf::File::Create(*store);
  if (!file.ok()) return Fail(file.status());

  if (auto st = (*file)->PWrite(1ull << 30, "hello", 5); !st.ok()) return Fail(st);
  auto first = (*file)->Flush();  // one checkpoint
  if (!first.ok()) return Fail(first.status());
  if (auto st = (*file)->PWrite(1ull << 30, "HELLO", 5); !st.ok()) return Fail(st);
  if (auto st = (*file)->Close(); !st.ok()) return Fail(st);  // flushes

  auto old = hf::File::OpenAt(*store, hf::At::Checkpoint(*first));
  if (!old.ok()) return Fail(old.status());
  char buf[5];
  auto n = (*old)->PRead(1ull << 30, buf, sizeof buf);
  if (!n.ok()) return Fail(n.status());
  auto history = hf::ListCheckpoints(*store);
  if (!history.ok()) return Fail(history.status());
  std::printf("hyperfile %s: checkpoint %llu holds \"%.*s\"; %zu checkpoints\n",
              HYPERFILE_VERSION_STRING, static_cast<unsigned long long>(*first),
              static_cast<int>(*n), buf, history->size());
  return 0;
}
