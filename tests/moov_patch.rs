//! The one `moov` patcher (`src/formats/mp4/patch.rs`) as `livemux finalize` and
//! `livemux append` use it, on real files whose video `stbl` carries per-sample boxes the
//! patcher must drop (`saiz`, `saio`) or that the caller rebuilds (`sdtp`, `sbgp`), next to
//! a box it does not know (kept). FFmpeg is the judge of the media: the packets are the
//! same before and after.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The `stbl` of the first `trak`: (offset, size) of it and of every box around it.
fn video_stbl_path(d: &[u8]) -> Vec<(usize, usize)> {
    let moov = top_level_boxes(d).into_iter().find(|b| &b.0 == b"moov").expect("a moov");
    let mut path = vec![(moov.1, moov.2)];
    for name in [b"trak", b"mdia", b"minf", b"stbl"] {
        let &(at, size) = path.last().unwrap();
        let c = children(d, at + 8, at + size).into_iter().find(|c| &c.0 == name).expect("the box");
        path.push((c.1, c.2));
    }
    path
}

/// A box with `body`.
fn boxed(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
    [&(8 + body.len() as u32).to_be_bytes()[..], fourcc, body].concat()
}

/// `file` with `sdtp`, `sbgp`/`sgpd`, `saiz`/`saio` and an unknown `zzzz` at the end of its
/// video `stbl` (describing `samples` samples), every enclosing box grown to hold them.
fn inject(file: &[u8], samples: u32) -> Vec<u8> {
    let mut sdtp = vec![0u8; 4];
    sdtp.extend((0..samples).map(|i| if i % 3 == 2 { 0x08 } else { 0x04 }));
    let runs: &[u8] = &[samples.to_be_bytes(), 1u32.to_be_bytes()].concat();
    let sbgp =
        [&[0u8; 4][..], b"rap ", &((samples > 0) as u32).to_be_bytes(), if samples > 0 { runs } else { &[] }].concat();
    let sgpd = [&[1u8, 0, 0, 0][..], b"rap ", &1u32.to_be_bytes(), &1u32.to_be_bytes(), &[0x80]].concat();
    let saiz = [&[0u8; 4][..], &[8], &samples.to_be_bytes()].concat();
    let saio = [&[0u8; 4][..], &1u32.to_be_bytes(), &0u32.to_be_bytes()].concat();
    let extra = [
        boxed(b"sdtp", &sdtp),
        boxed(b"sbgp", &sbgp),
        boxed(b"sgpd", &sgpd),
        boxed(b"saiz", &saiz),
        boxed(b"saio", &saio),
        boxed(b"zzzz", b"kept"),
    ]
    .concat();
    let path = video_stbl_path(file);
    let &(stbl, stbl_size) = path.last().unwrap();
    let mut out = file.to_vec();
    out.splice(stbl + stbl_size..stbl + stbl_size, extra.iter().copied());
    for (at, size) in path {
        out[at..at + 4].copy_from_slice(&(size as u32 + extra.len() as u32).to_be_bytes());
    }
    out
}

/// The boxes of the video `stbl`.
fn video_stbl(path: &Path) -> Vec<[u8; 4]> {
    let d = std::fs::read(path).unwrap();
    let &(at, size) = video_stbl_path(&d).last().unwrap();
    children(&d, at + 8, at + size).into_iter().map(|c| c.0).collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn run_ok(args: &[&str]) {
    let out = livemux().args(args).output().unwrap();
    assert!(out.status.success(), "livemux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Per stream, the packets' sizes and MD5s in decode order (timestamps left out: an append
/// moves the source's).
fn payloads(packets: &[FramePacket]) -> Vec<Vec<(u64, String)>> {
    let streams = packets.iter().map(|p| p.stream + 1).max().unwrap_or(0);
    (0..streams).map(|s| stream(packets, s).into_iter().map(|p| (p.size, p.md5)).collect()).collect()
}

fn assert_patched(stbl: &[[u8; 4]], what: &str) {
    for gone in [b"saiz", b"saio"] {
        assert!(!stbl.contains(gone), "{what}: {stbl:?}");
    }
    assert!(stbl.contains(b"zzzz") && stbl.contains(b"stsd") && stbl.contains(b"stts"), "{what}: {stbl:?}");
    // Nothing stale next to its replacement.
    let mut sorted = stbl.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), stbl.len(), "{what}: {stbl:?}");
}

#[test]
fn finalize_drops_per_sample_boxes_and_keeps_every_packet() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = generated_file("h264_aac_fragmented.mp4");
    // The fragmented `stbl` is empty: the boxes describe no sample.
    let input = inject(&std::fs::read(&original).unwrap(), 0);
    let path = write(dir.path(), "frag.mp4", &input);
    assert!(video_stbl(&path).contains(b"saiz"));
    let before = framemd5(&original);
    run_ok(&["finalize", path.to_str().unwrap()]);
    let d = std::fs::read(&path).unwrap();
    assert!(!top_level_boxes(&d).iter().any(|b| &b.0 == b"moof" || &b.0 == b"mvex"));
    assert_patched(&video_stbl(&path), "finalize");
    assert_same_packets(&before, &framemd5(&path), "finalize");
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn append_drops_per_sample_boxes_rebuilds_sdtp_and_groups_and_keeps_every_packet() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("tests/fixtures/tools/h264_aac_reference_1s.mp4");
    let original = std::fs::read(&source).unwrap();
    let video_samples = stream(&framemd5(&source), 0).len() as u32;
    let target = write(dir.path(), "target.mp4", &inject(&original, video_samples));
    let before = framemd5(&source);
    run_ok(&["append", target.to_str().unwrap(), source.to_str().unwrap()]);
    let stbl = video_stbl(&target);
    assert_patched(&stbl, "append");
    assert!(stbl.contains(b"sdtp") && stbl.contains(b"sbgp") && stbl.contains(b"sgpd"), "{stbl:?}");
    let after = payloads(&framemd5(&target));
    let want: Vec<Vec<(u64, String)>> = payloads(&before).into_iter().map(|s| [s.clone(), s].concat()).collect();
    assert_eq!(after, want, "append: TARGET's packets then the source's");
    assert_eq!(decode_errors(&target), "");
}
