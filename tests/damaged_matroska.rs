//! Damaged and hostile Matroska: a lost upload chunk is skipped up to the next Cluster, a
//! torn last Cluster is finalized into a file players read, hostile streams stay within a
//! bounded memory, and livemux reads its own B-frame Matroska back into MP4.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Packets per stream as `ffprobe -count_packets` reads them (None when ffprobe fails).
fn packet_counts(path: &Path) -> Vec<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

/// A deterministic pseudo-random sequence (a 64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

// ---- a lost upload chunk ----

/// Uploads of a Chromium recording cut in 16 KiB chunks (as tus or S3 part uploads cut
/// them, wherever the blocks fall), one of them lost: livemux skips the damaged bytes up
/// to the next Cluster, names them, and keeps at least what FFmpeg reads.
#[test]
fn a_lost_upload_chunk_is_skipped_up_to_the_next_cluster() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole = browser_chunks("chrome_webm_vp9_opus").concat();
    const UPLOAD_CHUNK: usize = 16 << 10;
    let chunks: Vec<&[u8]> = whole.chunks(UPLOAD_CHUNK).collect();
    assert!(chunks.len() > 12, "{} chunks", chunks.len());
    for lost in [5, 7, 9, 11] {
        let damaged: Vec<u8> =
            chunks.iter().enumerate().filter(|&(i, _)| i != lost).flat_map(|(_, c)| c.iter().copied()).collect();
        let input = dir.path().join(format!("lost_{lost}.webm"));
        std::fs::write(&input, &damaged).unwrap();
        let output = dir.path().join(format!("out_{lost}.webm"));
        let out = livemux().arg("remux").arg(&input).arg("-o").arg(&output).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "chunk {lost} lost: {err}");
        // The note names the byte range skipped, which lies around the lost chunk.
        let gap = (lost * UPLOAD_CHUNK) as u64;
        let range = err
            .lines()
            .filter_map(|l| l.split("damaged data at bytes ").nth(1))
            .filter_map(|r| {
                let (a, rest) = r.split_once("..")?;
                let b = rest.split(' ').next()?;
                Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
            })
            .next();
        let (from, to) = range.unwrap_or_else(|| panic!("chunk {lost} lost: no skipped range in: {err}"));
        // The damage is found where the first element after the gap does not parse
        // (a block whose size ran over the gap swallows bytes past it).
        assert!(
            from + 65536 >= gap && from <= gap + 65536 && to > gap && to - from < 65536,
            "chunk {lost}: skipped {from}..{to}, gap at {gap}"
        );
        eprintln!("chunk {lost} lost: skipped {from}..{to}");
        let theirs = packet_counts(&input);
        let ours = packet_counts(&output);
        eprintln!("chunk {lost} lost: livemux keeps {ours:?} packets, FFmpeg reads {theirs:?}");
        assert_eq!(ours.len(), 2, "chunk {lost}: {ours:?}");
        for (s, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert!(o + 3 >= *t, "chunk {lost} stream {s}: livemux keeps {o} packets, FFmpeg reads {t}");
        }
        // Decoding complains near the gap at most (a frame whose references were lost),
        // no more than decoding the damaged input itself does.
        let ours_errors = decode_errors(&output).lines().count();
        let theirs_errors = decode_errors(&input).lines().count();
        assert!(ours_errors <= theirs_errors.max(4), "chunk {lost}: {ours_errors} vs {theirs_errors} decode errors");
    }
}

// ---- a torn last Cluster, finalized ----

