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
short (livemux says `"complete": false`) are counted apart: there ffprobe counts the
samples the last fragment's index declares past the end of the file, livemux only those
in it. Profile and level names are compared too (exact, level as ffprobe's number), and
counted apart.

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
         "format=duration,bit_rate:stream=index,codec_type,codec_name,profile,level,avg_frame_rate,duration,bit_rate",
         str(path)],
        capture_output=True, text=True)
    try:
        return json.loads(r.stdout or "{}")
    except json.JSONDecodeError:
        return {}


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
    totals = {"agree": 0, "differ": 0, "differ_cut": 0, "na": 0, "names_agree": 0, "names_differ": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in inputs(corpus, tmp):
            ours, err = livemux_probe(exe, path)
            theirs = ffprobe(path)
            lines, counts = [], {"agree": 0, "differ": 0, "na": 0}

            def check(field, mine, ref):
                if ref is None:
                    counts["na"] += 1
                    lines.append(f"  {field}: ffprobe N/A (livemux {mine})")
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
                print(f"{name}: livemux gave no report: {err}")
                continue
            fmt = theirs.get("format", {})
            check("duration", ours.get("duration"), number(fmt.get("duration")))
            check("bit_rate", ours.get("bit_rate"), number(fmt.get("bit_rate")))
            streams = [s for s in theirs.get("streams", []) if s.get("codec_type") in ("video", "audio")]
            for kind in ("video", "audio"):
                mine = [t for t in ours.get("tracks", []) if t["kind"] == kind]
                ref = [s for s in streams if s["codec_type"] == kind]
                if len(mine) != len(ref):
                    lines.append(f"  {kind}: livemux has {len(mine)} tracks, ffprobe {len(ref)} streams")
                for t, s in zip(mine, ref):
                    label = f"track {t['number']} ({t['codec']})"
                    check(f"{label} duration", t.get("duration"), number(s.get("duration")))
                    check(f"{label} bit_rate", t.get("bit_rate"), number(s.get("bit_rate")))
                    if kind == "video":
                        check(f"{label} frame_rate", t.get("frame_rate"), number(s.get("avg_frame_rate")))
                    if t["codec"] != s.get("codec_name"):
                        lines.append(f"  {label}: codec DIFFERS: ffprobe {s.get('codec_name')}")
                    prof = s.get("profile")
                    check_name(f"{label} profile", t.get("profile"), None if prof in (None, "unknown") else prof)
                    check_name(f"{label} level", t.get("level"), ffprobe_level(s.get("codec_name"), s.get("level")))
            cut = ours.get("complete") is False
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
        f"{totals['na']} not counted (ffprobe N/A); profile/level names: {totals['names_agree']} agree, "
        f"{totals['names_differ']} differ"
    )
    sys.exit(1 if totals["differ"] else 0)


if __name__ == "__main__":
    main()
