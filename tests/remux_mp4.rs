//! MP4 in every layout -> fragmented MP4, checked with FFmpeg as the independent reader.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// `--to fmp4`: these tests are about the fragmented writer (tests/regular_mp4.rs covers
/// `--to mp4`, the default for an .mp4 file).
fn remux(input: &Path, output: &Path) -> std::process::Output {
    let args = ["--to", "fmp4", "--durability", "none"];
    livemux().arg("remux").arg(input).arg("-o").arg(output).args(args).output().unwrap()
}

/// Sizes and MD5s per stream must be equal; timestamps must keep their spacing. (FFmpeg
/// reads edit lists of fragmented files differently from progressive ones, so absolute
/// values may move by a constant; for fragmented inputs they must be equal.)
fn check_same_media(input: &Path, output: &Path, exact_times: bool) {
    let (a, b) = (framemd5(input), framemd5(output));
    if exact_times {
        assert_same_packets(&a, &b, &input.display().to_string());
    }
    let streams = a.iter().map(|p| p.stream).max().unwrap() + 1;
    assert_eq!(streams, b.iter().map(|p| p.stream).max().unwrap() + 1);
    for s in 0..streams {
        let (x, y) = (stream(&a, s), stream(&b, s));
        assert_eq!(x.len(), y.len(), "{}: stream {s} packet count", input.display());
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            assert_eq!((p.size, &p.md5), (q.size, &q.md5), "{}: stream {s} packet {i}", input.display());
            assert_eq!(p.dts - x[0].dts, q.dts - y[0].dts, "{}: stream {s} packet {i} dts spacing", input.display());
            assert_eq!(p.pts - x[0].pts, q.pts - y[0].pts, "{}: stream {s} packet {i} pts spacing", input.display());
        }
    }
    assert_eq!(decode_errors(output), "", "{}: decode errors", output.display());
}

#[test]
fn every_layout_remuxes_with_identical_packets() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let progressive = [
        "h264_aac_moov_end.mp4",
        "h264_aac_faststart.mp4",
        "hevc_aac_moov_end.mov",
        "aac_only.mp4",
        "two_audio.mp4",
        "pcm_s16le.mov",
        "h264_aac_reference_1s.mp4",
    ];
    let mut fragmented = vec!["h264_aac_fragmented.mp4", "h264_aac_cmaf.mp4", "h264_aac.ismv"];
    if tools(&["gst-launch-1.0"]) {
        // GStreamer mp4mux: fragmented, and robust mode (moov reserved at the front).
        fragmented.extend(["gst_h264_fragmented.mp4", "gst_h264_robust.mp4"]);
    }
    for (names, exact) in [(&progressive[..], false), (&fragmented[..], true)] {
        for name in names {
            let input = generated_file(name);
            let output = dir.path().join(format!("{name}.out.mp4"));
            let out = remux(&input, &output);
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
            check_same_media(&input, &output, exact);
            let (ok, text) = ffprobe(&output, "format=format_name");
            assert!(ok, "{name}: ffprobe: {text}");
        }
    }
    for name in browser_mp4_names() {
        let input = browser_file(name, dir.path());
        let output = dir.path().join(format!("{name}.out.mp4"));
        let out = remux(&input, &output);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        check_same_media(&input, &output, true);
    }
}

#[test]
fn fragment_cut_in_the_middle_keeps_every_complete_fragment() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole = generated_file("h264_aac_fragmented.mp4");
    let input = generated_file("h264_aac_fragmented_truncated.mp4");
    let output = dir.path().join("out.mp4");
    let out = remux(&input, &output);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete last fragment"));
    let (all, got) = (framemd5(&whole), framemd5(&output));
    for s in 0..2 {
        let (a, b) = (stream(&all, s), stream(&got, s));
        assert!(!b.is_empty() && b.len() < a.len(), "stream {s}: {} of {}", b.len(), a.len());
        assert_eq!(&a[..b.len()], &b[..], "stream {s} is a prefix of the complete file");
    }
    // Complete fragments only: the cut file ends 45% in, so the video keeps whole GOPs.
    assert_eq!(stream(&got, 0).len() % 60, 0, "video stops at a fragment (GOP) boundary");
    assert_eq!(decode_errors(&output), "");
}

#[test]
fn file_without_moov_fails_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_file("h264_aac_truncated_60pct.mp4");
    let output = dir.path().join("out.mp4");
    let out = remux(&input, &output);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no 'moov' box") && err.contains("--reference"), "{err}");
    assert!(err.contains("h264_aac_truncated_60pct.mp4"), "names the file: {err}");
    assert!(!output.exists(), "nothing is written that claims to be valid");
}

#[test]
fn chunks_through_stdin_give_the_file_output_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for name in browser_mp4_names() {
        let file_out = dir.path().join(format!("{name}.file.mp4"));
        let input = browser_file(name, dir.path());
        assert!(remux(&input, &file_out).status.success());

        let mut child =
            livemux().args(["remux", "-", "-o", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let chunks = browser_chunks(name);
        let writer = std::thread::spawn(move || {
            for c in chunks {
                stdin.write_all(&c).unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, std::fs::read(&file_out).unwrap(), "{name}: stdin output differs from file output");
    }
}