/// A livemux WebM cut at 30 pseudo-random points (a crash, a full disk) and then
/// `livemux finalize`d is read back by livemux and decoded by FFmpeg without a message.
#[test]
fn torn_clusters_are_finalized_into_files_players_read() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = browser_file("chrome_webm_vp9_opus", dir.path());
    let made = dir.path().join("made.webm");
    let out = livemux().arg("remux").arg(&source).args(["--to", "webm", "-o"]).arg(&made).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = std::fs::read(&made).unwrap();
    // Past the header and the first Cluster's first bytes, so that there is media.
    let first = 2048u64;
    let mut rng = Lcg(12);
    let cuts: Vec<usize> = (0..30).map(|_| (first + rng.next(data.len() as u64 - first - 1)) as usize).collect();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for part in cuts.chunks(10) {
            let (dir, data, failures) = (dir.path(), &data, &failures);
            s.spawn(move || {
                for &cut in part {
                    if let Err(e) = check_cut(dir, &data[..cut]) {
                        failures.lock().unwrap().push(format!("cut at {cut}: {e}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of 30 cut points fail:\n{}", failures.len(), failures.join("\n"));
}

fn check_cut(dir: &Path, data: &[u8]) -> Result<(), String> {
    let path = dir.join(format!("cut_{}.webm", data.len()));
    std::fs::write(&path, data).unwrap();
    let out = livemux().arg("finalize").arg(&path).output().unwrap();
    if !out.status.success() {
        return Err(format!("finalize: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let again = dir.join(format!("again_{}.webm", data.len()));
    let out = livemux().arg("remux").arg(&path).arg("-o").arg(&again).output().unwrap();
    if !out.status.success() {
        return Err(format!("livemux reading it back: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let errors = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    if !errors.stderr.is_empty() || !errors.status.success() {
        return Err(format!("ffmpeg: {}", String::from_utf8_lossy(&errors.stderr)));
    }
    std::fs::remove_file(&again).ok();
    std::fs::remove_file(&path).ok();
    Ok(())
}

// ---- bounded memory on hostile streams ----

fn vsize(n: u64) -> Vec<u8> {
    let len = (1..=8).find(|&l| n < (1u64 << (7 * l)) - 1).unwrap();
    let v = n | (1u64 << (7 * len));
    v.to_be_bytes()[8 - len..].to_vec()
}

fn el(id: u32, body: &[u8]) -> Vec<u8> {
    let id_len = (4 - id.leading_zeros() / 8) as usize;
    let mut v = id.to_be_bytes()[4 - id_len..].to_vec();
    v.extend(vsize(body.len() as u64));
    v.extend_from_slice(body);
    v
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let n = (8 - v.leading_zeros() as usize / 8).max(1);
    el(id, &v.to_be_bytes()[8 - n..])
}

const UNKNOWN: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// EBML header, unknown-size Segment, Info, and (with a codec) Tracks with one video track.
fn stream_head(codec: Option<&str>) -> Vec<u8> {
    let mut v = el(0x1A45DFA3, &[el(0x4282, b"webm"), uint(0x4287, 4), uint(0x4285, 2)].concat());
    v.extend([0x18, 0x53, 0x80, 0x67]);
    v.extend(UNKNOWN);
    v.extend(el(0x1549A966, &uint(0x2AD7B1, 1_000_000)));
    if let Some(codec) = codec {
        let video = el(0xE0, &[uint(0xB0, 64), uint(0xBA, 64)].concat());
        let entry = [uint(0xD7, 1), uint(0x73C5, 1), uint(0x83, 1), el(0x86, codec.as_bytes()), video].concat();
        v.extend(el(0x1654AE6B, &el(0xAE, &entry)));
    }
    v
}

/// Runs `livemux remux - --to webm -o -` on `total` bytes of `head` then `body` repeated,
/// written to its stdin; returns (exit code, stderr, peak RSS in KiB).
fn run_hostile(head: &[u8], body: &[u8], total: usize) -> (Option<i32>, String, u64) {
    let mut child = livemux()
        .args(["remux", "-", "--to", "webm", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (head, body) = (head.to_vec(), body.repeat((1 << 20) / body.len() + 1));
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&head);
        let mut sent = 0;
        while sent < total {
            if stdin.write_all(&body).is_err() {
                break;
            }
            sent += body.len();
        }
    });
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()).ok());
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    // wait4 reports the peak resident set of the reaped process exactly.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    writer.join().unwrap();
    drain.join().unwrap();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    std::mem::forget(child); // reaped above
    (code, err.join().unwrap(), usage.ru_maxrss as u64)
}

/// Peak RSS bound for the hostile streams (the binary alone takes a few MiB).
const MAX_RSS_KIB: u64 = 150 << 10;

/// 200 MB of blocks that all have the same timestamp: fragments end at their byte cap.
#[test]
fn timestamps_that_do_not_advance_keep_memory_bounded() {
    let mut head = stream_head(Some("V_VP8"));
    head.extend([0x1F, 0x43, 0xB6, 0x75]);
    head.extend(UNKNOWN);
    head.extend(uint(0xE7, 0));
    let mut block = vec![0x81, 0, 0, 0x80];
    block.extend(vec![0x55u8; 64 << 10]);
    let (code, err, rss) = run_hostile(&head, &el(0xA3, &block), 200 << 20);
    eprintln!("same timestamp, 200 MB: exit {code:?}, peak RSS {} MiB", rss >> 10);
    assert_eq!(code, Some(0), "{err}");
    assert!(rss < MAX_RSS_KIB, "peak RSS {} MiB for 200 MB of input", rss >> 10);
}

/// Unknown-size Clusters without blocks, forever, on a track whose parameters need a
/// first frame (VP9), and on a stream with no Tracks: what is held waiting is bounded,
/// then a clear error.
#[test]
fn empty_unknown_size_clusters_keep_memory_bounded() {
    let cluster = |t: u64| [&[0x1F, 0x43, 0xB6, 0x75][..], &UNKNOWN, &uint(0xE7, t)].concat();
    let body: Vec<u8> = (0..64).flat_map(cluster).collect();
    for (what, head, expect) in [
        ("VP9 track, no frame", stream_head(Some("V_VP9")), "no keyframe describing every track"),
        ("no Tracks", stream_head(None), "no Tracks element"),
    ] {
        let (code, err, rss) = run_hostile(&head, &body, 100 << 20);
        eprintln!("{what}: exit {code:?}, peak RSS {} MiB", rss >> 10);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        assert!(rss < MAX_RSS_KIB, "{what}: peak RSS {} MiB", rss >> 10);
    }
}

/// "EBML unknown sizes forever": empty unknown-size Clusters and Voids on a stream whose
/// tracks are known stay small for as long as they come.
#[test]
fn unknown_sizes_forever_stay_small() {
    let mut body = Vec::new();
    for t in 0..64u64 {
        body.extend([0x1F, 0x43, 0xB6, 0x75]);
        body.extend(UNKNOWN);
        body.extend(uint(0xE7, t));
        body.extend(el(0xEC, &[0u8; 100]));
    }
    let (code, err, rss) = run_hostile(&stream_head(Some("V_VP8")), &body, 100 << 20);
    eprintln!("unknown sizes forever, 100 MB: exit {code:?}, peak RSS {} MiB", rss >> 10);
    assert!(!err.contains("panicked"), "{err}");
    assert!(rss < MAX_RSS_KIB, "peak RSS {} MiB", rss >> 10);
}

// ---- header stripping ----

/// A 1 MB header-stripping prefix would be written again before every frame: refused.
#[test]
fn a_huge_header_stripping_prefix_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let settings = vec![0x42u8; 1 << 20];
    let compression = el(0x5034, &[uint(0x4254, 3), el(0x4255, &settings)].concat());
    let encoding = el(0x6240, &[uint(0x5031, 0), uint(0x5032, 1), uint(0x5033, 0), compression].concat());
    let video = el(0xE0, &[uint(0xB0, 64), uint(0xBA, 64)].concat());
    let entry = [uint(0xD7, 1), uint(0x83, 1), el(0x86, b"V_VP8"), video, el(0x6D80, &encoding)].concat();
    let mut data = stream_head(None);
    data.extend(el(0x1654AE6B, &el(0xAE, &entry)));
    data.extend([0x1F, 0x43, 0xB6, 0x75]);
    data.extend(UNKNOWN);
    data.extend(uint(0xE7, 0));
    for t in 0..100u8 {
        data.extend(el(0xA3, &[0x81, 0, t, 0x80, 1, 2, 3]));
    }
    let input = dir.path().join("strip.mkv");
    std::fs::write(&input, &data).unwrap();
    let output = dir.path().join("out.mkv");
    let out = livemux().arg("remux").arg(&input).arg("-o").arg(&output).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("header-stripping prefix") && err.contains("64"), "{err}");
    let written = std::fs::metadata(&output).map_or(0, |m| m.len());
    assert!(written < 1 << 20, "{written} bytes written");
}

// ---- laced sizes that wrap ----

/// 255 EBML lace sizes whose sum wraps: a clear result in remux (file and stdin) and in
/// finalize, never a panic.
#[test]
fn lace_sizes_that_wrap_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    // 256 frames, EBML lacing: coded sizes 2^56 - 2, then 253 equal ones (an 8-byte
    // difference, 252 zero differences), then a 2-byte difference: they sum to 2^64 + 10.
    let first = (1u64 << 56) - 2;
    let rest = (1u128 << 64) + 10 - first as u128;
    let (each, extra) = ((rest / 254) as u64, (rest % 254) as u64);
    let mut block = vec![0x81, 0, 0, 0x86, 255, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE];
    let raw = (each - first) + ((1u64 << 55) - 1);
    block.push(0x01);
    block.extend(&raw.to_be_bytes()[1..]);
    block.extend(std::iter::repeat_n(0xBFu8, 252));
    let raw = extra + ((1 << 13) - 1);
    block.extend([0x40 | (raw >> 8) as u8, raw as u8]);
    block.extend([0u8; 1500]);
    let mut data = stream_head(Some("V_VP8"));
    data.extend([0x1F, 0x43, 0xB6, 0x75]);
    data.extend(UNKNOWN);
    data.extend(uint(0xE7, 0));
    data.extend(el(0xA3, &[0x81, 0, 0, 0x80, 9, 9, 9]));
    data.extend(el(0xA3, &block));
    data.extend(el(0xA3, &[0x81, 0, 1, 0x80, 9, 9, 9]));
    let input = dir.path().join("lace.webm");
    std::fs::write(&input, &data).unwrap();
    let out = livemux().arg("remux").arg(&input).arg("-o").arg(dir.path().join("a.webm")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("damaged block skipped"), "{err}");

    let mut child = livemux()
        .args(["remux", "-", "--to", "webm", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let out = livemux().arg("finalize").arg(&input).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)) && !err.contains("panicked"), "{err}");
}

// ---- B-frames through Matroska and back to MP4 ----

/// x264 with B-frames and AAC (whose priming makes the first timestamp negative in
/// Matroska) → mkv → fmp4 and mp4: the presentation times stay those of the mkv.
#[test]
fn own_b_frame_matroska_goes_back_to_mp4() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bf.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let mkv = dir.path().join("bf.mkv");
    let out = livemux().arg("remux").arg(&src).args(["--to", "mkv", "-o"]).arg(&mkv).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = frame_pts(&mkv);
    assert!(expected.iter().any(|(_, pts)| *pts < 0.0), "the mkv starts before 0: {:?}", &expected[..4]);
    for to in ["fmp4", "mp4"] {
        let back = dir.path().join(format!("back.{to}.mp4"));
        let out = livemux().arg("remux").arg(&mkv).args(["--to", to, "-o"]).arg(&back).output().unwrap();
        assert!(out.status.success(), "--to {to}: {}", String::from_utf8_lossy(&out.stderr));
        let mut got = frame_pts(&back);
        let mut expected = expected.clone();
        if to == "mp4" {
            // FFmpeg drops frames that a regular MP4's edit list hides entirely (the AAC
            // priming frame before 0), as it does for the x264+AAC MP4 it wrote itself.
            got.retain(|f| f.1 >= 0.0);
            expected.retain(|f| f.1 >= 0.0);
        }
        assert_eq!(got.len(), expected.len(), "--to {to}: frame count");
        for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert!(a.0 == b.0 && (a.1 - b.1).abs() < 0.0015, "--to {to}: frame {i} is {a:?}, the mkv's {b:?}");
        }
        let errors = decode_errors(&back);
        assert!(errors.is_empty(), "--to {to}: {errors}");
    }
}

/// (stream, pts in seconds) of every decoded frame, in output order per stream.
fn frame_pts(path: &Path) -> Vec<(u32, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "frame=stream_index,pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let mut frames: Vec<(u32, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (s, t) = l.split_once(',')?;
            Some((s.trim().parse().ok()?, t.trim().parse().ok()?))
        })
        .collect();
    frames.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    frames
}
