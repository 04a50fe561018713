// SPDX-License-Identifier: Apache-2.0
// The local-directory backend (file:///path), the embedded default.
//
// Layout: key "a/b/c" is the file DIR/a/b/c. Two hidden folders at the root
// hold the machinery and never appear in List; keys that would land in them
// are refused:
//   .hftmp/   temporary files of puts in progress (and of crashed ones: files
//             older than an hour are removed by the first put of each store
//             instance, never by a reader)
//   .hflock/  lock files, one per stripe of keys (flock, across processes)
//
// The root: NewLocalStore normalises the path lexically ('.', '..', repeated
// '/' and a trailing '/') and refuses "/", anything inside /proc, /sys or
// /dev (also when the existing path resolves there) and a path that exists
// and is not a directory. Opening creates nothing and deletes nothing: the
// root, .hftmp and .hflock are made by the first put (a delete makes .hflock
// only when the root exists; a delete in a missing root is a no-op). Reads of
// a missing root behave as an empty store: Get/Head NotFound, List OK empty.
//
// Only regular files are objects, and symbolic links are never followed:
// every operation opens the key's folders one level at a time from the root
// with O_NOFOLLOW|O_DIRECTORY, and checks the key itself with
// fstatat(AT_SYMLINK_NOFOLLOW) before opening it O_NONBLOCK|O_NOFOLLOW (and
// again on the opened descriptor), so a FIFO, socket or device never blocks
// or is opened. At a key:
//   regular file    the object
//   directory       no object (NotFound; Delete is a no-op); an *empty*
//                   directory is removed by a put of that key (rmdir), a
//                   non-empty one makes the put InvalidArgument
//   anything else   (symlink, FIFO, socket, device) Get/Head: Corrupt "not a
//                   regular file"; Put/Delete: InvalidArgument, left alone;
//                   List skips it (and never descends into a symlink)
// A symlink or special file in place of one of the key's folders is treated
// the same way (Corrupt for reads, InvalidArgument for writes).
//
// A whole-object Get (length kToEnd) of an object larger than 1 GiB is
// refused (Corrupt naming the size): no object hyperfile reads whole is
// anywhere near that big, and the size comes from the untrusted store.
//
// Durable puts: the object is written to a temporary file, fsynced, then moved
// into place with rename() (plain put) or renameat2(RENAME_NOREPLACE) / link()
// (put-if-absent: fails atomically with EEXIST if the key exists, also between
// processes), and the directory is fsynced. Objects are never modified in
// place, so a reader holding a file open sees one complete version.
//
// Every write (put, delete) of a key holds its stripe lock across the final
// rename, so an if_match put can compare the ETag and replace the file without
// another writer slipping in between. Writing and fsyncing the temporary file
// happens outside the lock.
//
// ETag: inode-size-mtime_ns in hex. Every put creates a new inode while the
// old file still exists, so the ETag changes on every put; it costs one stat.
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>  // renameat2
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "hyperfile/object_store.h"

