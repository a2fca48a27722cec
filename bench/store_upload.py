#!/usr/bin/env python3
"""Helpers of bench/store.sh (stdlib only).

  store_upload.py upload BASE_URL FILE PIECES [LIST_URL]
                                                tus upload of FILE in PIECES PATCHes (deferred
                                                length, the last PATCH declares it), back to
                                                back on one keep-alive connection; prints JSON.
                                                With LIST_URL (a ListObjectsV2 URL ending in
                                                "prefix=PREFIX/"), while the last PATCH is in
                                                flight the store is listed every 0.1 s (curl
                                                --aws-sigv4, AWS_* from the environment) for
                                                PREFIX/<id>/recording.*: when it appeared
  store_upload.py boxes FILE                    the top-level MP4 boxes: "moov 1 moof 0 ..."
  store_upload.py framemd5-cmp A B              compares two `-f framemd5` outputs stream by
                                                stream (order of interleaving aside); exit 1
                                                on a difference
  store_upload.py list-keys                     reads an S3 ListObjectsV2 XML answer on stdin,
                                                prints "KEY SIZE" lines
  store_upload.py free-port                     a free TCP port on 127.0.0.1
"""

import http.client
import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def watch_object(list_url, stop, found):
    """Lists list_url every 0.1 s until a key shows up or stop is set; found[0] = when."""
    sigv4 = f"aws:amz:{os.environ.get('AWS_REGION', 'us-east-1')}:s3"
    user = f"{os.environ.get('AWS_ACCESS_KEY_ID', '')}:{os.environ.get('AWS_SECRET_ACCESS_KEY', '')}"
    while not stop.is_set():
        r = subprocess.run(["curl", "-sS", "--fail", "--aws-sigv4", sigv4, "-u", user, list_url],
                           capture_output=True, check=False)
        if r.returncode == 0 and b"<Key>" in r.stdout:
            found[0] = time.perf_counter()
            return
        stop.wait(0.1)


def upload(base, path, pieces, list_url=None):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    with open(path, "rb") as f:
        data = f.read()
    total = len(data)
    pieces = max(1, min(pieces, total))
    piece = math.ceil(total / pieces)

    t_start = time.perf_counter()
    conn.request("POST", "/files/", body=b"", headers={
        "Tus-Resumable": "1.0.0",
        "Upload-Defer-Length": "1",
        "Content-Length": "0",
    })
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"store_upload.py: POST /files/ answered {r.status} {r.reason}")
    location = urllib.parse.urlsplit(r.getheader("Location")).path
    upload_id = location.rstrip("/").rsplit("/", 1)[-1]

    latencies = []
    offset = 0
    object_after = None
    while offset < total:
        body = data[offset:offset + piece]
        last = offset + len(body) >= total
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(body)),
        }
        if last:
            headers["Upload-Length"] = str(total)
        t0 = time.perf_counter()
        watcher = None
        if last and list_url:
            stop, found = threading.Event(), [None]
            url = list_url + urllib.parse.quote(f"{upload_id}/recording.", safe="")
            watcher = threading.Thread(target=watch_object, args=(url, stop, found), daemon=True)
            watcher.start()
        conn.request("PATCH", location, body=body, headers=headers)
        r = conn.getresponse()
        answer = r.read()
        latencies.append(time.perf_counter() - t0)
        if watcher is not None:
            stop.set()
            watcher.join()
            object_after = None if found[0] is None else found[0] - t0
        if r.status not in (200, 204):
            sys.exit(f"store_upload.py: PATCH {location} at offset {offset} ({len(body)} bytes"
                     f"{', last' if last else ''}) answered {r.status} {r.reason}: "
                     f"{answer[:500].decode(errors='replace')}")
        new_offset = int(r.getheader("Upload-Offset", "-1"))
        if new_offset != offset + len(body):
            sys.exit(f"store_upload.py: PATCH at {offset} + {len(body)} answered Upload-Offset {new_offset}")
        offset = new_offset
    wall = time.perf_counter() - t_start

    conn.request("GET", location + "/status", headers={"Tus-Resumable": "1.0.0"})
    r = conn.getresponse()
    status_body = r.read()
    try:
        status = json.loads(status_body)
    except ValueError:
        status = {"raw": status_body[:500].decode(errors="replace"), "http": r.status}
    conn.close()

    all_sorted = sorted(latencies)
    but_last = sorted(latencies[:-1]) or all_sorted
    print(json.dumps({
        "id": upload_id,
        "location": location,
        "bytes": total,
        "patches": len(latencies),
        "piece_bytes": piece,
        "wall_s": wall,
        "p50_s": percentile(but_last, 50),
        "p99_s": percentile(but_last, 99),
        "max_s": but_last[-1],
        "p50_all_s": percentile(all_sorted, 50),
        "p99_all_s": percentile(all_sorted, 99),
        "last_s": latencies[-1],
        "object_after_s": object_after,
        "status": status,
    }))


