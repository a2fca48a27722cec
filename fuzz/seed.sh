#!/bin/sh
# Seeds the fuzz corpora.
#
#   fuzz/seed.sh              fuzz/corpus/TARGET/ = the committed seeds (fuzz/seeds/TARGET/)
#                             plus larger cuts of tests/fixtures (not committed)
#   fuzz/seed.sh --committed  regenerates fuzz/seeds/ from tiny recordings made here with
#                             ffmpeg and mkvmerge, and small cuts of tests/fixtures
#                             (keep it under 1 MB: `du -sh fuzz/seeds`)
#
# Only POSIX sh, coreutils and grep are needed, plus ffmpeg/mkvmerge for --committed.
set -eu
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FIX=$ROOT/tests/fixtures

TARGETS="mp4_walker mp4_demux mp4_moov mp4_moof mp4_finalize mp4_scan mkv_reader mkv_finalize
codec_avcc codec_hvcc codec_av1c codec_vpcc codec_aac codec_opus pipeline_file"

# --- byte helpers --------------------------------------------------------------------
size_of() { stat -c %s "$1"; }
u32() { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' \n'; }
fourcc() { dd if="$1" bs=1 skip="$2" count=4 2>/dev/null; }
# slice FILE OFFSET LEN
slice() { tail -c +"$(($2 + 1))" "$1" | head -c "$3"; }

# Top-level MP4 boxes of FILE, one "offset size type" line each.
boxes() {
    f=$1
    len=$(size_of "$f")
    off=0
    while [ $((off + 8)) -le "$len" ]; do
        size=$(u32 "$f" $off)
        type=$(fourcc "$f" $((off + 4)))
        case $size in
        0) size=$((len - off)) ;;
        1) size=$(($(u32 "$f" $((off + 8))) * 4294967296 + $(u32 "$f" $((off + 12))))) ;;
        esac
        [ "$size" -ge 8 ] || break
        echo "$off $size $type"
        off=$((off + size))
    done
}

# The first box of type TYPE anywhere in FILE whose size fits the file: "offset size".
find_box() {
    f=$1
    len=$(size_of "$f")
    for at in $(grep -obUa -- "$2" "$f" | cut -d: -f1); do
        off=$((at - 4))
        [ "$off" -ge 0 ] || continue
        size=$(u32 "$f" "$off")
        if [ "$size" -ge 8 ] && [ $((off + size)) -le "$len" ]; then
            echo "$off $size"
            return 0
        fi
    done
    return 1
}

# record FILE TYPE SKIP OUT: the body of the first TYPE box, minus SKIP bytes (version and
# flags of full boxes).
record() {
    if b=$(find_box "$1" "$2"); then
        set -- "$1" "$2" "$3" "$4" $b
        slice "$1" $(($5 + 8 + $3)) $(($6 - 8 - $3)) >"$4"
    fi
}

# moov_body FILE OUT
moov_body() {
    boxes "$1" | while read -r off size type; do
        if [ "$type" = moov ]; then
            slice "$1" $((off + 8)) $((size - 8)) >"$2"
            break
        fi
    done
}

# index_boxes FILE OUT: the moov and every moof, without the media.
index_boxes() {
    boxes "$1" | while read -r off size type; do
        case $type in moov | moof) slice "$1" "$off" "$size" ;; esac
    done >"$2"
    [ -s "$2" ] || rm -f "$2"
}

# mdat_cut FILE SELECT LEN OUT: a selector byte, then the first LEN bytes of the mdat payload.
mdat_cut() {
    boxes "$1" | while read -r off size type; do
        if [ "$type" = mdat ]; then
            {
                printf "\\$(printf %03o "$2")"
                slice "$1" $((off + 8)) "$3"
            } >"$4"
            break
        fi
    done
}

# cuts FILE DIR NAME: the file cut at 1/3 and 2/3 of its length, as a crash leaves it.
cuts() {
    len=$(size_of "$1")
    head -c $((len / 3)) "$1" >"$2/$3.cut1"
    head -c $((len * 2 / 3)) "$1" >"$2/$3.cut2"
}

