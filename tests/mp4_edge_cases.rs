//! MP4 inputs other tools accept that are odd in one place: an `stsc` with repeated
//! first_chunk values or empty entries (Firefox), a `moov` without a usable `mvhd`, a data
//! track's last sample, encrypted (CENC) tracks. Inputs are made with FFmpeg in a temp dir
//! and patched where FFmpeg would not write the oddity; FFmpeg reads the patched input and
//! livemux's output, and both must agree.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .output()
        .expect("run ffmpeg");
    assert!(res.status.success(), "ffmpeg {name}: {}", String::from_utf8_lossy(&res.stderr));
    out
}

/// A short H.264 + AAC source, encoded once per test.
fn source(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=2",
        "-c:v",
        "libx264",
        "-g",
        "10",
        "-bf",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ];
    args.extend_from_slice(extra);
    ffmpeg(dir, name, &args)
}

/// Offset and size of the first box found by walking `path` from the top level.
fn find_box(d: &[u8], path: &[&[u8; 4]], nth_trak: usize) -> Option<Vec<(usize, usize)>> {
    let mut chain = Vec::new();
    let (mut start, mut end) = (0, d.len());
    for name in path {
        let kids = if chain.is_empty() {
            top_level_boxes(d).into_iter().filter(|b| &b.0 == *name).collect::<Vec<_>>()
        } else {
            children(d, start, end).into_iter().filter(|b| &b.0 == *name).collect()
        };
        let pick = if **name == *b"trak" { nth_trak } else { 0 };
        let (_, off, size) = *kids.get(pick)?;
        chain.push((off, size));
        // Full boxes with children: stsd (8 more bytes) is not walked into here.
        start = off + 8;
        end = off + size;
    }
    Some(chain)
}

/// Replaces the body of the box at the end of `chain` (after its 12-byte full-box header)
/// and fixes the sizes of every box around it. The `moov` must be the file's last box, so
/// no chunk offset moves.
fn replace_full_box_body(d: &mut Vec<u8>, chain: &[(usize, usize)], body: &[u8]) {
    let (off, size) = *chain.last().unwrap();
    let new_size = 12 + body.len();
    let delta = new_size as i64 - size as i64;
    d.splice(off + 12..off + size, body.iter().copied());
    for &(o, s) in chain {
        let n = (s as i64 + delta) as u32;
        d[o..o + 4].copy_from_slice(&n.to_be_bytes());
    }
}

const STBL: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

fn stbl_child(d: &[u8], trak: usize, name: &[u8; 4]) -> Vec<(usize, usize)> {
    let mut path = STBL.to_vec();
    path.push(name);
    find_box(d, &path, trak).unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(name)))
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Samples per chunk, one number per chunk, from a valid `stsc` and the chunk count.
fn per_chunk(d: &[u8], trak: usize) -> Vec<u32> {
    let stsc = *stbl_child(d, trak, b"stsc").last().unwrap();
    let stco = *stbl_child(d, trak, b"stco").last().unwrap();
    let chunks = be32(d, stco.0 + 12) as usize;
    let n = be32(d, stsc.0 + 12) as usize;
    let e: Vec<(u32, u32)> = (0..n).map(|i| (be32(d, stsc.0 + 16 + 12 * i), be32(d, stsc.0 + 20 + 12 * i))).collect();
    (1..=chunks as u32).map(|c| e.iter().rev().find(|x| x.0 <= c).unwrap().1).collect()
}

fn remux(input: &Path, output: &Path, to: &str) -> std::process::Output {
    livemux().arg("remux").arg(input).arg("-o").arg(output).args(["-y", "--to", to]).output().unwrap()
}

/// Packet bytes per stream, in decode order (sizes and MD5s only: timing is another matter).
fn payloads(p: &Path) -> Vec<(u32, u64, String)> {
    framemd5(p).into_iter().map(|f| (f.stream, f.size, f.md5)).collect()
}

