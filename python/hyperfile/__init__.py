# SPDX-License-Identifier: Apache-2.0
"""hyperfile: files with random read/write on S3-compatible object storage.

A thin ctypes binding of libhyperfile's C API (hyperfile/hyperfile.h); no
compiled extension. The library is found, in this order, at the path in the
environment variable HYPERFILE_LIBRARY, in the lib folders of sys.prefix and
of the environment variable HYPERFILE_PREFIX, or by ctypes.util.find_library
("hyperfile", i.e. the system's library path).

    import hyperfile
    with hyperfile.open("file:///tmp/disk", "w+") as f:   # create
        f.write(b"hello")
        checkpoint = f.flush()
    with hyperfile.open("file:///tmp/disk", at=checkpoint) as old:
        old.read()

URIs: "s3://bucket/prefix" (credentials from the AWS_* environment),
"file:///path" or a path (a local directory), "memory://name" (this process).
Selectors ("at"): "latest", a checkpoint id, a UTC time
("2026-11-25T10:00:00Z"), "@<unix seconds>" or a snapshot name.
"""

import ctypes
import ctypes.util
import glob
import io
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Union

__all__ = [
    "Error",
    "NotFoundError",
    "ExistsError",
    "ConflictError",
    "ReadOnlyError",
    "HyperFile",
    "Checkpoint",
    "Snapshot",
    "open",
    "checkpoints",
    "resolve",
    "snapshot",
    "snapshots",
    "delete_snapshot",
    "restore",
    "clone",
    "library_version",
]

# Status codes of hyperfile.h.
OK = 0
ENOTFOUND = 1
EEXIST = 2
ECONFLICT = 4
EINVAL = 8
EROFS = 11
ECLOSED = 15


