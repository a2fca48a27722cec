//! Damaged and hostile input: a clear error naming the file (and the byte offset where
//! there is one), exit 1, never a panic, never a huge allocation.

mod common;

use common::*;

fn bx(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(body);
    v
}

fn run(name: &str, data: &[u8]) -> (i32, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, data).unwrap();
    let output = dir.path().join("out.mp4");
    let out = livemux().arg("remux").arg(&input).arg("-o").arg(&output).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err, output.exists())
}

fn assert_clean_failure(name: &str, data: &[u8], needle: &str) {
    let (code, err, _) = run(name, data);
    assert_eq!(code, 1, "{name}: exit code; stderr: {err}");
    assert!(err.starts_with("error: "), "{name}: one clear line: {err}");
    assert!(err.contains(name), "{name}: names the file: {err}");
    assert!(err.contains(needle), "{name}: expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
}

#[test]
fn empty_and_non_media() {
    assert_clean_failure("empty.mp4", b"", "empty input");
    assert_clean_failure("text.mp4", b"hello, this is not a video file at all", "not a known media container");
}

#[test]
fn truncated_header_and_lying_sizes() {
    let ftyp = bx(b"ftyp", b"isom\0\0\0\0isom");
    let mut cut = ftyp.clone();
    cut.extend_from_slice(&[0, 0, 1]);
    assert_clean_failure("cut_header.mp4", &cut, "no 'moov' box");

    let mut small = ftyp.clone();
    small.extend_from_slice(&[0, 0, 0, 4, b'm', b'o', b'o', b'v']);
    assert_clean_failure("small_size.mp4", &small, "byte offset 20");

    let mut huge = ftyp.clone();
    huge.extend_from_slice(&[0, 0, 0, 1, b'm', b'o', b'o', b'v']);
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_clean_failure("huge_size.mp4", &huge, "over the limit");
}

#[test]
fn deep_nesting_and_lying_tables() {
    let mut nested = bx(b"stbl", &[]);
    for _ in 0..200 {
        nested = bx(b"trak", &nested);
    }
    let mut data = bx(b"ftyp", b"isom\0\0\0\0isom");
    data.extend(bx(b"moov", &nested));
    assert_clean_failure("nested.mp4", &data, "tkhd");

    // A real file whose stsz claims a million more samples than it holds.
    let real = std::fs::read(generated_file("h264_aac_faststart.mp4")).unwrap();
    let at = real.windows(4).position(|w| w == b"stsz").unwrap();
    let mut lying = real.clone();
    lying[at + 12..at + 16].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_clean_failure("lying_stsz.mp4", &lying, "'stsz' box at byte offset");
}

#[test]
fn every_prefix_of_a_moov_fails_or_succeeds_cleanly() {
    let real = std::fs::read(generated_file("h264_aac_faststart.mp4")).unwrap();
    let moov = real.windows(4).position(|w| w == b"moov").unwrap() - 4;
    for cut in (moov..moov + 400).step_by(37) {
        let (code, err, _) = run("prefix.mp4", &real[..cut]);
        assert!(code == 0 || code == 1, "cut at {cut}: {err}");
        assert!(!err.contains("panicked"), "cut at {cut}: {err}");
    }
}