/// Rewrites both tracks' `stsc` from their samples-per-chunk list.
fn patch_stsc(d: &mut Vec<u8>, entries: impl Fn(&[u32]) -> Vec<u32>) {
    for trak in 0..2 {
        let counts = per_chunk(d, trak);
        assert!(counts.len() > 3, "a few chunks");
        let e = entries(&counts);
        let mut w = vec![e.len() as u32 / 3];
        w.extend(e);
        let chain = stbl_child(d, trak, b"stsc");
        replace_full_box_body(d, &chain, &words(&w));
    }
}

#[test]
fn stsc_with_repeated_first_chunks_and_empty_entries_is_read_as_ffmpeg_reads_it() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // moov at the end, so a bigger stsc moves no media.
    let src = source(dir.path(), "src.mp4", &[]);
    let d = std::fs::read(&src).unwrap();
    assert_eq!(top_level_boxes(&d).last().unwrap().0, *b"moov");
    type Form = fn(&[u32]) -> Vec<u32>;
    let forms: [(&str, Form); 2] = [
        // Firefox's form: one entry per chunk, each saying first_chunk 1, and a last entry
        // with 0 samples.
        ("first_chunk 1 everywhere", |counts| {
            let mut w: Vec<u32> = counts.iter().flat_map(|&n| [1, n, 1]).collect();
            w.extend_from_slice(&[1, 0, 1]);
            w
        }),
        // Valid entries, one per chunk, but with an entry of 0 samples (and a description
        // index of 0) in place of the third.
        ("an empty entry in the middle", |counts| {
            let mut w = Vec::new();
            for (i, &n) in counts.iter().enumerate() {
                let c = i as u32 + 1;
                w.extend_from_slice(&if i == 2 { [c, 0, 0] } else { [c, n, 1] });
            }
            w
        }),
    ];
    for (what, form) in forms {
        let mut p = d.clone();
        patch_stsc(&mut p, form);
        let patched = dir.path().join("patched.mp4");
        std::fs::write(&patched, &p).unwrap();
        // FFmpeg repairs such a table (an entry it finds bad takes the next entry's values),
        // which moves samples between chunks: whatever it reads, livemux must read the same.
        let ffmpeg_reads = payloads(&patched);
        assert!(ffmpeg_reads.len() > 100, "{what}: FFmpeg reads the patched input");
        for to in ["mp4", "fmp4", "mkv"] {
            let out = dir.path().join(format!("out.{to}"));
            let res = remux(&patched, &out, to);
            assert!(res.status.success(), "{what}, --to {to}: {}", String::from_utf8_lossy(&res.stderr));
            for s in 0..2 {
                let of = |v: &[(u32, u64, String)]| v.iter().filter(|p| p.0 == s).cloned().collect::<Vec<_>>();
                assert_eq!(of(&payloads(&out)), of(&ffmpeg_reads), "{what}, --to {to}: stream {s} as FFmpeg reads it");
            }
        }
    }
}

#[test]
fn stsc_naming_more_chunks_than_the_chunk_table_is_refused_as_ffmpeg_does() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.mp4", &[]);
    let mut d = std::fs::read(&src).unwrap();
    // One entry per chunk plus one more: the last names a chunk that does not exist.
    patch_stsc(&mut d, |counts| (1..=counts.len() as u32 + 1).flat_map(|c| [c, 1, 1]).collect());
    let patched = dir.path().join("patched.mp4");
    std::fs::write(&patched, &d).unwrap();
    let (ok, probe) = ffprobe(&patched, "stream=codec_name");
    assert!(!ok, "FFmpeg refuses it too: {probe}");
    let out = dir.path().join("out.mp4");
    let res = remux(&patched, &out, "mp4");
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("stsc") && err.contains("chunk table has"), "{err}");
}

