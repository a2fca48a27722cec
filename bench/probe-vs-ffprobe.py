#!/usr/bin/env python3
"""Compares `livemux probe --json` with ffprobe on every file of a corpus.

usage: bench/probe-vs-ffprobe.py [CORPUS] [--livemux PATH] [--tolerance 0.01] [--verbose]

CORPUS defaults to ../shared/corpus (from the repository). Every media file in it is
probed; every `NAME.chunks` folder (a recording delivered in blobs) is first
concatenated, its blobs in name order, into a temporary file.

Compared, within the tolerance (1% by default): the overall duration and bit rate
(ffprobe's format), and per stream its duration, bit rate and, for video, ffprobe's
avg_frame_rate. Streams are paired by kind, in order (video with video, audio with
audio). A field ffprobe reports as N/A is listed as such and not counted; one livemux
leaves out while ffprobe has it counts as a disagreement. Disagreements on a file cut
short (livemux gives a `cut_at`) are counted apart: there ffprobe counts the
samples the last fragment's index declares past the end of the file, livemux only those
in it. Profile and level names, languages and the creation time are compared too
(exact; level as ffprobe's number), and counted apart.

Where ffprobe's header figures are N/A (Matroska without Duration or bit-rate tags), the
same fields are also checked, counted apart again, against what ffprobe's packets add up
to (`-show_packets`: the span of presentation times and the bytes per stream, the span of
all streams for the file).

Python 3 standard library only; needs ffprobe and a built livemux. Exits 1 when a
field of a complete file disagrees.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = {".mp4", ".m4a", ".mov", ".ismv", ".mkv", ".mka", ".webm"}


def find_livemux():
    dirs = [os.environ.get("CARGO_TARGET_DIR"), str(ROOT / "target")]
    for d in filter(None, dirs):
        for profile in ("release", "debug"):
            p = Path(d) / profile / "livemux"
            if p.exists():
                return str(p)
    sys.exit("no livemux binary: build it (cargo build) or pass --livemux")


def inputs(corpus, tmp):
    """(name, path) of every media file and concatenated .chunks folder, sorted."""
    out = []
    for p in sorted(corpus.rglob("*")):
        rel = str(p.relative_to(corpus))
        if p.is_dir() and p.name.endswith(".chunks"):
            stem = p.name[: -len(".chunks")]
            ext = ".webm" if "webm" in stem else ".mkv" if "mkv" in stem else ".mp4"
            joined = Path(tmp) / (rel.replace("/", "_") + ext)
            with open(joined, "wb") as f:
                for blob in sorted(c for c in p.iterdir() if c.is_file()):
                    f.write(blob.read_bytes())
            out.append((rel + " (blobs joined)", joined))
        elif p.is_file() and p.suffix in MEDIA and ".chunks" not in rel:
            out.append((rel, p))
    return out


def number(v):
    """ffprobe's value as a number, or None for N/A, 0/0 and missing."""
    if v in (None, "N/A", "", "0/0"):
        return None
    try:
        x = float(Fraction(v)) if "/" in str(v) else float(v)
    except (ValueError, ZeroDivisionError):
        return None
    return x if x > 0 else None


def ffprobe(path):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "format=duration,bit_rate:format_tags=creation_time:stream=index,codec_type,codec_name,profile,level,"
         "avg_frame_rate,duration,bit_rate:stream_tags=language",
         str(path)],
        capture_output=True, text=True)
    try:
        return json.loads(r.stdout or "{}")
    except json.JSONDecodeError:
        return {}


def ffprobe_packets(path):
    """Per stream index: (first pts, last pts + duration, bytes, whether the packet with the
    latest pts has no duration), from ffprobe's packets."""
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "packet=stream_index,pts_time,duration_time,size", str(path)],
        capture_output=True, text=True)
    try:
        packets = json.loads(r.stdout or "{}").get("packets", [])
    except json.JSONDecodeError:
        return {}
    out = {}
    for p in packets:
        try:
            pts, size = float(p["pts_time"]), int(p["size"])
        except (KeyError, ValueError):
            continue
        known = p.get("duration_time") not in (None, "N/A") and float(p["duration_time"]) > 0
        end = pts + (float(p["duration_time"]) if known else 0.0)
        first, last, total, open_end = out.get(p["stream_index"], (pts, end, 0, not known))
        if end >= last:
            open_end = not known
        out[p["stream_index"]] = (min(first, pts), max(last, end), total + size, open_end)
    return out


def livemux_probe(exe, path):
    r = subprocess.run([exe, "probe", "--json", str(path)], capture_output=True, text=True)
    try:
        return json.loads(r.stdout), r.stderr.strip()
    except json.JSONDecodeError:
        return None, (r.stderr.strip() or "no JSON")


