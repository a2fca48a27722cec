//! Matroska/WebM in and out: browser and FFmpeg recordings remuxed to WebM/Matroska and
//! to fragmented MP4 (and MP4 to Matroska), checked with FFmpeg and mkvinfo; `livemux
//! finalize` on browser WebM, cut at every step; SIGKILL during a paced remux.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use livemux::formats::matroska::finalize::{plan_in_place, Scanned, Scanner};
use livemux::formats::matroska::reader::{MkvItem, MkvReader};
use livemux::formats::WriteStep;
use livemux::io::apply_in_memory;

/// Chromium's Matroska recordings (H.264 ones carry Annex B without CodecPrivate).
const BROWSER: [&str; 6] = [
    "chrome_webm_vp9_opus",
    "chrome_webm_vp8_opus",
    "chrome_webm_av1_opus",
    "chrome_audio_webm_opus",
    "chrome_webm_h264_opus",
    "chrome_mkv_avc1_opus",
];

struct Input {
    name: String,
    path: PathBuf,
    /// H.264 as Annex B: livemux writes it length-prefixed with a CodecPrivate, so
    /// packets compare after decoding.
    annexb: bool,
    format: &'static str,
}

fn inputs(dir: &Path) -> Vec<Input> {
    let mut out: Vec<Input> = BROWSER
        .iter()
        .map(|n| Input {
            name: n.to_string(),
            path: browser_file(n, dir),
            annexb: n.contains("h264") || n.contains("avc1"),
            format: if n.contains("h264") || n.contains("avc1") { "mkv" } else { "webm" },
        })
        .collect();
    for (n, format) in [("h264_opus.mkv", "mkv"), ("vp9_opus_live.webm", "webm")] {
        out.push(Input { name: n.into(), path: generated_file(n), annexb: false, format });
    }
    out
}

fn remux(input: &Path, out: &Path, to: &str) {
    let res = livemux().arg("remux").arg(input).arg("-o").arg(out).args(["--to", to]).output().unwrap();
    assert!(res.status.success(), "{}: {}", input.display(), String::from_utf8_lossy(&res.stderr));
}

fn duration_s(path: &Path) -> f64 {
    let (ok, text) = ffprobe(path, "format=duration");
    assert!(ok, "{}: {text}", path.display());
    text.trim().trim_start_matches("duration=").parse().unwrap_or(0.0)
}

fn cue_points(path: &Path) -> usize {
    let out = Command::new("mkvinfo").args(["-v", "-v"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).matches("Cue point").count()
}

/// Video keyframes of the first video stream: (pts in s, size).
fn keyframes(path: &Path) -> Vec<(f64, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 3 && f[2].starts_with('K')).then(|| (f[0].parse().ok(), f[1].parse().ok())).and_then(
                |x| match x {
                    (Some(t), Some(s)) => Some((t, s)),
                    _ => None,
                },
            )
        })
        .collect()
}

/// `ffmpeg -ss` to the middle starts on a keyframe at or before it: the last one, or with
/// B-frames the one before (FFmpeg seeks by decode time and keeps the reordered frames).
fn assert_seeks_to_keyframe(path: &Path, what: &str) {
    let keys = keyframes(path);
    if keys.len() < 2 {
        return; // audio only, or a single GOP: nothing to choose between
    }
    let target = keys[keys.len() / 2].0 + 0.01;
    let before: Vec<_> = keys.iter().rev().filter(|k| k.0 <= target).take(2).collect();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &format!("{target:.3}"), "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-frames:v", "1", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let size: u64 =
        text.lines().find(|l| !l.starts_with('#')).unwrap().split(',').nth(4).unwrap().trim().parse().unwrap();
    assert!(
        before.iter().any(|k| k.1 == size),
        "{what}: seeking to {target:.3} s gave a {size}-byte packet, not the keyframe at {} s",
        before[0].0
    );
}

/// Decoded frames of each stream, MD5s only.
fn decoded(path: &Path) -> Vec<Vec<String>> {
    let frames = decoded_framemd5(path);
    let streams = frames.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    (0..streams).map(|s| stream(&frames, s).into_iter().map(|p| p.md5).collect()).collect()
}

