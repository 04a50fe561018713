/* SPDX-License-Identifier: Apache-2.0 */
/* The C API of hyperfile: what programs in C and other languages (Python's
 * ctypes, Go's cgo, Rust's FFI, ...) bind to. It wraps the C++ API
 * (hyperfile/file.h, hyperfile/checkpoints.h) with opaque handles and plain C
 * types only; no C++ exception or type crosses it.
 *
 * Errors: every function that can fail returns an int status, HF_OK (0) or
 * one of the positive HF_E* codes below, and records a message naming the
 * operation and the object at fault, which hf_last_error() returns on the
 * same thread until that thread's next call into this API. Output
 * parameters are written only on success. Every entry point checks its
 * arguments (NULL handles and pointers, closed handles, bad selectors or
 * names) and returns HF_EINVAL or HF_ECLOSED instead of crashing; passing a
 * pointer that is not a live handle from this API (a freed one, garbage) is
 * the one thing it cannot detect.
 *
 * URIs are those of the C++ OpenStore: "s3://bucket/prefix" (credentials and
 * endpoint from the AWS_* environment), "file:///abs/path" or a plain path
 * (a local directory), "memory://name" (process-local, for tests).
 *
 * Selectors name a state of a file, as the command line does (At::Parse):
 * "latest", a checkpoint id ("42"), a UTC time ("2026-11-25T10:00:00Z"),
 * "@<unix seconds>" or a snapshot name.
 *
 * Thread-safety: every function may be called from any thread; one handle
 * may be used from many threads at once, except that hf_free must not race
 * with other calls on the same handle.
 */
#ifndef HYPERFILE_HYPERFILE_H_
#define HYPERFILE_HYPERFILE_H_

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define HF_API __attribute__((visibility("default")))
#else
#define HF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. 1..14 are the C++ Status::Code values, in the same order. */
enum {
  HF_OK = 0,
  HF_ENOTFOUND = 1,     /* file, checkpoint, snapshot or object does not exist */
  HF_EEXIST = 2,        /* create of something that exists */
  HF_EPRECONDITION = 3, /* a conditional put was refused */
  HF_ECONFLICT = 4,     /* another writer committed: this handle can only be closed */
  HF_ETHROTTLED = 5,    /* the store asked us to slow down (after retries) */
  HF_ETRANSIENT = 6,    /* timeout, connection reset, 5xx (after retries) */
  HF_EAUTH = 7,         /* bad or missing credentials, access denied */
  HF_EINVAL = 8,        /* an unusable argument (NULL, out of range, bad selector) */
  HF_ECORRUPT = 9,      /* stored bytes fail validation */
  HF_EIO = 10,          /* local I/O failure */
  HF_EROFS = 11,        /* write to a read-only handle or an old checkpoint */
  HF_ENOTSUP = 12,      /* the store or build cannot do this */
  HF_ERANGE = 13,       /* a limit of the format would be exceeded */
  HF_ECLOSED = 15,      /* the handle was closed by hf_close */
  HF_ENOMEM = 16,       /* out of memory */
  HF_EINTERNAL = 17     /* an unexpected internal failure (a bug: please report it) */
};

/* "OK", "NotFound", ..., "Closed"; "Unknown" for any other value. Static. */
HF_API const char* hf_status_name(int status);

/* The message of this thread's last failed call ("" if none yet). Valid
 * until this thread's next call into the API; copy it to keep it. */
HF_API const char* hf_last_error(void);

/* The library version, "MAJOR.MINOR.PATCH" (HYPERFILE_VERSION_STRING). */
HF_API const char* hf_version(void);

/* ---- files ------------------------------------------------------------- */

typedef struct hf_file hf_file; /* opaque */

/* Flags of hf_open. */
#define HF_OPEN_READ_ONLY 1u

/* Creates a new empty file at uri and opens it read-write. block_size 0
 * means the default (64 KiB); otherwise a power of two from 4 KiB to 4 MiB.
 * size is the initial size (a hole). HF_EEXIST if the file exists. */
HF_API int hf_create(const char* uri, uint32_t block_size, uint64_t size, hf_file** out);

/* Opens the latest checkpoint, read-write unless flags has
 * HF_OPEN_READ_ONLY. HF_ENOTFOUND if there is no file at uri; HF_EINVAL for
 * unknown flags. */
HF_API int hf_open(const char* uri, unsigned flags, hf_file** out);

/* Opens an older state read-only (time travel) by selector (see above). */
HF_API int hf_open_at(const char* uri, const char* selector, hf_file** out);

/* Flushes (if writable) and closes. The handle stays allocated: every later
 * call on it but hf_free returns HF_ECLOSED, and so does a second hf_close.
 * A failed final flush is reported here (the handle is closed anyway). */
HF_API int hf_close(hf_file* file);

/* Closes the handle if it is still open (dropping any error: call hf_close
 * first to see it) and frees it. NULL is a no-op. */
