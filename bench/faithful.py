#!/usr/bin/env python3
"""Faithfulness benchmark: is a remux by livemux the same media as its input, and is FFmpeg's?

For every file under FOLDER (recursively) and every target, livemux and FFmpeg (`-c copy`) each
write the same format, and each output is judged against the INPUT with ffprobe/ffmpeg (never
against the other tool's output). Python 3.11 standard library only; needs ffmpeg and ffprobe.

    bench/faithful.py FOLDER [--targets fmp4,mp4,mkv,webm,finalize] [--jobs N] [--livemux PATH]
                      [--only SUBSTRING] [--keep DIR] [--json REPORT.json] [--causes CAUSES.txt]
                      [--timeout S] [--scratch DIR] [--quiet]
    bench/faithful.py --summarize REPORT.json [--causes CAUSES.txt]   # reprint a saved run
    bench/faithful.py --self-test     # two tiny lavfi inputs end to end; exit 1 if anything breaks

Targets (the peer is `ffmpeg -nostdin -i IN -map 0 -map_metadata 0 -c copy -strict experimental ...`;
`-map_metadata 0` because FFmpeg 5.1 drops creation_time without it):
  fmp4      livemux remux IN -o OUT.mp4 --to fmp4 -y    ffmpeg -f mp4 -movflags
                                                         +frag_keyframe+empty_moov+default_base_moof
  mp4       livemux remux IN -o OUT.mp4 --to mp4 -y     ffmpeg -f mp4
  mkv       livemux remux IN -o OUT.mkv --to mkv -y     ffmpeg -f matroska
  webm      (only for WebM inputs: EBML DocType "webm")  ffmpeg -f webm
            livemux remux IN -o OUT.webm --to webm -y
  finalize  copy of livemux's fmp4 output, then        the peer is ffmpeg's mp4 (not run again)
            `livemux finalize COPY` (in place)
livemux also gets `--durability none` (outputs are on a scratch dir; fsync does not change bytes).
Each command has a timeout (--timeout, default 60 s).

Verdicts, per file, target and tool:
  right     every check below passes.
  wrong     the tool succeeded (exit 0) but a check fails; the first failing check is the reason.
            An output ffprobe cannot read is wrong ("output unreadable").
  refused   the tool exited 1 or 2 (FFmpeg: any non-zero exit) with an error message and no
            panic: a clear refusal, counted apart from wrong. The message is the reason.
  broken    crash (panic, signal, other exit status) or timeout.
A file is "fully right" for a tool when every target it was run for is right. An input that
ffprobe cannot read at all (or shows no stream with packets) is listed as "unreadable input" and
left out of every count. Non-media files (.md .txt .json .html .py .sh) are not looked at.

Checks (all read with ffprobe `-show_streams -show_format -show_packets -show_data_hash MD5`; times
in seconds; TOL = 1 ms, or half the output time base tick when that is coarser than 2 ms, plus 1 us):
  streams   Input streams of type video/audio/subtitle with at least one packet must each be
            found in the output (matched in order among streams of the same type, preferring the
            same codec); a missing one is "stream lost", an unmatched output one "stream added".
            Data streams (tmcd, timed metadata, unknown), empty tracks and streams whose codec
            ffprobe cannot identify (e.g. ISO 23003-5 ipcm/fpcm in FFmpeg 5.1) are not judged
            (listed as notes in the JSON). Cover art
            (attached_pic) is judged as metadata, not as a stream. The codec must stay the same
            (any pcm_* may become any pcm_*: the byte order label is judged by decoding, below).
  (a) packets  Per stream, the sequence (decode order) of MD5s of the packets ffprobe shows
            WITHOUT the discard flag (flags "_D"; FFmpeg's mov demuxer sets it on packets an edit
            list trims whole) must be equal in input and output: nothing lost, added or
            reordered in what a decoder shows. Packets an edit list trims may be dropped or
            kept-as-discard; a trimmed packet that comes back visible counts as added.
            A video stream whose output first packet is not a keyframe while the input's is
            fails ("decoding starts on a non-keyframe": trimmed reference frames were dropped).
            When payloads differ for a VIDEO stream (e.g. H.264 Annex B in Matroska written as
            length-prefixed in MP4, in-band parameter sets), the decoded frames are compared
            instead (`ffmpeg -map 0:N -f framemd5`, per-frame MD5 in order); equal frames pass
            with a note "payload rewritten, frames equal". Audio/subtitle payloads must match.
            PCM (pcm_*) payloads are not compared (demuxers regroup PCM into packets of their
            own size, and a byte swap is allowed): see (e).
            A packet that ends at or before time 0 (pts + duration <= 0; with no duration, the
            next packet's pts) is read as trimmed too, in input and output: FFmpeg shifts
            fragmented MP4 by the edit list but cannot mark what it trims there, and Matroska
            says the same with CodecDelay (an AAC priming packet at -23 ms). The same media then
            reads the same in regular MP4, fragmented MP4 and Matroska.
  (a') times  When the packets match, each visible packet's presentation time (pts, else dts)
            is within TOL of the input's (catches drift, zero-duration packets stretched, one
            frame moved).
  (b) start The presentation start, the earliest pts of the visible packets, is within TOL of
            the input's. FFmpeg's mov demuxer applies the edit list to every pts (also in
            fragmented files), its Matroska demuxer subtracts CodecDelay. ffprobe's stream
            start_time is NOT used: in MP4 it adds an audio stream's skip samples and in
            Matroska it does not, so Opus pre-skip reads 0 in MP4 and -6.5 ms in WebM for the
            same media.
  (c) end   The end of the last visible packet (max pts+duration) is within one packet
            duration (median of the input stream's packet durations, at least 1 ms) + TOL.
  (d) metadata, compared after normalising ffprobe's spellings:
            rotation (displaymatrix side data "rotation", else tag rotate; mod 360, 0 if none),
            language (missing or not a language code, e.g. mdhd 0x7fff = "und"; case-insensitive),
            sample_aspect_ratio (missing/0:1 = 1:1, compared as a number),
            color_primaries/transfer/space/range (judged only where the input states one;
            an unstated range reads as tv: vpcC in MP4 has no "unstated" range),
            mastering display and content light level side data (every number, rel. 1e-3),
            format tags title/artist/album/genre/comment (case-insensitive keys; only those the
            input has; a lost GPS "location" tag is only a note), creation_time (when the input
            has one after 1971; within 1 s), cover art (an attached_pic stream: its packet MD5 must be found in the output).
  (e) PCM   For pcm_* input streams the decoded audio (`ffmpeg -map 0:N -c:a pcm_f64le -f md5`:
            exact for every integer and float PCM) must be the same: a wrong byte order label
            plays as noise and fails here.

What FFmpeg does differently (so its "wrong"s are understood): its Matroska muxer has no edit
lists and drops packets marked discard, shifting what is left by the trimmed amount (e.g.
`edit_list_positive_shift.mp4` video at 1.021 s instead of 1.000 s); its mp4 muxer writes edit
lists (incl. AAC/Opus priming); `-map 0` makes it refuse a whole file when one stream (a data
track, mov_text in Matroska) has no tag in the target format; it copies global metadata by
default except creation_time, which FFmpeg 5.1 drops unless told `-map_metadata 0` (given here).
Its fragmented MP4 (empty_moov) has no edit list, so B-frame delay and AAC priming show up as a
late video start and an extra audio packet. Its results use exactly the same checks as livemux's.

Output: one line per file and target ("livemux VERDICT first-reason | ffmpeg VERDICT
first-reason"), then a summary: fully-right files per tool, the same ignoring metadata reasons
(d) ("media only"), and right/wrong/refused/broken per target and tool. --json keeps every
reason, note, exit status, stderr tail and timing; --causes groups livemux's failures by cause
(numbers and paths taken out) with the file names, targets and FFmpeg's verdict on each.
Scratch outputs go to --scratch (default /dev/shm) in faithful-* folders, deleted per file.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

TARGETS = ["fmp4", "mp4", "mkv", "webm", "finalize"]
EXT = {"fmp4": ".mp4", "mp4": ".mp4", "mkv": ".mkv", "webm": ".webm", "finalize": ".mp4"}
FFMPEG_ARGS = {
    "fmp4": ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
    "mp4": ["-f", "mp4"],
    "mkv": ["-f", "matroska"],
    "webm": ["-f", "webm"],
}
SKIP_EXT = {".md", ".txt", ".json", ".html", ".py", ".sh", ".xml", ".gitattributes"}
JUDGED_TYPES = ("video", "audio", "subtitle")
TOL_MS = 0.001
EPS = 1e-6
FORMAT_TAGS = ("title", "artist", "album", "genre", "comment")
NOTE_TAGS = ("location",)  # reported as a note, not judged (the issue does not ask for it)
COLOR_KEYS = ("color_primaries", "color_transfer", "color_space", "color_range")
PROBE_TIMEOUT = 120


# ---------------------------------------------------------------------------------------------
# running tools


def run(cmd: list[str], timeout: float) -> dict:
    """Runs cmd; returns rc (None on timeout), stdout, stderr (text) and seconds."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or b"", e.stderr or b""
    return {
        "rc": rc,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
        "seconds": round(time.monotonic() - t0, 3),
    }


def tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith("error"):
            return ln[:300]
    return (lines[-1] if lines else "(no message)")[:300]


# ---------------------------------------------------------------------------------------------
# probing


def num(v) -> float | None:
    if v is None or v == "N/A" or v == "":
        return None
    try:
        return float(Fraction(str(v)))
    except (ValueError, ZeroDivisionError):
        return None


class ProbeError(Exception):
    pass


def probe(path: str) -> dict:
    r = run(
        [
            "ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_packets",
            "-show_data_hash", "MD5", "-of", "json=c=1", path,
        ],
        PROBE_TIMEOUT,
    )
    if r["rc"] != 0:
        raise ProbeError("ffprobe " + ("timed out" if r["rc"] is None else "failed: " + first_error_line(r["stderr"])))
    try:
        d = json.loads(r["stdout"])
    except json.JSONDecodeError as e:
        raise ProbeError(f"ffprobe output not JSON: {e}") from None
    streams = []
    for s in d.get("streams", []):
        tb = Fraction(s.get("time_base", "1/1000") or "1/1000")
        if tb <= 0:
            tb = Fraction(1, 1000)
        s["_tb"] = tb
        s["_packets"] = []
        streams.append(s)
    by_index = {s["index"]: s for s in streams}
    for p in d.get("packets", []):
        s = by_index.get(p.get("stream_index"))
        if s is None:
            continue
        tb = s["_tb"]
        pts = p.get("pts", p.get("dts"))
        pts = None if pts is None else float(pts * tb)
        dur = p.get("duration")
        dur = float(dur * tb) if isinstance(dur, int) and dur > 0 else 0.0
        flags = p.get("flags", "")
        s["_packets"].append(
            {
                "t": pts,
                "d": dur,
                "md5": p.get("data_hash", ""),
                "key": "K" in flags,
                "discard": "D" in flags,
            }
        )
    fmt = d.get("format", {})
    if not streams or not any(s["_packets"] for s in streams):
        raise ProbeError("no stream with packets")
    # A packet wholly before 0 is not presented, whatever the container says (see (a)).
    for s in streams:
        ps = s["_packets"]
        for n, p in enumerate(ps):
            d = p["d"]
            if d <= 0 and n + 1 < len(ps) and p["t"] is not None and ps[n + 1]["t"] is not None:
                d = ps[n + 1]["t"] - p["t"]  # FFmpeg gives no duration to some first packets
            if p["t"] is not None and d > 0 and p["t"] + d <= EPS and not p["discard"]:
                p["discard"] = p["before_zero"] = True
    return {"format": fmt, "streams": streams, "path": path}


