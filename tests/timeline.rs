//! Presentation timing across a remux (issue 13, "Timing (A/V sync)"): every stream starts
//! where the input's does, and every packet keeps its presentation time, within 1 ms, after
//! `--to fmp4`, `--to mp4`, `--to mkv`/`webm` and `livemux finalize`, as ffprobe reads them.
//! Inputs are made with FFmpeg in a temporary directory (and patched where FFmpeg cannot
//! make the case: per-track `tfdt`, a `tfdt` of a million seconds, repeated timestamps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{livemux, tools};

/// Tolerance on every start and presentation time, in seconds.
const TOLERANCE: f64 = 0.001;

/// `ffmpeg ARGS OUT`, ARGS split at spaces.
fn ffmpeg_to(args: &str, out: &Path) {
    let mut all: Vec<&str> = args.split_whitespace().collect();
    all.push(out.to_str().unwrap());
    ffmpeg(&all);
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(args).output().expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// One stream as ffprobe reads it: its kind and the presentation times of the packets a
/// player shows, in decode order. Packets FFmpeg marks discarded (an edit list trims them
/// whole) are not shown; in a fragmented MP4 or Matroska, where FFmpeg applies the edit
/// list or CodecDelay but cannot mark what they trim, a packet that ends at or before 0 is
/// not shown either.
#[derive(Debug)]
struct Stream {
    kind: String,
    pts: Vec<f64>,
}

impl Stream {
    /// The presentation start: the earliest time shown.
    fn start(&self) -> f64 {
        self.pts.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

fn fragmented(path: &Path) -> bool {
    let data = std::fs::read(path).unwrap();
    !data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        && common::top_level_boxes(&data).iter().any(|(kind, _, _)| kind == b"moof")
}

fn probe(path: &Path) -> (Vec<Stream>, Option<f64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_packets", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let mut streams: Vec<Stream> = j["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Stream { kind: s["codec_type"].as_str().unwrap().to_string(), pts: vec![] })
        .collect();
    // FFmpeg cannot mark what an edit list trims in a fragmented MP4, nor what CodecDelay
    // trims in Matroska: a packet that ends at or before 0 there is trimmed.
    let marks_nothing = fragmented(path) || std::fs::read(path).unwrap().starts_with(&[0x1A, 0x45, 0xDF, 0xA3]);
    for p in j["packets"].as_array().unwrap() {
        let i = p["stream_index"].as_u64().unwrap() as usize;
        let discarded = p["flags"].as_str().is_some_and(|f| f.contains('D'));
        let Some(t) = num(&p["pts_time"]) else { continue };
        // (FFmpeg gives a fragment's first packet no duration: it is not judged trimmed.)
        let ends_before_0 = num(&p["duration_time"]).is_some_and(|d| t + d <= 1e-6);
        let trimmed = discarded || (marks_nothing && ends_before_0);
        let shown = !trimmed;
        if shown {
            streams[i].pts.push(t);
        }
    }
    (streams, num(&j["format"]["duration"]))
}

fn remux(input: &Path, dir: &Path, to: &str) -> PathBuf {
    let ext = match to {
        "mkv" => "mkv",
        "webm" => "webm",
        _ => "mp4",
    };
    let out = dir.join(format!("{}.{to}.{ext}", input.file_stem().unwrap().to_string_lossy()));
    let o = livemux().arg("remux").arg(input).arg("-o").arg(&out).args(["-y", "--to", to]).output().unwrap();
    assert!(o.status.success(), "remux {} --to {to}: {}", input.display(), String::from_utf8_lossy(&o.stderr));
    out
}

fn finalize_copy(fragmented: &Path) -> PathBuf {
    let out = fragmented.with_extension("finalized.mp4");
    std::fs::copy(fragmented, &out).unwrap();
    let o = livemux().arg("finalize").arg(&out).output().unwrap();
    assert!(o.status.success(), "finalize {}: {}", out.display(), String::from_utf8_lossy(&o.stderr));
    out
}

/// Checks `output` against the input's streams, moved by `offset` seconds (the common start
/// livemux takes off when it is over an hour): the same packets shown, each at the same time,
/// and so the same start.
fn assert_same_timing(input: &[Stream], offset: f64, output: &Path) {
    let (out, _) = probe(output);
    let what = output.display();
    assert_eq!(out.len(), input.len(), "{what}: stream count");
    for (i, (a, b)) in input.iter().zip(&out).enumerate() {
        assert_eq!(a.kind, b.kind, "{what}: stream {i} kind");
        let start = b.start();
        let start_want = a.start() - offset;
        assert!(
            (start - start_want).abs() <= TOLERANCE,
            "{what}: stream {i} ({}) starts at {start} where the input's starts at {start_want}",
            a.kind
        );
        let mut want: Vec<f64> = a.pts.iter().map(|t| t - offset).collect();
        let mut got = b.pts.clone();
        want.sort_by(f64::total_cmp);
        got.sort_by(f64::total_cmp);
        assert_eq!(want.len(), got.len(), "{what}: stream {i} packet count");
        for (k, (x, y)) in want.iter().zip(&got).enumerate() {
            assert!((x - y).abs() <= TOLERANCE, "{what}: stream {i} packet {k}: pts {y} where the input has {x}");
        }
    }
}

/// Remuxes `input` (read as `reads`) to each format, and finalizes the fmp4; checks each
/// against the input.
fn check_all(input: &Path, dir: &Path, offset: f64, formats: &[&str]) {
    let (streams, _) = probe(input);
    for to in formats {
        let out = remux(input, dir, to);
        assert_same_timing(&streams, offset, &out);
        if *to == "fmp4" {
            assert_same_timing(&streams, offset, &finalize_copy(&out));
        }
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Item 1: Matroska applies the edit lists: a video shown 1 s in (empty edit), AAC priming
/// the edit trims (kept in place, said with CodecDelay), a QuickTime audio delay.
#[test]
fn matroska_applies_edit_lists() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempdir();
    let shifted = dir.path().join("shifted.mp4");
    ffmpeg_to(
        "-f lavfi -i testsrc=d=2:s=160x120:r=25 -f lavfi -i sine=d=2 -vf setpts=PTS+1/TB -c:v libx264 -bf 2 -c:a aac",
        &shifted,
    );
    let (input, _) = probe(&shifted);
    assert!((input[0].start() - 1.0).abs() < 1e-6, "the input's video starts at 1 s: {input:?}");
    assert!(input[1].start().abs() < 1e-6, "the input's audio starts at 0, after its trimmed priming");
    check_all(&shifted, dir.path(), 0.0, &["fmp4", "mp4", "mkv"]);

    let delayed = dir.path().join("delayed.mov");
    ffmpeg_to(
        "-f lavfi -i testsrc=d=2:s=160x120:r=25 -itsoffset 0.044 -f lavfi -i sine=d=2 -map 0:v -map 1:a -c:v libx264 -bf 2 -c:a aac",
        &delayed,
    );
    let (input, _) = probe(&delayed);
    assert!(input[1].start() > 0.015, "the input's audio starts late: {input:?}");
    check_all(&delayed, dir.path(), 0.0, &["fmp4", "mp4", "mkv"]);
}

/// Reads the top-level and nested boxes of an MP4 we patch: (offset, header length, size,
/// type) of every box inside `moov`/`moof` containers.
fn boxes(data: &[u8], from: usize, to: usize, out: &mut Vec<(usize, usize, usize, [u8; 4])>) {
    let mut off = from;
    while off + 8 <= to {
        let size = u32::from_be_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[off + 4..off + 8].try_into().unwrap();
        let (size, header) = match size {
            1 => (u64::from_be_bytes(data[off + 8..off + 16].try_into().unwrap()) as usize, 16),
            0 => (to - off, 8),
            n => (n, 8),
        };
        if size < header || off + size > to {
            break;
        }
        out.push((off, header, size, kind));
        if matches!(&kind, b"moov" | b"trak" | b"moof" | b"traf") {
            boxes(data, off + header, off + size, out);
        }
        off += size;
    }
}

/// Turns livemux's fragmented `file` into one whose tracks start at the given decode times
/// (seconds, per track) with no edit list: every `edts` becomes `free`, every `tfdt` moves.
fn patch_tfdt(file: &Path, starts: &[f64], out: &Path) {
    let mut data = std::fs::read(file).unwrap();
    let mut list = Vec::new();
    boxes(&data, 0, data.len(), &mut list);
    let mut timescales = Vec::new();
    for &(off, _, size, kind) in &list {
        match &kind {
            b"edts" => data[off + 4..off + 8].copy_from_slice(b"free"),
            b"trak" => {
                // mdhd's timescale: version 0 at +12 of its body, version 1 at +20.
                let body = &data[off..off + size];
                let at = body.windows(4).position(|w| w == b"mdhd").unwrap() + 4;
                let v = body[at];
                let ts_at = at + if v == 1 { 20 } else { 12 };
                timescales.push(u32::from_be_bytes(body[ts_at..ts_at + 4].try_into().unwrap()));
            }
            _ => {}
        }
    }
    let mut track = 0usize;
    for &(off, header, _, kind) in &list {
        match &kind {
            b"tfhd" => track = u32::from_be_bytes(data[off + 12..off + 16].try_into().unwrap()) as usize - 1,
            b"tfdt" => {
                assert_eq!(data[off + header], 1, "livemux writes tfdt version 1");
                let at = off + header + 4;
                let t = u64::from_be_bytes(data[at..at + 8].try_into().unwrap());
                let add = (starts[track] * timescales[track] as f64).round() as u64;
                data[at..at + 8].copy_from_slice(&(t + add).to_be_bytes());
            }
            _ => {}
        }
    }
    std::fs::write(out, data).unwrap();
}

/// A plain input: video (no B-frames) and AAC, no edit list.
fn plain_input(dir: &Path) -> PathBuf {
    let plain = dir.join("plain.mp4");
    ffmpeg_to(
        "-f lavfi -i testsrc=d=2:s=160x120:r=25 -f lavfi -i sine=d=2 -c:v libx264 -bf 0 -c:a aac -use_editlist 0",
        &plain,
    );
    plain
}

/// Item 2: per-track starts are kept: audio 880 ms after video through `tfdt` alone (no
/// edit list), and a first video frame at 80 ms (B-frames, no edit list).
#[test]
fn per_track_starts_are_kept() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempdir();
    let plain = plain_input(dir.path());
    let fragmented = remux(&plain, dir.path(), "fmp4");
    let late_audio = dir.path().join("late_audio.mp4");
    patch_tfdt(&fragmented, &[0.0, 0.88], &late_audio);
    let (input, _) = probe(&late_audio);
    assert!((input[1].start() - 0.88).abs() < 0.001, "the patched input's audio starts at 0.88 s: {input:?}");
    check_all(&late_audio, dir.path(), 0.0, &["fmp4", "mp4", "mkv"]);
    assert_same_timing(&input, 0.0, &finalize_copy(&late_audio));

    let b_frames = dir.path().join("b_frames.mp4");
    ffmpeg_to(
        "-f lavfi -i testsrc=d=2:s=160x120:r=25 -f lavfi -i sine=d=2 -c:v libx264 -bf 2 -c:a aac -use_editlist 0",
        &b_frames,
    );
    let (input, _) = probe(&b_frames);
    assert!(input[0].start() > 0.03, "the input's first frame is shown late: {input:?}");
    check_all(&b_frames, dir.path(), 0.0, &["fmp4", "mp4", "mkv"]);
}

/// Item 3: a start common to all tracks of a million seconds (a live capture's clock) is
/// taken off every output alike, keeping the 880 ms between the tracks; it never becomes a
/// huge empty edit.
#[test]
fn a_large_common_start_is_taken_off() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempdir();
    let plain = plain_input(dir.path());
    let fragmented = remux(&plain, dir.path(), "fmp4");
    let live = dir.path().join("live.mp4");
    patch_tfdt(&fragmented, &[1_000_000.0, 1_000_000.88], &live);
    let (input, _) = probe(&live);
    let common = input[0].start();
    assert!((common - 1_000_000.0).abs() < 0.001, "{input:?}");
    check_all(&live, dir.path(), common, &["fmp4", "mp4", "mkv"]);
    let finalized = finalize_copy(&live);
    assert_same_timing(&input, common, &finalized);
    let (_, duration) = probe(&finalized);
    assert!(duration.unwrap() < 5.0, "the finalized file lasts {duration:?} s");
}

/// EBML: (id with its marker, size, header length) of the element at `at`.
fn ebml_element(data: &[u8], at: usize) -> (u32, Option<usize>, usize) {
    let vint_len = |b: u8| b.leading_zeros() as usize + 1;
    let id_len = vint_len(data[at]);
    let id = data[at..at + id_len].iter().fold(0u32, |a, &b| a << 8 | b as u32);
    let size_len = vint_len(data[at + id_len]);
    let mut size = (data[at + id_len] as u64) & (0xFF >> size_len);
    let mut all_ones = size == (0xFF >> size_len) as u64;
    for &b in &data[at + id_len + 1..at + id_len + size_len] {
        size = size << 8 | b as u64;
        all_ones &= b == 0xFF;
    }
    (id, (!all_ones).then_some(size as usize), id_len + size_len)
}

/// Offsets of every SimpleBlock and Block body of a WebM, in file order.
fn simple_blocks(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![(0usize, data.len())];
    while let Some((mut at, end)) = stack.pop() {
        while at < end {
            let (id, size, header) = ebml_element(data, at);
            let body = at + header;
            let size = size.unwrap_or(end - body);
            match id {
                0x1853_8067 | 0x1F43_B675 | 0xA0 => stack.push((body, body + size)),
                0xA3 | 0xA1 => out.push(body),
                _ => {}
            }
            at = body + size;
        }
    }
    out.sort_unstable();
    out
}

/// Item 4: packets that share a timestamp (Chrome 52 repeats Opus timestamps) keep it:
/// a duration of 0, no drift in the regular MP4 or after finalize, and a Matroska Duration
/// that ends with the packets.
#[test]
fn repeated_timestamps_keep_their_place() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempdir();
    let clean = dir.path().join("clean.webm");
    ffmpeg_to("-f lavfi -i sine=d=6 -c:a libopus -cluster_time_limit 100000", &clean);
    let mut data = std::fs::read(&clean).unwrap();
    let blocks = simple_blocks(&data);
    assert!(blocks.len() > 250, "{} blocks", blocks.len());
    let timestamp = |data: &[u8], b: usize| i16::from_be_bytes([data[b + 1], data[b + 2]]);
    let set = |data: &mut Vec<u8>, b: usize, t: i16| data[b + 1..b + 3].copy_from_slice(&t.to_be_bytes());
    // From block 10 on, every odd block takes its predecessor's timestamp (so whatever
    // block ends a fragment, some pair straddles a fragment boundary); the last three
    // come 2 s later, the last two at one timestamp (a long gap, then a repeat: the last
    // packet but one must not last the gap).
    let n = blocks.len();
    for k in (11..n - 3).step_by(2) {
        let t = timestamp(&data, blocks[k - 1]);
        set(&mut data, blocks[k], t);
    }
    for &b in &blocks[n - 3..] {
        let t = timestamp(&data, b) + 2000;
        set(&mut data, b, t);
    }
    let t = timestamp(&data, blocks[n - 2]);
    set(&mut data, blocks[n - 1], t);
    let repeated = dir.path().join("repeated.webm");
    std::fs::write(&repeated, data).unwrap();
    let (input, _) = probe(&repeated);
    let pts = &input[0].pts;
    assert_eq!(pts[10], pts[11], "the patched input repeats a timestamp: {:?}", &pts[..14]);
    let end = pts.iter().copied().fold(f64::MIN, f64::max) + 0.02;
    check_all(&repeated, dir.path(), 0.0, &["fmp4", "mp4", "webm"]);
    let (_, duration) = probe(&dir.path().join("repeated.webm.webm"));
    let duration = duration.unwrap();
    // Duration is on the Blocks' timeline, which CodecDelay (6.5 ms) is not taken off.
    assert!((duration - end).abs() <= 0.0085, "WebM Duration {duration} s, packets end at {end} s");
}

