//! Codec parameters from a reference recording (the recapture).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;

/// A copy of `input` with the payloads of its `avcC` and `dOps` boxes zeroed (sizes kept),
/// like `corpus/spoiled/chrome_mp4_avc1_opus_zeroed_config.mp4`.
fn spoil(input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for name in [b"avcC", b"dOps"] {
        let at = out.windows(4).position(|w| w == name).expect("box present");
        let size = u32::from_be_bytes(out[at - 4..at].try_into().unwrap()) as usize;
        out[at + 4..at - 4 + size].fill(0);
    }
    out
}

fn spoiled_and_probe(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let original = browser_file("chrome_mp4_avc1_opus", dir);
    let spoiled = dir.join("spoiled.mp4");
    std::fs::write(&spoiled, spoil(&std::fs::read(&original).unwrap())).unwrap();
    let probe = browser_file("chrome_mp4_avc1_opus_probe", dir);
    (original, spoiled, probe)
}

fn frame_hashes(path: &Path) -> Vec<(u32, String)> {
    decoded_framemd5(path).into_iter().map(|p| (p.stream, p.md5)).collect()
}

#[test]
fn zeroed_parameters_are_taken_from_the_reference() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (original, spoiled, probe) = spoiled_and_probe(dir.path());
    let expected = frame_hashes(&original);
    assert!(!expected.is_empty());

    // Whole file.
    let out = dir.path().join("recovered.mp4");
    let res =
        livemux().arg("recover").arg(&spoiled).arg("--reference").arg(&probe).arg("-o").arg(&out).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(String::from_utf8_lossy(&res.stderr).contains("using the reference's"));
    assert_eq!(decode_errors(&out), "");
    assert_eq!(frame_hashes(&out), expected, "decoded frames equal the original's");

    // Chunk by chunk through stdin, as the browser delivers it.
    let spoiled_bytes = std::fs::read(&spoiled).unwrap();
    let mut child = livemux()
        .args(["recover", "-", "-o", "-", "--reference"])
        .arg(&probe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let sizes: Vec<usize> = browser_chunks("chrome_mp4_avc1_opus").iter().map(Vec::len).collect();
    let writer = std::thread::spawn(move || {
        let mut at = 0;
        for n in sizes {
            stdin.write_all(&spoiled_bytes[at..at + n]).unwrap();
            at += n;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let res = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(res.status.success());
    let piped = dir.path().join("piped.mp4");
    std::fs::write(&piped, &res.stdout).unwrap();
    assert_eq!(frame_hashes(&piped), expected, "chunk by chunk");
}

#[test]
fn probe_says_where_parameters_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let (_, spoiled, probe) = spoiled_and_probe(dir.path());
    let res = livemux().arg("probe").arg(&spoiled).arg("--json").arg("--reference").arg(&probe).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let report: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let origins: Vec<_> = report["tracks"].as_array().unwrap().iter().map(|t| t["params_from"].clone()).collect();
    assert_eq!(origins, ["reference", "reference"]);

    let res = livemux().arg("probe").arg(&spoiled).output().unwrap();
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--reference"));
}

#[test]
fn wrong_or_broken_references_are_refused_naming_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (_, spoiled, _) = spoiled_and_probe(dir.path());
    let vp9 = browser_file("chrome_mp4_vp9_opus_probe", dir.path());
    let audio_only = browser_file("chrome_audio_mp4_opus_probe", dir.path());
    let cut = generated_file("h264_aac_truncated_60pct.mp4");
    let other_timescale = generated_file("h264_aac_reference_1s.mp4");
    let broken = dir.path().join("broken_reference.mp4");
    std::fs::write(&broken, spoil(&std::fs::read(browser_file("chrome_mp4_avc1_opus_probe", dir.path())).unwrap()))
        .unwrap();
    for (reference, needles) in [
        (&vp9, &["vp9", "h264", "no video h264 track"][..]),
        (&audio_only, &["the stream has 2 tracks", "the reference 1"][..]),
        (&cut, &["no 'moov' box", "complete recording"][..]),
        (&other_timescale, &["timescale differs", "15360", "20000"][..]),
        (&broken, &["broken_reference.mp4", "unusable"][..]),
    ] {
        let out = dir.path().join("out.mp4");
        let res = livemux()
            .arg("recover")
            .arg(&spoiled)
            .arg("--reference")
            .arg(reference)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected '{n}' in: {err}");
        }
        assert!(!out.exists(), "nothing written for a refused reference");
    }
}

/// Where the payload of the first `name` box (`avcC`, `hvcC`) is in an MP4 file.
fn config_range(data: &[u8], name: &[u8; 4]) -> std::ops::Range<usize> {
    let at = data.windows(4).position(|w| w == name).expect("record present");
    let size = u32::from_be_bytes(data[at - 4..at].try_into().unwrap()) as usize;
    at + 4..at - 4 + size
}

