#!/usr/bin/env bash
# Recovery throughput: how fast `livemux recover` cuts a moov-less MP4 (a recording a crash
# cut short) into packets with a reference's layout, on one core, and whether its memory
# stays flat as the input grows.
#
# Inputs (made once with FFmpeg, reused when present):
#   hour-720p     1 hour, 1280x720 at 30 fps H.264 (B-frames) + AAC 48 kHz stereo, moov at the
#                 end, cut at 90% (no moov: what a crash leaves); ~1.9 GB
#   tenmin-720p   the first ten minutes of the same, cut the same way
#   reference     one second with the same settings
# The hour is one minute encoded once and repeated with `-stream_loop` (stream copy), so
# generating it takes about a minute.
#
# Measured: `taskset -c 0 livemux recover IN --reference REF -o /dev/shm/OUT`, the median
# of RUNS (3) runs, input in the page cache. Throughput = input bytes / elapsed seconds.
# Targets: >= 300 MB/s on the hour, and peak RSS of the hour within 1.5x that of the ten
# minutes (memory independent of length).
#
#   bench/recover.sh            # full size
#   bench/recover.sh --small    # 2 minutes instead of an hour: a smoke run of the script
#   BENCH_DIR=/some/dir bench/recover.sh
# Exit status 0 on PASS, 1 on FAIL or error.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
small=0
for arg in "$@"; do
    case "$arg" in
        --small) small=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
dir="${BENCH_DIR:-$root/bench/out}"
mkdir -p "$dir"
runs="${RUNS:-3}"
if [ "$small" = 1 ]; then loops=1; short_loops=0; tag=small; else loops=59; short_loops=9; tag=full; fi

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000"
     -ac 2 -c:v libx264 -preset ultrafast -bf 2 -b:v 4M -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k)
minute="$dir/recover-minute-720p.mp4"
reference="$dir/recover-reference-720p.mp4"
[ -f "$minute" ] || { echo "== encoding one minute of 720p"; ff "${src[@]}" -t 60 "$minute"; }
[ -f "$reference" ] || ff "${src[@]}" -t 1 "$reference"

# cut NAME LOOPS: the minute repeated LOOPS+1 times, moov at the end, cut at 90%.
cut() {
    local whole="$dir/recover-$1-$tag-whole.mp4" out="$dir/recover-$1-$tag-cut.mp4"
    if [ ! -f "$out" ]; then
        echo "== building $1 ($(( $2 + 1 )) minutes)" >&2
        ff -stream_loop "$2" -i "$minute" -map 0 -c copy "$whole"
        head -c $(( $(stat -c %s "$whole") * 9 / 10 )) "$whole" > "$out"
        rm -f "$whole"
    fi
    echo "$out"
}
long=$(cut hour "$loops")
short=$(cut tenmin "$short_loops")

echo "== building livemux"
(cd "$root" && cargo build --release --quiet)
bin=$(mktemp /tmp/livemux-bench-bin.XXXXXX)
out="/dev/shm/livemux-recover-bench-$$.mp4"
trap 'rm -f "$out" "$bin"' EXIT
cp "$root/target/release/livemux" "$bin"; chmod 755 "$bin"

# run IN -> "SECONDS PEAK_RSS_KIB" (median by time)
run() {
    cat "$1" > /dev/null
    for _ in $(seq "$runs"); do
        /usr/bin/time -f '%e %M' -o /dev/stdout taskset -c 0 "$bin" recover "$1" --reference "$reference" \
            -o "$out" 2>/dev/null | tail -1
        rm -f "$out"
    done | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

read -r t_long rss_long < <(run "$long")
read -r t_short rss_short < <(run "$short")
bytes=$(stat -c %s "$long")
mbs=$(python3 -c "print(f'{$bytes / 1e6 / max($t_long, 0.001):.0f}')")
printf '%-8s %12s bytes  %6.2f s  %6s MB/s  peak RSS %6.1f MiB\n' hour "$bytes" "$t_long" "$mbs" \
    "$(python3 -c "print($rss_long/1024)")"
printf '%-8s %12s bytes  %6.2f s  %6s       peak RSS %6.1f MiB\n' tenmin "$(stat -c %s "$short")" "$t_short" "" \
    "$(python3 -c "print($rss_short/1024)")"
"$bin" recover "$long" --reference "$reference" -o "$out" 2>&1 | grep -E "recovered|skipped|ambiguous" || true
verdict=PASS
python3 -c "import sys; sys.exit(0 if $mbs >= 300 else 1)" || verdict=FAIL
python3 -c "import sys; sys.exit(0 if $rss_long <= 1.5 * $rss_short else 1)" || verdict=FAIL
echo "$verdict (targets: >= 300 MB/s on one core; hour's peak RSS <= 1.5x ten minutes')"
[ "$verdict" = PASS ]