/// A track delayed by more than a Matroska block's 16-bit offset (40 s, an empty edit):
/// its blocks go to their own Clusters at their planned times, not clamped to 32.767 s
/// after the first Cluster's start.
#[test]
fn a_track_delayed_past_a_cluster_span_keeps_its_times() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempdir();
    let delayed = dir.path().join("delayed40.mp4");
    ffmpeg_to(
        "-f lavfi -i testsrc=d=2:s=160x120:r=25 -itsoffset 40 -f lavfi -i sine=d=2 -map 0:v -map 1:a -c:v libx264 -bf 0 -c:a aac",
        &delayed,
    );
    let (input, _) = probe(&delayed);
    assert!(input[1].start() > 39.9, "the input's audio starts 40 s in: {:?}", input[1].start());
    check_all(&delayed, dir.path(), 0.0, &["mkv"]);
}

/// An Opus WebM's CodecDelay (6.5 ms of pre-skip) comes back exactly, not rounded to the
/// 1 ms ticks it is read in.
#[test]
fn opus_codec_delay_is_kept_exactly() {
    if !tools(&["ffmpeg", "mkvinfo"]) {
        return;
    }
    let dir = tempdir();
    let input = dir.path().join("opus.webm");
    ffmpeg_to("-f lavfi -i sine=d=1 -c:a libopus", &input);
    let delay = |path: &Path| {
        let out = Command::new("mkvinfo").arg(path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.contains("Codec-inherent delay")).map(str::to_owned)
    };
    let before = delay(&input);
    assert!(before.as_deref().is_some_and(|l| l.contains("00.006500000")), "{before:?}");
    let out = remux(&input, dir.path(), "webm");
    assert_eq!(delay(&out), before);
}