/// Decoded streams equal, except that an audio stream may lose or gain one frame at an
/// end (AAC priming that MP4 trims with an edit list; Opus end trimming that only
/// Matroska's DiscardPadding says).
fn assert_same_decoded(a: &Path, b: &Path, what: &str) {
    let (x, y) = (decoded(a), decoded(b));
    assert_eq!(x.len(), y.len(), "{what}: stream count");
    for (s, (p, q)) in x.iter().zip(&y).enumerate() {
        if p == q {
            continue;
        }
        let (short, long) = if p.len() <= q.len() { (p, q) } else { (q, p) };
        let inner = &short[1.min(short.len())..short.len().saturating_sub(1)];
        let found = long.windows(inner.len().max(1)).any(|w| w == inner);
        assert!(found && long.len() - short.len() <= 1, "{what}: stream {s} decodes differently");
    }
}

/// Same bytes and presentation times per stream. Matroska stores no decode times: the
/// ones FFmpeg prints are its own guesses, which depend on the frame rate it infers.
fn assert_same_blocks(input: &[FramePacket], output: &[FramePacket], what: &str) {
    let key = |v: &[FramePacket], s| stream(v, s).into_iter().map(|p| (p.pts, p.size, p.md5)).collect::<Vec<_>>();
    let streams = input.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    assert_eq!(streams, output.iter().map(|p| p.stream).max().map_or(0, |m| m + 1), "{what}: stream count");
    for s in 0..streams {
        let (a, b) = (key(input, s), key(output, s));
        assert_eq!(a.len(), b.len(), "{what}: stream {s} packet count");
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!("{what}: stream {s} packet {i}: {:?} became {:?}", a[i], b[i]);
        }
    }
}

#[test]
fn matroska_to_matroska_keeps_every_packet_and_is_seekable() {
    if !tools(&["ffmpeg", "ffprobe", "mkvinfo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for input in inputs(dir.path()) {
        let what = &input.name;
        let out = dir.path().join(format!("{}.out.{}", input.name, input.format));
        remux(&input.path, &out, input.format);
        assert_eq!(decode_errors(&out), "", "{what}: decode errors");
        if input.annexb {
            assert_same_decoded(&input.path, &out, what);
        } else {
            assert_same_blocks(&framemd5(&input.path), &framemd5(&out), what);
        }
        let packets = framemd5(&input.path);
        let end = packets.iter().map(|p| p.pts + p.duration).max().unwrap() as f64 / 1000.0;
        let got = duration_s(&out);
        assert!((got - end).abs() < 0.05, "{what}: duration {got} s, packets end at {end} s");
        assert!(cue_points(&out) >= 1, "{what}: no Cues");
        assert_seeks_to_keyframe(&out, what);
    }
}

#[test]
fn chunks_through_stdin_give_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["chrome_webm_vp9_opus", "chrome_mkv_avc1_opus"] {
        let whole = dir.path().join(format!("{name}.whole"));
        remux(&browser_file(name, dir.path()), &whole, "mkv");
        let piped = dir.path().join(format!("{name}.piped"));
        let mut child =
            livemux().args(["remux", "-", "--to", "mkv", "-o"]).arg(&piped).stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for chunk in browser_chunks(name) {
            stdin.write_all(&chunk).unwrap();
            stdin.flush().unwrap();
        }
        drop(stdin);
        assert!(child.wait().unwrap().success());
        assert!(std::fs::read(&whole).unwrap() == std::fs::read(&piped).unwrap(), "{name}: outputs differ");
    }
}