# concat_chunks DIR COUNT OUT: the first COUNT browser upload chunks, joined.
concat_chunks() {
    ls "$1"/*.bin | head -n "$2" | xargs cat >"$3"
}

# --- seeds made from media files --------------------------------------------------------
from_media() {
    out=$1
    shift
    for f in "$@"; do
        n=$(basename "$f")
        case $n in
        *.mp4 | *.mov)
            cp "$f" "$out/mp4_walker/$n"
            cp "$f" "$out/mp4_demux/$n"
            moov_body "$f" "$out/mp4_moov/$n.moov"
            index_boxes "$f" "$out/mp4_moof/$n.index"
            if boxes "$f" | grep -q ' moof$'; then
                cp "$f" "$out/mp4_finalize/$n"
                cuts "$f" "$out/mp4_finalize" "$n"
            fi
            record "$f" avcC 0 "$out/codec_avcc/$n.avcC"
            record "$f" hvcC 0 "$out/codec_hvcc/$n.hvcC"
            record "$f" av1C 0 "$out/codec_av1c/$n.av1C"
            record "$f" vpcC 4 "$out/codec_vpcc/$n.vpcC"
            record "$f" esds 4 "$out/codec_aac/$n.esds"
            record "$f" dOps 0 "$out/codec_opus/$n.dOps"
            ;;
        *.mkv | *.webm)
            cp "$f" "$out/mkv_reader/$n"
            cp "$f" "$out/mkv_finalize/$n"
            cuts "$f" "$out/mkv_finalize" "$n"
            if at=$(grep -obUa OpusHead "$f" | head -n1 | cut -d: -f1) && [ -n "$at" ]; then
                slice "$f" "$at" 19 >"$out/codec_opus/$n.OpusHead"
            fi
            ;;
        esac
    done
    find "$out" -type f -empty -delete
}

pipeline_seeds() {
    out=$1/pipeline_file
    cp "$ROOT"/pipelines/*.toml "$out/"
    cat >"$out/errors.toml" <<'EOF'
[[stage]]
kind = "source"
pth = "x"

[[stage]]
kind = "mux"
format = "avi"
fragment_ms = "long"
max_fragment_ms = 1

[[stage]]
kind = "teleport"

[[stage]]
kind = "sink"
path = "-"
input = "nowhere"
EOF
    cat >"$out/set.toml" <<'EOF'
# sink.path=other.mp4
stage = [
  { kind = "source", path = "-", follow = true, idle_timeout_ms = 5000, chunk_size = 65536 },
  { kind = "probe" }, { kind = "codecpar-extract", params = "auto", reference = "r.mp4" },
  { kind = "packet-split", buffer_limit_mb = 64 }, { kind = "mux", format = "mp4", reserve_ms = 0 },
  { kind = "sink", name = "a", path = "out.mp4", durability = "none" },
  { kind = "sink", name = "a", path = "-", input = "mux" },
]
EOF
}

mkdirs() {
    for t in $TARGETS; do mkdir -p "$1/$t"; done
}

if [ "${1:-}" = --committed ]; then
    OUT=$ROOT/fuzz/seeds
    rm -rf "$OUT"
    mkdirs "$OUT"
    T=$(mktemp -d)
    trap 'rm -rf "$T"' EXIT
    F="ffmpeg -v error -y"
    V="-f lavfi -i testsrc2=s=64x64:r=10:d=0.6"
    A="-f lavfi -i sine=f=440:r=48000:d=0.6"
    $F $V $A -c:v libx264 -bf 2 -g 4 -c:a aac -b:a 16k -movflags +faststart "$T/h264_aac_faststart.mp4"
    $F $V $A -c:v libx264 -bf 2 -g 4 -c:a aac -b:a 16k "$T/h264_aac_moov_end.mp4"
    $F $V $A -c:v libx264 -bf 2 -g 2 -c:a aac -b:a 16k \
        -movflags frag_keyframe+empty_moov+default_base_moof "$T/h264_aac_frag.mp4"
    $F $V $A -c:v libx265 -x265-params log-level=none -g 4 -c:a aac -b:a 16k -tag:v hvc1 "$T/hevc_aac.mov"
    $F -f lavfi -i testsrc2=s=64x64:r=10:d=0.3 -f lavfi -i sine=r=8000:d=0.3 -c:v libx264 -g 4 \
        -c:a pcm_s16le "$T/h264_pcm.mov"
    $F $V $A -c:v libvpx-vp9 -g 4 -c:a libopus -b:a 16k -movflags frag_keyframe+empty_moov "$T/vp9_opus_frag.mp4"
    $F $V $A -c:v libaom-av1 -cpu-used 8 -g 4 -c:a libopus -b:a 16k "$T/av1_opus.mp4"
    $F $V $A -c:v libvpx-vp9 -g 4 -c:a libopus -b:a 16k "$T/vp9_opus.webm"
    $F $V $A -c:v libaom-av1 -cpu-used 8 -g 4 -c:a libopus -b:a 16k "$T/av1_opus.webm"
    $F $V $A -c:v libx264 -g 4 -c:a aac -b:a 16k "$T/h264_aac.mkv"
    $F $V $A -c:v libx264 -g 4 -c:a aac -b:a 16k -live 1 -cluster_time_limit 200 "$T/h264_aac_live.mkv"
    mkvmerge -q -o "$T/h264_aac_laced.mkv" "$T/h264_aac_moov_end.mp4"
    from_media "$OUT" "$T"/*.mp4 "$T"/*.mov "$T"/*.mkv "$T"/*.webm
    # Single packets, as the codec parsers meet them in a stream.
    $F -i "$T/h264_aac_moov_end.mp4" -map 0:v -c copy -frames:v 1 -f data "$OUT/codec_avcc/h264_first_au"
    $F -i "$T/hevc_aac.mov" -map 0:v -c copy -frames:v 1 -f data "$OUT/codec_hvcc/hevc_first_au"
    $F -i "$T/av1_opus.webm" -map 0:v -c copy -frames:v 1 -f data "$OUT/codec_av1c/av1_first_tu"
    $F -i "$T/vp9_opus.webm" -map 0:v -c copy -frames:v 2 -f data "$OUT/codec_vpcc/vp9_first_frames"
    $F -i "$T/vp9_opus.webm" -map 0:a -c copy -frames:a 1 -f data "$OUT/codec_opus/opus_packet"
    $F -i "$T/h264_aac_moov_end.mp4" -map 0:a -c copy -frames:a 2 -f data "$OUT/codec_aac/aac_raw_frames"
    $F -f lavfi -i sine=r=48000:d=0.05 -c:a aac -b:a 16k -f adts "$OUT/codec_aac/sine.adts"
    # The moov-less scanner reads media recorded like its references (tests/fixtures/tools).
    # (A cut of 40 KB holds a few dozen packets of each track past the first keyframe.)
    mdat_cut "$FIX/tools/h264_aac_moov_end.mp4" 2 40000 "$OUT/mp4_scan/h264_head"
    mdat_cut "$FIX/tools/hevc_aac_moov_end.mov" 1 40000 "$OUT/mp4_scan/hevc_head"
    pipeline_seeds "$OUT"
    find "$OUT" -type f -empty -delete
    du -sh "$OUT"
    exit 0
fi

OUT=$ROOT/fuzz/corpus
mkdirs "$OUT"
for t in $TARGETS; do
    if [ -d "$ROOT/fuzz/seeds/$t" ]; then cp "$ROOT/fuzz/seeds/$t"/* "$OUT/$t/" 2>/dev/null || true; fi
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Browser recordings: the first upload chunks joined (init segment and a few fragments).
for d in "$FIX"/browser/*.chunks; do
    n=$(basename "$d" .chunks)
    case $n in
    *mp4*) ext=mp4 ;;
    *) ext=webm ;;
    esac
    concat_chunks "$d" 3 "$T/$n.$ext"
done
cp "$FIX"/tools/*_reference_1s.* "$T/"
from_media "$OUT" "$T"/*
# More cuts for the moov-less scanner, from the middle of the media: 40 KB each (the
# scanner reads every byte position of damaged media; bigger inputs fuzz slowly).
for sel in 0 1 2 3; do
    src=$FIX/tools/h264_aac_moov_end.mp4
    [ $((sel % 2)) = 1 ] && src=$FIX/tools/hevc_aac_moov_end.mov
    {
        printf "\\$(printf %03o $sel)"
        slice "$src" $((150000 + sel * 100000)) 40000
    } >"$OUT/mp4_scan/middle_$sel"
done
for t in $TARGETS; do printf '%-14s %4d files\n' "$t" "$(ls "$OUT/$t" | wc -l)"; done
