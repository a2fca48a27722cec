//! Recovery of MP4 recordings whose `moov` index was never written: packets are found in
//! the `mdat` with the track layout of a one-second reference recording. Checked against
//! the complete original with FFmpeg: per-packet MD5s of every packet that lies wholly
//! inside the cut file, in order, and no packet the original does not have.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn tools_dir() -> PathBuf {
    root().join("tests/fixtures/tools")
}

/// One stream's recovery figures.
#[derive(Debug)]
struct Rate {
    stream: u32,
    video: bool,
    inside: usize,
    matched: usize,
    extra: usize,
}

impl Rate {
    fn percent(&self) -> f64 {
        100.0 * self.matched as f64 / self.inside.max(1) as f64
    }
}

/// Lines of `ffprobe -show_entries ENTRIES -of csv=p=0 PATH`.
fn ffprobe_csv(path: &Path, entries: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}", path.display());
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect()
}

/// (stream, pos, size, is video) of each packet of `path`, per stream in decode order, by ffprobe.
fn packet_positions(path: &Path) -> Vec<(u32, u64, u64, bool)> {
    let video_streams: HashSet<u32> = ffprobe_csv(path, "stream=index,codec_type")
        .iter()
        .filter(|l| l.ends_with("video"))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    ffprobe_csv(path, "packet=stream_index,pos,size")
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (stream, size, pos) = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?);
            Some((stream, pos, size, video_streams.contains(&stream)))
        })
        .collect()
}

/// Compares the recovered output with the packets of `original` that lie wholly within
/// its first `cut_len` bytes.
fn rates(original: &Path, cut_len: u64, output: &Path) -> Vec<Rate> {
    let positions = packet_positions(original);
    let md5s = framemd5(original);
    let mut out = Vec::new();
    let streams: Vec<u32> = {
        let mut s: Vec<u32> = positions.iter().map(|p| p.0).collect();
        s.dedup();
        s.sort();
        s.dedup();
        s
    };
    let recovered = framemd5(output);
    for s in streams {
        let pos: Vec<_> = positions.iter().filter(|p| p.0 == s).collect();
        let sums = stream(&md5s, s);
        assert_eq!(pos.len(), sums.len(), "ffprobe and ffmpeg see the same packets of stream {s}");
        let inside: Vec<&str> =
            pos.iter().zip(&sums).filter(|(p, _)| p.1 + p.2 <= cut_len).map(|(_, m)| m.md5.as_str()).collect();
        let all: HashSet<&str> = sums.iter().map(|m| m.md5.as_str()).collect();
        let got = stream(&recovered, s);
        let mut matched = 0;
        let mut i = 0;
        for g in &got {
            if let Some(k) = inside[i..].iter().position(|m| *m == g.md5) {
                matched += 1;
                i += k + 1;
            }
        }
        let extra = got.iter().filter(|g| !all.contains(g.md5.as_str())).count();
        out.push(Rate { stream: s, video: pos[0].3, inside: inside.len(), matched, extra });
    }
    out
}

/// Writes the first `len` bytes of `original` to `dir`, as a crash leaves a recording.
fn cut_copy(original: &Path, len: usize, dir: &Path) -> PathBuf {
    let cut = dir.join(format!("cut.{}", original.extension().unwrap().to_string_lossy()));
    std::fs::write(&cut, &std::fs::read(original).unwrap()[..len]).unwrap();
    cut
}

fn recover(input: &Path, reference: &Path, output: &Path) -> std::process::Output {
    livemux().arg("recover").arg(input).arg("--reference").arg(reference).arg("-o").arg(output).output().unwrap()
}

/// Cuts `original` to `cut_len` bytes, recovers it, and checks the figures the issue asks
/// for: at least 99% of video and 95% of audio packets, nothing extra, no decode error.
fn check_recovery(original: &Path, cut_len: u64, reference: &Path) -> Vec<Rate> {
    let dir = tempfile::tempdir().unwrap();
    let cut = cut_copy(original, cut_len as usize, dir.path());
    let output = dir.path().join("recovered.mp4");
    let res = recover(&cut, reference, &output);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{}: {err}", original.display());
    assert!(err.contains("recovered without an index"), "the run ends with a summary: {err}");
    let rates = rates(original, cut_len, &output);
    let name = original.file_name().unwrap().to_string_lossy();
    for r in &rates {
        eprintln!(
            "{name} cut at {cut_len}: stream {} ({}) {}/{} packets identical ({:.1}%), {} extra",
            r.stream,
            if r.video { "video" } else { "audio" },
            r.matched,
            r.inside,
            r.percent(),
            r.extra
        );
        let floor = if r.video { 99.0 } else { 95.0 };
        assert!(r.percent() >= floor, "{name}: stream {} recovered {:.1}% < {floor}%", r.stream, r.percent());
        assert_eq!(r.extra, 0, "{name}: stream {} has packets the original does not", r.stream);
    }
    assert_eq!(decode_errors(&output), "", "{name}: the recovered file decodes cleanly");
    rates
}

