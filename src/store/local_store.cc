// The local-directory backend (file:///path), the embedded default.
//
// Durable puts: the object is written to a temporary file under the hidden
// ".hftmp" folder, fsynced, then moved into place with rename() (plain put)
// or link() (put-if-absent: fails atomically with EEXIST if the key exists,
// also between processes), and the directory is fsynced.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "hyperfile/object_store.h"

namespace hyperfile {
namespace {

constexpr const char* kTmpDir = ".hftmp";

Status ErrnoStatus(const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(msg);
  if (err == EACCES || err == EPERM) return Status::IOError(msg + " (permission denied)");
  if (err == EINVAL || err == ENAMETOOLONG || err == ENOTDIR || err == EISDIR) {
    return Status::InvalidArgument(msg);
  }
  return Status::IOError(msg);
}

class LocalStore : public ObjectStore {
 public:
  explicit LocalStore(std::string root) : root_(std::move(root)) {}

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(CheckKey("put", key));
    if (!options.if_match.empty()) {
      return Status::NotSupported("put " + Where(key) + ": If-Match is not supported locally");
    }
    std::string path = Path(key);
    HF_RETURN_IF_ERROR(MakeParents(path));
    std::string tmp = root_ + "/" + kTmpDir + "/" + std::to_string(getpid()) + "-" +
                      std::to_string(counter_++) + "-" + std::to_string(std::random_device{}());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("put " + Where(key) + ": create temporary file", errno);
    uint64_t size = 0;
    for (std::string_view piece : data) {
      size_t done = 0;
      while (done < piece.size()) {
        ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          int err = errno;
          ::close(fd);
          ::unlink(tmp.c_str());
          return ErrnoStatus("put " + Where(key) + ": write", err);
        }
        done += static_cast<size_t>(n);
      }
      size += piece.size();
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoStatus("put " + Where(key) + ": fsync", err);
    }
    int rc =
        options.if_absent ? ::link(tmp.c_str(), path.c_str()) : ::rename(tmp.c_str(), path.c_str());
    int err = errno;
    if (options.if_absent) ::unlink(tmp.c_str());
    if (rc != 0) {
      if (options.if_absent && err == EEXIST) {
        return Status::PreconditionFailed("put " + Where(key) + ": object already exists");
      }
      if (!options.if_absent) ::unlink(tmp.c_str());
      return ErrnoStatus("put " + Where(key), err);
    }
    SyncDir(path);
    if (info) return Head(key, info);
    return Status::OK();
  }

  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(CheckKey("get", key));
    int fd = ::open(Path(key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("get " + Where(key), errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus("get " + Where(key), err);
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    out->clear();
    if (offset < size) {
      uint64_t n = std::min(length, size - offset);
      out->resize(n);
      uint64_t done = 0;
      while (done < n) {
        ssize_t r = ::pread(fd, out->data() + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          int err = r < 0 ? errno : EIO;
          ::close(fd);
          return ErrnoStatus("get " + Where(key) + ": read", err);
        }
        done += static_cast<uint64_t>(r);
      }
    }
    ::close(fd);
    if (info) Fill(key, st, info);
    return Status::OK();
  }

  Status Head(std::string_view key, ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(CheckKey("head", key));
    struct stat st;
    if (::stat(Path(key).c_str(), &st) != 0) return ErrnoStatus("head " + Where(key), errno);
    if (!S_ISREG(st.st_mode)) return Status::NotFound("head " + Where(key) + ": no such object");
    if (info) Fill(key, st, info);
    return Status::OK();
  }

  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    std::vector<ObjectInfo> all;
    HF_RETURN_IF_ERROR(Walk("", &all));
    std::sort(all.begin(), all.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    size_t n = 0;
    for (ObjectInfo& o : all) {
      if (o.key.compare(0, prefix.size(), prefix) != 0) continue;
      if (!start_after.empty() && o.key <= start_after) continue;
      if (limit != 0 && n >= limit) break;
      out->push_back(std::move(o));
      n++;
    }
    return Status::OK();
  }

  Status Delete(std::string_view key) override {
    HF_RETURN_IF_ERROR(CheckKey("delete", key));
    if (::unlink(Path(key).c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus("delete " + Where(key), errno);
    }
    return Status::OK();
  }

  Status DeleteMany(const std::vector<std::string>& keys) override {
    for (const std::string& k : keys) HF_RETURN_IF_ERROR(Delete(k));
    return Status::OK();
  }

  std::string Name() const override { return "file://" + root_; }

 private:
  std::string Where(std::string_view key) const { return Name() + "/" + std::string(key); }
  std::string Path(std::string_view key) const { return root_ + "/" + std::string(key); }

  Status CheckKey(const char* op, std::string_view key) const {
    bool bad = key.empty() || key.front() == '/' || key.back() == '/' ||
               key.find('\0') != std::string_view::npos || key.substr(0, 6) == kTmpDir;
    size_t pos = 0;
    while (!bad && pos <= key.size()) {
      size_t next = key.find('/', pos);
      if (next == std::string_view::npos) next = key.size();
      std::string_view seg = key.substr(pos, next - pos);
      if (seg.empty() || seg == "." || seg == "..") bad = true;
      pos = next + 1;
    }
    if (bad) {
      return Status::InvalidArgument(std::string(op) + " " + Name() + ": invalid key '" +
                                     std::string(key) + "'");
    }
    return Status::OK();
  }

  Status MakeParents(const std::string& path) const {
    for (size_t i = root_.size() + 1; i < path.size(); i++) {
      if (path[i] != '/') continue;
      std::string dir = path.substr(0, i);
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        return ErrnoStatus("mkdir " + dir, errno);
    }
    return Status::OK();
  }

  void SyncDir(const std::string& path) const {
    std::string dir = path.substr(0, path.rfind('/'));
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }

  void Fill(std::string_view key, const struct stat& st, ObjectInfo* info) const {
    info->key = std::string(key);
    info->size = static_cast<uint64_t>(st.st_size);
    info->mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    info->etag = std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
                 std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }

  Status Walk(const std::string& rel, std::vector<ObjectInfo>* out) const {
    std::string dir = rel.empty() ? root_ : root_ + "/" + rel;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      if (errno == ENOENT && !rel.empty()) return Status::OK();
      return ErrnoStatus("list " + Name(), errno);
    }
    Status st;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || (rel.empty() && name == kTmpDir)) continue;
      std::string key = rel.empty() ? name : rel + "/" + name;
      struct stat s;
      if (::stat((root_ + "/" + key).c_str(), &s) != 0) continue;  // raced with a delete
      if (S_ISDIR(s.st_mode)) {
        st = Walk(key, out);
        if (!st.ok()) break;
      } else if (S_ISREG(s.st_mode)) {
        ObjectInfo info;
        Fill(key, s, &info);
        out->push_back(std::move(info));
      }
    }
    ::closedir(d);
    return st;
  }

  std::string root_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace

Result<std::shared_ptr<ObjectStore>> NewLocalStore(const std::string& directory) {
  if (directory.empty() || directory[0] != '/') {
    return Status::InvalidArgument("local store: directory must be an absolute path: '" +
                                   directory + "'");
  }
  std::string root = directory;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  for (size_t i = 1; i <= root.size(); i++) {
    if (i == root.size() || root[i] == '/') {
      std::string dir = root.substr(0, i);
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus("open file://" + root + ": mkdir " + dir, errno);
      }
    }
  }
  std::string tmp = root + "/" + kTmpDir;
  if (::mkdir(tmp.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("open file://" + root + ": mkdir " + tmp, errno);
  }
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("open file://" + root + ": not a directory");
  }
  return std::shared_ptr<ObjectStore>(std::make_shared<LocalStore>(root));
}

}  // namespace hyperfile