HF_API void hf_free(hf_file* file);

/* Reads up to len bytes at offset into buf; *nread is the number read (short
 * only at end of file, 0 at or past it). Holes read as zeros. */
HF_API int hf_pread(hf_file* file, void* buf, size_t len, uint64_t offset, size_t* nread);

/* Writes len bytes at offset (buffered until the next flush). */
HF_API int hf_pwrite(hf_file* file, const void* buf, size_t len, uint64_t offset);

/* Writes at the end of file; *offset (if not NULL) is where it went. */
HF_API int hf_append(hf_file* file, const void* buf, size_t len, uint64_t* offset);

/* Sets the size (growing adds a hole). */
HF_API int hf_truncate(hf_file* file, uint64_t size);

/* Makes [offset, offset+len) read as zeros without storing data; never
 * changes the size. */
HF_API int hf_punch_hole(hf_file* file, uint64_t offset, uint64_t len);

/* Like hf_punch_hole, but extends the file when the range ends past it. */
HF_API int hf_write_zeroes(hf_file* file, uint64_t offset, uint64_t len);

/* Commits everything written as a new checkpoint; *checkpoint (if not NULL)
 * is its id (the current one if nothing changed). */
HF_API int hf_flush(hf_file* file, uint64_t* checkpoint);

typedef struct hf_stat {
  uint64_t size;            /* logical size in bytes */
  uint64_t allocated_bytes; /* bytes of blocks holding data */
  uint32_t block_size;
  int read_only;          /* 1 for a read-only handle */
  uint64_t checkpoint;    /* the checkpoint this handle is based on */
  int64_t create_time_ms; /* milliseconds since the Unix epoch */
  int64_t mtime_ms;       /* last change, committed or in memory */
  int64_t checkpoint_time_ms;
  uint64_t dirty_bytes; /* written, not yet flushed */
} hf_stat;

HF_API int hf_fstat(hf_file* file, hf_stat* out);

/* ---- history: checkpoints, snapshots, restore, clone ------------------- */

typedef struct hf_checkpoint {
  uint64_t id;
  uint64_t parent;        /* 0 for the first checkpoint */
  int64_t time_ms;        /* commit time, milliseconds since the Unix epoch */
  uint64_t size;          /* file size at this checkpoint */
  uint64_t bytes_changed; /* data bytes written by this checkpoint */
  uint64_t restored_from; /* non-zero if it is a restore of that id */
} hf_checkpoint;

/* The checkpoints of the file at uri, newest first, at most limit (0 = all):
 * *list is an array of *count entries (NULL when 0), to free with
 * hf_free_checkpoints. */
HF_API int hf_list_checkpoints(const char* uri, size_t limit, hf_checkpoint** list, size_t* count);
HF_API void hf_free_checkpoints(hf_checkpoint* list);

/* Resolves a selector to a checkpoint id (HF_ENOTFOUND if none). */
HF_API int hf_resolve(const char* uri, const char* selector, uint64_t* checkpoint);

typedef struct hf_snapshot {
  char* name; /* NUL-terminated, owned by the list */
  uint64_t checkpoint;
  int64_t created_ms;
} hf_snapshot;

/* Pins the state named by selector (NULL = "latest") under name (a letter
 * first, then [A-Za-z0-9._-], at most 128). HF_EEXIST if the name is taken. */
HF_API int hf_snapshot_create(const char* uri, const char* name, const char* selector);
/* *list: *count snapshots, to free with hf_free_snapshots. */
HF_API int hf_snapshot_list(const char* uri, hf_snapshot** list, size_t* count);
HF_API void hf_free_snapshots(hf_snapshot* list, size_t count);
HF_API int hf_snapshot_delete(const char* uri, const char* name);

/* Makes the state named by selector the head again, as one new checkpoint
 * (*checkpoint, if not NULL); history is kept. */
HF_API int hf_restore(const char* uri, const char* selector, uint64_t* checkpoint);

/* Creates a new writable file at dst sharing the data of src at selector
 * (NULL = "latest"); *checkpoint (if not NULL) is the clone's first
 * checkpoint. HF_EEXIST if dst holds a file. */
HF_API int hf_clone(const char* src, const char* selector, const char* dst, uint64_t* checkpoint);

/* ---- logging ----------------------------------------------------------- */

/* Levels passed to the log callback (those of hyperfile/log.h). */
enum { HF_LOG_DEBUG = 0, HF_LOG_INFO = 1, HF_LOG_WARNING = 2, HF_LOG_ERROR = 3 };

/* Called for retries, throttling and slow requests, possibly from many
 * threads at once; message is valid only during the call. It must not call
 * into this API. */
typedef void (*hf_log_callback)(int level, const char* message, void* context);

/* Installs the process-wide callback (NULL removes it). */
HF_API void hf_set_log_callback(hf_log_callback callback, void* context);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HYPERFILE_HYPERFILE_H_ */