def is_webm(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.startswith(b"\x1a\x45\xdf\xa3") and b"\x42\x82" in head and b"webm" in head


def visible(s: dict) -> list[dict]:
    return [p for p in s["_packets"] if not p["discard"]]


def is_cover(s: dict) -> bool:
    return bool(s.get("disposition", {}).get("attached_pic"))


def known_codec(s: dict) -> bool:
    return s.get("codec_name") not in (None, "", "none", "unknown")


def judged_streams(pr: dict) -> list[dict]:
    return [
        s
        for s in pr["streams"]
        if s.get("codec_type") in JUDGED_TYPES and not is_cover(s) and s["_packets"] and known_codec(s)
    ]


def label(s: dict) -> str:
    return f"{s.get('codec_type', '?')} #{s['index']} ({s.get('codec_name', '?')})"


# ---------------------------------------------------------------------------------------------
# decoding (cached per file and stream)

_decode_cache: dict[tuple, object] = {}
_decode_lock = threading.Lock()


def decoded(path: str, index: int, kind: str) -> object:
    """kind 'pcm': md5 of the decoded audio as f64le; 'frames': list of per-frame MD5s."""
    key = (path, os.path.getmtime(path), index, kind)
    with _decode_lock:
        if key in _decode_cache:
            return _decode_cache[key]
    if kind == "pcm":
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", f"0:{index}",
               "-c:a", "pcm_f64le", "-f", "md5", "-"]
    else:
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", f"0:{index}",
               "-fps_mode", "passthrough", "-f", "framemd5", "-"]
    r = run(cmd, PROBE_TIMEOUT)
    if r["rc"] != 0:
        val: object = "decode failed: " + ("timeout" if r["rc"] is None else first_error_line(r["stderr"]))
    elif kind == "pcm":
        val = r["stdout"].strip()
    else:
        val = [ln.rsplit(",", 1)[-1].strip() for ln in r["stdout"].splitlines()
               if ln.strip() and not ln.startswith("#")]
    with _decode_lock:
        _decode_cache[key] = val
    return val


# ---------------------------------------------------------------------------------------------
# the checks


def rotation(s: dict) -> str:
    """The display rotation in degrees, with " flipped" when the display matrix mirrors the
    picture (a negative determinant), which the angle alone does not show."""
    for sd in s.get("side_data_list", []) or []:
        if "rotation" in sd:
            try:
                angle = round(float(sd["rotation"])) % 360
            except (TypeError, ValueError):
                continue
            # ffprobe prints the matrix as rows "NNNNNNNN: a b u"; a, b, c, d are the 2x2 part.
            values = [int(v) for row in str(sd.get("displaymatrix", "")).splitlines()
                      if ":" in row for v in row.split(":", 1)[1].split()]
            flipped = len(values) >= 5 and values[0] * values[4] - values[1] * values[3] < 0
            return f"{angle}{' flipped' if flipped else ''}"
    r = (s.get("tags") or {}).get("rotate")
    try:
        return str(round(float(r)) % 360) if r is not None else "0"
    except ValueError:
        return "0"


def language(s: dict) -> str:
    tags = {k.lower(): v for k, v in (s.get("tags") or {}).items()}
    v = (tags.get("language") or "").strip().lower()
    return v if re.fullmatch(r"[a-z]{2,3}([-_][a-z0-9]+)*", v) else "und"


def sar(s: dict) -> float:
    v = s.get("sample_aspect_ratio")
    if not v or v in ("0:1", "N/A") or ":" not in v:
        return 1.0
    a, b = v.split(":", 1)
    try:
        return int(a) / int(b) if int(b) and int(a) else 1.0
    except ValueError:
        return 1.0


def color(s: dict, k: str) -> str:
    v = s.get(k)
    v = "unknown" if not v or v in ("unknown", "reserved", "unspecified", "N/A") else v
    return "tv" if k == "color_range" and v == "unknown" else v


def side_numbers(s: dict, kind: str) -> dict | None:
    for sd in s.get("side_data_list", []) or []:
        if kind in sd.get("side_data_type", "").lower():
            return {k: num(v) for k, v in sd.items() if k != "side_data_type" and num(v) is not None}
    return None


def side_equal(a: dict, b: dict | None) -> bool:
    if b is None or set(a) != set(b):
        return False
    for k, va in a.items():
        vb = b[k]
        if abs(va - vb) > max(1e-3 * max(abs(va), abs(vb)), 1e-4):
            return False
    return True


def fmt_tags(pr: dict) -> dict:
    return {k.lower(): v for k, v in (pr["format"].get("tags") or {}).items()}


