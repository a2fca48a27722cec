#!/usr/bin/env bash
# livemux against FFmpeg: wall-clock time and peak memory of remuxing a progressive MP4
# into fragmented MP4.
#
# What it measures, on two FFmpeg-made inputs:
#   big-1080p   ~1 GiB, 1080p30 H.264 + AAC, ~7 min, progressive (moov first: faststart)
#   long-360p   2 h, 360p30 H.264 + AAC 48 kHz, moov at the end (~550,000 packets)
# the commands
#   livemux remux IN -o OUT --to fmp4 --durability none
#   ffmpeg -nostdin -v error -y -i IN -map 0 -c copy \
#          -movflags +frag_keyframe+empty_moov+default_base_moof OUT
# each run 3 times (RUNS; median reported), outputs on tmpfs (/dev/shm, deleted after each run),
# input in the page cache (one untimed `cat IN > /dev/null` first). Elapsed seconds and
# peak RSS come from /usr/bin/time -f '%e %M' (or a python3 fallback if it is missing).
# The livemux output of each input is checked once with ffprobe to hold as many packets
# as the input. Targets: livemux/ffmpeg time <= 0.5 and peak-RSS ratio <= 0.5 on both.
#
# Run from anywhere:
#   bench/vs-ffmpeg.sh            # full size; generating the inputs takes several minutes
#   bench/vs-ffmpeg.sh --small    # tiny inputs (seconds), a smoke run of the script itself
#   BENCH_DIR=/some/dir bench/vs-ffmpeg.sh   # where inputs live (default bench/out/)
#   RUNS=5 bench/vs-ffmpeg.sh     # more timed runs (default 3); tmpfs timings are noisy
#   LIVEMUX_BIN=/path/livemux bench/vs-ffmpeg.sh   # time this binary instead of building one
#                                 # (before/after comparisons of two builds on a quiet machine)
# Inputs are reused when present (delete them to regenerate). Exit status 0 on PASS,
# 1 on FAIL or error.
set -euo pipefail
shopt -s inherit_errexit   # failures inside $(...) stop the script too

root="$(cd "$(dirname "$0")/.." && pwd)"
small=0
for arg in "$@"; do
    case "$arg" in
        --small) small=1 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
dir="${BENCH_DIR:-$root/bench/out}"
mkdir -p "$dir"
runs="${RUNS:-3}"   # timed runs per tool and input; the median is reported

# --- Inputs -------------------------------------------------------------------------------
if [ "$small" = 1 ]; then
    big_secs=5;   long_secs=20;   tag=small
else
    # 20 Mbit/s video + 128 kbit/s audio: 427 s is ~1 GiB.
    big_secs=427; long_secs=7200; tag=full
fi
big="$dir/big-1080p-$tag.mp4"
long="$dir/long-360p-$tag.mp4"

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }

if [ -z "${LIVEMUX_BIN:-}" ]; then
    echo "== building livemux (cargo build --release)"
    (cd "$root" && cargo build --release --quiet)
fi
# Time a private copy, so that a rebuild of target/ during the run cannot swap the binary.
livemux=$(mktemp /tmp/livemux-bench-bin.XXXXXX)
shm_out="/dev/shm/livemux-bench-$$"   # outputs: $shm_out-livemux.mp4 etc.
trap 'rm -f "$shm_out"-*.mp4 "$livemux"' EXIT
cp "${LIVEMUX_BIN:-$root/target/release/livemux}" "$livemux"; chmod 755 "$livemux"
echo "== timing livemux built from $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')," \
     "binary sha256 $(sha256sum "$livemux" | cut -c1-12); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

gen_start=$(date +%s.%N)
if [ ! -s "$big" ]; then
    echo "== generating $big (${big_secs}s of 1080p30, ~20 Mbit/s, faststart)"
    ff -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
       -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$big_secs" \
       -c:v libx264 -preset ultrafast -b:v 20M -maxrate 20M -bufsize 40M -g 60 -pix_fmt yuv420p \
       -c:a aac -b:a 128k -movflags +faststart "$big.tmp.mp4"
    mv "$big.tmp.mp4" "$big"
fi
if [ ! -s "$long" ]; then
    echo "== generating $long (${long_secs}s of 360p30, moov at the end)"
    ff -f lavfi -i "testsrc2=size=640x360:rate=30" \
       -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$long_secs" \
       -c:v libx264 -preset ultrafast -b:v 200k -g 60 -pix_fmt yuv420p \
       -c:a aac -b:a 64k -ar 48000 "$long.tmp.mp4"
    mv "$long.tmp.mp4" "$long"
