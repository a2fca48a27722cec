#!/usr/bin/env bash
# Live HLS under SIGKILL: livemux against FFmpeg's hls muxer, killed at the same moments.
#
# A 60 s source (FFmpeg testsrc2 + sine, 640x360 H.264 with a keyframe every 2 s, AAC) is
# played at real time (`ffmpeg -re`) into each writer:
#   livemux  ffmpeg -re -i SRC -c copy -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof - \
#              | livemux remux - --to hls -o DIR
#   ffmpeg   ffmpeg -re -i SRC -c copy -f hls -hls_playlist_type event -hls_segment_type fmp4 \
#              -hls_time 2 DIR/stream.m3u8
# KILLS runs of each (default 20, all at once), each writer killed with SIGKILL at its own
# moment (uniform in 1..MAX_KILL_S s, the same moments for both; RANDOM seeded). Then
# bench/hls_check.py checks every directory: the media playlist is there and parses, every
# file it names is complete, ffprobe reads it (no playlist at all: "empty", killed before
# the first segment was complete). One run of each writer under strace counts
# its fsync/fdatasync calls (durability against a power cut, which a kill does not test).
#
#   bench/hls-kill.sh                 # KILLS=20 MAX_KILL_S=20
#   KILLS=5 MAX_KILL_S=8 bench/hls-kill.sh
#   LIVEMUX_BIN=/path/livemux bench/hls-kill.sh
# Prints each tool's count of valid, invalid and empty directories; details in
# bench/out/hls-kill/. Exit 0 when no livemux directory is invalid.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "unknown argument: $1 (settings are environment variables; see --help)" >&2; exit 2 ;;
esac
kills="${KILLS:-20}"
max_kill="${MAX_KILL_S:-20}"
out="$root/bench/out/hls-kill"
rm -rf "$out"
mkdir -p "$out"
src="$root/bench/out/hls-src-60s.mp4"
if [ ! -f "$src" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t 60 -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -b:a 96k "$src"
fi
if [ -n "${LIVEMUX_BIN:-}" ]; then
    bin="$LIVEMUX_BIN"
else
    (cd "$root" && cargo build --release --quiet)
    bin="$root/target/release/livemux"
fi

RANDOM=1616
moments=()
for ((i = 0; i < kills; i++)); do
    moments+=("$(( 1000 + RANDOM % ((max_kill - 1) * 1000) ))")
done

feed() { ffmpeg -nostdin -v error -re -i "$src" -c copy -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -; }

# Starts one run of $1 (livemux|ffmpeg) into $2 in the background ($! is its writer, or
# the pipeline's last process: livemux).
start() {
    local tool=$1 dir=$2
    mkdir -p "$dir"
    if [ "$tool" = livemux ]; then
        # The feeder dies of SIGPIPE once livemux is killed.
        feed 2>/dev/null | "$bin" remux - --to hls -o "$dir" >/dev/null 2>"$dir.log" &
    else
        ffmpeg -nostdin -v error -re -i "$src" -c copy -f hls -hls_playlist_type event -hls_segment_type fmp4 \
            -hls_time 2 "$dir/stream.m3u8" >/dev/null 2>"$dir.log" &
    fi
}

for tool in livemux ffmpeg; do
    pids=()
    t0=$(date +%s%3N)
    for ((i = 0; i < kills; i++)); do
        start "$tool" "$out/$tool-$i"
        pids+=("$!")
    done
    # Kill each at its moment, in order of the moments.
    order=$(for i in "${!moments[@]}"; do echo "${moments[$i]} $i"; done | sort -n)
    while read -r at i; do
        now=$(date +%s%3N)
        wait_ms=$(( t0 + at - now ))
        [ "$wait_ms" -gt 0 ] && sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
    done <<< "$order"
    wait || true
    pkill -f -- "-re -i $src" || true
done 2>/dev/null   # the shell's "Killed" job notices

dirs_of() { for ((i = 0; i < kills; i++)); do echo "$out/$1-$i"; done; }
# shellcheck disable=SC2046
python3 "$root/bench/hls_check.py" stream.m3u8 $(dirs_of livemux) > "$out/livemux.json"
# shellcheck disable=SC2046
python3 "$root/bench/hls_check.py" stream.m3u8 $(dirs_of ffmpeg) > "$out/ffmpeg.json"

# fsync calls of one uninterrupted 10 s run each.
short="$out/short.mp4"
ffmpeg -nostdin -v error -y -i "$src" -t 10 -c copy "$short"
strace -f -qq -e trace=fsync,fdatasync -o "$out/livemux.strace" \
    "$bin" remux "$short" --to hls -o "$out/strace-livemux" 2>/dev/null
strace -f -qq -e trace=fsync,fdatasync -o "$out/ffmpeg.strace" \
    ffmpeg -nostdin -v error -i "$short" -c copy -f hls -hls_playlist_type event -hls_segment_type fmp4 \
    -hls_time 2 "$out/strace-ffmpeg.m3u8" 2>/dev/null
syncs() { grep -cE 'f(data)?sync\(' "$1" || true; }

summary() {
    tail -1 "$out/$1.json" | python3 -c 'import json,sys; s=json.load(sys.stdin)
print("%d valid, %d invalid, %d empty" % (s["valid"], s["invalid"], s["empty"]))'
}
echo "kill moments (ms): ${moments[*]}"
echo "(empty: killed before the first segment was complete, no playlist yet)"
printf '%-8s %-36s %s\n' tool "directories after SIGKILL" "fsync+fdatasync calls (10 s run)"
printf '%-8s %-36s %s\n' livemux "$(summary livemux)" "$(syncs "$out/livemux.strace")"
printf '%-8s %-36s %s\n' ffmpeg "$(summary ffmpeg)" "$(syncs "$out/ffmpeg.strace")"
grep -h '"valid": false' "$out/livemux.json" "$out/ffmpeg.json" | grep -v '"empty"' | head -20 || true
summary livemux | grep -q ' 0 invalid'

