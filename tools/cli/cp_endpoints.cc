// SPDX-License-Identifier: Apache-2.0
#include "cli/cp_endpoints.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>

#include "cli/conventions.h"
#include "hyperfile/object_store.h"

namespace hyperfile::cli {
namespace {

std::string Errno(int err) { return std::strerror(err); }

Status IOErrorFor(const std::string& what, int err) {
  return Status::IOError("cp: " + what + ": " + Errno(err));
}

// ------------------------------------------------------------ local source

class LocalSource : public CopySource {
 public:
  LocalSource(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~LocalSource() override { ::close(fd_); }

  uint64_t Size() const override { return size_; }
  uint32_t BlockSize() const override { return 0; }

  Result<std::vector<ByteRange>> DataRanges() override {
    std::vector<ByteRange> ranges;
    uint64_t pos = 0;
    while (pos < size_) {
      off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // only a hole follows
      if (data < 0) return WholeFile(errno);
      off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      if (hole < 0) return WholeFile(errno);
      uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size_);
      if (static_cast<uint64_t>(data) >= end) break;
      ranges.push_back({static_cast<uint64_t>(data), end - static_cast<uint64_t>(data)});
      pos = end;
    }
    return ranges;
  }

  Status Read(uint64_t offset, char* buf, size_t len) override {
    while (len > 0) {
      ssize_t n = ::pread(fd_, buf, len, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IOErrorFor("read " + path_, errno);
      if (n == 0) {
        return Status::IOError("cp: " + path_ + " shrank while being copied (was " +
                               std::to_string(size_) + " bytes)");
      }
      buf += n;
      offset += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return Status::OK();
  }

 private:
  // SEEK_DATA/SEEK_HOLE unsupported here (EINVAL on some file systems): read
  // everything; all-zero blocks are still skipped on the writing side.
  Result<std::vector<ByteRange>> WholeFile(int err) {
    if (err != EINVAL && err != EOPNOTSUPP) return IOErrorFor("seek in " + path_, err);
    return std::vector<ByteRange>{{0, size_}};
  }

  std::string path_;
  int fd_;
  uint64_t size_;
};

// -------------------------------------------------------- hyperfile source

class HyperfileSource : public CopySource {
 public:
  HyperfileSource(std::unique_ptr<File> file, uint64_t size, uint32_t block_size)
      : file_(std::move(file)), size_(size), block_size_(block_size) {}

  uint64_t Size() const override { return size_; }
  uint32_t BlockSize() const override { return block_size_; }

  Result<std::vector<ByteRange>> DataRanges() override {
    HF_ASSIGN_OR_RETURN(std::vector<Extent> extents, file_->Extents(0, size_));
    std::vector<ByteRange> ranges;
    for (const Extent& e : extents) {
      if (e.data) ranges.push_back({e.offset, e.length});
    }
    return ranges;
  }

  Status Read(uint64_t offset, char* buf, size_t len) override {
    while (len > 0) {
      HF_ASSIGN_OR_RETURN(size_t n, file_->PRead(offset, buf, len));
      if (n == 0)
        return Status::Corrupt("cp: source ended early at offset " + std::to_string(offset));
      buf += n;
      offset += n;
      len -= n;
    }
    return Status::OK();
  }

 private:
  std::unique_ptr<File> file_;  // read-only: a fixed checkpoint, immutable
  uint64_t size_;
  uint32_t block_size_;
};

// -------------------------------------------------------------- local sink

// Where a local destination really is, and the mode the new file gets.
struct LocalTarget {
  std::string path;  // symlinks resolved
  mode_t mode = 0644;
};

mode_t DefaultFileMode() {
  mode_t mask = ::umask(0);  // the only way to read the umask; put it back at once
  ::umask(mask);
  return 0666 & ~mask;
}

Result<LocalTarget> ResolveLocalTarget(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("cp: empty destination path");
  if (path.back() == '/') {
    return Status::InvalidArgument("cp: destination " + path +
                                   " names a directory; name the file to write");
  }
  LocalTarget target{path, DefaultFileMode()};
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    // Write where the link points (like cp(1)), not over the link itself.
    char* real = ::realpath(path.c_str(), nullptr);
    if (real == nullptr) return IOErrorFor("resolve symlink " + path, errno);
    target.path = real;
    std::free(real);
  }
  if (::stat(target.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return target;
    return IOErrorFor(target.path, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("cp: destination " + path +
                                   " is a directory; name the file to write");
  }
  // Renaming over a device or FIFO would replace the node, not write to it.
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("cp: destination " + path + " is not a regular file");
  }
  target.mode = st.st_mode & 07777;
  return target;
}

class LocalSink : public CopySink {
 public:
  LocalSink(LocalTarget target, std::string temp_path, int fd)
      : target_(std::move(target)), temp_path_(std::move(temp_path)), fd_(fd) {}
  ~LocalSink() override {
    if (!committed_) (void)Discard();
  }

  uint32_t BlockSize() const override { return 4096; }  // the usual file-system block
  const std::string& EmergencyUnlinkPath() const override { return temp_path_; }

  Status Write(uint64_t offset, const char* buf, size_t len) override {
    while (len > 0) {
      ssize_t n = ::pwrite(fd_, buf, len, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IOErrorFor("write " + target_.path, errno);
      buf += n;
      offset += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return Status::OK();
  }

  Status Resize(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return IOErrorFor("set the size of " + temp_path_, errno);
    }
    return Status::OK();
  }

  Result<std::string> Commit() override {
    if (::fchmod(fd_, target_.mode) != 0) return IOErrorFor("chmod " + temp_path_, errno);
    if (::fsync(fd_) != 0) return IOErrorFor("fsync " + temp_path_, errno);
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return IOErrorFor("close " + temp_path_, errno);
    if (::rename(temp_path_.c_str(), target_.path.c_str()) != 0) {
      return IOErrorFor("rename to " + target_.path, errno);
    }
    committed_ = true;
    // The rename is durable only once the directory is synced.
    std::string dir = std::filesystem::path(target_.path).parent_path().string();
    int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return IOErrorFor("open directory " + dir, errno);
    int rc = ::fsync(dir_fd);
    int err = errno;
    ::close(dir_fd);
    if (rc != 0) return IOErrorFor("fsync directory " + dir, err);
    return std::string();
  }

  Status Discard() override {
    if (committed_) return Status::OK();
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    committed_ = true;  // nothing more to undo
    if (::unlink(temp_path_.c_str()) != 0 && errno != ENOENT) {
      return IOErrorFor("remove temporary file " + temp_path_, errno);
    }
    return Status::OK();
  }

 private:
  LocalTarget target_;
  std::string temp_path_;
  int fd_;
  bool committed_ = false;
};

// "<dir>/.<name>.hyperfile-cp-XXXXXX": hidden, next to the target so the
// final rename stays within one file system.
std::string TempTemplate(const std::string& target) {
  std::filesystem::path p(target);
  std::string dir = p.parent_path().string();
  std::string name = p.filename().string().substr(0, 200);  // stay under NAME_MAX
  return (dir.empty() ? "." : dir) + "/." + name + ".hyperfile-cp-XXXXXX";
}

// --------------------------------------------------------- hyperfile sink

// For a file:// destination: the directory, if the copy is about to create
// it (so a failed copy can take it away again); empty otherwise.
std::string DirectoryToCreate(const std::string& uri) {
  constexpr std::string_view kScheme = "file://";
  if (uri.rfind(kScheme, 0) != 0) return "";
  std::string dir = uri.substr(kScheme.size());
  struct stat st;
  if (dir.empty() || ::lstat(dir.c_str(), &st) == 0 || errno != ENOENT) return "";
  return dir;
}

// Removes `dir` and the directories below it, as long as they are empty
// (rmdir refuses anything else, so no file is ever removed).
void RemoveEmptyDirectories(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) RemoveEmptyDirectories(entry.path());
  }
  ::rmdir(dir.c_str());
}

// Takes away a directory the failed copy created, once its store holds no
// object: what is left are the local store's empty lock files (.hflock/) and
// put temporaries (.hftmp/; none is in progress, the file is closed).
void RemoveCreatedDirectory(const std::string& dir) {
  std::error_code ec;
  for (const char* internal : {"/.hflock", "/.hftmp"}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir + internal, ec)) {
      if (entry.is_regular_file(ec)) std::filesystem::remove(entry.path(), ec);
    }
  }
  RemoveEmptyDirectories(dir);
}

class HyperfileSink : public CopySink {
 public:
  // `previous_head` is the checkpoint to return to on failure when the file
  // existed (--force); `created_dir` a directory the new file's store made.
  HyperfileSink(std::shared_ptr<ObjectStore> store, std::unique_ptr<File> file, bool created,
                uint64_t previous_head, std::string created_dir)
      : store_(std::move(store)),
        file_(std::move(file)),
        created_(created),
        previous_head_(previous_head),
        created_dir_(std::move(created_dir)) {}
  ~HyperfileSink() override {
    if (!done_) (void)Discard();
  }