/// A fragmented file whose `mvhd` is renamed (no `mvhd` at all) or whose timescale is 0.
#[test]
fn finalize_writes_an_mvhd_when_the_input_has_none_or_a_zero_timescale() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "frag.mp4", &["-movflags", "+frag_keyframe+empty_moov"]);
    let original = payloads(&src);
    let d = std::fs::read(&src).unwrap();
    let mvhd = *find_box(&d, &[b"moov", b"mvhd"], 0).unwrap().last().unwrap();
    for case in ["renamed", "timescale 0"] {
        let mut p = d.clone();
        if case == "renamed" {
            p[mvhd.0 + 4..mvhd.0 + 8].copy_from_slice(b"mhd ");
        } else {
            let version = p[mvhd.0 + 8];
            let at = mvhd.0 + 12 + if version == 1 { 16 } else { 8 };
            p[at..at + 4].copy_from_slice(&[0; 4]);
        }
        let file = dir.path().join("patched.mp4");
        std::fs::write(&file, &p).unwrap();
        let res = livemux().arg("finalize").arg(&file).output().unwrap();
        assert!(res.status.success(), "{case}: {}", String::from_utf8_lossy(&res.stderr));
        let out = std::fs::read(&file).unwrap();
        let mvhd = find_box(&out, &[b"moov", b"mvhd"], 0).unwrap_or_else(|| panic!("{case}: no mvhd"));
        let (o, _) = *mvhd.last().unwrap();
        let at = o + 12 + if out[o + 8] == 1 { 16 } else { 8 };
        assert_ne!(be32(&out, at), 0, "{case}: timescale");
        assert_eq!(payloads(&file), original, "{case}: FFmpeg reads every packet of the finalized file");
        let (_, probe) = ffprobe(&file, "format=duration");
        let secs: f64 = probe.trim().trim_start_matches("duration=").parse().unwrap_or(0.0);
        assert!((1.9..2.2).contains(&secs), "{case}: duration {probe}");
        // Remux of the patched fragmented input reads it too.
        std::fs::write(&file, &p).unwrap();
        let out = dir.path().join("out.mp4");
        let res = remux(&file, &out, "mp4");
        assert!(res.status.success(), "{case}: {}", String::from_utf8_lossy(&res.stderr));
        assert_eq!(payloads(&out), original, "{case}: remux");
    }
}

