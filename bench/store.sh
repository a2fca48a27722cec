#!/usr/bin/env bash
# livemux serve --store s3://BUCKET/PREFIX against a real S3-compatible server (moto_server):
# what one long upload costs in store traffic, how long its last PATCH takes, and whether
# the object it leaves in the store is the recording.
#
# The input: a recording as a phone or browser uploads it (MediaRecorder-style fragmented
# MP4: H.264 320x180 25 fps ~400 kbit/s, keyframe every 2 s, + AAC 48 kHz 64 kbit/s), made
# once with FFmpeg lavfi (testsrc2 + sine, x264 ultrafast) and cached in target/bench-media/
# (an hour takes a minute or two to encode on 2 cores).
# The run: a fresh moto_server (target/py/bin, the venv with moto) with a bucket, a fresh
# `livemux serve --store s3://livemux-bench/rec` (private copy of target/release/livemux,
# anonymous on loopback, temp data dir), and one tus upload of the whole file: POST with
# Upload-Defer-Length: 1, then PATCHes of file_size / duration bytes each (~1 s of media),
# sent back to back as fast as the server answers (not paced), the last one with
# Upload-Length. The server finalizes inside that last PATCH and composes the final object
# in the store before answering, so its latency is the time from the last PATCH to the
# final object. (The script also lists the store every 0.1 s while that PATCH is in flight,
# to show when the object itself appeared: the answer may wait for more, e.g. the cleanup
# of the upload's in/ and out/ objects.)
#
# Printed: input bytes; bytes uploaded to the store (input log + output) and per input
# byte; output uploaded per output byte; bytes the store copied itself (UploadPartCopy);
# bytes downloaded (goal 0); the final object's size; the last PATCH's latency; upload wall
# time and PATCH p50/p99 (all PATCHes but the last); peak RSS (VmHWM) of livemux serve and
# of moto_server. All byte counts are livemux's /metrics (livemux_store_bytes_total).
#
# Why about 2 bytes uploaded per input byte: a PATCH is acknowledged only once its bytes
# are in the store, and at that moment they are mostly inside a fragment the recording has
# not written yet, so every input byte goes up once to the upload's input log (in/<seq>).
# The output goes up a second time, as segments of --store-part-bytes (out/...) while
# recording, and the final object is composed from those segments by the store itself
# (UploadPartCopy: "copied", no bytes through livemux); only the head (with the index,
# rewritten at the end) and the tail are uploaded again. Output ≈ input in size, hence
# ≈ 1 (input log) + ≈ 1 (output) + head/tail, and nothing downloaded.
#
# Checked: the object, downloaded with curl --aws-sigv4, is a regular MP4 (top-level moov,
# no moof), ffprobe's duration is the input's (±1 s), and its packets are the input's:
# `ffmpeg -i F -map 0 -c copy -f framemd5` of the input and of the object, compared stream
# by stream (dts, pts, duration, size, md5; a packet's duration may differ only where the
# input has a gap after it and the object's duration reaches the next packet, as a regular
# MP4's stts must). OK, or the differences and exit 1.
#
#   bench/store.sh                         # 60 minutes, default part size (8 MiB)
#   bench/store.sh --minutes 5             # a shorter recording
#   bench/store.sh --part-bytes 5242880    # --store-part-bytes (below 5 MiB, moto is told
#                                          # S3_UPLOAD_PART_MIN_SIZE to match)
#   LIVEMUX_BIN=/path/livemux bench/store.sh     # another binary (no build is done here)
#   KEEP=1 bench/store.sh                  # keep the temp dir (logs, data dir, object)
#   LIVEMUX_SERVE_ARGS="-v" bench/store.sh # extra flags for livemux serve (log in the temp dir)
# Needs ffmpeg, ffprobe, curl (>= 7.75, --aws-sigv4), python3, target/py (moto).
# Exit 0 when the object checks out, 1 otherwise or on error.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
minutes=60
part_bytes=""
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="${2:?--minutes N}"; shift 2 ;;
        --minutes=*) minutes="${1#*=}"; shift ;;
        --part-bytes) part_bytes="${2:?--part-bytes N}"; shift 2 ;;
        --part-bytes=*) part_bytes="${1#*=}"; shift ;;
        -h|--help) sed -n '2,51p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$minutes" =~ ^[0-9]+$ ]] && [ "$minutes" -gt 0 ] || { echo "--minutes: a whole number > 0" >&2; exit 2; }
