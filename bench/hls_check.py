#!/usr/bin/env python3
"""Checks HLS directories left by a killed writer (bench/hls-kill.sh).

For each DIR: is there a media playlist, does it parse (M3U8 with EXTINF before each
segment and an EXT-X-MAP before the first), does every file it names exist and is it
complete (the init segment whole top-level boxes with a moov, each media segment whole
top-level boxes with moof + mdat), and does ffprobe read the playlist without an error.
A directory without a playlist (killed before its first segment was complete) is
"empty", neither valid nor invalid. Prints one JSON line per directory, then a summary
line (valid, empty, invalid, total).

Usage: hls_check.py PLAYLIST_NAME DIR...   (PLAYLIST_NAME: the media playlist, e.g. stream.m3u8)
"""
import json
import os
import struct
import subprocess
import sys


def boxes(data):
    """Top-level boxes as (type, size); None when the data does not end on a box end."""
    out, off = [], 0
    while off < len(data):
        if off + 8 > len(data):
            return None
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        if size == 1:
            if off + 16 > len(data):
                return None
            size = struct.unpack(">Q", data[off + 8:off + 16])[0]
        if size < 8 or off + size > len(data):
            return None
        out.append(kind.decode("latin-1"))
        off += size
    return out


def check(dir_, playlist):
    path = os.path.join(dir_, playlist)
    if not os.path.exists(path):
        # Killed before its first segment was complete: nothing named, nothing to play.
        return {"dir": dir_, "valid": False, "empty": True, "why": "no playlist yet", "segments": 0}
    text = open(path, encoding="utf-8", errors="replace").read()
    lines = text.splitlines()
    if not lines or lines[0] != "#EXTM3U":
        return {"dir": dir_, "valid": False, "why": "no #EXTM3U", "segments": 0}
    segments, maps, inf = [], [], False
    for line in lines[1:]:
        if line.startswith("#EXT-X-MAP:"):
            uri = line.split("URI=", 1)[1].split(",")[0].strip('"')
            maps.append(uri)
        elif line.startswith("#EXTINF:"):
            inf = True
        elif line and not line.startswith("#"):
            if not inf:
                return {"dir": dir_, "valid": False, "why": f"{line} without EXTINF", "segments": len(segments)}
            if not maps:
                return {"dir": dir_, "valid": False, "why": f"{line} before any EXT-X-MAP", "segments": len(segments)}
            segments.append(line)
            inf = False
    for name in maps:
        p = os.path.join(dir_, name)
        b = boxes(open(p, "rb").read()) if os.path.exists(p) else None
        if not b or "moov" not in b:
            return {"dir": dir_, "valid": False, "why": f"init {name} missing or incomplete", "segments": len(segments)}
    for name in segments:
        p = os.path.join(dir_, name)
        if not os.path.exists(p):
            return {"dir": dir_, "valid": False, "why": f"{name} missing", "segments": len(segments)}
        b = boxes(open(p, "rb").read())
        if not b or "moof" not in b or "mdat" not in b:
            return {"dir": dir_, "valid": False, "why": f"{name} incomplete", "segments": len(segments)}
    if not segments:
        return {"dir": dir_, "valid": False, "why": "no segment", "segments": 0}
    probe = subprocess.run(["ffprobe", "-v", "error", "-live_start_index", "0", "-show_entries",
                            "format=duration", "-of", "csv=p=0", path], capture_output=True, text=True)
    if probe.returncode != 0 or probe.stderr.strip():
        return {"dir": dir_, "valid": False, "why": "ffprobe: " + probe.stderr.strip()[:200], "segments": len(segments)}
    return {"dir": dir_, "valid": True, "segments": len(segments)}


def main():
    playlist, dirs = sys.argv[1], sys.argv[2:]
    results = [check(d, playlist) for d in dirs]
    for r in results:
        print(json.dumps(r))
    valid = sum(r["valid"] for r in results)
    empty = sum(r.get("empty", False) for r in results)
    print(json.dumps({"summary": True, "valid": valid, "empty": empty, "invalid": len(results) - valid - empty,
                      "total": len(results)}))


if __name__ == "__main__":
    main()