#[test]
fn matroska_to_fmp4_and_mp4_to_matroska_decode_the_same() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for input in inputs(dir.path()) {
        let out = dir.path().join(format!("{}.mp4", input.name));
        remux(&input.path, &out, "fmp4");
        assert_eq!(decode_errors(&out), "", "{}: decode errors", input.name);
        assert_same_decoded(&input.path, &out, &format!("{} -> fmp4", input.name));
    }
    let mut mp4s: Vec<PathBuf> =
        ["h264_aac_moov_end.mp4", "hevc_aac_moov_end.mov", "two_audio.mp4"].iter().map(|n| generated_file(n)).collect();
    mp4s.extend(browser_mp4_names().into_iter().map(|n| browser_file(n, dir.path())));
    for input in mp4s {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(format!("{name}.mkv"));
        remux(&input, &out, "mkv");
        assert_eq!(decode_errors(&out), "", "{name}: decode errors");
        assert_same_decoded(&input, &out, &format!("{name} -> mkv"));
    }
}

#[test]
fn webm_is_refused_for_h264_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.webm");
    let res = livemux()
        .arg("remux")
        .arg(generated_file("h264_aac_moov_end.mp4"))
        .arg("-o")
        .arg(&out)
        .args(["--to", "webm"])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("WebM carries only"), "{err}");
    assert!(!out.exists() || std::fs::metadata(&out).unwrap().len() == 0);
}

fn scan(data: &[u8]) -> Vec<WriteStep> {
    let mut s = Scanner::new();
    s.push(Bytes::copy_from_slice(data)).unwrap();
    let Scanned::Found { front, index, input_len } = s.finish().unwrap() else { panic!("already final") };
    plan_in_place(&front, &index, input_len).unwrap().unwrap().steps
}

/// Whether livemux's own reader walks the whole file without an error.
fn reads_cleanly(data: &[u8]) -> bool {
    let mut r = MkvReader::new();
    r.push(Bytes::copy_from_slice(data));
    loop {
        match r.poll() {
            Ok(Some(_)) => continue,
            Ok(None) => return r.finish().cut.is_none(),
            Err(_) => return false,
        }
    }
}

#[test]
fn finalize_makes_browser_recordings_seekable_in_place() {
    if !tools(&["ffmpeg", "ffprobe", "mkvinfo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in BROWSER {
        let original = browser_file(name, dir.path());
        let copy = dir.path().join(format!("finalized-{}", original.file_name().unwrap().to_string_lossy()));
        std::fs::copy(&original, &copy).unwrap();
        let report = livemux::finalize::finalize_file(&copy).unwrap();
        let share = report.bytes_written as f64 / report.len_after as f64;
        assert!(share < 0.01, "{name}: wrote {} of {} bytes", report.bytes_written, report.len_after);
        assert_eq!(decode_errors(&copy), "", "{name}");
        assert_same_blocks(&framemd5(&original), &framemd5(&copy), name);
        assert!(cue_points(&copy) >= 1, "{name}: no Cues");
        assert!(duration_s(&copy) > 5.0, "{name}: no duration");
        assert_seeks_to_keyframe(&copy, name);
        let again = livemux::finalize::finalize_file(&copy).unwrap();
        assert_eq!(again.bytes_written, 0, "{name}: a second finalize changes nothing");
    }
}

#[test]
fn finalize_cut_at_every_step_leaves_a_valid_file() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["chrome_webm_vp9_opus", "chrome_mkv_avc1_opus"] {
        let original = std::fs::read(browser_file(name, dir.path())).unwrap();
        // A crash also cut the recording inside a block.
        let cut = &original[..original.len() - 500];
        let steps = scan(cut);
        let whole = framemd5(&browser_file(name, dir.path()));
        for k in 0..=steps.len() {
            let mut state = cut.to_vec();
            apply_in_memory(&mut state, &[], &steps[..k]);
            if k == 0 {
                continue; // the cut file itself: the tail is torn, as the crash left it
            }
            assert!(reads_cleanly(&state), "{name}: state after {k} steps does not parse");
            let path = dir.path().join(format!("{name}-{k}.mkv"));
            std::fs::write(&path, &state).unwrap();
            assert_eq!(decode_errors(&path), "", "{name}: state after {k} of {} steps", steps.len());
            assert_prefix(&whole, &framemd5(&path), &format!("{name} after {k} steps"));
        }
    }
}