class Error(OSError):
    """A failed hyperfile call: .code is the HF_E* code, str() the message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class NotFoundError(Error, FileNotFoundError):
    pass


class ExistsError(Error, FileExistsError):
    pass


class ConflictError(Error):
    pass


class ReadOnlyError(Error):
    pass


_ERRORS = {ENOTFOUND: NotFoundError, EEXIST: ExistsError, ECONFLICT: ConflictError, EROFS: ReadOnlyError}


def _candidates():
    env = os.environ.get("HYPERFILE_LIBRARY")
    if env:
        yield env
        return
    prefixes = [os.environ.get("HYPERFILE_PREFIX"), sys.prefix, sys.base_prefix]
    for prefix in prefixes:
        if not prefix:
            continue
        for pattern in ("lib/libhyperfile.so*", "lib/*/libhyperfile.so*", "lib64/libhyperfile.so*"):
            yield from sorted(glob.glob(os.path.join(prefix, pattern)))
    found = ctypes.util.find_library("hyperfile")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "hyperfile: libhyperfile not found (set HYPERFILE_LIBRARY to its path, or "
        "HYPERFILE_PREFIX to its install prefix)" + ("; tried " + "; ".join(errors) if errors else "")
    )


_lib = _load()

_c_file_p = ctypes.c_void_p
_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_size = ctypes.c_size_t


class _Stat(ctypes.Structure):
    _fields_ = [
        ("size", _u64),
        ("allocated_bytes", _u64),
        ("block_size", ctypes.c_uint32),
        ("read_only", ctypes.c_int),
        ("checkpoint", _u64),
        ("create_time_ms", _i64),
        ("mtime_ms", _i64),
        ("checkpoint_time_ms", _i64),
        ("dirty_bytes", _u64),
    ]


class _Checkpoint(ctypes.Structure):
    _fields_ = [
        ("id", _u64),
        ("parent", _u64),
        ("time_ms", _i64),
        ("size", _u64),
        ("bytes_changed", _u64),
        ("restored_from", _u64),
    ]


class _Snapshot(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("checkpoint", _u64), ("created_ms", _i64)]


def _declare(name, argtypes, restype=ctypes.c_int):
    fn = getattr(_lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


_cp = ctypes.c_char_p
_status_name = _declare("hf_status_name", [ctypes.c_int], ctypes.c_char_p)
_last_error = _declare("hf_last_error", [], ctypes.c_char_p)
_version = _declare("hf_version", [], ctypes.c_char_p)
_create = _declare("hf_create", [_cp, ctypes.c_uint32, _u64, ctypes.POINTER(_c_file_p)])
_open = _declare("hf_open", [_cp, ctypes.c_uint, ctypes.POINTER(_c_file_p)])
_open_at = _declare("hf_open_at", [_cp, _cp, ctypes.POINTER(_c_file_p)])
_close = _declare("hf_close", [_c_file_p])
_free = _declare("hf_free", [_c_file_p], None)
_pread = _declare("hf_pread", [_c_file_p, ctypes.c_void_p, _size, _u64, ctypes.POINTER(_size)])
_pwrite = _declare("hf_pwrite", [_c_file_p, ctypes.c_void_p, _size, _u64])
_truncate = _declare("hf_truncate", [_c_file_p, _u64])
_punch_hole = _declare("hf_punch_hole", [_c_file_p, _u64, _u64])
_flush = _declare("hf_flush", [_c_file_p, ctypes.POINTER(_u64)])
_fstat = _declare("hf_fstat", [_c_file_p, ctypes.POINTER(_Stat)])
_list_checkpoints = _declare(
    "hf_list_checkpoints", [_cp, _size, ctypes.POINTER(ctypes.POINTER(_Checkpoint)), ctypes.POINTER(_size)]
)
_free_checkpoints = _declare("hf_free_checkpoints", [ctypes.POINTER(_Checkpoint)], None)
_resolve = _declare("hf_resolve", [_cp, _cp, ctypes.POINTER(_u64)])
_snapshot_create = _declare("hf_snapshot_create", [_cp, _cp, _cp])
_snapshot_list = _declare(
    "hf_snapshot_list", [_cp, ctypes.POINTER(ctypes.POINTER(_Snapshot)), ctypes.POINTER(_size)]
)
_free_snapshots = _declare("hf_free_snapshots", [ctypes.POINTER(_Snapshot), _size], None)
_snapshot_delete = _declare("hf_snapshot_delete", [_cp, _cp])
_restore = _declare("hf_restore", [_cp, _cp, ctypes.POINTER(_u64)])
_clone = _declare("hf_clone", [_cp, _cp, _cp, ctypes.POINTER(_u64)])


def _check(rc: int) -> None:
    if rc != OK:
        message = (_last_error() or b"").decode("utf-8", "replace")
        raise _ERRORS.get(rc, Error)(rc, message)


def _b(text: Optional[Union[str, int]]) -> Optional[bytes]:
    if text is None:
        return None
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    return os.fsencode(text)


def library_version() -> str:
    """The version of the loaded libhyperfile ("MAJOR.MINOR.PATCH")."""
    return _version().decode()


class HyperFile(io.RawIOBase):
    """An open hyperfile as a raw binary stream (io.RawIOBase) with a
    position, plus flush() that commits a checkpoint and returns its id.
    Closing flushes. Use hyperfile.open() to make one."""

    def __init__(self, handle: int, uri: str, writable: bool):
        super().__init__()
        self._h = _c_file_p(handle)
        self._uri = uri
        self._writable = writable
        self._pos = 0
        self._checkpoint = None

    # -- io.RawIOBase --------------------------------------------------
    def readable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        return True

    def readinto(self, b) -> int:
        self._check_open()
        view = memoryview(b).cast("B")
        if view.readonly:
            raise TypeError("readinto() needs a writable buffer")
        if len(view) == 0:
            return 0
        buf = (ctypes.c_char * len(view)).from_buffer(view)
        n = _size(0)
        _check(_pread(self._h, buf, len(view), self._pos, ctypes.byref(n)))
        self._pos += n.value
        return n.value

    def write(self, b) -> int:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("not writable: opened read-only")
        data = bytes(b)
        _check(_pwrite(self._h, data, len(data), self._pos))
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.stat()["size"] + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def truncate(self, size: Optional[int] = None) -> int:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("not writable: opened read-only")
        if size is None:
            size = self._pos
        if size < 0:
            raise ValueError(f"negative size {size}")
        _check(_truncate(self._h, size))
        return size

    def flush(self) -> Optional[int]:
        """Commits what was written as a checkpoint; returns its id (None on
        a read-only handle, where there is nothing to commit)."""
        if self.closed or not self._h.value:  # closed (io's close calls flush last)
            return self._checkpoint
        if not self._writable:
            return None
        cp = _u64(0)
        _check(_flush(self._h, ctypes.byref(cp)))
        self._checkpoint = cp.value
        return cp.value

    def close(self) -> None:
        if self.closed:
            return
        try:
            _check(_close(self._h))
        finally:
            _free(self._h)
            self._h = _c_file_p(None)
            super().close()

    def __del__(self):
        # Never raise from a finalizer: free the handle, dropping errors.
        h = getattr(self, "_h", None)
        if h is not None and h.value:
            _free(h)
            self._h = _c_file_p(None)
        try:
            super().close()
        except Exception:
            pass

    # -- hyperfile ------------------------------------------------------
    def punch_hole(self, offset: int, length: int) -> None:
        """Makes [offset, offset+length) read as zeros, storing nothing."""
        self._check_open()
        _check(_punch_hole(self._h, offset, length))

    def stat(self) -> dict:
        self._check_open()
        st = _Stat()
        _check(_fstat(self._h, ctypes.byref(st)))
        out = {name: getattr(st, name) for name, _ in _Stat._fields_}
        out["read_only"] = bool(out["read_only"])
        return out

    @property
    def uri(self) -> str:
        return self._uri

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("rw" if self._writable else "ro")
        return f"<hyperfile.HyperFile {self._uri!r} {state}>"


def open(
    uri: str,
    mode: str = "r",
    *,
    at: Optional[Union[str, int]] = None,
    block_size: int = 0,
    size: int = 0,
) -> HyperFile:
    """Opens the hyperfile at uri, unbuffered, in binary.

    mode: "r" read-only; "r+" read-write (must exist); "w+" / "w" create a
    new file (ExistsError if one is there: never truncates); "a+" open
    read-write or create, positioned at the end. "b" is accepted and
    ignored. at: a selector to open an older state read-only (time travel;
    mode must be "r"). block_size and size apply when creating.
    """
    m = mode.replace("b", "")
    if m not in ("r", "r+", "w", "w+", "a", "a+"):
        raise ValueError(f"invalid mode {mode!r}")
    if at is not None and m != "r":
        raise ValueError("at= opens an older state read-only: use mode 'r'")
    h = _c_file_p(None)
    u = _b(uri)
    if at is not None:
        _check(_open_at(u, _b(at), ctypes.byref(h)))
        return HyperFile(h.value, uri, False)
    if m == "r":
        _check(_open(u, 1, ctypes.byref(h)))
        return HyperFile(h.value, uri, False)
    if m == "r+":
        _check(_open(u, 0, ctypes.byref(h)))
        return HyperFile(h.value, uri, True)
    if m in ("w", "w+"):
        _check(_create(u, block_size, size, ctypes.byref(h)))
        return HyperFile(h.value, uri, True)
    rc = _open(u, 0, ctypes.byref(h))
    if rc == ENOTFOUND:
        rc = _create(u, block_size, size, ctypes.byref(h))
    _check(rc)
    f = HyperFile(h.value, uri, True)
    f.seek(0, io.SEEK_END)
    return f


@dataclass(frozen=True)
class Checkpoint:
    id: int
    parent: int
    time_ms: int
    size: int
    bytes_changed: int
    restored_from: int


@dataclass(frozen=True)
class Snapshot:
    name: str
    checkpoint: int
    created_ms: int


def checkpoints(uri: str, limit: int = 0) -> List[Checkpoint]:
    """The file's checkpoints, newest first (limit 0 = all)."""
    arr = ctypes.POINTER(_Checkpoint)()
    n = _size(0)
    _check(_list_checkpoints(_b(uri), limit, ctypes.byref(arr), ctypes.byref(n)))
    try:
        return [
            Checkpoint(c.id, c.parent, c.time_ms, c.size, c.bytes_changed, c.restored_from)
            for c in (arr[i] for i in range(n.value))
        ]
    finally:
        _free_checkpoints(arr)


