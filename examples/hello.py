# SPDX-License-Identifier: Apache-2.0
"""hello.py URI: the Python module. Writes, flushes, snapshots, travels back
in time and clones."""

import sys

import hyperfile


def main(uri: str) -> None:
    with hyperfile.open(uri, "a+") as f:  # open, or create if absent
        f.write(b"hello from Python\n")
        checkpoint = f.flush()
    hyperfile.snapshot(uri, f"py-{checkpoint}")
    with hyperfile.open(uri, at=checkpoint) as old:
        text = old.read()
    copy = f"{uri.rstrip('/')}-clone-{checkpoint}"
    hyperfile.clone(uri, copy, at=checkpoint)
    with hyperfile.open(copy) as c:
        assert c.read() == text
    print(f"hyperfile {hyperfile.library_version()}: checkpoint {checkpoint}, "
          f"{len(hyperfile.checkpoints(uri))} checkpoints, {len(text)} bytes, clone at {copy}")


if __name__ == "__main__":
    main(sys.argv[1])