  uint32_t BlockSize() const override { return block_size_; }
  const std::string& EmergencyUnlinkPath() const override { return no_path_; }

  // Reads the block size; with --force also empties the file and sizes it.
  Status Prepare(uint64_t size, uint32_t required_block_size) {
    HF_ASSIGN_OR_RETURN(FileStat stat, file_->Stat());
    block_size_ = stat.block_size;
    if (required_block_size != 0 && block_size_ != required_block_size) {
      return Status::InvalidArgument(
          store_->Name() + " exists with block size " + std::to_string(block_size_) + ", not " +
          std::to_string(required_block_size) + " (a file's block size is fixed)");
    }
    if (created_) return Status::OK();
    touched_ = true;
    HF_RETURN_IF_ERROR(file_->Truncate(0));
    return file_->Truncate(size);
  }

  Status Write(uint64_t offset, const char* buf, size_t len) override {
    return file_->PWrite(offset, buf, len);
  }
  Status Resize(uint64_t size) override {
    touched_ = true;
    return file_->Truncate(size);
  }

  Result<std::string> Commit() override {
    HF_ASSIGN_OR_RETURN(uint64_t checkpoint, file_->Flush());
    HF_RETURN_IF_ERROR(file_->Close());
    done_ = true;
    return "checkpoint " + std::to_string(checkpoint);
  }