namespace hyperfile {
namespace {

constexpr std::string_view kTmpDir = ".hftmp";
constexpr std::string_view kLockDir = ".hflock";
constexpr uint64_t kLockStripes = 256;
constexpr int64_t kStaleTempSeconds = 3600;
constexpr uint64_t kMaxWholeGet = 1ull << 30;

// Maps errno to a Status class. Read paths pass not_found=true so that a
// missing file (or a key whose "parent" is an object) is NotFound.
Status ErrnoStatus(const std::string& what, int err, bool not_found = false) {
  std::string msg = what + ": " + std::strerror(err);
  if (not_found && (err == ENOENT || err == ENOTDIR)) return Status::NotFound(msg);
  if (err == ENAMETOOLONG) return Status::InvalidArgument(msg);
  return Status::IOError(msg);
}

// What a non-regular file is, for messages.
std::string KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return S_ISREG(mode) ? "a regular file" : "a special file";
}

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now, reporting the error (close can report a deferred write error).
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Opens a folder below dir without following a symbolic link: a symlink,
// FIFO or device there fails with ENOTDIR and is never opened.
int OpenFolderAt(int dir, const std::string& name) {
  return ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string HexEtag(const struct stat& st) {
  char buf[80];
  int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  std::snprintf(buf, sizeof buf, "%llx-%llx-%llx", static_cast<unsigned long long>(st.st_ino),
                static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(mtime_ns));
  return buf;
}

void FillInfo(std::string_view key, const struct stat& st, ObjectInfo* info) {
  info->key = std::string(key);
  info->size = static_cast<uint64_t>(st.st_size);
  info->etag = HexEtag(st);
  info->mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// The last segment of a key.
std::string BaseName(std::string_view key) {
  size_t slash = key.rfind('/');
  return std::string(slash == std::string_view::npos ? key : key.substr(slash + 1));
}

bool Reserved(std::string_view first_segment) {
  return first_segment == kTmpDir || first_segment == kLockDir;
}

Status WriteAll(int fd, const Payload& data) {
  for (std::string_view piece : data) {
    size_t done = 0;
    while (done < piece.size()) {
      ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("write", errno);
      done += static_cast<size_t>(n);
    }
  }
  return Status::OK();
}

Status ReadAll(int fd, uint64_t offset, uint64_t n, std::string* out) {
  out->resize(n);
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out->data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus("read", errno);
    if (r == 0) return Status::IOError("read: file shorter than its size");
    done += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

// Why the final rename/link of a put failed. Unlike S3, a directory cannot
// hold both "a" and "a/b".
Status InstallError(int err) {
  if (err == EEXIST) return Status::PreconditionFailed("object already exists");
  if (err == ENOTDIR) {
    return Status::InvalidArgument("a prefix of the key is an object (local store)");
  }
  if (err == EISDIR || err == ENOTEMPTY) {
    return Status::InvalidArgument("the key is a prefix of other keys (local store)");
  }
  return ErrnoStatus("install", err);
}

// A directory entry as List sees it.
struct Entry {
  std::string name;
  bool is_dir;
  // Keys below a directory "d" all start with "d/", so sorting directories
  // as "d/" among the files makes a depth-first walk yield byte-wise order.
  std::string SortKey() const { return is_dir ? name + "/" : name; }
};

// Lexical normalisation of an absolute path: empty and "." segments dropped,
// ".." removes the segment before it (and stays at "/").
std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segs;
  for (size_t pos = 0; pos < path.size();) {
    size_t next = std::min(path.find('/', pos), path.size());
    std::string_view seg = path.substr(pos, next - pos);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    pos = next + 1;
  }
  std::string out;
  for (std::string_view seg : segs) out.append("/").append(seg);
  return out.empty() ? "/" : out;
}

// Why a normalised absolute path cannot be a store root; empty if it can.
std::string UnfitRoot(const std::string& root) {
  if (root == "/") return "the filesystem root cannot be a hyperfile";
  for (std::string pseudo : {"/proc", "/sys", "/dev"}) {
    if (root == pseudo || root.starts_with(pseudo + "/")) {
      return "it is inside " + pseudo + ", a pseudo filesystem, which cannot hold a hyperfile";
    }
  }
  return "";
}

class LocalStore : public ObjectStore {
 public:
  explicit LocalStore(std::string root) : root_(std::move(root)) {}

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override;
  Status Head(std::string_view key, ObjectInfo* info) override;
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override;
  Status Delete(std::string_view key) override;
  Status DeleteMany(const std::vector<std::string>& keys) override;
  std::string Name() const override { return "file://" + root_; }

 private:
  struct ListState {
    std::string_view prefix, start_after;
    size_t limit;
    size_t found = 0;
    std::vector<ObjectInfo>* out;
    bool Full() const { return limit != 0 && found >= limit; }
  };

  std::string Where(std::string_view key) const { return Name() + "/" + std::string(key); }
  int OpenRoot() const { return ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }
  Status CheckKey(const char* op, std::string_view key) const;
  Status MakeRoot(const std::string& where) const;
  Status PrepareForPut(const std::string& where, Fd* tmp_dir);
  Status OpenParent(const std::string& where, std::string_view key, bool create, Fd* dir) const;
  Status OpenParentOnce(const std::string& where, std::string_view key, bool create, Fd* dir) const;
  Status StatObject(const std::string& where, int dir, const std::string& name, bool open, Fd* fd,
                    struct stat* st) const;
  Status WriteTemp(int tmp_dir, const Payload& data, std::string* tmp, struct stat* st);
  Status Install(const std::string& where, std::string_view key, int tmp_dir,
                 const std::string& tmp, const PutOptions& options);
  Status LockKey(const std::string& where, std::string_view key, Fd* lock, bool* no_root) const;
  void RemoveEmptyParents(std::string_view key) const;
  Status ReadDir(const std::string& rel, std::vector<Entry>* entries, Fd* dir) const;
  Status Walk(const std::string& rel, ListState* state) const;

  std::string root_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<bool> purged_{false};  // stale temporaries removed (first put)
};

Status LocalStore::CheckKey(const char* op, std::string_view key) const {
  bool bad = key.empty() || key.find('\0') != std::string_view::npos;
  size_t pos = 0;
  while (!bad && pos <= key.size()) {
    size_t next = std::min(key.find('/', pos), key.size());
    std::string_view seg = key.substr(pos, next - pos);
    bad = seg.empty() || seg == "." || seg == ".." || (pos == 0 && Reserved(seg));
    pos = next + 1;
  }
  if (!bad) return Status::OK();
  std::string shown(key);
  std::replace(shown.begin(), shown.end(), '\0', '?');
  return Status::InvalidArgument(std::string(op) + " " + Name() + ": invalid key '" + shown +
                                 "' (empty, leading/trailing/double '/', '.' or '..' segment, "
                                 "NUL, or a reserved .hftmp/.hflock folder)");
}

// mkdir -p of the root (first put only).
Status LocalStore::MakeRoot(const std::string& where) const {
  for (size_t i = 1; i <= root_.size(); i++) {
    if (i < root_.size() && root_[i] != '/') continue;
    std::string dir = root_.substr(0, i);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(where + ": mkdir " + dir, errno);
    }
  }
  return Status::OK();
}

// Removes temporary files left by crashed puts. Only old ones: a put in
// another process may be writing a fresh one right now.
void RemoveStaleTemps(int tmp_dir) {
  int fd = ::dup(tmp_dir);
  DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!d) {
    if (fd >= 0) ::close(fd);
    return;
  }
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  while (struct dirent* e = ::readdir(d)) {
    struct stat st;
    if (e->d_name[0] == '.' || ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    if (S_ISREG(st.st_mode) && now - st.st_mtim.tv_sec > kStaleTempSeconds) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

// Creates what a put needs (the root, .hftmp, .hflock), opens .hftmp, and on
// the store instance's first put removes stale temporaries.
Status LocalStore::PrepareForPut(const std::string& where, Fd* tmp_dir) {
  Fd root(OpenRoot());
  if (root.get() < 0 && errno == ENOENT) {
    HF_RETURN_IF_ERROR(MakeRoot(where));
    root.Reset(OpenRoot());
  }
  if (root.get() < 0) return ErrnoStatus(where + ": open directory " + root_, errno);
  bool made = false;
  for (std::string_view hidden : {kTmpDir, kLockDir}) {
    // Errors (a read-only directory) surface when the folder is opened.
    if (::mkdirat(root.get(), std::string(hidden).c_str(), 0755) == 0) made = true;
  }
  if (made) ::fsync(root.get());
  tmp_dir->Reset(OpenFolderAt(root.get(), std::string(kTmpDir)));
  if (tmp_dir->get() < 0) {
    return ErrnoStatus(where + ": open " + root_ + "/" + std::string(kTmpDir), errno);
  }
  if (!purged_.exchange(true)) RemoveStaleTemps(tmp_dir->get());
  return Status::OK();
}

// Opens the folder that holds `key`, one level at a time from the root and
// never through a symbolic link, so nothing outside the root is ever reached.
// With `create` (puts) missing levels are made, each made durable by fsyncing
// the folder that holds it. Errors name the key:
//   missing root or level, or a level that is an object: NotFound (reads),
//     InvalidArgument "a prefix of the key is an object" (puts)
//   a level that is a symlink or special file: Corrupt (reads),
//     InvalidArgument (puts)
Status LocalStore::OpenParent(const std::string& where, std::string_view key, bool create,
                              Fd* dir) const {
  // A delete may remove an empty folder between our mkdir and open, or after
  // we opened it (mkdir inside it then fails with ENOENT): start again from
  // the root, a bounded number of times.
  for (int restarts = 0;; restarts++) {
    Status s = OpenParentOnce(where, key, create, dir);
    if (!create || restarts >= 20 || !s.IsNotFound()) return s;
  }
}

Status LocalStore::OpenParentOnce(const std::string& where, std::string_view key, bool create,
                                  Fd* dir) const {
  Fd cur(OpenRoot());
  if (cur.get() < 0) {
    if (errno == ENOENT) return Status::NotFound(where + ": no such object");
    return ErrnoStatus(where + ": open directory " + root_, errno);
  }
  for (size_t pos = 0, slash; (slash = key.find('/', pos)) != std::string_view::npos;
       pos = slash + 1) {
    std::string name(key.substr(pos, slash - pos));
    int fd = OpenFolderAt(cur.get(), name);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), name.c_str(), 0755) == 0) {
        ::fsync(cur.get());
      } else if (errno != EEXIST && errno != ENOENT) {
        return ErrnoStatus(where + ": mkdir " + root_ + "/" + std::string(key.substr(0, slash)),
                           errno);
      }
      fd = OpenFolderAt(cur.get(), name);
    }
    if (fd >= 0) {
      cur.Reset(fd);
      continue;
    }
    int err = errno;
    std::string level(key.substr(0, slash));
    if (err == ENOENT) {
      return Status::NotFound(where +
                              (create ? ": folder " + level + " vanished" : ": no such object"));
    }
    if (err != ENOTDIR) return ErrnoStatus(where + ": open folder " + level, err);
    struct stat st;
    if (::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      if (!create) return Status::NotFound(where + ": no such object");
      return InstallError(ENOTDIR).WithContext(where);
    }
    std::string msg = where + ": '" + level + "' is " +
                      (::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0
                           ? KindOf(st.st_mode)
                           : std::string("not a directory")) +
                      ", not a folder (symbolic links are never followed)";
    return create ? Status::InvalidArgument(msg) : Status::Corrupt(msg);
  }
  dir->Reset(cur.Release());
  return Status::OK();
}

