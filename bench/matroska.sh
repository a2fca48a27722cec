#!/usr/bin/env bash
# livemux against FFmpeg on Matroska input: wall-clock time and peak RSS of
#   WebM -> WebM    livemux remux IN -o OUT --to webm --durability none
#                   ffmpeg -i IN -map 0 -c copy -f webm OUT
#   WebM -> fMP4    livemux remux IN -o OUT --to fmp4 --durability none
#                   ffmpeg -i IN -map 0 -c copy -movflags +frag_keyframe+empty_moov+default_base_moof OUT
# on a large live WebM (VP9 + Opus, unknown sizes, no Cues): the 4-second FFmpeg fixture of
# tests/fixtures/generated looped LOOPS times (default 600: 40 minutes, ~190 MB).
# Median of RUNS runs (default 3), outputs on /dev/shm, input in the page cache.
# Targets (issue 4): livemux/ffmpeg wall time <= 0.5 and peak RSS <= 0.5. Exit 0 on PASS.
set -euo pipefail
shopt -s inherit_errexit
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${BENCH_DIR:-$root/bench/out}"; mkdir -p "$dir"
loops="${LOOPS:-600}"; runs="${RUNS:-3}"
(cd "$root" && cargo build --release --quiet)
bash "$root/scripts/make-fixtures.sh" "$root/tests/fixtures/generated" >/dev/null
livemux=$(mktemp /tmp/livemux-bench-bin.XXXXXX); cp "$root/target/release/livemux" "$livemux"; chmod 755 "$livemux"
out="/dev/shm/livemux-mkv-bench-$$"
trap 'rm -f "$out".* "$livemux"' EXIT
in="$dir/live-vp9-opus-$loops.webm"
if [ ! -s "$in" ]; then
    echo "== generating $in"
    ffmpeg -nostdin -v error -y -stream_loop "$loops" -i "$root/tests/fixtures/generated/vp9_opus_live.webm" \
        -map 0 -c copy -f webm -live 1 "$in"
fi
measure() {
    local f; f=$(mktemp)
    /usr/bin/time -o "$f" -f '%e %M' "$@" || { cat "$f" >&2; rm -f "$f"; return 1; }
    tail -n 1 "$f"; rm -f "$f"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
packets() { ffprobe -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | awk '{s+=$1} END {print s}'; }
run() {  # run KIND TOOL -> "SECONDS KIB"
    rm -f "$out".*
    case "$1/$2" in
        webm/livemux) measure "$livemux" remux "$in" -o "$out.webm" --to webm --durability none ;;
        webm/ffmpeg)  measure ffmpeg -nostdin -v error -y -i "$in" -map 0 -c copy -f webm "$out.webm" ;;
        fmp4/livemux) measure "$livemux" remux "$in" -o "$out.mp4" --to fmp4 --durability none ;;
        fmp4/ffmpeg)  measure ffmpeg -nostdin -v error -y -i "$in" -map 0 -c copy \
                          -movflags +frag_keyframe+empty_moov+default_base_moof "$out.mp4" ;;
    esac
}
cat "$in" > /dev/null
want=$(packets "$in")
verdict=PASS
printf '%s: %.0f MiB, %s packets\n' "$(basename "$in")" "$(echo "$(stat -c %s "$in") / 1048576" | bc -l)" "$want"
for kind in webm fmp4; do
    "$livemux" remux "$in" -o "$out.check" --to "$kind" --durability none
    got=$(packets "$out.check"); rm -f "$out.check"
    [ "$got" = "$want" ] || { echo "!! $kind: $got packets, input has $want"; verdict=FAIL; }
    lt=(); lr=(); ft=(); fr=()
    for _ in $(seq "$runs"); do
        read -r t r <<<"$(run "$kind" livemux)"; lt+=("$t"); lr+=("$r")
        read -r t r <<<"$(run "$kind" ffmpeg)"; ft+=("$t"); fr+=("$r")
    done
    l_t=$(median "${lt[@]}"); f_t=$(median "${ft[@]}"); l_r=$(median "${lr[@]}"); f_r=$(median "${fr[@]}")
    tr=$(echo "$l_t / $f_t" | bc -l); rr=$(echo "$l_r / $f_r" | bc -l)
    printf 'webm -> %-5s livemux %6.2f s %7.1f MiB | ffmpeg %6.2f s %7.1f MiB | time ratio %.2f, RSS ratio %.2f\n' \
        "$kind" "$l_t" "$(echo "$l_r/1024" | bc -l)" "$f_t" "$(echo "$f_r/1024" | bc -l)" "$tr" "$rr"
    [ "$(echo "$tr <= 0.5 && $rr <= 0.5" | bc -l)" = 1 ] || verdict=FAIL
done
echo "$verdict"
[ "$verdict" = PASS ]