[ -z "$part_bytes" ] || [[ "$part_bytes" =~ ^[0-9]+$ ]] || { echo "--part-bytes: a number of bytes" >&2; exit 2; }

py="$root/target/py/bin/python3"
moto="$root/target/py/bin/moto_server"
helper="$root/bench/store_upload.py"
for tool in ffmpeg ffprobe curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/store.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$moto" ] || { echo "bench/store.sh: $moto is missing (a venv with moto[server])" >&2; exit 1; }
src_bin="${LIVEMUX_BIN:-$root/target/release/livemux}"
[ -x "$src_bin" ] || { echo "bench/store.sh: $src_bin is missing (cargo build --release)" >&2; exit 1; }

# ---- the input, cached
media="$root/target/bench-media"
mkdir -p "$media"
input="$media/store-${minutes}min-320x180.mp4"
if [ ! -f "$input" ]; then
    echo "== encoding $minutes min of 320x180 H.264 + AAC, fragmented MP4 -> $input"
    t0=$(date +%s)
    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=320x180:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t "$(( minutes * 60 ))" -pix_fmt yuv420p -c:v libx264 -preset ultrafast -g 50 -b:v 400k \
        -c:a aac -b:a 64k -movflags +frag_keyframe+empty_moov+default_base_moof -f mp4 "$input.tmp"
    mv "$input.tmp" "$input"
    echo "   encoded in $(( $(date +%s) - t0 )) s"
fi

# ---- temp dir, processes, cleanup
work=$(mktemp -d "$root/target/bench-store.XXXXXX")
moto_pid=""
serve_pid=""
cleanup() {
    local pid
    for pid in "$serve_pid" "$moto_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "== kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a private copy, so that a rebuild of target/ during the run cannot swap the binary.
bin="$work/livemux"
cp "$src_bin" "$bin"
chmod 755 "$bin"

fail() {
    echo "!! $*" >&2
    for log in "$work/serve.log" "$work/moto.log"; do
        if [ -s "$log" ]; then
            echo "-- last lines of $(basename "$log"):" >&2
            tail -n 30 "$log" >&2
        fi
    done
    exit 1
}
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

bucket=livemux-bench
prefix=rec
moto_port=$("$py" "$helper" free-port)
endpoint="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
s3() { curl -sS --fail --aws-sigv4 "aws:amz:$AWS_REGION:s3" -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }

min_part=$(( 5 << 20 ))
if [ -n "$part_bytes" ] && [ "$part_bytes" -lt "$min_part" ]; then
    S3_UPLOAD_PART_MIN_SIZE="$part_bytes" "$moto" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
else
    "$moto" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
fi
moto_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "$endpoint/" && break
    kill -0 "$moto_pid" 2>/dev/null || fail "moto_server exited"
    sleep 0.1
done
s3 -o /dev/null -X PUT "$endpoint/$bucket" || fail "could not create bucket $bucket"

serve_args=(serve --listen 127.0.0.1:0 --data-dir "$work/data" --store "s3://$bucket/$prefix" --no-progress)
[ -z "$part_bytes" ] || serve_args+=(--store-part-bytes "$part_bytes")
# shellcheck disable=SC2206  # word splitting wanted: a list of flags
[ -z "${LIVEMUX_SERVE_ARGS:-}" ] || serve_args+=($LIVEMUX_SERVE_ARGS)
"$bin" "${serve_args[@]}" >"$work/serve.out" 2>"$work/serve.log" &
serve_pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/.*livemux serve: listening on http:\/\/\([^ ]*\).*/\1/p' "$work/serve.log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$serve_pid" 2>/dev/null || fail "livemux serve exited"
    sleep 0.1
done
[ -n "$addr" ] || fail "livemux serve did not say where it listens"
base="http://$addr"

size=$(stat -c %s "$input")
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$input")
case "$duration" in ''|N/A|0|0.0*) duration=$(( minutes * 60 )) ;; esac
pieces=$(awk -v d="$duration" 'BEGIN { n = int(d + 0.5); print (n < 1 ? 1 : n) }')
echo "== livemux $(sha256sum "$bin" | cut -c1-12) serve on $base, store s3://$bucket/$prefix" \
     "(moto $("$py" -c 'import moto; print(moto.__version__)') on $endpoint)," \
     "part bytes ${part_bytes:-default}; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== uploading $input: $size bytes, ${duration} s, in $pieces PATCHes of ~$(( (size + pieces - 1) / pieces )) bytes"