  Status Discard() override {
    if (done_) return Status::OK();
    done_ = true;
    if (!created_ && !touched_) return file_->Close();  // nothing written: no checkpoint
    Quiesce();
    if (!created_) return RestorePreviousHead();
    // This copy created the file (the destination held no hyperfile before
    // it): remove that file and nothing else. Whatever else is under the
    // root (a user's files, another hyperfile below it) is left untouched.
    RemoveOptions only_ours;
    only_ours.keep_foreign = true;
    only_ours.store_resolver = CliStoreOpener();
    Status removed = RemoveFile(store_, only_ours);
    if (removed.IsNotFound()) removed = Status::OK();  // nothing was left to remove
    if (removed.ok() && !created_dir_.empty()) RemoveCreatedDirectory(created_dir_);
    return removed.WithContext("cp: removing the partial copy " + store_->Name());
  }

 private:
  // Stops every upload of the handle before its objects are removed or the
  // head restored. File cannot drop unflushed writes and Close() commits
  // them, so the file is emptied first: the last checkpoint is tiny.
  void Quiesce() {
    (void)file_->Truncate(0);
    (void)file_->Close();
  }

  // The library may already have committed part of the copy (its background
  // flusher runs when enough is dirty): make the old content the head again.
  // History keeps the partial checkpoints, as it keeps everything.
  Status RestorePreviousHead() {
    HF_ASSIGN_OR_RETURN(std::vector<CheckpointInfo> latest, ListCheckpoints(store_, 1));
    if (!latest.empty() && latest[0].id == previous_head_) return Status::OK();
    return Restore(store_, At::Checkpoint(previous_head_))
        .status()
        .WithContext("cp: restoring checkpoint " + std::to_string(previous_head_) + " of " +
                     store_->Name());
  }

  std::shared_ptr<ObjectStore> store_;
  std::unique_ptr<File> file_;
  bool created_;
  uint64_t previous_head_;
  std::string created_dir_;
  uint32_t block_size_ = 0;
  bool touched_ = false;  // an existing file was changed (in memory at least)
  bool done_ = false;
  std::string no_path_;
};

// --force: reopen the existing file; Prepare() empties it.
Result<std::unique_ptr<HyperfileSink>> ReopenHyperfile(std::shared_ptr<ObjectStore> store,
                                                       const OpenOptions& options, bool encrypt) {
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> file, File::Open(store, options));
  HF_ASSIGN_OR_RETURN(FileStat stat, file->Stat());
  if (encrypt && stat.cipher == 0) {
    // A file's encryption is fixed at create; nothing has been changed yet.
    return Status::InvalidArgument("cp: --encrypt: " + store->Name() +
                                   " already holds a file that is not encrypted (encryption is "
                                   "chosen at create; copy to a new destination)");
  }
  return std::make_unique<HyperfileSink>(std::move(store), std::move(file), false, stat.checkpoint,
                                         "");
}

}  // namespace