/// The longest prefix that ends after a complete Cluster (or the header).
fn complete_clusters_prefix(data: &[u8]) -> &[u8] {
    let mut r = MkvReader::new();
    r.push(Bytes::copy_from_slice(data));
    let mut end = 0;
    let mut open: Option<u64> = None;
    while let Ok(Some(item)) = r.poll() {
        if let MkvItem::ClusterStart { offset, header_len, size } = item {
            open = size.map(|s| offset + header_len as u64 + s);
            end = end.max(offset as usize);
        }
        if let Some(e) = open.filter(|&e| r.position() >= e) {
            end = e as usize;
            open = None;
        }
    }
    &data[..end]
}

#[test]
fn sigkill_during_a_paced_webm_remux_leaves_a_readable_prefix() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = generated_file("vp9_opus_live.webm");
    let data = std::fs::read(&input).unwrap();
    let whole_out = dir.path().join("whole.webm");
    remux(&input, &whole_out, "webm");
    let whole = framemd5(&whole_out);
    let mut rng = Lcg(0xc105);
    let mut clusters = 0;
    for run in 0..20 {
        let out = dir.path().join(format!("killed-{run}.webm"));
        let mut child = livemux()
            .args(["remux", "-", "--to", "webm", "--fragment-ms", "200", "--max-fragment-ms", "400", "-o"])
            .arg(&out)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feed = data.clone();
        let feeder = std::thread::spawn(move || {
            for c in feed.chunks(4096) {
                if stdin.write_all(c).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_secs(30));
        });
        while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.next(700)));
        signal(child.id(), "KILL");
        child.wait().unwrap();
        drop(feeder);
        let bytes = std::fs::read(&out).unwrap();
        let (ok, text) = ffprobe(&out, "format=format_name");
        assert!(ok, "run {run}: killed output ({} bytes) does not open: {text}", bytes.len());
        let complete = complete_clusters_prefix(&bytes);
        let trimmed = dir.path().join(format!("trimmed-{run}.webm"));
        std::fs::write(&trimmed, complete).unwrap();
        assert_prefix(&whole, &framemd5(&trimmed), &format!("run {run}"));
        clusters += 1;
    }
    assert_eq!(clusters, 20);
}

#[test]
fn live_browser_webm_serves_as_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    for (name, codecs) in
        [("chrome_webm_vp9_opus_probe", ["vp9", "opus"]), ("chrome_mkv_avc1_opus_probe", ["h264", "opus"])]
    {
        let r = livemux::reference::Reference::load(&browser_file(name, dir.path())).unwrap();
        let mut got: Vec<_> = r.tracks.iter().map(|t| t.codec.name()).collect();
        got.sort();
        let mut want = codecs.to_vec();
        want.sort();
        assert_eq!(got, want, "{name}");
        let video = r.tracks.iter().find(|t| t.kind == livemux::TrackKind::Video).unwrap();
        assert_eq!(video.codec.dimensions().map(|d| (d.width, d.height)), Some((640, 360)), "{name}");
    }
}

/// The live reader finds the same frames as matroska-demuxer (a crate made for finished
/// files) in a finished FFmpeg file with laced and grouped blocks.
#[test]
fn the_reader_agrees_with_matroska_demuxer() {
    use matroska_demuxer::{Frame, MatroskaFile};
    let path = generated_file("h264_opus.mkv");
    let mut oracle = MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
    let mut want = Vec::new();
    let mut frame = Frame::default();
    while oracle.next_frame(&mut frame).unwrap() {
        want.push((frame.track, frame.timestamp as i64, frame.data.clone()));
    }
    let mut r = MkvReader::new();
    r.push(Bytes::from(std::fs::read(&path).unwrap()));
    let mut got = Vec::new();
    let mut cluster = 0i64;
    while let Some(item) = r.poll().unwrap() {
        match item {
            MkvItem::ClusterTimestamp { timestamp, .. } => cluster = timestamp as i64,
            MkvItem::Blocks { offset, data } => {
                for e in livemux::formats::matroska::reader::elements(offset, &data) {
                    let b = livemux::formats::matroska::block::parse_block(&e.unwrap()).unwrap();
                    for f in b.frames {
                        got.push((b.track, cluster + b.relative_timestamp as i64, f.to_vec()));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(got == want, "frames differ");
}
