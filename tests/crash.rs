//! Crash safety: livemux is killed (SIGKILL) or interrupted (SIGINT) in the middle of a
//! paced remux; whatever reached the file must open and hold a prefix of the packets.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Starts `livemux remux - -o OUT` (for an .mp4 file, `--to mp4` by default: fragmented
/// MP4 until a clean stop) and feeds it `data` at about `bytes_per_sec`.
fn paced_remux(data: Vec<u8>, out: &Path, bytes_per_sec: usize) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = livemux()
        .args(["remux", "-", "--fragment-ms", "200", "--max-fragment-ms", "400", "-o"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let piece = bytes_per_sec / 100;
        for c in data.chunks(piece) {
            if stdin.write_all(c).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Keep stdin open: the run ends only when killed.
        std::thread::sleep(Duration::from_secs(30));
    });
    (child, feeder)
}

/// Packets of a complete remux of `input` to `to` (fmp4: what a killed recording holds;
/// mp4: what a clean stop gives), the reference every partial output must prefix.
fn full_remux_packets(input: &Path, dir: &Path, to: &str) -> Vec<FramePacket> {
    let out = dir.join(format!("complete.{to}.mp4"));
    let status = livemux().arg("remux").arg(input).args(["--to", to, "-o"]).arg(&out).status().unwrap();
    assert!(status.success());
    framemd5(&out)
}

fn wait_for_output(out: &Path) {
    let start = Instant::now();
    while std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "no output after 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigkill_at_random_moments_leaves_a_playable_prefix() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let input = generated_file("h264_aac_faststart.mp4");
    let data = std::fs::read(&input).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Killed, a `--to mp4` recording is a fragmented MP4 (with a reserved free box).
    let whole = full_remux_packets(&input, dir.path(), "fmp4");
    let mut rng = Lcg(0x5eed);
    let mut fragments_seen = 0;
    for run in 0..20 {
        let out = dir.path().join(format!("killed-{run}.mp4"));
        let (mut child, _feeder) = paced_remux(data.clone(), &out, 1 << 20);
        wait_for_output(&out);
        std::thread::sleep(Duration::from_millis(rng.next(900)));
        signal(child.id(), "KILL");
        child.wait().unwrap();

        let bytes = std::fs::read(&out).unwrap();
        let (ok, text) = ffprobe(&out, "format=format_name");
        assert!(ok, "run {run}: killed output ({} bytes) does not open: {text}", bytes.len());
        let complete = complete_fragments_prefix(&bytes);
        let trimmed = dir.path().join(format!("trimmed-{run}.mp4"));
        std::fs::write(&trimmed, complete).unwrap();
        let got = framemd5(&trimmed);
        assert_prefix(&whole, &got, &format!("run {run}"));
        fragments_seen += top_level_boxes(complete).iter().filter(|b| &b.0 == b"moof").count();
    }
    assert!(fragments_seen > 20, "the kills happened while fragments were being written ({fragments_seen})");
}

#[test]
fn ctrl_c_finishes_the_output_and_exits_0() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let input = generated_file("h264_aac_faststart.mp4");
    let data = std::fs::read(&input).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("interrupted.mp4");
    let (mut child, _feeder) = paced_remux(data, &out, 1 << 20);
    wait_for_output(&out);
    std::thread::sleep(Duration::from_millis(400));
    signal(child.id(), "INT");
    let start = Instant::now();
    let status = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(complete_fragments_prefix(&bytes).len(), bytes.len(), "no torn fragment after a clean stop");
    // A clean stop of a `--to mp4` recording: a regular MP4 whose edit lists end with the
    // media that arrived, which sets the last packet's duration (to the millisecond).
    let boxes: Vec<_> = top_level_boxes(&bytes).iter().map(|b| b.0).collect();
    assert_eq!(boxes, [*b"ftyp", *b"moov", *b"mdat"], "a regular MP4 with the index first");
    assert_cut_prefix(&full_remux_packets(&input, dir.path(), "mp4"), &framemd5(&out), "interrupted");
    assert_eq!(decode_errors(&out), "");
}

#[test]
fn a_failing_stage_leaves_the_output_valid_up_to_its_last_fragment() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    // A fragmented file whose 4th moof declares an absurd sample count.
    let input = generated_file("h264_aac_fragmented.mp4");
    let mut data = std::fs::read(&input).unwrap();
    let moofs: Vec<_> = top_level_boxes(&data).into_iter().filter(|b| &b.0 == b"moof").collect();
    let at = moofs[3].1;
    let trun = at + data[at..].windows(4).position(|w| w == b"trun").unwrap();
    data[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, &data).unwrap();
    let out = dir.path().join("out.mp4");
    let res = livemux().arg("remux").arg(&damaged).arg("-o").arg(&out).output().unwrap();
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("damaged.mp4") && err.contains(&format!("offset {}", trun - 4)), "{err}");
    let (ok, text) = ffprobe(&out, "format=format_name");
    assert!(ok, "{text}");
    let got = framemd5(&out);
    assert!(!got.is_empty());
    assert_prefix(&framemd5(&input), &got, "before the damage");
}