def resolve(uri: str, at: Union[str, int]) -> int:
    """The checkpoint id a selector names."""
    cp = _u64(0)
    _check(_resolve(_b(uri), _b(at), ctypes.byref(cp)))
    return cp.value


def snapshot(uri: str, name: str, at: Optional[Union[str, int]] = None) -> None:
    """Pins the state at `at` (default: latest) under a name."""
    _check(_snapshot_create(_b(uri), _b(name), _b(at)))


def snapshots(uri: str) -> List[Snapshot]:
    arr = ctypes.POINTER(_Snapshot)()
    n = _size(0)
    _check(_snapshot_list(_b(uri), ctypes.byref(arr), ctypes.byref(n)))
    try:
        return [Snapshot(os.fsdecode(arr[i].name), arr[i].checkpoint, arr[i].created_ms) for i in range(n.value)]
    finally:
        _free_snapshots(arr, n.value)


def delete_snapshot(uri: str, name: str) -> None:
    _check(_snapshot_delete(_b(uri), _b(name)))


def restore(uri: str, at: Union[str, int]) -> int:
    """Makes an old state the head again (one new checkpoint, returned)."""
    cp = _u64(0)
    _check(_restore(_b(uri), _b(at), ctypes.byref(cp)))
    return cp.value


def clone(source: str, destination: str, at: Optional[Union[str, int]] = None) -> int:
    """A new writable file at destination sharing source's data at `at`
    (default: latest); returns the clone's first checkpoint."""
    cp = _u64(0)
    _check(_clone(_b(source), _b(at), _b(destination), ctypes.byref(cp)))
    return cp.value
