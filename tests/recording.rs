//! `Recording`, the type an upload handler calls: the file it writes from pieces of any
//! size (1 byte to 1 MiB) is byte-identical to `livemux remux` of the same bytes, for every
//! output format, and it refuses what would destroy data.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use livemux::{AsyncRecording, ErrorKind, MuxFormat, Recording, RecordingOptions};

/// Piece sizes from 1 byte to 1 MiB, drawn from `seed` (xorshift: mostly small pieces,
/// every eighth up to 1 MiB).
fn pieces(data: &Bytes, seed: u64) -> Vec<Bytes> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let max = if x.is_multiple_of(8) { 1 << 20 } else { 4096 };
        let n = (1 + (x >> 8) as usize % max).min(data.len() - at);
        out.push(data.slice(at..at + n));
        at += n;
    }
    out
}

fn cli_remux(input: &Path, output: &Path, to: &str) -> Vec<u8> {
    // --reserve-ms: the library's default (a finished file's reserve is sized from its duration).
    let mut cmd = livemux();
    let out =
        cmd.arg("remux").arg(input).arg("-o").arg(output).args(["--to", to, "--reserve-ms", "60000"]).output().unwrap();
    assert!(out.status.success(), "livemux remux --to {to}: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(output).unwrap()
}

fn record(path: &Path, format: MuxFormat, pieces: Vec<Bytes>) -> livemux::RecordingReport {
    let mut rec = Recording::create(path, RecordingOptions::default().format(format)).unwrap();
    for p in pieces {
        rec.push(p).unwrap();
    }
    rec.finish().unwrap()
}

/// Every output format, from the Chromium recording that can carry it (H.264 does not go
/// into WebM, so WebM comes from Chromium's VP9 WebM).
#[test]
fn a_recording_fed_in_pieces_is_byte_identical_to_remux() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("chrome_mp4_avc1_opus", MuxFormat::Fmp4, "fmp4"),
        ("chrome_mp4_avc1_opus", MuxFormat::Mp4, "mp4"),
        ("chrome_mp4_avc1_opus", MuxFormat::Mkv, "mkv"),
        ("chrome_webm_vp9_opus", MuxFormat::Webm, "webm"),
        ("chrome_webm_vp9_opus", MuxFormat::Mp4, "mp4"),
    ];
    for (i, (name, format, to)) in cases.into_iter().enumerate() {
        let input = browser_file(name, dir.path());
        let expected = cli_remux(&input, &dir.path().join(format!("cli-{i}.{to}")), to);
        let data = Bytes::from(std::fs::read(&input).unwrap());
        for seed in [1, 0x9E37_79B9_7F4A_7C15, 42 + i as u64] {
            let out = dir.path().join(format!("rec-{i}-{seed}.{to}"));
            let report = record(&out, format, pieces(&data, seed));
            let got = std::fs::read(&out).unwrap();
            assert!(
                got == expected,
                "{name} --to {to}, seed {seed}: {} bytes vs remux's {}",
                got.len(),
                expected.len()
            );
            assert_eq!(report.output_len, got.len() as u64, "{name} --to {to}: reported length");
            assert_eq!(report.input_len, data.len() as u64);
            assert!(report.fragments >= 2, "{name} --to {to}: a header and media");
            assert_eq!(report.format, format);
            let finalized = matches!(format, MuxFormat::Mp4 | MuxFormat::Mkv | MuxFormat::Webm);
            assert_eq!(report.finalize_writes > 0, finalized, "{name} --to {to}: finalize writes");
        }
    }
}

/// One byte at a time, the worst a network can do.
#[test]
fn one_byte_pieces_make_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = browser_file("chrome_webm_vp9_opus", dir.path());
    let expected = cli_remux(&input, &dir.path().join("cli.mkv"), "mkv");
    let data = Bytes::from(std::fs::read(&input).unwrap());
    let ones = (0..data.len()).map(|i| data.slice(i..i + 1)).collect();
    let out = dir.path().join("rec.mkv");
    record(&out, MuxFormat::Mkv, ones);
    assert!(std::fs::read(&out).unwrap() == expected);
}

/// What `push` acknowledged is on disk: after each push, the file's first `durable_len`
/// bytes are those of the finished recording (fragmented MP4 is never changed in place).
#[test]
fn durable_len_grows_with_the_fragments_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = browser_file("chrome_mp4_avc1_opus", dir.path());
    let data = Bytes::from(std::fs::read(&input).unwrap());
    let expected = cli_remux(&input, &dir.path().join("cli.mp4"), "fmp4");
    let out = dir.path().join("rec.mp4");
    let mut rec = Recording::create(&out, RecordingOptions::default().format(MuxFormat::Fmp4)).unwrap();
    let mut seen = Vec::new();
    for at in (0..data.len()).step_by(2000) {
        rec.push(data.slice(at..(at + 2000).min(data.len()))).unwrap();
        let len = rec.durable_len() as usize;
        let on_disk = std::fs::read(&out).unwrap_or_default();
        assert!(on_disk.len() >= len && on_disk[..len] == expected[..len], "the first {len} bytes are final");
        seen.push(len);
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "durable length never goes back");
    assert!(seen.iter().filter(|&&l| l > 0).count() > 10, "fragments became durable while recording: {seen:?}");
    rec.finish().unwrap();
}

#[test]
fn an_existing_file_is_refused_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.mp4");
    std::fs::write(&path, b"precious").unwrap();
    let e = Recording::create(&path, RecordingOptions::default()).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::OutputRefused);
    assert_eq!(e.path(), Some(path.as_path()));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    // With overwrite, the file is replaced once there is something to write.
    let input = std::fs::read(root().join("samples/chrome_mp4_avc1_opus.mp4")).unwrap();
    let mut rec = Recording::create(&path, RecordingOptions::default().overwrite(true)).unwrap();
    rec.push(Bytes::from(input)).unwrap();
    rec.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 100_000);
}

#[test]
fn not_media_is_an_error_of_its_kind_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.mkv");
    let mut rec = Recording::create(&path, RecordingOptions::default()).unwrap();
    let e = rec.push(Bytes::from_static(b"this is plain text, not a recording")).expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::NotMedia, "{e}");
    assert!(!path.exists(), "nothing was written");
    // After an error the recording takes nothing more, and says why.
    let sample = std::fs::read(root().join("samples/chrome_mp4_avc1_opus.mp4")).unwrap();
    let again = rec.push(Bytes::from(sample)).expect_err("refused after an error");
    assert!(again.to_string().contains("failed earlier"), "{again}");
    assert!(rec.finish().is_err());
    assert!(!path.exists());
}

#[tokio::test]
async fn the_async_form_writes_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = browser_file("chrome_mp4_avc1_opus", dir.path());
    let expected = cli_remux(&input, &dir.path().join("cli.mp4"), "mp4");
    let data = Bytes::from(std::fs::read(&input).unwrap());
    let out = dir.path().join("async.mp4");
    let mut rec = AsyncRecording::create(&out, RecordingOptions::default()).await.unwrap();
    for p in pieces(&data, 3) {
        rec.push(p).await.unwrap();
    }
    let report = rec.finish().await.unwrap();
    assert_eq!(report.format, MuxFormat::Mp4, "from the .mp4 name");
    assert!(std::fs::read(&out).unwrap() == expected);
}