#[test]
fn corpus_cut_files_are_recovered_with_their_reference() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let d = tools_dir();
    for (original, reference, cut_len) in [
        ("h264_aac_moov_end.mp4", "h264_aac_reference_1s.mp4", 328_277), // _truncated_30pct_midpacket
        ("h264_aac_moov_end.mp4", "h264_aac_reference_1s.mp4", 656_540), // _truncated_60pct
        ("hevc_aac_moov_end.mov", "hevc_aac_reference_1s.mov", 225_828), // _truncated_30pct_midpacket
        ("hevc_aac_moov_end.mov", "hevc_aac_reference_1s.mov", 451_642), // _truncated_60pct
    ] {
        check_recovery(&d.join(original), cut_len, &d.join(reference));
    }
}

#[test]
fn other_settings_are_recovered_with_their_reference() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    for (name, ext) in [
        ("small_25fps_nob_44k_stereo", "mp4"),
        ("60fps_b3_two_audio", "mp4"),
        ("pcm", "mov"),
        ("audio_only", "mp4"),
        ("opus", "mp4"),
    ] {
        let original = generated_file(&format!("recover_{name}.{ext}"));
        let reference = generated_file(&format!("recover_{name}_reference.{ext}"));
        let len = std::fs::metadata(&original).unwrap().len();
        // A cut inside the media, and one a few bytes later, inside some other packet.
        for cut in [len * 55 / 100, len * 55 / 100 + 777] {
            check_recovery(&original, cut, &reference);
        }
    }
}

/// Recorders that interleave in chunks (GStreamer's mp4mux, Android's MediaMuxer: a second
/// or more of one track, then of the other) write runs of audio far longer than decode-time
/// interleaving predicts.
#[test]
fn chunked_interleave_is_recovered() {
    if !tools(&["ffmpeg", "ffprobe", "gst-launch-1.0"]) {
        return;
    }
    let reference = generated_file("h264_aac_reference_1s.mp4");
    for name in ["gst_chunked_1s.mp4", "gst_chunked_3s.mp4"] {
        let original = generated_file(name);
        let len = std::fs::metadata(&original).unwrap().len();
        for cut in [len * 45 / 100, len * 80 / 100 + 333] {
            check_recovery(&original, cut, &reference);
        }
    }
}

/// A finished Matroska file serves as a reference as well as an MP4 one.
#[test]
fn matroska_reference() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = tools_dir();
    let mkv = dir.path().join("reference.mkv");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(d.join("h264_aac_reference_1s.mp4"))
        .args(["-c", "copy"])
        .arg(&mkv)
        .status()
        .unwrap();
    assert!(status.success());
    check_recovery(&d.join("h264_aac_moov_end.mp4"), 656_540, &mkv);
}

/// (time base numerator, denominator) of each stream, by ffprobe.
fn time_bases(path: &Path) -> Vec<(i64, i64)> {
    ffprobe_csv(path, "stream=time_base")
        .iter()
        .map(|l| {
            let (n, d) = l.split_once('/').unwrap();
            (n.parse().unwrap(), d.parse().unwrap())
        })
        .collect()
}

/// Presentation times come from picture order counts: with B-frames they must equal the
/// original's, not just the decode order (except for the last few pictures, which may be
/// presented after pictures the cut lost). FFmpeg starts a fragmented file's streams at
/// other origins than a progressive one's (it applies edit lists differently), so times
/// are compared from each stream's first packet, and the streams' offsets to each other.
#[test]
fn recovered_timestamps_equal_the_originals() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = tools_dir();
    for (original, reference, cut_len) in [
        ("hevc_aac_moov_end.mov", "hevc_aac_reference_1s.mov", 451_642),
        ("h264_aac_moov_end.mp4", "h264_aac_reference_1s.mp4", 656_540),
    ] {
        let original = d.join(original);
        let cut = cut_copy(&original, cut_len, dir.path());
        // One output per recording: livemux refuses to replace an existing file without -y.
        let output = dir.path().join(format!("out-{cut_len}.mp4"));
        assert!(recover(&cut, &d.join(reference), &output).status.success());
        let (want, got) = (framemd5(&original), framemd5(&output));
        let tbs = time_bases(&original);
        let mut shifts = Vec::new();
        for (s, (num, den)) in tbs.iter().enumerate() {
            let got = stream(&got, s as u32);
            let want = &stream(&want, s as u32)[..got.len()];
            let rel = |ps: &[FramePacket]| -> Vec<(i64, i64, i64, String)> {
                ps.iter().map(|p| (p.dts - ps[0].dts, p.pts - ps[0].dts, p.duration, p.md5.clone())).collect()
            };
            // The last pictures before the cut may be presented after pictures the cut lost:
            // their presentation times cannot be known.
            let (g, w) = (rel(&got), rel(want));
            if let Some(i) = (0..g.len().saturating_sub(4)).find(|&i| g[i] != w[i]) {
                panic!("{}: stream {s} packet {i}: {:?}, original {:?}", original.display(), g[i], w[i]);
            }
            // The shift FFmpeg applied, in microseconds.
            shifts.push((got[0].dts - want[0].dts) * num * 1_000_000 / den);
        }
        assert!(shifts.iter().all(|&x| (x - shifts[0]).abs() <= 1000), "streams stay in sync: {shifts:?} µs");
    }
}