/// A copy of an MP4 file whose codec record parses but describes another stream than the
/// parameter sets its keyframes repeat in-band: another level in an `avcC` (record and
/// SPS), another PPS in an `hvcC`.
fn disagreeing(data: &[u8], name: &[u8; 4]) -> Vec<u8> {
    let mut out = data.to_vec();
    let rec = config_range(data, name);
    if name == b"avcC" {
        // Version, profile, compatibility, level, length size, SPS count, SPS length (2),
        // then the SPS: NAL header, profile, compatibility, level_idc.
        let (level, sps_level) = (rec.start + 3, rec.start + 11);
        assert_eq!(out[level], out[sps_level], "the record's level is the SPS's");
        out[level] = 0x33;
        out[sps_level] = 0x33;
        return out;
    }
    // hvcC: 22 bytes of header, the array count, then arrays of (type, count, units).
    let mut at = rec.start + 23;
    while at < rec.end {
        let (nal_type, count) = (out[at] & 0x3f, u16::from_be_bytes([out[at + 1], out[at + 2]]));
        at += 3;
        for _ in 0..count {
            let len = u16::from_be_bytes([out[at], out[at + 1]]) as usize;
            if nal_type == 34 {
                // A flag in the PPS's first payload byte: another PPS, still one that parses.
                out[at + 4] ^= 0x02;
                return out;
            }
            at += 2 + len;
        }
    }
    panic!("no PPS in the hvcC");
}

/// Encoders that repeat SPS and PPS in every keyframe (GStreamer's, hardware ones) decode
/// from those, whatever the record says. With a record that parses but disagrees with
/// them, `auto` takes the reference's; `stream` keeps the stream's. Fragmented H.264 finds
/// the first sample through its first `moof`, faststart HEVC through the sample table.
#[test]
fn parameters_that_disagree_with_the_bitstream_are_taken_from_the_reference() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (file, name, what) in
        [("h264_inband_fragmented.mp4", b"avcC", "SPS"), ("hevc_inband_faststart.mp4", b"hvcC", "PPS")]
    {
        let original = generated_file(file);
        let bytes = std::fs::read(&original).unwrap();
        let record = &bytes[config_range(&bytes, name)];
        let wrong = disagreeing(&bytes, name);
        let spoiled = dir.path().join(format!("wrong_{file}"));
        std::fs::write(&spoiled, &wrong).unwrap();
        let expected = frame_hashes(&original);
        let record_of = |path: &Path| {
            let data = std::fs::read(path).unwrap();
            data[config_range(&data, name)].to_vec()
        };

        // The stream's own parameters are kept when asked for. (Each run gets its own output:
        // livemux refuses to replace an existing file without -y.)
        let out = dir.path().join(format!("kept_{file}"));
        let res = livemux().arg("remux").arg(&spoiled).arg("-o").arg(&out).output().unwrap();
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        assert_eq!(record_of(&out), &wrong[config_range(&wrong, name)], "{file}");

        // Under auto, the reference's replace them, whole file and from a pipe.
        for piped in [false, true] {
            let out = dir.path().join(format!("fixed_{piped}_{file}"));
            let mut cmd = livemux();
            cmd.arg("recover").arg(if piped { Path::new("-") } else { &spoiled }).arg("--reference").arg(&original);
            cmd.arg("-o").arg(&out);
            if piped {
                cmd.stdin(std::fs::File::open(&spoiled).unwrap());
            }
            let res = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&res.stderr);
            assert!(res.status.success(), "{err}");
            assert!(err.contains("disagree with its bitstream") && err.contains(what), "{file}: {err}");
            assert_eq!(record_of(&out), record, "{file}, piped: {piped}");
            assert_eq!(decode_errors(&out), "", "{file}");
            assert_eq!(frame_hashes(&out), expected, "{file}, piped: {piped}");
        }

        // A reference that disagrees as well is no better: the stream's record is kept.
        let out = dir.path().join(format!("both_{file}"));
        let mut cmd = livemux();
        let res = cmd.arg("recover").arg(&spoiled).arg("--reference").arg(&spoiled).arg("-o").arg(&out).output();
        let res = res.unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{err}");
        assert!(err.contains("and so do the reference's"), "{file}: {err}");
        assert_eq!(record_of(&out), &wrong[config_range(&wrong, name)], "{file}");

        // A record that agrees is kept, and nothing is said about it.
        let out = dir.path().join(format!("agrees_{file}"));
        let mut cmd = livemux();
        let res = cmd.arg("recover").arg(&original).arg("--reference").arg(&spoiled).arg("-o").arg(&out).output();
        let res = res.unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{err}");
        assert!(!err.contains("disagree"), "{file}: {err}");
        assert_eq!(record_of(&out), record, "{file}");
    }
}
