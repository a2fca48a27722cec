#!/usr/bin/env bash
# Regenerates the test inputs that FFmpeg can make, into tests/fixtures/generated/
# (not committed). Real recorder output that cannot be regenerated here (Chromium's
# MediaRecorder chunks) is committed under tests/fixtures/browser/.
#
# The files mirror ../shared/corpus/tools: testsrc2 + sine, 640x360 at 30 fps, 10 s,
# x264 with B-frames, AAC, in every MP4 layout recorders and tools write.
set -euo pipefail
out="${1:-$(dirname "$0")/../tests/fixtures/generated}"
mkdir -p "$out"
cd "$out"
# The marker names the version of this script's output: bump it when adding files.
[ -f .complete-5 ] && exit 0
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000")
ff "${src[@]}" -t 10 -c:v libx264 -preset veryfast -g 60 -bf 2 -pix_fmt yuv420p -c:a aac -b:a 96k h264_aac_moov_end.mp4
ff -i h264_aac_moov_end.mp4 -map 0 -c copy -movflags +faststart h264_aac_faststart.mp4
ff -i h264_aac_moov_end.mp4 -map 0 -c copy -movflags +frag_keyframe+empty_moov+default_base_moof h264_aac_fragmented.mp4
ff -i h264_aac_moov_end.mp4 -map 0 -c copy -movflags +cmaf h264_aac_cmaf.mp4
ff -i h264_aac_moov_end.mp4 -map 0 -c copy -f ismv h264_aac.ismv
ff "${src[@]}" -t 1 -c:v libx264 -preset veryfast -g 60 -bf 2 -pix_fmt yuv420p -c:a aac -b:a 96k h264_aac_reference_1s.mp4
ff "${src[@]}" -t 10 -c:v libx265 -preset ultrafast -x265-params log-level=none -g 60 -pix_fmt yuv420p -tag:v hvc1 -c:a aac -b:a 96k hevc_aac_moov_end.mov
# Other track layouts: audio only, two audio tracks, PCM in MOV, 44.1 kHz stereo, no B-frames.
ff -f lavfi -i "sine=frequency=300:sample_rate=44100" -t 5 -ac 2 -c:a aac aac_only.mp4
ff "${src[@]}" -f lavfi -i "sine=frequency=880:sample_rate=44100" -t 4 -map 0 -map 1 -map 2 \
   -c:v libx264 -preset veryfast -bf 0 -c:a aac two_audio.mp4
ff "${src[@]}" -t 3 -c:v libx264 -preset veryfast -c:a pcm_s16le pcm_s16le.mov
# Recovery without an index (tests/recover.rs): complete 8 s recordings and 1 s references
# with settings the corpus lacks; the tests cut the complete ones themselves.
rec() {
  name=$1; ext=$2; shift 2
  ff "$@" -t 8 "recover_${name}.${ext}"
  ff "$@" -t 1 "recover_${name}_reference.${ext}"
}
rec small_25fps_nob_44k_stereo mp4 -f lavfi -i "testsrc2=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=500:sample_rate=44100" -ac 2 -c:v libx264 -preset veryfast -bf 0 -c:a aac
rec 60fps_b3_two_audio mp4 -f lavfi -i "testsrc2=size=480x270:rate=60" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -f lavfi -i "sine=frequency=880:sample_rate=44100" -map 0 -map 1 -map 2 -ac:2 2 -c:v libx264 -preset veryfast -bf 3 -c:a aac
rec pcm mov -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" -ac 2 \
    -c:v libx264 -preset veryfast -c:a pcm_s16le
rec audio_only mp4 -f lavfi -i "sine=frequency=300:sample_rate=44100" -ac 2 -c:a aac
rec opus mp4 -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -c:v libx264 -preset veryfast -c:a libopus
# GStreamer's mp4mux layouts, from the same H.264 (GStreamer is optional for developers;
# CI installs it).
if command -v gst-launch-1.0 >/dev/null; then
  gst() { gst-launch-1.0 -q filesrc location=h264_aac_moov_end.mp4 ! qtdemux ! h264parse ! "$@"; }
  gst mp4mux fragment-duration=1000 ! filesink location=gst_h264_fragmented.mp4
  # Robust mode: moov space reserved at the front and rewritten while recording.
  gst mp4mux reserved-max-duration=20000000000 reserved-moov-update-period=1000000000 \
      ! filesink location=gst_h264_robust.mp4
  # Chunked interleave: one or three seconds of one track, then of the other, as mp4mux
  # (interleave-time) and Android's MediaMuxer write them (tests/recover.rs).
  q="queue max-size-time=0 max-size-buffers=0 max-size-bytes=0"
  for s in 1 3; do
    gst-launch-1.0 -q filesrc location=h264_aac_moov_end.mp4 ! qtdemux name=d \
        d.video_0 ! $q ! h264parse ! mp4mux name=m interleave-time=${s}000000000 \
        ! filesink location=gst_chunked_${s}s.mp4 d.audio_0 ! $q ! aacparse ! m.
  done
fi
# Matroska and WebM as FFmpeg writes them (tests/matroska.rs): x264 with B-frames + Opus
# with a codec delay, and live WebM (unknown sizes, no Cues) with VP9.
ff "${src[@]}" -t 4 -c:v libx264 -preset veryfast -g 30 -bf 2 -pix_fmt yuv420p -c:a libopus -b:a 64k h264_opus.mkv
ff "${src[@]}" -t 4 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 30 -b:v 500k -pix_fmt yuv420p \
    -c:a libopus -b:a 64k -f webm -live 1 vp9_opus_live.webm
# Encoders that repeat their parameter sets in every keyframe, as GStreamer's and hardware
# encoders do (tests/recapture.rs): fragmented H.264 + AAC, and faststart HEVC + AAC.
ff "${src[@]}" -t 3 -c:v libx264 -preset veryfast -g 30 -x264-params repeat-headers=1 -pix_fmt yuv420p \
    -c:a aac -movflags +frag_keyframe+empty_moov+default_base_moof h264_inband_fragmented.mp4
ff "${src[@]}" -t 3 -c:v libx265 -preset ultrafast -x265-params log-level=none:repeat-headers=1 -g 30 \
    -pix_fmt yuv420p -tag:v hvc1 -c:a aac -movflags +faststart hevc_inband_faststart.mp4
# Cut short, as a crash leaves them.
size=$(stat -c %s h264_aac_fragmented.mp4)
head -c $((size * 45 / 100)) h264_aac_fragmented.mp4 > h264_aac_fragmented_truncated.mp4
size=$(stat -c %s h264_aac_moov_end.mp4)
head -c $((size * 60 / 100)) h264_aac_moov_end.mp4 > h264_aac_truncated_60pct.mp4
touch .complete-5
