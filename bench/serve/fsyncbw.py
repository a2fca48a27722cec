#!/usr/bin/env python3
"""The disk's fsync'd write bandwidth in a directory: K writer threads, each appending
BLOCK-byte writes to its own file, each write followed by fdatasync, for SECS seconds.

Why this shape: a durable ingest server appends to many files and makes each append durable
before answering, with many uploads syncing at once (group commit). Appends (not overwrites
of a preallocated file) make fdatasync persist the file size as well, as the server's journal
appends do; several writers at once let the disk's queue fill, as concurrent flushes of
many recordings do, so the number is the disk's best durable bandwidth, not one fsync's
latency times the block size. os.write and os.fdatasync release the GIL, so the threads
really overlap. Prints one JSON object: bytes, seconds, MiB/s, syncs/s, sync latency
percentiles (ms).

Usage: fsyncbw.py DIR [--writers K] [--secs S] [--block BYTES]
"""
import argparse
import json
import os
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--block", type=int, default=1 << 20)
    a = ap.parse_args()
    buf = os.urandom(a.block)
    lat = []
    written = [0] * a.writers
    lock = threading.Lock()
    start = threading.Barrier(a.writers + 1)
    deadline = [0.0]

    def writer(i):
        path = os.path.join(a.dir, f"fsyncbw-{os.getpid()}-{i}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        mine = []
        try:
            start.wait()
            while time.monotonic() < deadline[0]:
                t0 = time.monotonic()
                n = os.write(fd, buf)
                os.fdatasync(fd)
                mine.append(time.monotonic() - t0)
                written[i] += n
        finally:
            os.close(fd)
            os.unlink(path)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(a.writers)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    deadline[0] = t0 + a.secs
    start.wait()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    total = sum(written)
    print(json.dumps({
        "writers": a.writers, "block": a.block, "bytes": total, "secs": round(dt, 3),
        "mib_s": round(total / dt / 1048576, 2), "syncs_s": round(len(lat) / dt, 1),
        "p50_ms": pct(0.5), "p99_ms": pct(0.99),
    }))


if __name__ == "__main__":
    main()
