// The local-directory backend (file:///path), the embedded default.
//
// Layout: key "a/b/c" is the file DIR/a/b/c. Two hidden folders at the root
// hold the machinery and never appear in List; keys that would land in them
// are refused:
//   .hftmp/   temporary files of puts in progress (and of crashed ones: files
//             older than an hour are removed when a store is opened)
//   .hflock/  lock files, one per stripe of keys (flock, across processes)
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
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "hyperfile/object_store.h"

namespace hyperfile {
namespace {

constexpr std::string_view kTmpDir = ".hftmp";
constexpr std::string_view kLockDir = ".hflock";
constexpr uint64_t kLockStripes = 256;
constexpr int64_t kStaleTempSeconds = 3600;

// Maps errno to a Status class. Read paths pass not_found=true so that a
// missing file (or a key whose "parent" is an object) is NotFound.
Status ErrnoStatus(const std::string& what, int err, bool not_found = false) {
  std::string msg = what + ": " + std::strerror(err);
  if (not_found && (err == ENOENT || err == ENOTDIR)) return Status::NotFound(msg);
  if (err == ENAMETOOLONG) return Status::InvalidArgument(msg);
  return Status::IOError(msg);
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
  // Closes now, reporting the error (close can report a deferred write error).
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

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

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string ParentDir(const std::string& path) { return path.substr(0, path.rfind('/')); }

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
  std::string Path(std::string_view key) const { return root_ + "/" + std::string(key); }
  Status CheckKey(const char* op, std::string_view key) const;
  Status MakeParents(std::string_view key) const;
  Status WriteTemp(const Payload& data, std::string* tmp, struct stat* st);
  Status Install(std::string_view key, const std::string& tmp, const PutOptions& options);
  Status LockKey(std::string_view key, Fd* lock) const;
  void RemoveEmptyParents(std::string_view key) const;
  Status ReadDir(const std::string& rel, std::vector<Entry>* entries) const;
  Status Walk(const std::string& rel, ListState* state) const;

  std::string root_;
  std::atomic<uint64_t> counter_{0};
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

// Creates the directories of the key's parent path. A new directory entry is
// made durable by fsyncing the directory that holds it.
Status LocalStore::MakeParents(std::string_view key) const {
  size_t i = key.find('/');
  for (int restarts = 0; i != std::string_view::npos; i = key.find('/', i + 1)) {
    std::string dir = Path(key.substr(0, i));
    if (::mkdir(dir.c_str(), 0755) == 0) {
      SyncDir(ParentDir(dir));
    } else if (errno == ENOENT && restarts++ < 10) {
      // A delete removed an empty parent: start over (the loop's increment
      // wraps this to 0, so the next find is the key's first '/').
      i = static_cast<size_t>(-1);
    } else if (errno == ENOTDIR) {
      return InstallError(errno);
    } else if (errno != EEXIST) {
      return ErrnoStatus("mkdir " + dir, errno);
    }
  }
  return Status::OK();
}

// Writes the payload to a new temporary file and fsyncs it; *st describes the
// file, which keeps its inode and mtime when renamed or linked into place.
Status LocalStore::WriteTemp(const Payload& data, std::string* tmp, struct stat* st) {
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 10; attempt++) {
    *tmp = root_ + "/" + std::string(kTmpDir) + "/" + std::to_string(::getpid()) + "-" +
           std::to_string(counter_++) + "-" + std::to_string(std::random_device{}());
    fd = ::open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return ErrnoStatus("create temporary file " + *tmp, errno);
  Fd file(fd);
  Status s = WriteAll(fd, data);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoStatus("fsync", errno);
  if (s.ok() && ::fstat(fd, st) != 0) s = ErrnoStatus("fstat", errno);
  if (s.ok() && file.Close() != 0) s = ErrnoStatus("close", errno);
  if (!s.ok()) ::unlink(tmp->c_str());
  return s;
}

// Takes the cross-process lock of the key's stripe; released when *lock closes.
// flock locks belong to the open file description, so two threads of one
// process that each open the lock file exclude each other too.
Status LocalStore::LockKey(std::string_view key, Fd* lock) const {
  char name[16];
  std::snprintf(name, sizeof name, "%03llu",
                static_cast<unsigned long long>(Fnv1a(key) % kLockStripes));
  std::string path = root_ + "/" + std::string(kLockDir) + "/" + name;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("open lock file " + path, errno);
  lock->Reset(fd);
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoStatus("lock " + path, errno);
  }
  return Status::OK();
}

// rename(), or for a create-only put a rename that fails with EEXIST instead of
// replacing. Returns 0 or an errno.
int MoveIntoPlace(const std::string& tmp, const std::string& path, bool if_absent) {
  if (!if_absent) return ::rename(tmp.c_str(), path.c_str()) == 0 ? 0 : errno;
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // The file system cannot rename without replacing: link() is atomic too
  // (the caller removes the temporary name).
  return ::link(tmp.c_str(), path.c_str()) == 0 ? 0 : errno;
}

// Moves the temporary file to the key's path under the key's lock, honouring
// if_absent and if_match. Always removes the temporary file.
Status LocalStore::Install(std::string_view key, const std::string& tmp,
                           const PutOptions& options) {
  std::string path = Path(key);
  Fd lock;
  Status s = LockKey(key, &lock);
  if (s.ok() && !options.if_match.empty() && !options.if_absent) {
    struct stat cur;
    if (::stat(path.c_str(), &cur) != 0 || !S_ISREG(cur.st_mode)) {
      s = Status::NotFound("no such object (if_match " + options.if_match + ")");
    } else if (HexEtag(cur) != options.if_match) {
      s = Status::PreconditionFailed("etag is " + HexEtag(cur) + ", not " + options.if_match);
    }
  }
  // A concurrent delete may remove the (then empty) parent directory between
  // MakeParents and the rename: recreate it and try again.
  for (int attempt = 0; s.ok(); attempt++) {
    int err = MoveIntoPlace(tmp, path, options.if_absent);
    if (err == 0) break;
    if (err != ENOENT || attempt >= 5) s = InstallError(err);
    if (s.ok()) s = MakeParents(key);
  }
  ::unlink(tmp.c_str());  // no-op (ENOENT) after a successful rename
  return s;
}

Status LocalStore::Put(std::string_view key, const Payload& data, const PutOptions& options,
                       ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("put", key));
  HF_RETURN_IF_ERROR(MakeParents(key).WithContext("put " + Where(key)));
  std::string tmp;
  struct stat st;
  HF_RETURN_IF_ERROR(WriteTemp(data, &tmp, &st).WithContext("put " + Where(key)));
  Status s = Install(key, tmp, options);
  if (!s.ok()) return s.WithContext("put " + Where(key));
  SyncDir(ParentDir(Path(key)));
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

Status LocalStore::Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                       ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("get", key));
  Fd fd(::open(Path(key).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("get " + Where(key), errno, /*not_found=*/true);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("get " + Where(key), errno);
  if (!S_ISREG(st.st_mode)) return Status::NotFound("get " + Where(key) + ": no such object");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  out->clear();
  if (offset < size) {
    HF_RETURN_IF_ERROR(ReadAll(fd.get(), offset, std::min(length, size - offset), out)
                           .WithContext("get " + Where(key)));
  }
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

Status LocalStore::Head(std::string_view key, ObjectInfo* info) {
  HF_RETURN_IF_ERROR(CheckKey("head", key));
  struct stat st;
  if (::stat(Path(key).c_str(), &st) != 0) {
    return ErrnoStatus("head " + Where(key), errno, /*not_found=*/true);
  }
  if (!S_ISREG(st.st_mode)) return Status::NotFound("head " + Where(key) + ": no such object");
  if (info) FillInfo(key, st, info);
  return Status::OK();
}

// Reads one directory (rel = "" for the root), sorted in key order, without
// the hidden folders.
Status LocalStore::ReadDir(const std::string& rel, std::vector<Entry>* entries) const {
  std::string dir = rel.empty() ? root_ : Path(rel);
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    // A directory that vanished or is a file: nothing below it.
    if (!rel.empty() && (errno == ENOENT || errno == ENOTDIR)) return Status::OK();
    return ErrnoStatus("list " + Name() + ": open directory " + dir, errno);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == ".." || (rel.empty() && Reserved(name))) continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir =
          ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    entries->push_back({std::string(name), is_dir});
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
  HF_RETURN_IF_ERROR(ReadDir(rel, &entries));
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
    if (::stat(Path(key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // deleted
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
  ListState state{prefix, start_after, limit, 0, out};
  return Walk(start, &state);
}

Status LocalStore::Delete(std::string_view key) {
  HF_RETURN_IF_ERROR(CheckKey("delete", key));
  Fd lock;
  HF_RETURN_IF_ERROR(LockKey(key, &lock).WithContext("delete " + Where(key)));
  if (::unlink(Path(key).c_str()) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::OK();
    return ErrnoStatus("delete " + Where(key), errno);
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
    if (::rmdir(Path(key.substr(0, slash)).c_str()) != 0) break;
  }
}

Status LocalStore::DeleteMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) HF_RETURN_IF_ERROR(Delete(k));
  return Status::OK();
}

// Removes temporary files left by crashed puts. Only old ones: a put in
// another process may be writing a fresh one right now.
void RemoveStaleTemps(const std::string& tmp_dir) {
  DIR* d = ::opendir(tmp_dir.c_str());
  if (!d) return;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  while (struct dirent* e = ::readdir(d)) {
    struct stat st;
    if (e->d_name[0] == '.' || ::fstatat(::dirfd(d), e->d_name, &st, 0) != 0) continue;
    if (S_ISREG(st.st_mode) && now - st.st_mtim.tv_sec > kStaleTempSeconds) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

Status MakeDirs(const std::string& root) {
  for (size_t i = 1; i <= root.size(); i++) {
    if (i < root.size() && root[i] != '/') continue;
    std::string dir = root.substr(0, i);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus("open file://" + root + ": mkdir " + dir, errno);
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<ObjectStore>> NewLocalStore(const std::string& directory) {
  if (directory.empty() || directory[0] != '/') {
    return Status::InvalidArgument("open local store: directory must be an absolute path: '" +
                                   directory + "'");
  }
  std::string root = directory;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  HF_RETURN_IF_ERROR(MakeDirs(root));
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("open file://" + root + ": not a directory");
  }
  // The hidden folders may be impossible to create on a read-only directory;
  // the store can still be read, and a put reports the error.
  for (std::string_view hidden : {kTmpDir, kLockDir}) {
    ::mkdir((root + "/" + std::string(hidden)).c_str(), 0755);
  }
  RemoveStaleTemps(root + "/" + std::string(kTmpDir));
  return std::shared_ptr<ObjectStore>(std::make_shared<LocalStore>(root));
}

}  // namespace hyperfile