/// The same recovery fed through stdin in arbitrary pieces, with pauses, gives the same
/// file; and fragments come out while the input is still arriving.
#[test]
fn live_moov_less_input_through_stdin() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = tools_dir();
    let cut = cut_copy(&d.join("h264_aac_moov_end.mp4"), 656_540, dir.path());
    let data = std::fs::read(&cut).unwrap();
    let reference = d.join("h264_aac_reference_1s.mp4");
    let whole = dir.path().join("whole.mp4");
    // The file run in the format of the stdout run (an .mp4 file defaults to --to mp4).
    let mut file_run = livemux();
    file_run.arg("recover").arg(&cut).arg("--reference").arg(&reference).args(["--to", "fmp4", "-o"]).arg(&whole);
    assert!(file_run.status().unwrap().success());

    let mut child = livemux()
        .args(["remux", "-", "-o", "-", "--reference"])
        .arg(&reference)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        stdout.read_to_end(&mut all).unwrap();
        all
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut rng = Lcg(7);
    let mut at = 0;
    while at < data.len() {
        let n = (1 + rng.next(40_000) as usize).min(data.len() - at);
        stdin.write_all(&data[at..at + n]).unwrap();
        stdin.flush().unwrap();
        at += n;
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let live = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(live, std::fs::read(&whole).unwrap(), "stdin in pieces gives the file run's output");
}

/// Output must follow a moov-less recording as it grows: each fragment out within about
/// one GOP (2 s here) of its media arriving.
#[test]
fn fragments_follow_a_growing_moov_less_recording() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let d = tools_dir();
    let data = std::fs::read(d.join("h264_aac_moov_end.mp4")).unwrap()[..656_540].to_vec();
    let mut child = livemux()
        .args(["remux", "-", "-o", "-", "--max-fragment-ms", "1000", "--reference"])
        .arg(d.join("h264_aac_reference_1s.mp4"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
    let log = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // About 6 s of media, fed at real time in 100 ms steps.
    let mut stdin = child.stdin.take().unwrap();
    let step = data.len() / 60;
    let mut fragments_when_fed: HashMap<usize, usize> = HashMap::new();
    for (i, piece) in data.chunks(step).enumerate() {
        stdin.write_all(piece).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let out = seen.lock().unwrap().clone();
        fragments_when_fed.insert(i, top_level_boxes(&out).iter().filter(|b| &b.0 == b"moof").count());
    }
    drop(stdin);
    reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    // Fragments are at most 1 s long. After n seconds of media were fed, all but the open
    // fragment and the frames waiting for their presentation order (16 at most) are out.
    for (i, n) in fragments_when_fed {
        let seconds_fed = (i + 1) / 10;
        assert!(n + 2 >= seconds_fed, "after {seconds_fed} s of media only {n} fragments were out");
    }
    let total = top_level_boxes(&seen.lock().unwrap()).iter().filter(|b| &b.0 == b"moof").count();
    assert!(total >= 5, "{total} fragments");
}

#[test]
fn wrong_references_and_inputs_without_media_are_refused() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = tools_dir();
    let cut = cut_copy(&d.join("h264_aac_moov_end.mp4"), 656_540, dir.path());
    // No mdat at all: the ftyp and free boxes only.
    let head = dir.path().join("no_mdat.mp4");
    let bytes = std::fs::read(d.join("h264_aac_moov_end.mp4")).unwrap();
    let mdat_at = top_level_boxes(&bytes).iter().find(|b| &b.0 == b"mdat").unwrap().1;
    std::fs::write(&head, &bytes[..mdat_at]).unwrap();
    let other_settings = generated_file("recover_small_25fps_nob_44k_stereo_reference.mp4");
    for (input, reference, needles) in [
        (&cut, d.join("hevc_aac_reference_1s.mov"), &["fits no track of the reference", "hevc, aac"][..]),
        (&cut, other_settings, &["the reference was not made with the stream's"][..]),
        (&head, d.join("h264_aac_reference_1s.mp4"), &["no media", "nothing to recover"][..]),
    ] {
        let out = dir.path().join("out.mp4");
        let res = recover(input, &reference, &out);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected '{n}' in: {err}");
        }
        assert!(!out.exists(), "nothing written for {}", reference.display());
    }
}