def parse_time(v: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def match_streams(inp: dict, out: dict) -> tuple[list, list, list]:
    """Pairs input streams with output streams: same type in order, same codec preferred."""
    pairs, lost = [], []
    outs = judged_streams(out)
    used: set[int] = set()

    def same_codec(a, b):
        ca, cb = a.get("codec_name"), b.get("codec_name")
        return ca == cb or (str(ca).startswith("pcm_") and str(cb).startswith("pcm_"))

    for s in judged_streams(inp):
        cands = [o for o in outs if o["index"] not in used and o.get("codec_type") == s.get("codec_type")]
        pick = next((o for o in cands if same_codec(s, o)), cands[0] if cands else None)
        if pick is None:
            lost.append(s)
        else:
            used.add(pick["index"])
            pairs.append((s, pick))
    unknown = [s.get("codec_type") for s in inp["streams"]
               if s.get("codec_type") in JUDGED_TYPES and s["_packets"] and not known_codec(s)]
    added = []
    for o in outs:
        if o["index"] in used:
            continue
        if o.get("codec_type") in unknown:  # the output of an input stream ffprobe cannot judge
            unknown.remove(o.get("codec_type"))
            continue
        added.append(o)
    return pairs, lost, added


def presentation_start(s: dict) -> float | None:
    ts = [p["t"] for p in visible(s) if p["t"] is not None]
    return min(ts) if ts else num(s.get("start_time"))


def tolerance(out_s: dict) -> float:
    tick = float(out_s["_tb"])
    return (TOL_MS if tick <= 0.002 else tick / 2) + EPS


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def judge(inp: dict, out: dict) -> tuple[list[str], list[str]]:
    """Returns (reasons it is wrong, notes) for output `out` of input `inp`."""
    reasons: list[str] = []
    notes: list[str] = []
    pairs, lost, added = match_streams(inp, out)
    for s in lost:
        reasons.append(f"stream lost: {label(s)}")
    for o in added:
        reasons.append(f"stream added: {label(o)}")
    for s in inp["streams"]:
        if s.get("codec_type") not in JUDGED_TYPES and s["_packets"]:
            notes.append(f"not judged: {s.get('codec_type')} #{s['index']} ({s.get('codec_name', '?')})")
        elif s["_packets"] and not known_codec(s):
            notes.append(f"not judged: {s.get('codec_type')} #{s['index']}: ffprobe does not know its "
                         f"codec ({s.get('codec_tag_string', '?')})")

    for s, o in pairs:
        lab = label(s)
        cs, co = s.get("codec_name"), o.get("codec_name")
        pcm = str(cs).startswith("pcm_")
        if cs != co and not (pcm and str(co).startswith("pcm_")):
            reasons.append(f"codec changed: {lab} -> {co}")
            continue
        tol = tolerance(o)
        vi, vo = visible(s), visible(o)
        same_packets = False
        if pcm:
            hi, ho = decoded(inp["path"], s["index"], "pcm"), decoded(out["path"], o["index"], "pcm")
            if hi != ho:
                reasons.append(f"PCM decodes differently: {lab} ({cs} -> {co})")
        else:
            mi, mo = [p["md5"] for p in vi], [p["md5"] for p in vo]
            if mi == mo:
                same_packets = True
            else:
                frames_ok = False
                if s.get("codec_type") == "video":
                    fi, fo = decoded(inp["path"], s["index"], "frames"), decoded(out["path"], o["index"], "frames")
                    if isinstance(fi, list) and fi and fi == fo:
                        frames_ok = True
                        notes.append(f"payload rewritten, frames equal: {lab}")
                if not frames_ok:
                    trimmed = {p["md5"] for p in s["_packets"] if p["discard"]}
                    extra = [m for m in mo if m not in set(mi)]
                    if extra and all(m in trimmed for m in extra) and set(mi) <= set(mo):
                        reasons.append(f"edit-list-trimmed packets visible: {lab}: {len(extra)} of the "
                                       f"{len(trimmed)} packets the input's edit list trims")
                    else:
                        reasons.append(f"packets differ: {lab}: {describe_diff(mi, mo)}")
            if s.get("codec_type") == "video" and s["_packets"] and o["_packets"]:
                if s["_packets"][0]["key"] and not o["_packets"][0]["key"]:
                    reasons.append(f"decoding starts on a non-keyframe: {lab}")
        # (b) start
        st_i, st_o = presentation_start(s), presentation_start(o)
        if st_i is not None and st_o is not None and abs(st_i - st_o) > tol:
            reasons.append(f"start time off: {lab}: {st_o:.6f} s, input {st_i:.6f} s ({ms(st_o - st_i)})")
        # (a') per-packet times
        if same_packets:
            worst, at = 0.0, -1
            for n, (a, b) in enumerate(zip(vi, vo)):
                if a["t"] is not None and b["t"] is not None and abs(a["t"] - b["t"]) > abs(worst):
                    worst, at = b["t"] - a["t"], n
            if abs(worst) > tol:
                bad = sum(1 for a, b in zip(vi, vo)
                          if a["t"] is not None and b["t"] is not None and abs(a["t"] - b["t"]) > tol)
                reasons.append(f"packet times off: {lab}: {bad} of {len(vi)} packets, worst "
                               f"{ms(worst)} at packet {at}")
        # (c) end
        ends_i = [p["t"] + p["d"] for p in vi if p["t"] is not None]
        ends_o = [p["t"] + p["d"] for p in vo if p["t"] is not None]
        if ends_i and ends_o:
            durs = [p["d"] for p in vi if p["d"] > 0]
            one = max(statistics.median(durs) if durs else 0.0, TOL_MS)
            ei, eo = max(ends_i), max(ends_o)
            if abs(ei - eo) > one + tol:
                reasons.append(f"end off: {lab}: {eo:.6f} s, input {ei:.6f} s ({ms(eo - ei)})")
        # (d) metadata
        if s.get("codec_type") == "video":
            if rotation(s) != rotation(o):
                reasons.append(f"rotation lost: {lab}: {rotation(o)}, input {rotation(s)}")
            if abs(sar(s) - sar(o)) > 1e-3:
                reasons.append(f"pixel aspect lost: {lab}: {o.get('sample_aspect_ratio', '-')}, "
                               f"input {s.get('sample_aspect_ratio')}")
            for k in COLOR_KEYS:
                if color(s, k) != "unknown" and color(s, k) != color(o, k):
                    reasons.append(f"colour lost: {lab}: {k} {color(o, k)}, input {color(s, k)}")
            for kind, name in (("mastering display", "mastering display"), ("content light", "content light level")):
                a = side_numbers(s, kind)
                if a is not None and not side_equal(a, side_numbers(o, kind)):
                    reasons.append(f"HDR {name} lost: {lab}")
        if language(s) != language(o):
            reasons.append(f"language changed: {lab}: {language(o)}, input {language(s)}")

    # format-level metadata
    ti, to = fmt_tags(inp), fmt_tags(out)
    for k in FORMAT_TAGS:
        if k in ti and ti[k].strip() and ti[k].strip() != to.get(k, "").strip():
            reasons.append(f"tag {k} lost: {to.get(k, '(none)')!r}, input {ti[k]!r}")
    for k in NOTE_TAGS:
        if k in ti and ti[k].strip() and ti[k].strip() != to.get(k, "").strip():
            notes.append(f"tag {k} lost (not judged): {to.get(k, '(none)')!r}, input {ti[k]!r}")
    ci = parse_time(ti.get("creation_time", ""))
    if ci is not None and ci.year > 1971:
        co = parse_time(to.get("creation_time", ""))
        if co is None or abs((co - ci).total_seconds()) > 1:
            reasons.append(f"creation_time lost: {to.get('creation_time', '(none)')}, input {ti['creation_time']}")
    covers_out = {p["md5"] for o in out["streams"] if is_cover(o) for p in o["_packets"]}
    for s in inp["streams"]:
        if is_cover(s) and s["_packets"] and s["_packets"][0]["md5"] not in covers_out:
            reasons.append(f"cover art lost: #{s['index']} ({s.get('codec_name')})")
    return reasons, notes


def describe_diff(mi: list[str], mo: list[str]) -> str:
    from collections import Counter

    ci, co = Counter(mi), Counter(mo)
    lost, extra = sum((ci - co).values()), sum((co - ci).values())
    if not lost and not extra:
        first = next(n for n, (a, b) in enumerate(zip(mi, mo)) if a != b)
        return f"same {len(mi)} packets reordered (first at {first})"
    first = next((n for n, (a, b) in enumerate(zip(mi, mo)) if a != b), min(len(mi), len(mo)))
    return f"{lost} lost, {extra} added of {len(mi)} (first difference at packet {first})"


# ---------------------------------------------------------------------------------------------
# one file


def outcome(tool: str, r: dict, out_path: str | None, inp: dict) -> dict:
    res = {"exit": r["rc"], "seconds": r["seconds"], "stderr": tail(r["stderr"])}
    err = r["stderr"]
    if r["rc"] is None:
        res.update(verdict="broken", reasons=["timeout"])
        return res
    panicked = "panicked" in err or "RUST_BACKTRACE" in err
    if r["rc"] != 0:
        clear = (r["rc"] in (1, 2) if tool == "livemux" else r["rc"] > 0) and not panicked and err.strip()
        if clear:
            why = first_error_line(err) if tool == "livemux" else err.strip().splitlines()[0][:300]
            why = re.sub(r"stage '[^']*' \([^)]*\) on .*?: ", "", why.replace(inp["path"], "IN"))
            res.update(verdict="refused", reasons=[why])
        else:
            why = "panic" if panicked else (f"signal {-r['rc']}" if r["rc"] < 0 else f"exit {r['rc']}")
            res.update(verdict="broken", reasons=[f"{why}: {first_error_line(err)}"])
        return res
    if panicked:
        res.update(verdict="broken", reasons=["panic message despite exit 0"])
        return res
    try:
        out = probe(out_path)
    except ProbeError as e:
        res.update(verdict="wrong", reasons=[f"output unreadable: {e}"])
        return res
    reasons, notes = judge(inp, out)
    res.update(verdict="wrong" if reasons else "right", reasons=reasons)
    if notes:
        res["notes"] = notes
    return res


def process_file(path: str, rel: str, args, livemux: str) -> dict:
    entry: dict = {"file": rel}
    try:
        inp = probe(path)
    except ProbeError as e:
        entry["unreadable"] = str(e)
        return entry
    entry["input"] = {
        "format": inp["format"].get("format_name"),
        "streams": [label(s) + f" {len(s['_packets'])} packets" for s in inp["streams"]],
    }
    targets = [t for t in args.targets if t != "webm" or is_webm(path)]
    work = tempfile.mkdtemp(prefix="faithful-", dir=args.scratch)
    results: dict = {}
    try:
        ff_cache: dict = {}
        for t in targets:
            lm_out = os.path.join(work, f"livemux-{t}{EXT[t]}")
            if t == "finalize":
                src = os.path.join(work, "livemux-fmp4.mp4")
                if "fmp4" not in results:
                    r = run([livemux, "remux", path, "-o", src, "--to", "fmp4", "-y",
                             "--durability", "none"], args.timeout)
                    fm = {"rc": r["rc"], "ok": r["rc"] == 0 and os.path.exists(src), "r": r}
                else:
                    fm = {"ok": results["fmp4"]["livemux"]["exit"] == 0 and os.path.exists(src),
                          "res": results["fmp4"]["livemux"]}
                if fm["ok"]:
                    shutil.copyfile(src, lm_out)
                    r = run([livemux, "finalize", lm_out], args.timeout)
                    lm = outcome("livemux", r, lm_out, inp)
                else:
                    prev = fm.get("res") or outcome("livemux", fm["r"], src, inp)
                    lm = {"verdict": prev["verdict"] if prev["verdict"] != "wrong" else "broken",
                          "reasons": ["fmp4 step: " + (prev["reasons"][0] if prev["reasons"] else "?")],
                          "exit": prev.get("exit"), "seconds": 0}
                ff = dict(ff_cache.get("mp4") or ffmpeg_target(path, "mp4", work, inp, args))
                ff["peer"] = "ffmpeg mp4"
            else:
                r = run([livemux, "remux", path, "-o", lm_out, "--to", t, "-y", "--durability", "none"],
                        args.timeout)
                lm = outcome("livemux", r, lm_out, inp)
                ff = ffmpeg_target(path, t, work, inp, args)
                ff_cache[t] = ff
            results[t] = {"livemux": lm, "ffmpeg": ff}
            if args.keep:
                keep = Path(args.keep) / rel
                keep.parent.mkdir(parents=True, exist_ok=True)
                for tool, p in (("livemux", lm_out), ("ffmpeg", os.path.join(work, f"ffmpeg-{t}{EXT[t]}"))):
                    if os.path.exists(p):
                        shutil.copyfile(p, f"{keep}.{tool}-{t}{EXT[t]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    entry["results"] = results
    return entry


def ffmpeg_target(path: str, t: str, work: str, inp: dict, args) -> dict:
    out = os.path.join(work, f"ffmpeg-{t}{EXT[t]}")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-map", "0", "-map_metadata", "0", "-c", "copy",
           "-strict", "experimental", *FFMPEG_ARGS[t], out]
    r = run(cmd, args.timeout)
    return outcome("ffmpeg", r, out, inp)


# ---------------------------------------------------------------------------------------------
# the whole run


def find_media(folder: str, only: str | None) -> list[tuple[str, str]]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            rel = os.path.relpath(p, folder)
            if Path(f).suffix.lower() in SKIP_EXT or f.startswith("."):
                continue
            if only and only not in rel:
                continue
            found.append((p, rel))
    return found


def line_for(entry: dict, t: str) -> str:
    r = entry["results"][t]

    def one(x):
        why = x["reasons"][0] if x.get("reasons") else ""
        return f"{x['verdict']}" + (f" ({why})" if why else "")

    return f"{entry['file']}  {t}: livemux {one(r['livemux'])} | ffmpeg {one(r['ffmpeg'])}"


METADATA_REASONS = ("rotation lost", "pixel aspect lost", "colour lost", "HDR ", "language changed",
                    "tag ", "creation_time lost", "cover art lost")


def media_right(res: dict) -> bool:
    """Right when metadata is ignored: every reason is a metadata one."""
    if res["verdict"] == "right":
        return True
    return res["verdict"] == "wrong" and all(r.startswith(METADATA_REASONS) for r in res["reasons"])


def summarize(entries: list[dict], targets: list[str]) -> dict:
    readable = [e for e in entries if "results" in e]
    summ: dict = {
        "files": len(entries),
        "readable": len(readable),
        "unreadable": [e["file"] for e in entries if "unreadable" in e],
        "fully_right": {},
        "per_target": {},
    }
    for tool in ("livemux", "ffmpeg"):
        summ["fully_right"][tool] = sum(
            1 for e in readable if e["results"] and all(r[tool]["verdict"] == "right" for r in e["results"].values())
        )
    summ["fully_right_media"] = {}
    for tool in ("livemux", "ffmpeg"):
        summ["fully_right_media"][tool] = sum(
            1 for e in readable if e["results"] and all(media_right(r[tool]) for r in e["results"].values())
        )
    for t in targets:
        row = {}
        for tool in ("livemux", "ffmpeg"):
            c = {"right": 0, "wrong": 0, "refused": 0, "broken": 0}
            for e in readable:
                if t in e["results"]:
                    c[e["results"][t][tool]["verdict"]] += 1
            row[tool] = c
        summ["per_target"][t] = row
    return summ


def summary_text(s: dict) -> str:
    out = [
        f"files: {s['files']}, readable inputs: {s['readable']}, unreadable inputs: {len(s['unreadable'])}",
        f"fully right (every target right): livemux {s['fully_right']['livemux']} of {s['readable']}, "
        f"ffmpeg {s['fully_right']['ffmpeg']} of {s['readable']}",
        f"fully right on media only (packets, times, PCM; metadata ignored): livemux "
        f"{s['fully_right_media']['livemux']}, ffmpeg {s['fully_right_media']['ffmpeg']}",
        f"{'target':9} {'tool':8} {'right':>6} {'wrong':>6} {'refused':>8} {'broken':>7}",
    ]
    for t, row in s["per_target"].items():
        for tool, c in row.items():
            out.append(f"{t:9} {tool:8} {c['right']:6} {c['wrong']:6} {c['refused']:8} {c['broken']:7}")
    for u in s["unreadable"]:
        out.append(f"unreadable input: {u}")
    return "\n".join(out)


def cause_key(reason: str, verdict: str, folder: str) -> str:
    """A reason without the numbers that differ from file to file, so that files group by cause."""
    r = reason
    if verdict in ("refused", "broken"):
        r = r.replace(folder + "/", "")
        r = re.sub(r"/[^ ]*/faithful-[^/ ]*/", "", r)  # scratch paths
        r = re.sub(r"(?<![A-Za-z_])\d+(?![A-Za-z])", "N", r)  # numbers, not A_AC3 or fmp4
        return f"{verdict}: {r[:160]}"
    r = re.sub(r"(video|audio|subtitle) #\d+ \(([^)]*)\)", r"\1 (\2)", r)
    head, _, rest = r.partition(": ")
    stream = re.match(r"(video|audio|subtitle) \([^)]*\)", rest)
    stream = stream.group(0) if stream else ""
    if head in ("start time off", "end off", "packet times off"):
        m = re.search(r"(?:\(|worst )(-?[\d.]+) ms", rest)
        way = "late" if m and float(m.group(1)) > 0 else "early"
        return f"{head} ({way}): {stream}"
    if head == "language changed":
        m = re.search(r": (\S+), input (\S+)$", rest)
        return f"language changed: {m.group(2)} -> {m.group(1)}" if m else head
    if head in ("colour lost", "codec changed", "rotation lost", "pixel aspect lost"):
        detail = rest[len(stream):].lstrip(": ")
        if head == "colour lost":
            detail = detail.split(" ")[0]
        if head in ("rotation lost", "pixel aspect lost"):
            detail = ""
        return f"{head}: {stream} {detail}".strip()
    if head.startswith("tag ") or head.startswith("creation_time") or head.startswith("cover art"):
        return head
    if head in ("packets differ", "edit-list-trimmed packets visible", "decoding starts on a non-keyframe",
                "PCM decodes differently", "HDR mastering display lost", "HDR content light level lost"):
        return f"{head}: {stream}"
    return f"{head}: {stream}" if stream else head


def causes_text(entries: list[dict], folder: str) -> str:
    """livemux's failures grouped by cause; each file with its targets and FFmpeg's verdict there."""
    groups: dict[str, dict[str, dict[str, str]]] = {}
    codecs = {
        e["file"]: ",".join(re.sub(r"^(\w+) #\d+ \(([^)]*)\).*$", r"\2", x) for x in e["input"]["streams"])
        for e in entries
        if "input" in e
    }
    for e in entries:
        for t, r in (e.get("results") or {}).items():
            lm, ff = r["livemux"], r["ffmpeg"]
            if lm["verdict"] == "right":
                continue
            for reason in lm["reasons"]:
                key = cause_key(reason, lm["verdict"], folder)
                groups.setdefault(key, {}).setdefault(e["file"], {})[t] = ff["verdict"]
    out = [
        "livemux failures grouped by cause (every reason of a failing output, not only the first).",
        "Each file lists the targets where the cause shows, with FFmpeg's verdict for that target.",
        "Regenerate with: bench/faithful.py FOLDER --causes FILE   (rules: top of bench/faithful.py)",
        "",
    ]
    for key, files in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        per_t: dict[str, int] = {}
        for ts in files.values():
            for t in ts:
                per_t[t] = per_t.get(t, 0) + 1
        spread = ", ".join(f"{t} {n}" for t, n in sorted(per_t.items(), key=lambda x: TARGETS.index(x[0])))
        out.append(f"{key}  ({len(files)} files; {spread})")
        for f, ts in sorted(files.items()):
            tl = ",".join(t for t in TARGETS if t in ts)
            fv = " ".join(f"{t}={ts[t]}" for t in TARGETS if t in ts)
            out.append(f"    {f}  [{tl}]  (ffmpeg: {fv})  streams: {codecs.get(f, '?')}")
        out.append("")
    unread = [e["file"] + ": " + e["unreadable"] for e in entries if "unreadable" in e]
    if unread:
        out.append(f"unreadable inputs (not counted)  ({len(unread)} files)")
        out += [f"    {u}" for u in unread]
    return "\n".join(out) + "\n"


def tool_versions(livemux: str, root: Path) -> dict:
    v = {}
    r = run(["ffmpeg", "-version"], 30)
    v["ffmpeg"] = r["stdout"].splitlines()[0] if r["stdout"] else "?"
    r = run(["git", "-C", str(root), "describe", "--always", "--dirty"], 30)
    v["livemux_commit"] = r["stdout"].strip() or "?"
    r = run(["git", "-C", str(root), "log", "-1", "--format=%h %s", "--", "src", "Cargo.toml", "Cargo.lock"], 30)
    v["livemux_src_last_commit"] = r["stdout"].strip() or "?"  # the binary may be built elsewhere: --livemux
    v["livemux"] = livemux
    return v


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description="livemux vs FFmpeg faithfulness over a folder of media",
                                 epilog="See the top of this file for every rule.")
    ap.add_argument("folder", nargs="?", help="folder of media (recursive), e.g. ../shared/external")
    ap.add_argument("--targets", default="fmp4,mp4,mkv,webm,finalize",
                    help="comma-separated subset of " + ",".join(TARGETS))
    ap.add_argument("--jobs", type=int, default=1, help="files in parallel (default 1)")
    ap.add_argument("--livemux", default=str(root / "target" / "release" / "livemux"))
    ap.add_argument("--only", help="only files whose path (relative to FOLDER) contains this")
    ap.add_argument("--keep", help="copy every output into this folder")
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per livemux/ffmpeg command")
    ap.add_argument("--scratch", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where outputs are written while judged (default /dev/shm)")
    ap.add_argument("--summarize", metavar="REPORT.json",
                    help="print the lines and summary (and --causes) of a saved report, run nothing")
    ap.add_argument("--causes", help="write livemux's failures grouped by cause (with file names) here")
    ap.add_argument("--quiet", action="store_true", help="no per-file lines, only the summary")
    ap.add_argument("--self-test", action="store_true", help="make two tiny inputs and run end to end")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test(args)
    if args.summarize:
        rep = json.loads(Path(args.summarize).read_text())
        files = rep["files"]
        for e in files:
            if "unreadable" in e:
                print(f"{e['file']}  unreadable input ({e['unreadable']})")
            elif not args.quiet:
                for t in e["results"]:
                    print(line_for(e, t))
        print()
        print(summary_text(summarize(files, rep["targets"])))
        if args.causes:
            Path(args.causes).write_text(causes_text(files, rep["folder"]))
        return 0
    if not args.folder:
        ap.error("FOLDER is required (or --self-test)")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in args.targets if t not in TARGETS]
    if bad:
        ap.error(f"unknown target(s): {', '.join(bad)}")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found", file=sys.stderr)
            return 2
    livemux = os.path.abspath(args.livemux)
    if not os.access(livemux, os.X_OK):
        print(f"error: livemux binary {livemux} not found (cargo build --release, or --livemux)", file=sys.stderr)
        return 2
    files = find_media(args.folder, args.only)
    if not files:
        print("error: no files", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entries: list[dict | None] = [None] * len(files)
    print_lock = threading.Lock()

    def work(i):
        p, rel = files[i]
        try:
            e = process_file(p, rel, args, livemux)
        except Exception as ex:  # the script must never die on one file
            e = {"file": rel, "unreadable": f"script error: {type(ex).__name__}: {ex}"}
            e["script_error"] = True
        entries[i] = e
        with print_lock:
            if "unreadable" in e:
                print(f"{rel}  unreadable input ({e['unreadable']})", flush=True)
            elif not args.quiet:
                for t in e["results"]:
                    print(line_for(e, t), flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        list(ex.map(work, range(len(files))))
    done = [e for e in entries if e is not None]
    summ = summarize(done, args.targets)
    elapsed = round(time.monotonic() - t0, 1)
    print()
    print(summary_text(summ))
    print(f"time: {elapsed} s")
    if args.json:
        report = {
            "command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
            "started": started,
            "seconds": elapsed,
            "folder": os.path.abspath(args.folder),
            "targets": args.targets,
            "versions": tool_versions(livemux, root),
            "summary": summ,
            "files": done,
        }
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.causes:
        Path(args.causes).write_text(causes_text(done, os.path.abspath(args.folder)))
    return 1 if any(e.get("script_error") for e in done) else 0


# ---------------------------------------------------------------------------------------------
# self-test


def self_test(args) -> int:
    """Two tiny inputs (H.264+AAC MP4, VP9+Opus WebM), the whole pipeline, and two outputs the
    judge must call wrong (shifted start, changed language), so that it can fail."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"self-test: {tool} not found", file=sys.stderr)
            return 2
    root = Path(__file__).resolve().parent.parent
    failures = []
    with tempfile.TemporaryDirectory(prefix="faithful-self-test-") as d:
        src = os.path.join(d, "media")
        os.makedirs(src)
        ff = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        lavfi = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                 "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"]
        mp4 = os.path.join(src, "a.mp4")
        webm = os.path.join(src, "b.webm")
        for cmd in (
            [*ff, *lavfi, "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", "-c:a", "aac",
             "-metadata:s:a", "language=eng", "-metadata", "title=self test", mp4],
            [*ff, *lavfi, "-c:v", "libvpx-vp9", "-g", "5", "-c:a", "libopus", webm],
        ):
            r = run(cmd, 120)
            if r["rc"] != 0:
                print(f"self-test: could not make input: {first_error_line(r['stderr'])}", file=sys.stderr)
                return 2
        # The judge must be able to fail: a shifted copy and a relabelled copy of the input.
        inp = probe(mp4)
        shifted = os.path.join(d, "shifted.mp4")
        relabel = os.path.join(d, "relabel.mp4")
        run([*ff, "-i", mp4, "-map", "0", "-c", "copy", "-output_ts_offset", "0.5", shifted], 60)
        run([*ff, "-i", mp4, "-map", "0", "-c", "copy", "-metadata:s:a:0", "language=fra", relabel], 60)
        r1, _ = judge(inp, probe(shifted))
        r2, _ = judge(inp, probe(relabel))
        if not any(x.startswith("start time off") for x in r1):
            failures.append(f"a copy shifted by 0.5 s was not judged late: {r1}")
        if not any(x.startswith("language changed") for x in r2):
            failures.append(f"a copy relabelled fra was not judged: {r2}")
        r3, _ = judge(inp, probe(mp4))
        if r3:
            failures.append(f"the input judged against itself is wrong: {r3}")
        report = os.path.join(d, "report.json")
        livemux = args.livemux if args.livemux else str(root / "target" / "release" / "livemux")
        argv = [src, "--json", report, "--livemux", livemux, "--timeout", "60"]
        rc = main(argv)
        if rc != 0:
            failures.append(f"main() exit {rc}")
        rep = json.loads(Path(report).read_text())
        for e in rep["files"]:
            if "results" not in e:
                failures.append(f"{e['file']}: {e.get('unreadable')}")
                continue
            for t, r in e["results"].items():
                for tool in ("livemux", "ffmpeg"):
                    if r[tool]["verdict"] == "broken":
                        failures.append(f"{e['file']} {t}: {tool} broken: {r[tool]['reasons']}")
            for t in ("mp4",):
                if e["file"] == "a.mp4" and e["results"][t]["ffmpeg"]["verdict"] != "right":
                    failures.append(f"ffmpeg's {t} of a plain H.264+AAC file judged "
                                    f"{e['results'][t]['ffmpeg']['reasons']}")
        if set(rep["files"][1]["results"]) != set(TARGETS):
            failures.append("the WebM input did not get every target, webm included")
    for f in failures:
        print(f"self-test FAILED: {f}", file=sys.stderr)
    print("self-test: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the run quietly
    sys.exit(main())
