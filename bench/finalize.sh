#!/usr/bin/env bash
# Finalize speed: how long `livemux finalize` takes to turn a 2-hour fragmented recording
# (~550,000 packets) into a regular MP4 in place, and how many bytes it writes.
#
# Inputs (made once with FFmpeg and livemux, reused when present, in bench/out/):
#   finalize-minute-360p   one minute, 640x360 at 30 fps H.264 (x264 veryfast, B-frames,
#                          ~800 kbit/s) + AAC 48 kHz stereo 128 kbit/s
#   finalize-2h-frag       that minute repeated to 2 hours with `-stream_loop` (stream copy),
#                          remuxed by `livemux remux --to fmp4` (1-2 s fragments): what a
#                          2-hour recording left fragmented looks like (~840 MB, ~553,000
#                          packets: 216,000 video, 337,500 audio)
# Generating them takes a few minutes (the minute is encoded once).
#
# Measured: `livemux finalize FILE` (fsync after each write, as always), RUNS (3) runs, the
# median reported; before each run the file is put back as it was (its first 64 MiB, which
# hold every byte finalize overwrites, and its length). The page cache is warm. Printed:
# seconds, peak RSS, bytes written and their share of the file. Checked once: the result
# holds as many packets as the recording (ffprobe). Also printed, from a `--to mp4` remux
# of the same 2 hours with `--reserve-ms 7200000`: the bytes its clean stop writes when the
# index goes first (faststart).
# Targets: < 1 s and < 1% of the file's bytes.
#
#   bench/finalize.sh            # 2 hours
#   bench/finalize.sh --small    # 2 minutes: a smoke run of the script
#   BENCH_DIR=/some/dir RUNS=5 bench/finalize.sh
# Exit status 0 on PASS, 1 on FAIL or error.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
small=0
for arg in "$@"; do
    case "$arg" in
        --small) small=1 ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
dir="${BENCH_DIR:-$root/bench/out}"
mkdir -p "$dir"
runs="${RUNS:-3}"
if [ "$small" = 1 ]; then loops=1; tag=small; else loops=119; tag=2h; fi

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
count_packets() {
    ffprobe -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" \
        | awk -F, '{ s += $1 } END { print s + 0 }'
}

echo "== building livemux"
(cd "$root" && cargo build --release --quiet)
bin=$(mktemp /tmp/livemux-bench-bin.XXXXXX)
head_copy=$(mktemp /tmp/livemux-bench-head.XXXXXX)
trap 'rm -f "$bin" "$head_copy" "$dir/finalize-$tag-faststart.mp4"' EXIT
cp "$root/target/release/livemux" "$bin"; chmod 755 "$bin"

minute="$dir/finalize-minute-360p.mp4"
frag="$dir/finalize-$tag-frag.mp4"
if [ ! -f "$minute" ]; then
    echo "== encoding one minute of 360p"
    ff -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
       -ac 2 -c:v libx264 -preset veryfast -bf 2 -b:v 800k -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k "$minute"
fi
if [ ! -f "$frag" ]; then
    echo "== building $frag ($(( loops + 1 )) minutes, fragmented by livemux)"
    long="$dir/finalize-$tag-progressive.mp4"
    ff -stream_loop "$loops" -i "$minute" -map 0 -c copy "$long"
    "$bin" remux "$long" --to fmp4 --durability none -o "$frag.tmp"
    mv "$frag.tmp" "$frag"
    rm -f "$long"
fi
size=$(stat -c %s "$frag")
head -c $(( 64 << 20 )) "$frag" > "$head_copy"
restore() {
    dd if="$head_copy" of="$frag" conv=notrunc status=none
    truncate -s "$size" "$frag"
}
pkts=$(count_packets "$frag")
echo "== $frag: $size bytes, $pkts packets"

cat "$frag" > /dev/null
times=(); rss=(); line=""
for i in $(seq "$runs"); do
    restore
    out=$(/usr/bin/time -f 'TIME %e %M' "$bin" finalize "$frag" 2>&1)
    read -r _ t r < <(grep '^TIME' <<<"$out")
    line=$(grep 'finalized' <<<"$out")
    times+=("$t"); rss+=("$r")
    echo "   run $i: $t s, peak RSS $r KiB"
done
grep '^note' <<<"$out" || true
echo "   $line"
written=$(sed -E 's/.*: ([0-9]+) bytes written.*/\1/' <<<"$line")
out_pkts=$(count_packets "$frag")
restore
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
t=$(median "${times[@]}"); r=$(median "${rss[@]}")
share=$(python3 -c "print(f'{$written * 100 / $size:.3f}')")

echo "== the same recording with --to mp4 --reserve-ms 7200000 (index first at the clean stop)"
fast="$dir/finalize-$tag-faststart.mp4"
"$bin" remux "$frag" --to mp4 --reserve-ms 7200000 --durability none -o "$fast" 2>&1 | grep -E 'note' || true
rm -f "$fast"

echo
printf 'finalize %s: %.2f s (median of %s), peak RSS %.1f MiB, %s bytes written = %s%% of %s bytes, %s packets\n' \
    "$tag" "$t" "$runs" "$(python3 -c "print($r / 1024)")" "$written" "$share" "$size" "$pkts"
verdict=PASS
if [ "$out_pkts" != "$pkts" ]; then
    echo "!! the finalized file has $out_pkts packets, the recording $pkts" >&2
    verdict=FAIL
fi
python3 -c "import sys; sys.exit(0 if $t < 1 and $written * 100 < $size else 1)" || verdict=FAIL
echo "$verdict (targets: < 1 s, < 1% of the file written)"
[ "$verdict" = PASS ]