/// A fragmented file whose last sample lasts 0 ticks and whose edit list ends where the
/// media ends (Adobe's F4V data tracks end with such a sample): FFmpeg shows the sample in
/// the fragmented file, so the finalized file's edit must go past it.
#[test]
fn finalize_keeps_a_last_sample_of_zero_duration() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 26 frames, all keyframes (FFmpeg ends an edit at the first keyframe that reaches its
    // end, which includes that keyframe): the last fragment holds one frame.
    let src = ffmpeg(
        dir.path(),
        "frag.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
            "-frames:v",
            "26",
            "-c:v",
            "libx264",
            "-g",
            "1",
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    let mut d = std::fs::read(&src).unwrap();
    // Drop the mfra (absolute offsets) so that the moov can grow.
    let boxes = top_level_boxes(&d);
    if let Some(mfra) = boxes.iter().find(|b| &b.0 == b"mfra") {
        d.truncate(mfra.1);
    }
    let boxes = top_level_boxes(&d);
    // The last fragment's one sample gets duration 0 (tfhd default_sample_duration).
    let moof = *boxes.iter().rev().find(|b| &b.0 == b"moof").unwrap();
    let traf = children(&d, moof.1 + 8, moof.1 + moof.2).into_iter().find(|b| &b.0 == b"traf").unwrap();
    let kids = children(&d, traf.1 + 8, traf.1 + traf.2);
    let trun = kids.iter().find(|b| &b.0 == b"trun").unwrap();
    assert_eq!(be32(&d, trun.1 + 12), 1, "one sample in the last fragment");
    assert_eq!(be32(&d, trun.1 + 8) & 0x100, 0, "no per-sample durations");
    let tfhd = kids.iter().find(|b| &b.0 == b"tfhd").unwrap();
    let flags = be32(&d, tfhd.1 + 8) & 0xFF_FFFF;
    assert_ne!(flags & 0x08, 0, "tfhd has a default duration");
    let at = tfhd.1 + 16 + if flags & 1 != 0 { 8 } else { 0 } + if flags & 2 != 0 { 4 } else { 0 };
    d[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    // An edit list that ends where the media ends: 25 frames of 40 ms, in mvhd's 1000.
    let mvhd = find_box(&d, &[b"moov", b"mvhd"], 0).unwrap()[1];
    assert_eq!(be32(&d, mvhd.0 + 20), 1000, "FFmpeg's movie timescale");
    let chain = find_box(&d, &[b"moov", b"trak", b"tkhd"], 0).unwrap();
    let tkhd = chain[2];
    let mut edts = words(&[36, u32::from_be_bytes(*b"edts"), 28, u32::from_be_bytes(*b"elst"), 0, 1, 1000, 0]);
    edts.extend_from_slice(&[0, 1, 0, 0]);
    let insert = tkhd.0 + tkhd.1;
    d.splice(insert..insert, edts.iter().copied());
    for &(o, s) in &chain[..2] {
        d[o..o + 4].copy_from_slice(&((s + edts.len()) as u32).to_be_bytes());
    }
    let file = dir.path().join("patched.mp4");
    std::fs::write(&file, &d).unwrap();
    let before = framemd5(&file);
    assert_eq!(before.len(), 26, "FFmpeg reads every frame of the fragmented file");
    let res = livemux().arg("finalize").arg(&file).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let after = framemd5(&file);
    assert_eq!(after.len(), 26, "the last frame survives finalize");
    assert_eq!(after.last().unwrap().md5, before.last().unwrap().md5);
}

const KEY: &str = "00112233445566778899aabbccddeeff";

/// CENC-encrypted inputs (FFmpeg's `-encryption_scheme cenc-aes-ctr`), fragmented and
/// regular: livemux cannot carry `senc`/`saiz`/`saio`/`pssh`, so it refuses them by name,
/// in every output format and in `finalize` (which leaves the file as it was), instead of
/// writing a file that cannot be decrypted.
#[test]
fn cenc_encrypted_tracks_are_refused_clearly() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.mp4", &[]);
    let enc = |name: &str, extra: &[&str]| {
        let mut args = vec!["-i", src.to_str().unwrap(), "-map", "0", "-c", "copy"];
        args.extend_from_slice(&["-encryption_scheme", "cenc-aes-ctr", "-encryption_key", KEY, "-encryption_kid", KEY]);
        args.extend_from_slice(extra);
        ffmpeg(dir.path(), name, &args)
    };
    let inputs = [enc("frag.mp4", &["-movflags", "+frag_keyframe+empty_moov"]), enc("regular.mp4", &[])];
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        // The input is sound: FFmpeg decrypts its video with the key to the source's packets.
        // (FFmpeg 5.1 cannot read its own fragmented CENC back: "saio atom found without
        // saiz"; the regular one it reads.)
        if name == "regular.mp4" {
            let decrypted = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-decryption_key", KEY, "-i"])
                .arg(input)
                .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&decrypted.stdout);
            let md5s: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("0,"))
                .filter_map(|l| l.rsplit(',').next())
                .map(str::trim)
                .collect();
            let source: Vec<String> = framemd5(&src).into_iter().filter(|p| p.stream == 0).map(|p| p.md5).collect();
            assert_eq!(md5s, source, "{name}: the video decrypts to the source's");
        }
        for to in ["fmp4", "mp4", "mkv"] {
            let out = dir.path().join(format!("out.{to}"));
            let res = remux(input, &out, to);
            let err = String::from_utf8_lossy(&res.stderr);
            assert_eq!(res.status.code(), Some(1), "{name} --to {to}: {err}");
            assert!(
                err.contains("track 1 is encrypted (cenc): livemux cannot carry its sample encryption data"),
                "{name} --to {to}: {err}"
            );
            assert!(std::fs::metadata(&out).is_err(), "{name} --to {to}: no output left behind");
        }
        let copy = dir.path().join("finalize.mp4");
        std::fs::copy(input, &copy).unwrap();
        let res = livemux().arg("finalize").arg(&copy).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        if name == "frag.mp4" {
            assert_eq!(res.status.code(), Some(1), "{name} finalize: {err}");
            assert!(err.contains("track 1 is encrypted (cenc)") && err.contains("left as it is"), "{err}");
        } else {
            assert!(res.status.success(), "{name}: a regular file needs no finalize: {err}");
        }
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(input).unwrap(), "{name}: finalize changed nothing");
    }
    // append (target or source encrypted) and recover with an encrypted reference are
    // refused the same way, and leave the target as it was.
    let regular = &inputs[1];
    let plain = dir.path().join("plain.mp4");
    std::fs::copy(&src, &plain).unwrap();
    for (target, source) in [(&plain, regular), (regular, &src)] {
        let before = std::fs::read(target).unwrap();
        let res = livemux().arg("append").arg(target).arg(source).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "append {}: {err}", source.display());
        assert!(err.contains("is encrypted (cenc)"), "append: {err}");
        assert_eq!(std::fs::read(target).unwrap(), before, "append left the target as it was");
    }
    let out = dir.path().join("recovered.mp4");
    let res = livemux().arg("recover").arg(&src).arg("--reference").arg(regular).arg("-o").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "recover: {err}");
    assert!(err.contains("is encrypted (cenc)"), "recover: {err}");
}