// Stats the object `name` in folder `dir` without following a symlink and,
// with `open`, opens it for reading (never blocking, never a symlink) and
// checks the opened file again. A directory is NotFound (not an object);
// anything else that is not a regular file is Corrupt.
Status LocalStore::StatObject(const std::string& where, int dir, const std::string& name, bool open,
                              Fd* fd, struct stat* st) const {
  auto not_regular = [&](mode_t mode) {
    if (S_ISDIR(mode)) return Status::NotFound(where + ": no such object (a directory)");
    return Status::Corrupt(where + ": not a regular file (" + KindOf(mode) +
                           " is at the key; hyperfile never creates one and never follows "
                           "symbolic links)");
  };
  if (::fstatat(dir, name.c_str(), st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(where, errno, /*not_found=*/true);
  }
  if (!S_ISREG(st->st_mode)) return not_regular(st->st_mode);
  if (!open) return Status::OK();
  fd->Reset(::openat(dir, name.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (fd->get() < 0) {
    if (errno == ELOOP) return not_regular(S_IFLNK);  // replaced by a symlink since
    return ErrnoStatus(where, errno, /*not_found=*/true);
  }
  if (::fstat(fd->get(), st) != 0) return ErrnoStatus(where, errno);
  if (!S_ISREG(st->st_mode)) return not_regular(st->st_mode);
  return Status::OK();
}

// Writes the payload to a new temporary file in .hftmp and fsyncs it; *st
// describes the file, which keeps its inode and mtime when renamed or linked
// into place. *tmp is its name in .hftmp.
Status LocalStore::WriteTemp(int tmp_dir, const Payload& data, std::string* tmp, struct stat* st) {
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 10; attempt++) {
    *tmp = std::to_string(::getpid()) + "-" + std::to_string(counter_++) + "-" +
           std::to_string(std::random_device{}());
    fd =
        ::openat(tmp_dir, tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    return ErrnoStatus("create temporary file " + root_ + "/" + std::string(kTmpDir) + "/" + *tmp,
                       errno);
  }
  Fd file(fd);
  Status s = WriteAll(fd, data);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoStatus("fsync", errno);
  if (s.ok() && ::fstat(fd, st) != 0) s = ErrnoStatus("fstat", errno);
  if (s.ok() && file.Close() != 0) s = ErrnoStatus("close", errno);
  if (!s.ok()) ::unlinkat(tmp_dir, tmp->c_str(), 0);
  return s;
}

// Takes the cross-process lock of the key's stripe; released when *lock closes.
// flock locks belong to the open file description, so two threads of one
// process that each open the lock file exclude each other too. Makes .hflock
// if missing, but never the root: *no_root is set (and nothing locked) when
// the root does not exist.
Status LocalStore::LockKey(const std::string& where, std::string_view key, Fd* lock,
                           bool* no_root) const {
  *no_root = false;
  Fd root(OpenRoot());
  if (root.get() < 0) {
    if (errno == ENOENT) {
      *no_root = true;
      return Status::OK();
    }
    return ErrnoStatus(where + ": open directory " + root_, errno);
  }
  const std::string lock_dir(kLockDir);
  Fd dir(OpenFolderAt(root.get(), lock_dir));
  if (dir.get() < 0 && errno == ENOENT) {
    if (::mkdirat(root.get(), lock_dir.c_str(), 0755) == 0) ::fsync(root.get());
    dir.Reset(OpenFolderAt(root.get(), lock_dir));
  }
  if (dir.get() < 0) return ErrnoStatus(where + ": open " + root_ + "/" + lock_dir, errno);
  char name[16];
  std::snprintf(name, sizeof name, "%03llu",
                static_cast<unsigned long long>(Fnv1a(key) % kLockStripes));
  std::string path = root_ + "/" + lock_dir + "/" + name;
  int fd = ::openat(dir.get(), name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(where + ": open lock file " + path, errno);
  lock->Reset(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::IOError(where + ": lock file " + path + " is not a regular file");
  }
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoStatus(where + ": lock " + path, errno);
  }
  return Status::OK();
}

// rename(), or for a create-only put a rename that fails with EEXIST instead of
// replacing. Returns 0 or an errno.
int MoveIntoPlace(int tmp_dir, const std::string& tmp, int dir, const std::string& name,
                  bool if_absent) {
  if (!if_absent) {
    return ::renameat(tmp_dir, tmp.c_str(), dir, name.c_str()) == 0 ? 0 : errno;
  }
  if (::renameat2(tmp_dir, tmp.c_str(), dir, name.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // The file system cannot rename without replacing: link() is atomic too
  // (the caller removes the temporary name).
  return ::linkat(tmp_dir, tmp.c_str(), dir, name.c_str(), 0) == 0 ? 0 : errno;
}

// Moves the temporary file to the key's path under the key's lock, honouring
// if_absent and if_match. Always removes the temporary file. What may be at
// the key's path: nothing, a regular file (the object), an empty directory
// (removed: a local directory is not an object), or something in the way
// (a non-empty directory, a symlink, a FIFO...: InvalidArgument, untouched).
Status LocalStore::Install(const std::string& where, std::string_view key, int tmp_dir,
                           const std::string& tmp, const PutOptions& options) {
  const std::string name = BaseName(key);
  Fd lock, dir;
  bool no_root = false;
  Status s = LockKey(where, key, &lock, &no_root);
  if (s.ok() && no_root) s = Status::IOError(where + ": the directory " + root_ + " vanished");
  if (s.ok()) s = OpenParent(where, key, /*create=*/true, &dir);
  struct stat cur;
  if (s.ok() && ::fstatat(dir.get(), name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
      !S_ISREG(cur.st_mode) && !S_ISDIR(cur.st_mode)) {
    s = Status::InvalidArgument(where + ": " + KindOf(cur.st_mode) +
                                " is at the key's path, not an object; left alone");
  }
  if (s.ok() && !options.if_match.empty() && !options.if_absent) {
    if (::fstatat(dir.get(), name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(cur.st_mode)) {
      s = Status::NotFound(where + ": no such object (if_match " + options.if_match + ")");
    } else if (HexEtag(cur) != options.if_match) {
      s = Status::PreconditionFailed(where + ": etag is " + HexEtag(cur) + ", not " +
                                     options.if_match);
    }
  }
  for (int attempt = 0; s.ok(); attempt++) {
    int err = MoveIntoPlace(tmp_dir, tmp, dir.get(), name, options.if_absent);
    if (err == 0) break;
    if (attempt >= 5) {
      s = InstallError(err).WithContext(where);
    } else if (err == ENOENT) {
      // A concurrent delete removed the (then empty) parent folder: make it
      // again and retry.
      s = OpenParent(where, key, /*create=*/true, &dir);
    } else if (err == EEXIST || err == EISDIR || err == ENOTEMPTY) {
      if (::fstatat(dir.get(), name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) s = ErrnoStatus(where, errno);
        continue;  // gone meanwhile: try again
      }
      if (S_ISREG(cur.st_mode)) {
        s = Status::PreconditionFailed(where + ": object already exists");
      } else if (!S_ISDIR(cur.st_mode)) {
        s = Status::InvalidArgument(where + ": " + KindOf(cur.st_mode) +
                                    " is at the key's path, not an object; left alone");
      } else if (::unlinkat(dir.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        // rmdir removes only an empty directory: one with entries stays.
        s = (errno == ENOTEMPTY || errno == EEXIST)
                ? Status::InvalidArgument(where +
                                          ": the key is a prefix of other keys (a non-empty "
                                          "directory is at its path; local store)")
                : ErrnoStatus(where + ": remove the empty directory at the key", errno);
      }
    } else {
      s = InstallError(err).WithContext(where);
    }
  }
  ::unlinkat(tmp_dir, tmp.c_str(), 0);  // no-op (ENOENT) after a successful rename
  if (s.ok()) ::fsync(dir.get());
  return s;
}

Status LocalStore::Put(std::string_view key, const Payload& data, const PutOptions& options,
                       ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("put", key));
  const std::string where = "put " + Where(key);
  Fd tmp_dir;
  HF_RETURN_IF_ERROR(PrepareForPut(where, &tmp_dir));
  std::string tmp;
  struct stat st;
  HF_RETURN_IF_ERROR(WriteTemp(tmp_dir.get(), data, &tmp, &st).WithContext(where));
  HF_RETURN_IF_ERROR(Install(where, key, tmp_dir.get(), tmp, options));
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

Status LocalStore::Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                       ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("get", key));
  const std::string where = "get " + Where(key);
  Fd dir, fd;
  struct stat st;
  HF_RETURN_IF_ERROR(OpenParent(where, key, /*create=*/false, &dir));
  HF_RETURN_IF_ERROR(StatObject(where, dir.get(), BaseName(key), /*open=*/true, &fd, &st));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  out->clear();
  if (length == kToEnd && offset < size && size - offset > kMaxWholeGet) {
    return Status::Corrupt(where + ": the object is " + std::to_string(size) +
                           " bytes, more than a whole-object read may return (" +
                           std::to_string(kMaxWholeGet) + "); read it in ranges");
  }
  if (offset < size) {
    HF_RETURN_IF_ERROR(
        ReadAll(fd.get(), offset, std::min(length, size - offset), out).WithContext(where));
  }
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

Status LocalStore::Head(std::string_view key, ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("head", key));
  const std::string where = "head " + Where(key);
  Fd dir;
  struct stat st;
  HF_RETURN_IF_ERROR(OpenParent(where, key, /*create=*/false, &dir));
  HF_RETURN_IF_ERROR(StatObject(where, dir.get(), BaseName(key), /*open=*/false, nullptr, &st));
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

// Reads one folder (rel = "" for the root), sorted in key order, without the
// hidden folders and without anything that is neither a regular file nor a
// directory (symlinks, FIFOs, sockets, devices: never opened). *dir receives
// the folder, to stat the files in. A folder that is missing (also the root),
// or that is a file or symlink, holds nothing.
Status LocalStore::ReadDir(const std::string& rel, std::vector<Entry>* entries, Fd* dir) const {
  const std::string where = "list " + Name();
  Status s = OpenParent(where, rel.empty() ? "x" : rel + "/x", /*create=*/false, dir);
  if (s.IsNotFound() || s.IsCorrupt()) return Status::OK();
  HF_RETURN_IF_ERROR(s);
  int fd = ::dup(dir->get());
  DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!d) {
    if (fd >= 0) ::close(fd);
    return ErrnoStatus(where + ": read directory " + root_ + (rel.empty() ? "" : "/" + rel), errno);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == ".." || (rel.empty() && Reserved(name))) continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type != DT_DIR && type != DT_REG) continue;
    entries->push_back({std::string(name), type == DT_DIR});
  }
  ::closedir(d);
  std::sort(entries->begin(), entries->end(),
            [](const Entry& a, const Entry& b) { return a.SortKey() < b.SortKey(); });
  return Status::OK();
}

// Depth-first walk in key order; skips directories that cannot hold a key
// matching the prefix or sorting after start_after, stops at the limit.
Status LocalStore::Walk(const std::string& rel, ListState* state) const {
  std::vector<Entry> entries;
  Fd dir;
  HF_RETURN_IF_ERROR(ReadDir(rel, &entries, &dir));
  for (const Entry& e : entries) {
    if (state->Full()) break;
    std::string key = rel.empty() ? e.name : rel + "/" + e.name;
    std::string_view prefix = state->prefix, after = state->start_after;
    if (e.is_dir) {
      std::string below = key + "/";
      bool may_match = below.starts_with(prefix) || prefix.starts_with(below);
      bool all_before = !after.empty() && !after.starts_with(below) && after > below;
      if (may_match && !all_before) HF_RETURN_IF_ERROR(Walk(key, state));
      continue;
    }
    if (!key.starts_with(prefix) || (!after.empty() && key <= after)) continue;
    struct stat st;
    if (::fstatat(dir.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;  // deleted or replaced meanwhile
    }
    ObjectInfo info;
    FillInfo(key, st, &info);
    state->out->push_back(std::move(info));
    state->found++;
  }
  return Status::OK();
}

Status LocalStore::List(std::string_view prefix, std::string_view start_after, size_t limit,
                        std::vector<ObjectInfo>* out) {
  // Start at the deepest directory the prefix names ("a/b/c" -> "a/b").
  size_t slash = prefix.rfind('/');
  std::string start = slash == std::string_view::npos ? "" : std::string(prefix.substr(0, slash));
  if (Reserved(start.substr(0, start.find('/')))) return Status::OK();
  // A prefix whose folder part is no valid key path ("a//b", "../x", NUL)
  // matches no key: never walk it.
  if (!start.empty() && !CheckKey("list", start).ok()) return Status::OK();
  ListState state{prefix, start_after, limit, 0, out};
  return Walk(start, &state);
}

Status LocalStore::Delete(std::string_view key) {
  HF_RETURN_IF_ERROR(CheckKey("delete", key));
  const std::string where = "delete " + Where(key);
  Fd lock, dir;
  bool no_root = false;
  HF_RETURN_IF_ERROR(LockKey(where, key, &lock, &no_root));
  if (no_root) return Status::OK();  // nothing to delete; nothing created
  Status s = OpenParent(where, key, /*create=*/false, &dir);
  if (s.IsNotFound()) return Status::OK();
  HF_RETURN_IF_ERROR(s);
  const std::string name = BaseName(key);
  struct stat st;
  if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::OK();
    return ErrnoStatus(where, errno);
  }
  if (S_ISDIR(st.st_mode)) return Status::OK();  // a folder of other keys, not an object
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(where + ": " + KindOf(st.st_mode) +
                                   " is at the key's path, not an object; left alone");
  }
  if (::unlinkat(dir.get(), name.c_str(), 0) != 0) {
    if (errno == ENOENT) return Status::OK();
    return ErrnoStatus(where, errno);
  }
  RemoveEmptyParents(key);
  return Status::OK();
}

// Removes the key's parent directories that the delete left empty, deepest
// first, so deleted prefixes do not pile up. rmdir() fails on a directory
// that is not empty, so this never removes another key; a put racing with it
// recreates the directory (see Install).
void LocalStore::RemoveEmptyParents(std::string_view key) const {
  for (size_t slash = key.rfind('/'); slash != std::string_view::npos && slash > 0;
       slash = key.rfind('/', slash - 1)) {
    if (::rmdir((root_ + "/" + std::string(key.substr(0, slash))).c_str()) != 0) break;
  }
}

Status LocalStore::DeleteMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) HF_RETURN_IF_ERROR(Delete(k));
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<ObjectStore>> NewLocalStore(const std::string& directory) {
  if (directory.empty() || directory[0] != '/') {
    return Status::InvalidArgument("open local store: directory must be an absolute path: '" +
                                   directory + "'");
  }
  if (directory.find('\0') != std::string::npos) {
    return Status::InvalidArgument("open local store: the directory contains a NUL byte");
  }
  std::string root = NormalizePath(directory);
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument("open local store '" + directory + "'" +
                                   (root != directory ? " (" + root + ")" : "") + ": " + why);
  };
  if (std::string why = UnfitRoot(root); !why.empty()) return refuse(why);
  struct stat st;
  if (::stat(root.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return refuse("exists and is not a directory");
    char real[PATH_MAX];
    if (::realpath(root.c_str(), real) != nullptr) {
      if (std::string why = UnfitRoot(real); !why.empty()) {
        return refuse(why + " (the path resolves to " + real + ")");
      }
    }
  } else if (errno == ENOTDIR) {
    return refuse("a component of the path is not a directory");
  }
  // Missing: the first put creates it. Other errors surface on use.
  return std::shared_ptr<ObjectStore>(std::make_shared<LocalStore>(root));
}

}  // namespace hyperfile
