#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The lost-update scenario of issue 10, as a real asynchronous NBD client.

Keeps DEPTH writes of 4 KiB in flight to random 4 KiB pieces of the export
(several pieces share one of the server's blocks, so concurrent partial
writes hit the same block), sends an NBD flush every few dozen writes, and
checks that every piece reads back with the content of its last write.
Two writes to the same piece are never in flight at once, so the expected
content is exact whatever order the server completes them in.

Usage: async_writes.py NBD_URI SEED WRITES [verify-only EXPECTED_FILE]
Writes the expected content to EXPECTED_FILE (after a write pass) so that a
second run against a restarted server can check it was committed.
"""
import random
import sys

import nbd

PIECE = 4096
DEPTH = 64


def main():
    uri, seed, writes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "write"
    expected_path = sys.argv[5] if len(sys.argv) > 5 else None
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    pieces = size // PIECE
    if mode == "verify-only":
        expected = open(expected_path, "rb").read()
    else:
        rng = random.Random(seed)
        expected = bytearray(h.pread(size, 0))
        in_flight = {}  # cookie -> piece
        busy = set()
        flushes = []
        issued = 0
        next_flush = rng.randint(16, 48)
        while issued < writes or in_flight or flushes:
            while issued < writes and len(in_flight) < DEPTH:
                p = rng.randrange(pieces)
                if p in busy:
                    continue
                data = rng.randbytes(PIECE)
                cookie = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), p * PIECE)
                in_flight[cookie] = p
                busy.add(p)
                expected[p * PIECE:(p + 1) * PIECE] = data
                issued += 1
                next_flush -= 1
                if next_flush == 0:
                    flushes.append(h.aio_flush())
                    next_flush = rng.randint(16, 48)
            h.poll(-1)
            for cookie in list(in_flight):
                if h.aio_command_completed(cookie):  # raises on a failed write
                    busy.discard(in_flight.pop(cookie))
            flushes = [c for c in flushes if not h.aio_command_completed(c)]
        h.flush()
        if expected_path:
            open(expected_path, "wb").write(expected)
    back = h.pread(size, 0)
    bad = [p for p in range(pieces)
           if back[p * PIECE:(p + 1) * PIECE] != expected[p * PIECE:(p + 1) * PIECE]]
    h.shutdown()
    if bad:
        print("MISMATCH in %d pieces, first at offset %d" % (len(bad), bad[0] * PIECE))
        return 1
    print("ok %d pieces" % pieces)
    return 0


if __name__ == "__main__":
    sys.exit(main())