"$py" "$helper" upload "$base" "$input" "$pieces" "$endpoint/$bucket?list-type=2&prefix=$prefix/" >"$work/upload.json" 2>"$work/upload.err" ||
    fail "upload failed: $(cat "$work/upload.err")"
serve_hwm=$(hwm_kib "$serve_pid")
j() { "$py" -c 'import json, sys; v = json.load(open(sys.argv[1])); [v := v[k] for k in sys.argv[2:]]; print(v)' "$work/upload.json" "$@"; }

state=$(j status state 2>/dev/null || echo "?")
[ "$state" = finished ] || fail "status after the last PATCH: $(j status)"
out_key=$(j status output)
out_bytes_status=$(j status output_bytes)
curl -sS --fail "$base/metrics" >"$work/metrics.txt" || fail "GET /metrics failed"
metric() { awk -v w="what=\"$1\"" 'index($0, "livemux_store_bytes_total{" w "}") == 1 { print $2 }' "$work/metrics.txt"; }
in_up=$(metric input_uploaded)
out_up=$(metric output_uploaded)
copied=$(metric copied)
down=$(metric downloaded)
[ -n "$in_up" ] && [ -n "$out_up" ] && [ -n "$copied" ] && [ -n "$down" ] ||
    fail "livemux_store_bytes_total missing in /metrics: $(grep livemux_store "$work/metrics.txt" || true)"