def ffprobe_level(codec, level):
    """ffprobe's integer level in livemux's notation ("3.1"), or None."""
    if level is None or level < 0:
        return None
    if codec == "h264":
        return "1b" if level == 9 else f"{level // 10}.{level % 10}"
    if codec == "hevc":
        return f"{level // 30}.{level % 30 // 3}"
    if codec == "av1":
        return None if level >= 24 else f"{2 + level // 4}.{level % 4}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--livemux")
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--verbose", action="store_true", help="print the agreeing fields too")
    a = ap.parse_args()
    exe = a.livemux or find_livemux()
    corpus = Path(a.corpus)
    if not corpus.is_dir():
        sys.exit(f"{corpus}: no such folder")
    totals = {"agree": 0, "differ": 0, "differ_cut": 0, "na": 0, "names_agree": 0, "names_differ": 0,
              "packets_agree": 0, "packets_differ": 0, "no_report": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in inputs(corpus, tmp):
            ours, err = livemux_probe(exe, path)
            theirs = ffprobe(path)
            lines, counts = [], {"agree": 0, "differ": 0, "na": 0}

            packets = None

            def from_packets(field, mine, stream, what):
                """The field against ffprobe's packets, when its header says N/A."""
                nonlocal packets
                if packets is None:
                    packets = ffprobe_packets(path)
                spans = list(packets.values()) if stream is None else [packets.get(stream)]
                if not spans or None in spans:
                    return "and no packets"
                start, end = min(s[0] for s in spans), max(s[1] for s in spans)
                size = sum(s[2] for s in spans) if stream is not None else os.path.getsize(path)
                ref = (end - start) if what == "duration" else (size * 8 / (end - start) if end > start else None)
                if mine is None or not ref:
                    return "and no figure from its packets"
                off = abs(mine - ref) / ref
                key = "packets_agree" if off <= a.tolerance else "packets_differ"
                totals[key] += 1
                verdict = "agrees" if off <= a.tolerance else f"DIFFERS by {off:.2%}"
                if off > a.tolerance and any(s[3] for s in spans):
                    verdict += " (ffprobe gives the last packet no duration; livemux the one before it)"
                return f"its packets say {ref:g}: {verdict}"

            def check(field, mine, ref, stream=None, what=None):
                if ref is None:
                    counts["na"] += 1
                    extra = f"; {from_packets(field, mine, stream, what)}" if what else ""
                    lines.append(f"  {field}: ffprobe N/A (livemux {mine}){extra}")
                    return
                if mine is None:
                    counts["differ"] += 1
                    lines.append(f"  {field}: DIFFERS: livemux none, ffprobe {ref:g}")
                    return
                off = abs(mine - ref) / ref
                if off <= a.tolerance:
                    counts["agree"] += 1
                    if a.verbose:
                        lines.append(f"  {field}: agrees ({mine:g} vs {ref:g})")
                else:
                    counts["differ"] += 1
                    lines.append(f"  {field}: DIFFERS by {off:.2%}: livemux {mine:g}, ffprobe {ref:g}")

            def check_name(field, mine, ref):
                if ref is None:
                    return
                key = "names_agree" if mine == ref else "names_differ"
                totals[key] += 1
                if mine != ref:
                    lines.append(f"  {field}: name DIFFERS: livemux {mine!r}, ffprobe {ref!r}")

            if ours is None:
                # A probe that prints nothing (a crash) counts against livemux.
                print(f"{name}: livemux gave no report: {err}")
                totals["no_report"] += 1
                continue
            fmt = theirs.get("format", {})
            check("duration", ours.get("duration"), number(fmt.get("duration")), None, "duration")
            check("bit_rate", ours.get("bit_rate"), number(fmt.get("bit_rate")), None, "bit_rate")
            created = fmt.get("tags", {}).get("creation_time")
            check_name("creation_time", ours.get("creation_time"), created[:19] + "Z" if created else None)
            streams = [s for s in theirs.get("streams", []) if s.get("codec_type") in ("video", "audio")]
            for kind in ("video", "audio"):
                mine = [t for t in ours.get("tracks", []) if t["kind"] == kind]
                ref = [s for s in streams if s["codec_type"] == kind]
                if len(mine) != len(ref):
                    lines.append(f"  {kind}: livemux has {len(mine)} tracks, ffprobe {len(ref)} streams")
                for t, s in zip(mine, ref):
                    label = f"track {t['number']} ({t['codec']})"
                    i = s.get("index")
                    check(f"{label} duration", t.get("duration"), number(s.get("duration")), i, "duration")
                    check(f"{label} bit_rate", t.get("bit_rate"), number(s.get("bit_rate")), i, "bit_rate")
                    check_name(f"{label} language", t.get("language"), s.get("tags", {}).get("language"))
                    if kind == "video":
                        check(f"{label} frame_rate", t.get("frame_rate"), number(s.get("avg_frame_rate")))
                    if t["codec"] != s.get("codec_name"):
                        lines.append(f"  {label}: codec DIFFERS: ffprobe {s.get('codec_name')}")
                    prof = s.get("profile")
                    check_name(f"{label} profile", t.get("profile"), None if prof in (None, "unknown") else prof)
                    check_name(f"{label} level", t.get("level"), ffprobe_level(s.get("codec_name"), s.get("level")))
            cut = ours.get("cut_at") is not None
            if cut:
                counts["differ_cut"] = counts.pop("differ")
            for k in counts:
                totals[k] += counts[k]
            note = f" (livemux: {err.splitlines()[-1]})" if err else ""
            differ = f"{counts['differ_cut']} differ (cut file)" if cut else f"{counts['differ']} differ"
            print(f"{name}: {counts['agree']} agree, {differ}, {counts['na']} ffprobe N/A{note}")
            for line in lines:
                print(line)
    print(
        f"\nTOTAL: {totals['agree']} fields agree within {a.tolerance:.0%}, {totals['differ']} differ "
        f"(and {totals['differ_cut']} on cut files), "
        f"{totals['na']} not counted (ffprobe N/A); names (profile, level, language, creation time): {totals['names_agree']} agree, "
        f"{totals['names_differ']} differ; where ffprobe says N/A, against its packets: "
        f"{totals['packets_agree']} agree, {totals['packets_differ']} differ; "
        f"{totals['no_report']} files without a report"
    )
    sys.exit(1 if totals["differ"] or totals["no_report"] or totals["names_differ"] else 0)


if __name__ == "__main__":
    main()
