/* SPDX-License-Identifier: Apache-2.0 */
/* hello_c URI: the C API. Creates (or opens) a hyperfile, appends a line,
 * flushes, snapshots it as "hello-<checkpoint>" and reads the snapshot back. */
#include <hyperfile/hyperfile.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int fail(const char* what, int rc) {
  fprintf(stderr, "hello_c: %s: %s (%s)\n", what, hf_last_error(), hf_status_name(rc));
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: hello_c URI\n");
    return 2;
  }
  hf_file* f = NULL;
  int rc = hf_open(argv[1], 0, &f);
  if (rc == HF_ENOTFOUND) rc = hf_create(argv[1], 0, 0, &f);
  if (rc != HF_OK) return fail("open", rc);

  const char line[] = "hello from C\n";
  uint64_t at = 0, checkpoint = 0;
  if ((rc = hf_append(f, line, strlen(line), &at)) != HF_OK) return fail("append", rc);
  if ((rc = hf_flush(f, &checkpoint)) != HF_OK) return fail("flush", rc);
  if ((rc = hf_close(f)) != HF_OK) return fail("close", rc);
  hf_free(f);

  char name[64];
  snprintf(name, sizeof name, "hello-%" PRIu64, checkpoint);
  if ((rc = hf_snapshot_create(argv[1], name, NULL)) != HF_OK) return fail("snapshot", rc);

  if ((rc = hf_open_at(argv[1], name, &f)) != HF_OK) return fail("open_at", rc);
  char buf[64] = {0};
  size_t n = 0;
  if ((rc = hf_pread(f, buf, strlen(line), at, &n)) != HF_OK) return fail("pread", rc);
  hf_free(f);
  printf("libhyperfile %s: snapshot %s at offset %" PRIu64 ": %.*s", hf_version(), name, at, (int)n,
         buf);
  return 0;
}