/// An 8-byte EBML size.
fn vsize(n: u64) -> Vec<u8> {
    (n | 1 << 56).to_be_bytes().to_vec()
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

/// A WebM whose track is encrypted (ContentEncodings with ContentEncryption, as WebM
/// encryption writes it): refused by name, not passed on.
#[test]
fn webm_content_encryption_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let aes = el(0x47E7, &uint(0x47E8, 1));
    let encryption = el(0x5035, &[uint(0x47E1, 5), el(0x47E2, &[0x11; 16]), aes].concat());
    let encoding = el(0x6240, &[uint(0x5031, 0), uint(0x5032, 1), uint(0x5033, 1), encryption].concat());
    let video = el(0xE0, &[uint(0xB0, 64), uint(0xBA, 64)].concat());
    let entry =
        [uint(0xD7, 1), uint(0x73C5, 1), uint(0x83, 1), el(0x86, b"V_VP8"), video, el(0x6D80, &encoding)].concat();
    let mut data = el(0x1A45DFA3, &[el(0x4282, b"webm"), uint(0x4287, 4), uint(0x4285, 2)].concat());
    data.extend([0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    data.extend(el(0x1549A966, &uint(0x2AD7B1, 1_000_000)));
    data.extend(el(0x1654AE6B, &el(0xAE, &entry)));
    let mut cluster = uint(0xE7, 0);
    for t in 0..10u8 {
        // Signal byte 0x01 (encrypted), an 8-byte IV, then the "encrypted" frame.
        cluster.extend(el(0xA3, &[&[0x81, 0, t * 20, 0x80, 0x01][..], &[0; 8], &[0x9D; 20]].concat()));
    }
    data.extend(el(0x1F43B675, &cluster));
    let input = dir.path().join("encrypted.webm");
    std::fs::write(&input, &data).unwrap();
    for to in ["webm", "mp4"] {
        let out = dir.path().join(format!("out.{to}"));
        let res = remux(&input, &out, to);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "--to {to}: {err}");
        assert!(err.contains("encrypted (ContentEncryption)"), "--to {to}: {err}");
    }
}

/// Presentation times of stream 0 in seconds, as FFmpeg's demuxer gives them (ffprobe,
/// before the `ffmpeg` tool's own pts >= dts repair that `-f framemd5` output shows).
fn probe_pts(p: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// `water_180_mvhevc_5frames.mov` has a version-0 `ctts` with negative offsets and no edit
/// that shifts them: one frame's presentation time comes before its decode time. FFmpeg's
/// demuxer reads the true times, but it takes no decode-time shift from the last two
/// `ctts` entries, and the `ffmpeg` tool then moves that frame's pts up to its dts (the
/// 11-35 ms "move" the comparison saw: in FFmpeg's reading of the input, not in livemux's
/// output). livemux keeps every presentation time the tables give, in every format.
#[test]
fn negative_composition_offsets_keep_their_presentation_times() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = ffmpeg(
        dir.path(),
        "bframes.mp4",
        &["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-frames:v", "9", "-c:v", "libx264", "-bf", "3"],
    );
    let mut d = std::fs::read(&src).unwrap();
    assert_eq!(top_level_boxes(&d).last().unwrap().0, *b"moov");
    // ctts made relative to the first frame (version 1, negative offsets), edit list
    // removed (renamed to 'free'): the first frame starts at 0, later ones come before
    // their decode times.
    let ctts = *stbl_child(&d, 0, b"ctts").last().unwrap();
    let n = be32(&d, ctts.0 + 12) as usize;
    let first = be32(&d, ctts.0 + 20) as i32;
    assert!(first > 0, "B-frames delay the first frame");
    d[ctts.0 + 8] = 1;
    let mut negative = 0;
    for i in 0..n {
        let at = ctts.0 + 20 + 8 * i;
        let v = be32(&d, at) as i32 - first;
        negative += (v < 0) as u32;
        d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    assert!(negative > 0, "some frames are shown before they are decoded");
    if let Some(edts) = find_box(&d, &[b"moov", b"trak", b"edts"], 0) {
        let (o, _) = *edts.last().unwrap();
        d[o + 4..o + 8].copy_from_slice(b"free");
    }
    let patched = dir.path().join("negative.mp4");
    std::fs::write(&patched, &d).unwrap();
    let truth = probe_pts(&patched);
    assert_eq!(truth.len(), 9);
    assert_eq!(truth[0], 0.0);
    for to in ["mp4", "mkv"] {
        let out = dir.path().join(format!("out.{to}"));
        let res = remux(&patched, &out, to);
        assert!(res.status.success(), "--to {to}: {}", String::from_utf8_lossy(&res.stderr));
        let got = probe_pts(&out);
        assert_eq!(got.len(), truth.len(), "--to {to}");
        for (i, (a, b)) in truth.iter().zip(&got).enumerate() {
            assert!(
                (a - b).abs() < 0.0015,
                "--to {to}: frame {i} at {b} s, the input says {a} s ({got:?} vs {truth:?})"
            );
        }
    }
}

/// Packets FFmpeg shows (not flagged discard by an edit list) per stream, as sizes and MD5s.
fn shown(p: &Path) -> Vec<(u32, String)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,flags", "-show_data_hash", "MD5"])
        .args(["-show_entries", "packet=data_hash", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("_D"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap_or(99), f.last().unwrap().to_string())
        })
        .collect()
}

/// A fragmented file whose edit list (written before the fragments, as Adobe's F4V
/// recorder does) lasts the decode-time total from media time 0, while B-frames put the
/// last frames' presentation past it. FFmpeg gives fragmented files' edit lists no end, so
/// it shows every frame; the finalized file must too (example.f4v lost its last frame).
#[test]
fn finalize_runs_a_foreign_edit_list_to_the_end_of_the_media() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = ffmpeg(
        dir.path(),
        "frag.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
            "-frames:v",
            "25",
            "-c:v",
            "libx264",
            "-g",
            "5",
            "-bf",
            "2",
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    let mut d = std::fs::read(&src).unwrap();
    let boxes = top_level_boxes(&d);
    if let Some(mfra) = boxes.iter().find(|b| &b.0 == b"mfra") {
        d.truncate(mfra.1);
    }
    assert!(find_box(&d, &[b"moov", b"trak", b"edts"], 0).is_none(), "FFmpeg wrote no edit list");
    // 25 frames of 40 ms from media time 0: 1000 ms in mvhd's timescale.
    let chain = find_box(&d, &[b"moov", b"trak", b"tkhd"], 0).unwrap();
    let tkhd = chain[2];
    let mut edts = words(&[36, u32::from_be_bytes(*b"edts"), 28, u32::from_be_bytes(*b"elst"), 0, 1, 1000, 0]);
    edts.extend_from_slice(&[0, 1, 0, 0]);
    let insert = tkhd.0 + tkhd.1;
    d.splice(insert..insert, edts.iter().copied());
    for &(o, s) in &chain[..2] {
        d[o..o + 4].copy_from_slice(&((s + edts.len()) as u32).to_be_bytes());
    }
    let file = dir.path().join("patched.mp4");
    std::fs::write(&file, &d).unwrap();
    let before = shown(&file);
    assert_eq!(before.len(), 25, "FFmpeg shows every frame of the fragmented file");
    let res = livemux().arg("finalize").arg(&file).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(find_box(&std::fs::read(&file).unwrap(), &[b"moov", b"trak", b"edts"], 0).is_some());
    let mut after = shown(&file);
    let mut before = before;
    after.sort();
    before.sort();
    assert_eq!(after, before, "every frame is still shown after finalize");
}