Result<std::unique_ptr<CopySource>> OpenLocalSource(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Status::NotFound("cp: " + path + ": " + Errno(ENOENT));
  if (fd < 0) return IOErrorFor(path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return IOErrorFor(path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("cp: source " + path + " is not a regular file");
  }
  return std::unique_ptr<CopySource>(
      std::make_unique<LocalSource>(path, fd, static_cast<uint64_t>(st.st_size)));
}

Result<std::unique_ptr<CopySource>> OpenHyperfileSource(const std::string& uri, const At& at) {
  // Opening a local store makes its directory; a source must not.
  if (!DirectoryToCreate(uri).empty()) return Status::NotFound("cp: no hyperfile at " + uri);
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> store, OpenCliStore(uri));
  OpenOptions options = CliOpenOptions();
  options.read_only = true;
  // One pass over the data, in pieces the workers own: a cache would only
  // hold what is never read again.
  options.block_cache_bytes = 4u << 20;
  options.index_cache_bytes = 4u << 20;
  options.max_read_request_bytes = 1u << 20;
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> file, File::OpenAt(store, at, options));
  HF_ASSIGN_OR_RETURN(FileStat stat, file->Stat());
  return std::unique_ptr<CopySource>(
      std::make_unique<HyperfileSource>(std::move(file), stat.size, stat.block_size));
}

Result<std::unique_ptr<CopySink>> CreateLocalSink(const std::string& path, uint64_t size) {
  HF_ASSIGN_OR_RETURN(LocalTarget target, ResolveLocalTarget(path));
  std::string temp = TempTemplate(target.path);
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    std::string dir = std::filesystem::path(target.path).parent_path().string();
    return IOErrorFor("cannot create a file in " + (dir.empty() ? "." : dir), errno);
  }
  // From here the sink owns the temporary file and removes it unless committed.
  auto sink = std::make_unique<LocalSink>(std::move(target), temp, fd);
  // Sizing first leaves every range not written a hole.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return IOErrorFor("set the size of " + temp + " to " + std::to_string(size), errno);
  }
  return std::unique_ptr<CopySink>(std::move(sink));
}

Result<std::unique_ptr<CopySink>> CreateHyperfileSink(const std::string& uri,
                                                      const HyperfileSinkOptions& options) {
  std::string new_dir = DirectoryToCreate(uri);
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> store, OpenCliStore(uri));
  CreateOptions create;
  create.block_size = options.block_size;
  create.initial_size = options.size;
  if (options.compression) create.compression = *options.compression;
  create.encryption_key = options.encryption_key;
  OpenOptions open = CliOpenOptions();
  open.compression = options.compression;  // also for an existing file (--force)
  if (options.streaming) {
    // Bounded memory, as for `hyperfile write` (follow.h).
    open.flush_dirty_bytes = 8u << 20;
    open.dirty_budget_bytes = 24u << 20;
    open.block_cache_bytes = 4u << 20;
  }
  Result<std::unique_ptr<File>> created = File::Create(store, create, open);
  std::unique_ptr<HyperfileSink> sink;
  if (created.ok()) {
    sink = std::make_unique<HyperfileSink>(store, std::move(created).value(), true, 0, new_dir);
  } else if (!created.status().IsAlreadyExists()) {
    if (!new_dir.empty()) RemoveCreatedDirectory(new_dir);
    return created.status();
  } else if (!options.force) {
    return Status::AlreadyExists("cp: " + uri +
                                 " already holds a hyperfile; --force overwrites it as a new "
                                 "checkpoint (its history is kept)");
  } else {
    HF_ASSIGN_OR_RETURN(sink, ReopenHyperfile(store, open, options.encryption_key != nullptr));
  }
  // On failure the sink's destructor undoes what it did.
  HF_RETURN_IF_ERROR(
      sink->Prepare(options.size, options.block_size_explicit ? options.block_size : 0));
  return std::unique_ptr<CopySink>(std::move(sink));
}

}  // namespace hyperfile::cli
