# SPDX-License-Identifier: Apache-2.0
"""Tests of the Python module over libhyperfile (found as the module says:
HYPERFILE_LIBRARY, the prefix, or the system path). Each test works in its own
local directory (tmp_path) or memory:// store."""

import io
import os
import uuid

import pytest

import hyperfile


@pytest.fixture
def uri(tmp_path):
    return f"file://{tmp_path}/disk"


def test_library_version_matches_the_package():
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "pyproject.toml")) as f:
        declared = [l.split('"')[1] for l in f if l.startswith("version")][0]
    assert hyperfile.library_version() == declared


def test_rawio_read_write_seek_tell_truncate(uri):
    with hyperfile.open(uri, "w+", block_size=4096) as f:
        assert isinstance(f, io.RawIOBase)
        assert f.readable() and f.writable() and f.seekable()
        assert f.write(b"hello world") == 11
        assert f.tell() == 11
        assert f.seek(6) == 6
        assert f.read(5) == b"world"
        assert f.read(5) == b""  # end of file
        f.seek(1 << 20)
        f.write(b"far")  # the gap is a hole
        assert f.seek(0, io.SEEK_END) == (1 << 20) + 3
        f.seek(-3, io.SEEK_CUR)
        assert f.read() == b"far"
        f.seek(0)
        buf = bytearray(5)
        assert f.readinto(buf) == 5 and bytes(buf) == b"hello"
        assert f.truncate(5) == 5
        assert f.stat()["size"] == 5
        f.seek(2)
        assert f.truncate() == 2
        checkpoint = f.flush()
        assert checkpoint >= 1
        st = f.stat()
        assert st["checkpoint"] == checkpoint and st["block_size"] == 4096 and not st["read_only"]
    assert f.closed
    with pytest.raises(ValueError):
        f.read()
    with hyperfile.open(uri) as r:  # "r": read-only
        assert r.read() == b"he"
        assert not r.writable()
        with pytest.raises(io.UnsupportedOperation):
            r.write(b"x")
        assert r.flush() is None


def test_close_flushes_and_buffered_wrappers_work(uri):
    f = hyperfile.open(uri, "w")
    with io.BufferedWriter(f) as w:
        w.write(b"line 1\n")
        w.write(b"line 2\n")
    with io.TextIOWrapper(io.BufferedReader(hyperfile.open(uri, "r")), encoding="utf-8") as t:
        assert t.readlines() == ["line 1\n", "line 2\n"]


def test_modes(uri):
    with pytest.raises(hyperfile.NotFoundError):
        hyperfile.open(uri, "r")
    with pytest.raises(hyperfile.NotFoundError):
        hyperfile.open(uri, "r+")
    with hyperfile.open(uri, "a+") as f:  # creates
        f.write(b"abc")
    with pytest.raises(hyperfile.ExistsError) as e:
        hyperfile.open(uri, "w+")  # never truncates an existing file
    assert e.value.code == 2 and "AlreadyExists" in str(e.value)
    with hyperfile.open(uri, "ab") as f:  # positioned at the end
        assert f.tell() == 3
        f.write(b"def")
    with hyperfile.open(uri, "r+") as f:
        assert f.read() == b"abcdef"
    for bad in ("x", "rw", "r+w"):
        with pytest.raises(ValueError):
            hyperfile.open(uri, bad)
    with pytest.raises(ValueError):
        hyperfile.open(uri, "r+", at="latest")


def test_errors_carry_code_and_message(tmp_path):
    with pytest.raises(hyperfile.Error) as e:
        hyperfile.open("nope://x", "r")
    assert e.value.code == 8 and "unknown scheme" in str(e.value)
    with pytest.raises(hyperfile.Error) as e:
        hyperfile.open(f"file://{tmp_path}/d", "w+", block_size=1000)
    assert e.value.code == 8
    with pytest.raises(TypeError):
        hyperfile.open(b"bytes-uri", "r")


def test_checkpoints_time_travel_snapshots_restore(uri):
    with hyperfile.open(uri, "w+") as f:
        f.write(b"version one")
        first = f.flush()
        f.seek(0)
        f.write(b"VERSION TWO")
        second = f.flush()
        f.punch_hole(0, 7)
        third = f.flush()
    assert second > first and third > second
    cps = hyperfile.checkpoints(uri)
    assert [c.id for c in cps[:3]] == [third, second, first]
    assert len(hyperfile.checkpoints(uri, limit=1)) == 1
    assert cps[0].size == 11

    with hyperfile.open(uri, at=first) as old:
        assert old.read() == b"version one"
        assert old.stat()["read_only"]
        with pytest.raises(io.UnsupportedOperation):
            old.write(b"x")
    with hyperfile.open(uri, at=str(second)) as old:
        assert old.read() == b"VERSION TWO"
    with pytest.raises(hyperfile.NotFoundError):
        hyperfile.open(uri, at=10**6)
    with pytest.raises(hyperfile.Error):
        hyperfile.open(uri, at="not a selector!")

    hyperfile.snapshot(uri, "v1", at=first)
    hyperfile.snapshot(uri, "head")
    names = {s.name: s.checkpoint for s in hyperfile.snapshots(uri)}
    assert names == {"v1": first, "head": third}
    assert hyperfile.resolve(uri, "v1") == first
    with pytest.raises(hyperfile.ExistsError):
        hyperfile.snapshot(uri, "v1", at=second)
    with hyperfile.open(uri, at="v1") as old:
        assert old.read() == b"version one"

    restored = hyperfile.restore(uri, "v1")
    assert restored > third
    assert hyperfile.checkpoints(uri)[0].restored_from == first
    with hyperfile.open(uri) as f:
        assert f.read() == b"version one"
    hyperfile.delete_snapshot(uri, "head")
    assert [s.name for s in hyperfile.snapshots(uri)] == ["v1"]


def test_clone(tmp_path, uri):
    with hyperfile.open(uri, "w+") as f:
        f.write(b"shared data")
        base = f.flush()
        f.write(b" and later")
    dst = f"file://{tmp_path}/clone"
    first = hyperfile.clone(uri, dst, at=base)
    assert first >= 1
    with hyperfile.open(dst, "r+") as c:
        assert c.read() == b"shared data"
        c.write(b"!")
    with hyperfile.open(uri) as f:  # the source is never written
        assert f.read() == b"shared data and later"
    with pytest.raises(hyperfile.ExistsError):
        hyperfile.clone(uri, dst)


def test_memory_store_and_many_handles():
    u = f"memory://py-{uuid.uuid4()}"
    with hyperfile.open(u, "w+") as f:
        f.write(b"x" * 100000)
    handles = [hyperfile.open(u) for _ in range(20)]
    assert all(h.read(3) == b"xxx" for h in handles)
    for h in handles:
        h.close()
        h.close()  # twice is fine, as for any Python file


def test_garbage_collected_handle_flushes(uri):
    f = hyperfile.open(uri, "w+")
    f.write(b"kept")
    del f  # the finalizer closes (and so flushes) the handle
    with hyperfile.open(uri) as r:
        assert r.read() == b"kept"
