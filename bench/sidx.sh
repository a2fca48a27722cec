#!/usr/bin/env bash
# Would a sidx kept current in a running `--to mp4` recording help players seek in it?
#
# Issue 16 asked to measure whether FFmpeg and Chromium use a `sidx` (segment index) in a
# fragmented MP4 before writing one. This builds one long source (DUR s, default 3600:
# 320x180 15 fps H.264 with a keyframe every second + AAC) and four files of its packets:
#   livemux-killed   `livemux remux - --to mp4` killed with SIGKILL before its clean stop:
#                    what a player sees of a running or crashed recording (moov, moofs, no index)
#   ffmpeg-frag      ffmpeg -movflags frag_keyframe+empty_moov+default_base_moof (no index)
#   ffmpeg-sidx      the same + global_sidx: one sidx indexing every fragment
#   livemux-final    the same livemux recording after its clean stop (regular MP4)
# and measures, per file:
#   ffprobe/ffmpeg   opening (ffprobe of the duration) and a seek to 5/6 of it (`ffmpeg -ss`
#                    decoding one frame): wall time, read/lseek system calls, bytes read
#   Chromium         <video src> over HTTP with Range (bench/range_server.py): time to
#                    loadedmetadata, time of a seek to 5/6, requests and bytes fetched
#
#   bench/sidx.sh               # DUR=3600
#   DUR=600 bench/sidx.sh
# Output: one table on stdout; the files and logs in bench/out/sidx/.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "unknown argument: $1 (settings are environment variables; see --help)" >&2; exit 2 ;;
esac
dur="${DUR:-3600}"
out="$root/bench/out/sidx"
mkdir -p "$out"
if [ -n "${LIVEMUX_BIN:-}" ]; then
    bin="$LIVEMUX_BIN"
else
    (cd "$root" && cargo build --release --quiet)
    bin="$root/target/release/livemux"
fi
[ -d "$root/tests/browser/node_modules" ] || npm ci --prefix "$root/tests/browser" --no-audit --no-fund --loglevel=error

src="$out/src-$dur.mp4"
if [ ! -f "$src" ]; then
    echo "making a $dur s source..." >&2
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=320x180:rate=15" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t "$dur" -c:v libx264 -preset ultrafast -g 15 -pix_fmt yuv420p -c:a aac -b:a 32k "$src"
fi
files=(livemux-killed ffmpeg-frag ffmpeg-sidx livemux-final)
rm -f "$out"/livemux-*.mp4 "$out"/ffmpeg-*.mp4
ffmpeg -nostdin -v error -y -i "$src" -c copy -movflags frag_keyframe+empty_moov+default_base_moof "$out/ffmpeg-frag.mp4"
ffmpeg -nostdin -v error -y -i "$src" -c copy -movflags frag_keyframe+empty_moov+default_base_moof+global_sidx "$out/ffmpeg-sidx.mp4"
"$bin" remux "$src" --to mp4 -o "$out/livemux-final.mp4" 2>/dev/null
# The killed recording: all its input written, then SIGKILL before the end of input.
size=$(stat -c %s "$out/livemux-final.mp4")
{ cat "$src"; sleep 600; } | "$bin" remux - --to mp4 -o "$out/livemux-killed.mp4" 2>/dev/null &
pid=$!
last=-1
while :; do
    sleep 1
    now=$(stat -c %s "$out/livemux-killed.mp4" 2>/dev/null || echo 0)
    [ "$now" = "$last" ] && [ "$now" -gt $((size / 2)) ] && break
    last=$now
done
kill -KILL "$pid"
pkill -f "sleep 600" || true
wait "$pid" 2>/dev/null || true

# $1: file; prints "wall_ms reads lseeks bytes_read" of the command after it, counting only
# the calls on the descriptors that hold $1.
traced() {
    local log="$out/strace.log" t0 t1
    t0=$(date +%s%N)
    strace -f -qq -e trace=openat,read,lseek,close -o "$log" "${@:2}" >/dev/null 2>&1
    t1=$(date +%s%N)
    python3 - "$log" "$1" "$(( (t1 - t0) / 1000000 ))" <<'EOF'
import re, sys
log, path, ms = sys.argv[1], sys.argv[2], sys.argv[3]
fds, reads, seeks, nbytes = set(), 0, 0, 0
for line in open(log):
    m = re.search(r'openat\(AT_FDCWD, "([^"]*)".*\)\s+=\s+(\d+)', line)
    if m:
        if m.group(1) == path:
            fds.add(m.group(2))
        continue
    m = re.search(r'\b(read|lseek|close)\((\d+)[,)].*=\s+(-?\d+)', line)
    if not m or m.group(2) not in fds:
        continue
    if m.group(1) == 'close':
        fds.discard(m.group(2))
    elif m.group(1) == 'lseek':
        seeks += 1
    else:
        reads += 1
        nbytes += max(0, int(m.group(3)))
print(ms, reads, seeks, nbytes)
EOF
}

printf '%-15s %10s | %-27s | %-27s | %s\n' file bytes "ffprobe open: ms reads seeks MB" "ffmpeg seek: ms reads seeks MB" "Chromium: open ms, seek ms, requests, MB"
log="$out/http.log"
port_file="$out/port"
rm -f "$port_file"
python3 "$root/bench/range_server.py" "$out" "$log" > "$port_file" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
while [ ! -s "$port_file" ]; do sleep 0.1; done
port=$(cat "$port_file")
at=$(( dur * 5 / 6 ))
for f in "${files[@]}"; do
    path="$out/$f.mp4"
    read -r om or os ob < <(traced "$path" ffprobe -v error -show_entries format=duration -of csv=p=0 "$path")
    read -r sm sr ss sb < <(traced "$path" ffmpeg -nostdin -v error -ss "$at" -i "$path" -frames:v 1 -f null -)
    : > "$log"
    chrome=$(node "$root/tests/browser/seek.mjs" --videos "{\"$f\":\"http://127.0.0.1:$port/$f.mp4\"}" 2>"$out/$f.chromium.log" || true)
    sleep 0.5
    requests=$(wc -l < "$log")
    fetched=$(python3 -c 'import json,sys; print(sum(json.loads(l)["bytes"] for l in open(sys.argv[1])))' "$log")
    cres=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1] or "{}")
if r.get("ok"):
    print("%.0f ms, %.0f ms (at %.0f s of %.0f)" % (r["openMs"], r["seekMs"], r["seekedAt"], r["duration"]))
else:
    print("failed: %s" % r.get("error", "no result"))' "$chrome")
    printf '%-15s %10s | %6s %6s %6s %6.1f | %6s %6s %6s %6.1f | %s, %s requests, %.1f MB\n' \
        "$f" "$(stat -c %s "$path")" "$om" "$or" "$os" "$(echo "$ob / 1000000" | bc -l)" \
        "$sm" "$sr" "$ss" "$(echo "$sb / 1000000" | bc -l)" "$cres" "$requests" "$(echo "$fetched / 1000000" | bc -l)"
done