# The final object: the key status names, under the prefix unless it has it already.
key="$out_key"
case "$key" in "$prefix"/*) ;; *) key="$prefix/$out_key" ;; esac
# The input log and the segments are deleted after the answer (in the background): wait for
# that (a listing shows a thousand keys a page), then list what is left beside the object.
clean_start=$(date +%s.%N)
for _ in $(seq 600); do
    s3 -o "$work/list.xml" "$endpoint/$bucket?list-type=2&prefix=${key%/*}/" || fail "could not list the bucket"
    "$py" "$helper" list-keys <"$work/list.xml" >"$work/keys.txt"
    [ "$(wc -l <"$work/keys.txt")" -le 2 ] && break
    sleep 0.1
done
clean_s=$(awk -v a="$clean_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
grep -q "^$key " "$work/keys.txt" || fail "no object $key in the store; it has: $(head -5 "$work/keys.txt")"
obj_size=$(awk -v k="$key" '$1 == k { print $2 }' "$work/keys.txt")
left=$(grep -vc "^$key " "$work/keys.txt" || true)
left_bytes=$(grep -v "^$key " "$work/keys.txt" | awk '{ s += $2 } END { print s + 0 }')

s3 -o "$work/object.mp4" "$endpoint/$bucket/$key" || fail "could not download $key"
moto_hwm=$(hwm_kib "$moto_pid")
serve_hwm_end=$(hwm_kib "$serve_pid")
[ "$serve_hwm_end" -gt "$serve_hwm" ] && serve_hwm=$serve_hwm_end
kill -0 "$serve_pid" 2>/dev/null || fail "livemux serve is gone"

in_total=$(( in_up + out_up ))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
wall=$(j wall_s); last=$(j last_s); obj_after=$(j object_after_s); p50=$(j p50_s); p99=$(j p99_s); pmax=$(j max_s); patches=$(j patches)

echo
echo "input bytes:                          $size ($(mib "$size") MiB, $patches PATCHes)"
echo "store bytes uploaded:                 $in_total = input log $in_up + output $out_up"
echo "  per input byte:                     $(ratio "$in_total" "$size")  (input log $(ratio "$in_up" "$size"), output $(ratio "$out_up" "$size"))"
echo "output uploaded per output byte:      $(ratio "$out_up" "$obj_size")"
echo "bytes copied server-side:             $copied ($(ratio "$copied" "$obj_size") of the output; UploadPartCopy)"
echo "bytes downloaded:                     $down (goal 0)"
echo "final object:                         s3://$bucket/$key, $obj_size bytes (status output_bytes $out_bytes_status)"
echo "input log and segments removed:       ${clean_s} s after the answer (in the background)"
echo "left in the store besides it:         $left objects, $left_bytes bytes"
printf 'last PATCH latency (-> final object): %.3f s\n' "$last"
if [ "$obj_after" = None ]; then
    echo "  final object listed in the store:   not seen while the last PATCH was in flight"
else
    printf '  final object listed in the store:   %.3f s after the last PATCH was sent (listed every 0.1 s)\n' "$obj_after"
fi
printf 'upload wall time:                     %.2f s (%.1f MiB/s)\n' "$wall" "$(awk -v b="$size" -v t="$wall" 'BEGIN { print b / 1048576 / t }')"
printf 'PATCH latency (all but the last):     p50 %.1f ms, p99 %.1f ms, max %.1f ms\n' \
    "$(awk -v x="$p50" 'BEGIN { print x * 1000 }')" "$(awk -v x="$p99" 'BEGIN { print x * 1000 }')" \
    "$(awk -v x="$pmax" 'BEGIN { print x * 1000 }')"
echo "peak RSS livemux serve:               $(mib "$(( serve_hwm * 1024 ))") MiB (VmHWM)"
echo "peak RSS moto_server:                 $(mib "$(( moto_hwm * 1024 ))") MiB (VmHWM)"

# ---- checks
verdict=OK
[ "$out_bytes_status" = "$obj_size" ] || { echo "!! status output_bytes $out_bytes_status, object $obj_size bytes"; verdict=MISMATCH; }
got=$(stat -c %s "$work/object.mp4")
[ "$got" = "$obj_size" ] || { echo "!! downloaded $got bytes of a $obj_size-byte object"; verdict=MISMATCH; }
read -r -a box_counts < <("$py" "$helper" boxes "$work/object.mp4")
declare -A nbox=()
for ((i = 0; i + 1 < ${#box_counts[@]}; i += 2)); do nbox[${box_counts[i]}]=${box_counts[i + 1]}; done
echo "object top-level boxes:               ${box_counts[*]}"
if [ "${nbox[moov]:-0}" != 1 ] || [ "${nbox[moof]:-0}" != 0 ]; then
    echo "!! not a regular MP4 (one moov, no moof)"; verdict=MISMATCH
fi
out_duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/object.mp4" || echo N/A)
echo "duration:                             input $duration s, object $out_duration s"
awk -v a="$duration" -v b="$out_duration" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "N/A" && d <= 1) }' ||
    { echo "!! durations differ by more than 1 s"; verdict=MISMATCH; }
ffmpeg -nostdin -v error -i "$input" -map 0 -c copy -f framemd5 - >"$work/input.framemd5"
ffmpeg -nostdin -v error -i "$work/object.mp4" -map 0 -c copy -f framemd5 - >"$work/object.framemd5"
echo "packets (framemd5, input vs object):"
"$py" "$helper" framemd5-cmp "$work/input.framemd5" "$work/object.framemd5" || verdict=MISMATCH
if grep -qE '^[^ ]+ +(ERROR|WARN) |panicked' "$work/serve.log"; then
    echo "!! livemux serve logged warnings or errors (last 10):"
    grep -E '^[^ ]+ +(ERROR|WARN) |panicked' "$work/serve.log" | tail -n 10
fi
echo "$verdict"
[ "$verdict" = OK ]