def boxes(path):
    counts = {}
    order = []
    with open(path, "rb") as f:
        pos = 0
        while True:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                break
            size, kind = struct.unpack(">I4s", head[:8])
            kind = kind.decode("latin-1")
            if size == 1:
                size = struct.unpack(">Q", head[8:16])[0]
            elif size == 0:
                f.seek(0, 2)
                size = f.tell() - pos
            if size < 8:
                print(f"bad box size {size} at {pos}", file=sys.stderr)
                break
            if kind not in counts:
                order.append(kind)
            counts[kind] = counts.get(kind, 0) + 1
            pos += size
    for k in ("moov", "moof", "mdat"):
        if k not in counts:
            counts[k] = 0
            order.append(k)
    print(" ".join(f"{k} {counts[k]}" for k in order))


def read_framemd5(path):
    """Header lines and per-stream packet lines (dts, pts, duration, size, hash)."""
    header = []
    streams = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("#"):
                if not line.startswith("#format:") and not line.startswith("#software"):
                    header.append(line)
                continue
            fields = [x.strip() for x in line.split(",")]
            streams.setdefault(fields[0], []).append(tuple(fields[1:]))
    return header, streams


def framemd5_cmp(a, b):
    ha, sa = read_framemd5(a)
    hb, sb = read_framemd5(b)
    ok = True
    if ha != hb:
        ok = False
        print("  stream headers differ:")
        for x in sorted(set(ha) - set(hb)):
            print(f"    input  only: {x}")
        for x in sorted(set(hb) - set(ha)):
            print(f"    output only: {x}")
    for s in sorted(set(sa) | set(sb), key=lambda x: int(x) if x.isdigit() else 0):
        pa, pb = sa.get(s, []), sb.get(s, [])
        if pa == pb:
            print(f"  stream {s}: {len(pa)} packets, identical (dts, pts, duration, size, md5)")
            continue
        # A regular MP4's stts has no gaps: where the input has one after a packet, that
        # packet's duration becomes the distance to the next one. The same timestamps, sizes
        # and md5s with only such durations changed are the same packets.
        filled = []
        bad = None
        for i, (x, y) in enumerate(zip(pa, pb)):
            if x == y:
                continue
            if (x[:2] == y[:2] and x[3:] == y[3:] and i + 1 < len(pa)
                    and int(y[2]) == int(pa[i + 1][0]) - int(x[0])):
                filled.append(i)
                continue
            bad = (i, x, y)
            break
        if bad is None and len(pa) == len(pb):
            print(f"  stream {s}: {len(pa)} packets, identical (dts, pts, size, md5); duration of "
                  f"{len(filled)} packet(s) {filled[:5]}{'...' if len(filled) > 5 else ''} made the "
                  f"distance to the next packet (a gap in the input; a regular MP4 has none): "
                  + "; ".join(f"{pa[i][2]} -> {pb[i][2]}" for i in filled[:5]))
            continue
        ok = False
        same_payload = [p[3:] for p in pa] == [p[3:] for p in pb]
        print(f"  stream {s}: input {len(pa)} packets, output {len(pb)}"
              f"{'; sizes and md5s identical, timestamps differ' if same_payload else ''}")
        if bad is not None:
            i, x, y = bad
            print(f"    first difference at packet {i}: input {', '.join(x)} | output {', '.join(y)}")
        else:
            print(f"    one is a prefix of the other ({min(len(pa), len(pb))} packets in common)")
    sys.exit(0 if ok else 1)


def list_keys():
    root = ET.fromstring(sys.stdin.buffer.read())
    for el in root.iter():
        if el.tag.endswith("Contents"):
            key = size = None
            for c in el:
                if c.tag.endswith("Key"):
                    key = c.text
                elif c.tag.endswith("Size"):
                    size = c.text
            print(f"{key} {size}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def main():
    args = sys.argv[1:]
    if args[:1] == ["upload"] and len(args) in (4, 5):
        upload(args[1], args[2], int(args[3]), args[4] if len(args) == 5 else None)
    elif args[:1] == ["boxes"] and len(args) == 2:
        boxes(args[1])
    elif args[:1] == ["framemd5-cmp"] and len(args) == 3:
        framemd5_cmp(args[1], args[2])
    elif args == ["list-keys"]:
        list_keys()
    elif args == ["free-port"]:
        free_port()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