fi
gen_end=$(date +%s.%N)
printf '== input generation took %.1f s (0 when reused)\n' "$(echo "$gen_end - $gen_start" | bc -l)"

# --- Measuring ----------------------------------------------------------------------------
# measure CMD... -> prints "SECONDS PEAK_RSS_KIB"; fails if CMD fails.
if [ -x /usr/bin/time ]; then
    measure() {
        local f; f=$(mktemp)
        if ! /usr/bin/time -o "$f" -f '%e %M' "$@"; then
            cat "$f" >&2; rm -f "$f"; return 1
        fi
        tail -n 1 "$f"; rm -f "$f"
    }
else
    measure() {
        python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[1:])
dt = time.monotonic() - t0
# ru_maxrss of RUSAGE_CHILDREN: the largest of the waited-for children, in KiB on Linux.
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if rc != 0:
    sys.exit(rc)
print(f"{dt:.2f} {rss}")
PY
    }
fi

count_packets() {  # total packets of all streams
    ffprobe -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" \
        | awk -F, '{ s += $1 } END { print s + 0 }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }


# run_tool NAME IN -> "SECONDS RSS_KIB" of one run, output deleted afterwards.
run_tool() {
    local out="$shm_out-$1.mp4" r
    rm -f "$out"
    case "$1" in
        livemux) r=$(measure "$livemux" remux "$2" -o "$out" --to fmp4 --durability none) ;;
        ffmpeg)  r=$(measure ffmpeg -nostdin -v error -y -i "$2" -map 0 -c copy \
                         -movflags +frag_keyframe+empty_moov+default_base_moof "$out") ;;
    esac
    rm -f "$out"
    echo "$r"
}

rows=()
verdict=PASS
for in in "$big" "$long"; do
    name=$(basename "$in" .mp4)
    size=$(stat -c %s "$in")
    echo "== $name: counting packets"
    pkts=$(count_packets "$in")

    # Correctness, once: the livemux output holds every packet.
    "$livemux" remux "$in" -o "$shm_out-check.mp4" --to fmp4 --durability none
    out_pkts=$(count_packets "$shm_out-check.mp4")
    rm -f "$shm_out-check.mp4"
    if [ "$out_pkts" != "$pkts" ]; then
        echo "!! $name: livemux output has $out_pkts packets, input has $pkts" >&2
        verdict=FAIL
    fi

    cat "$in" > /dev/null   # warm the page cache, untimed
    lt=(); lr=(); ft=(); fr=()
    for i in $(seq "$runs"); do
        res=$(run_tool livemux "$in"); read -r t r <<<"$res"; lt+=("$t"); lr+=("$r")
        res=$(run_tool ffmpeg "$in");  read -r t r <<<"$res"; ft+=("$t"); fr+=("$r")
        echo "   run $i: livemux ${lt[-1]} s ${lr[-1]} KiB | ffmpeg ${ft[-1]} s ${fr[-1]} KiB"
    done
    l_t=$(median "${lt[@]}"); l_r=$(median "${lr[@]}")
    f_t=$(median "${ft[@]}"); f_r=$(median "${fr[@]}")
    t_ratio=$(echo "$l_t / $f_t" | bc -l)
    r_ratio=$(echo "$l_r / $f_r" | bc -l)
    ok=$(echo "$t_ratio <= 0.5 && $r_ratio <= 0.5" | bc -l)
    [ "$ok" = 1 ] || verdict=FAIL
    rows+=("$(printf '%-18s %9.1f %9d %10.2f %9.2f %7.2f %11.1f %10.1f %7.2f' \
        "$name" "$(echo "$size / 1048576" | bc -l)" "$pkts" "$l_t" "$f_t" "$t_ratio" \
        "$(echo "$l_r / 1024" | bc -l)" "$(echo "$f_r / 1024" | bc -l)" "$r_ratio")")
done

echo
printf '%-18s %9s %9s %10s %9s %7s %11s %10s %7s\n' input "size MiB" packets \
    "livemux s" "ffmpeg s" "t ratio" "livemux MiB" "ffmpeg MiB" "RSS rat"
printf '%s\n' "${rows[@]}"
echo "(median of $runs runs; peak RSS; outputs on /dev/shm; targets: time ratio <= 0.5 and RSS ratio <= 0.5)"
echo "$verdict"
[ "$verdict" = PASS ]
