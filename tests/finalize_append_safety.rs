//! MP4 finalize and append on hostile or unusual files (issue 12): a regular MP4 followed by
//! stray fragments (finalized while its recorder kept writing), tracks whose samples are all
//! empty, counts that claim more samples than the file holds, and appends that cut inside a
//! group of B-frames. Inputs are made here with FFmpeg (lavfi) or crafted byte by byte.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use livemux::formats::mp4::finalize::{plan, scan, Scanned};
use livemux::formats::WriteStep;
use livemux::io::apply_in_memory;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a tool");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ffmpeg(args: &[&str]) {
    run(Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(args));
}

/// H.264 (x264 with B-frames, a keyframe every `gop` frames) and AAC, `secs` long.
fn make_input(dir: &Path, name: &str, secs: u32, gop: u32) -> PathBuf {
    let path = dir.join(name);
    let t = secs.to_string();
    let g = gop.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-bf",
        "2",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        path.to_str().unwrap(),
    ]);
    path
}

fn livemux_ok(args: &[&str]) -> String {
    let out = run(livemux().args(args));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `livemux remux IN --to fmp4`: ftyp, moov with mvex, then moof+mdat pairs.
fn fragmented(dir: &Path) -> Vec<u8> {
    let input = make_input(dir, "in.mp4", 4, 15);
    let out = dir.join("full.mp4");
    livemux_ok(&[
        "remux",
        input.to_str().unwrap(),
        "--to",
        "fmp4",
        "--fragment-ms",
        "400",
        "-o",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).unwrap()
}

/// (size, md5) of every packet per stream, as FFmpeg reads them.
fn packet_bytes(path: &Path) -> Vec<Vec<(u64, String)>> {
    let packets = framemd5(path);
    let streams = packets.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    (0..streams).map(|s| stream(&packets, s).into_iter().map(|p| (p.size, p.md5)).collect()).collect()
}

// ---------------------------------------------------------------------------------------
// 1. A regular moov followed by stray fragments.

/// The parts of a `--to fmp4` file: ftyp, moov, and each moof+mdat pair.
struct Parts {
    ftyp: Vec<u8>,
    moov: Vec<u8>,
    fragments: Vec<Vec<u8>>,
}

fn parts(data: &[u8]) -> Parts {
    let boxes = top_level_boxes(data);
    let get = |name: &[u8; 4]| {
        let b = boxes.iter().find(|b| &b.0 == name).unwrap();
        data[b.1..b.1 + b.2].to_vec()
    };
    let mut fragments = Vec::new();
    for b in &boxes {
        match &b.0 {
            b"moof" => fragments.push(data[b.1..b.1 + b.2].to_vec()),
            b"mdat" => fragments.last_mut().expect("a moof before the mdat").extend_from_slice(&data[b.1..b.1 + b.2]),
            _ => {}
        }
    }
    Parts { ftyp: get(b"ftyp"), moov: get(b"moov"), fragments }
}

/// The state a recorder leaves when `livemux finalize` ran while it was writing: the first
/// `k` fragments (behind a `reserve`-byte free box, if any) finalized, then the rest of
/// the fragments appended after the finalized file, or, with `overwrite`, written where
/// the recorder's file ended (over a moov that finalize put at the end).
fn mixed_state(p: &Parts, k: usize, reserve: usize, overwrite: bool, dir: &Path) -> Vec<u8> {
    let mut partial = p.ftyp.clone();
    if reserve > 0 {
        partial.extend_from_slice(&(reserve as u32).to_be_bytes());
        partial.extend_from_slice(b"free");
        partial.resize(partial.len() + reserve - 8, 0);
    }
    partial.extend_from_slice(&p.moov);
    p.fragments[..k].iter().for_each(|f| partial.extend_from_slice(f));
    let path = dir.join(format!("partial-{reserve}.mp4"));
    std::fs::write(&path, &partial).unwrap();
    livemux_ok(&["finalize", path.to_str().unwrap()]);
    let mut mixed = std::fs::read(&path).unwrap();
    if overwrite {
        assert!(mixed.len() > partial.len(), "the moov went at the end");
        mixed.truncate(partial.len());
    }
    p.fragments[k..].iter().for_each(|f| mixed.extend_from_slice(f));
    mixed
}

/// (name, reserve, the recorder overwrote the moov at the end)
const MIXED: [(&str, usize, bool); 5] = [
    ("faststart", 64 << 10, false),
    ("moov-end", 64, false),
    ("moov-end-overwritten", 64, true),
    ("no-reserve", 0, false),
    ("no-reserve-overwritten", 0, true),
];

#[test]
fn finalize_indexes_fragments_written_after_a_finalize() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = fragmented(dir.path());
    let full_path = dir.path().join("full.mp4");
    let want = packet_bytes(&full_path);
    let p = parts(&full);
    assert!(p.fragments.len() >= 6, "{} fragments", p.fragments.len());
    let k = p.fragments.len() / 2;
    // A reserve that takes the index (faststart), and one too small (moov at the end).
    for (what, reserve, overwrite) in MIXED {
        let mixed = mixed_state(&p, k, reserve, overwrite, dir.path());
        let path = dir.path().join(format!("mixed-{what}.mp4"));
        std::fs::write(&path, &mixed).unwrap();
        // What FFmpeg makes of it: it stops at the first stray fragment.
        let (ok, text) = ffprobe(&path, "format=format_name");
        let broken = !ok || packet_bytes(&path) != want;
        assert!(broken, "{what}: the mixed state is not what the issue describes: {text}");

        let err = livemux_ok(&["finalize", path.to_str().unwrap()]);
        assert!(err.contains("later fragments are indexed"), "{what}: {err}");
        eprintln!("{what}: {err}");
        let (ok, text) = ffprobe(&path, "format=format_name");
        assert!(ok, "{what}: ffprobe after finalize: {text}");
        assert_eq!(packet_bytes(&path), want, "{what}: every packet of the fragmented recording");
        assert!(decode_errors(&path).is_empty(), "{what}: {}", decode_errors(&path));
        // Regular now: a second finalize has nothing to do.
        let err = livemux_ok(&["finalize", path.to_str().unwrap()]);
        assert!(err.contains("nothing to do"), "{what}: {err}");
    }
    // The fragmented moov damaged as well: nothing to index the fragments from. Refused,
    // and the file is left as it was.
    let mut mixed = mixed_state(&p, k, 0, false, dir.path());
    let at = p.ftyp.len() + 16;
    assert_eq!(&mixed[at - 12..at - 8], b"mdat");
    mixed[at] = 7; // the mvhd version
    let path = dir.path().join("mixed-damaged.mp4");
    std::fs::write(&path, &mixed).unwrap();
    let out = livemux().args(["finalize", path.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("followed by fragments"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), mixed, "a refused file is left as it was");
}

/// The sectors a write covers, as ranges of its data.
fn sectors(offset: u64, len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < len {
        let end = (((offset + at as u64) / 512 + 1) * 512 - offset) as usize;
        out.push((at, end.min(len)));
        at = end.min(len);
    }
    out
}

/// Every state a crash can leave while `steps` are applied (each step durable before the
/// next; within a write, any prefix, suffix, or alternate sectors landed).
fn crash_states(initial: &[u8], steps: &[WriteStep]) -> Vec<(String, Vec<u8>, usize)> {
    let mut out = vec![("before the first step".to_string(), initial.to_vec(), 0)];
    let mut cur = initial.to_vec();
    for (k, step) in steps.iter().enumerate() {
        if let WriteStep::Write { offset, data } = step {
            let pieces = sectors(*offset, data.len());
            let n = pieces.len();
            let mut subsets: Vec<Vec<usize>> = (1..n).map(|i| (0..i).collect()).collect();
            subsets.extend((1..n).map(|i| (i..n).collect::<Vec<_>>()));
            subsets.push((0..n).step_by(2).collect());
            for landed in subsets.into_iter().filter(|l| !l.is_empty() && l.len() < n) {
                let mut state = cur.clone();
                for &i in &landed {
                    let (a, b) = pieces[i];
                    let piece = WriteStep::Write { offset: offset + a as u64, data: data.slice(a..b) };
                    apply_in_memory(&mut state, &[], &[piece]);
                }
                out.push((format!("step {k}, sectors {landed:?} of {n}"), state, k));
            }
        }
        apply_in_memory(&mut cur, &[], std::slice::from_ref(step));
        out.push((format!("after step {k}"), cur.clone(), k + 1));
    }
    out
}

#[test]
fn repairing_the_mixed_state_survives_a_crash_at_every_write() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = fragmented(dir.path());
    let want = packet_bytes(&dir.path().join("full.mp4"));
    let p = parts(&full);
    let k = p.fragments.len() / 2;
    let mut total = 0;
    for (what, reserve, overwrite) in MIXED {
        let mut mixed = mixed_state(&p, k, reserve, overwrite, dir.path());
        // An incomplete stray fragment at the end, as a killed recorder leaves it.
        mixed.extend_from_slice(&p.fragments[1][..p.fragments[1].len() / 2]);
        let pl = plan(&mut Cursor::new(&mixed), mixed.len() as u64).unwrap();
        assert!(matches!(pl.steps[0], WriteStep::Truncate { .. }), "{what}: {:?}", pl.notes);
        assert_eq!(pl.steps.len(), 3, "{what}: truncate, hidden moov, switch: {:?}", pl.steps.len());
        let WriteStep::Write { offset, data } = &pl.steps[2] else { panic!("{what}: the switch") };
        assert!(data.len() <= 16 && offset % 512 + data.len() as u64 <= 512, "{what}: the switch is one sector");
        let mut last = mixed.clone();
        apply_in_memory(&mut last, &[], &pl.steps);
        let last_path = dir.path().join(format!("{what}.final.mp4"));
        std::fs::write(&last_path, &last).unwrap();
        assert_eq!(packet_bytes(&last_path), want, "{what}: the repaired file");
        let Ok(Scanned::Regular { .. }) = scan(&mut Cursor::new(&last), last.len() as u64) else { panic!("{what}") };
        for (state_name, state, done) in crash_states(&mixed, &pl.steps) {
            total += 1;
            if done == pl.steps.len() {
                assert_eq!(state, last, "{what}, {state_name}");
                continue;
            }
            // Before the switch the file is the mixed state with, at most, its tail cut and
            // a trailing free box: `livemux finalize` again gives the same repaired file.
            let again_plan = plan(&mut Cursor::new(&state), state.len() as u64)
                .unwrap_or_else(|e| panic!("{what}, {state_name}: {e}"));
            let mut again = state.clone();
            apply_in_memory(&mut again, &[], &again_plan.steps);
            assert!(again == last, "{what}, {state_name}: finalizing again gives another file");
        }
    }
    eprintln!("{total} crash states, each the repaired file or one that finalizes into it");
    assert!(total > 10);
}

// ---------------------------------------------------------------------------------------
// 2. A track whose samples are all empty.

/// Track id of the first sound track of a moov.
fn audio_track_id(d: &[u8], moov: (usize, usize)) -> u32 {
    for (name, at, size) in children(d, moov.0 + 8, moov.0 + moov.1) {
        if &name != b"trak" {
            continue;
        }
        let kids = children(d, at + 8, at + size);
        let tkhd = kids.iter().find(|k| &k.0 == b"tkhd").unwrap();
        let id = if d[tkhd.1 + 8] == 1 { be32(d, tkhd.1 + 28) } else { be32(d, tkhd.1 + 20) };
        let mdia = kids.iter().find(|k| &k.0 == b"mdia").unwrap();
        let hdlr = children(d, mdia.1 + 8, mdia.1 + mdia.2).into_iter().find(|k| &k.0 == b"hdlr").unwrap();
        if &d[hdlr.1 + 16..hdlr.1 + 20] == b"soun" {
            return id;
        }
    }
    panic!("no sound track")
}

/// Sets the size of every sample of track `id` to 0 in every fragment. Returns how many.
fn empty_track_samples(d: &mut [u8], id: u32) -> usize {
    let mut n = 0;
    for (name, at, size) in children(d, 0, d.len()) {
        if &name != b"moof" {
            continue;
        }
        for (name, t, tsize) in children(d, at + 8, at + size) {
            if &name != b"traf" {
                continue;
            }
            let kids = children(d, t + 8, t + tsize);
            let tfhd = kids.iter().find(|k| &k.0 == b"tfhd").unwrap();
            let flags = be32(d, tfhd.1 + 8) & 0xFF_FFFF;
            if be32(d, tfhd.1 + 12) != id {
                continue;
            }
            if flags & 0x10 != 0 {
                let mut f = tfhd.1 + 16;
                f += if flags & 0x1 != 0 { 8 } else { 0 };
                f += [0x2, 0x8].iter().filter(|&&b| flags & b != 0).count() * 4;
                d[f..f + 4].copy_from_slice(&[0; 4]);
            }
            for trun in kids.iter().filter(|k| &k.0 == b"trun") {
                let flags = be32(d, trun.1 + 8) & 0xFF_FFFF;
                let count = be32(d, trun.1 + 12) as usize;
                let mut f = trun.1 + 16 + [0x1, 0x4].iter().filter(|&&b| flags & b != 0).count() * 4;
                let per = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&b| flags & b != 0).count() * 4;
                assert!(flags & 0x200 != 0 || flags & 0x10 == 0, "sizes per sample or a tfhd default");
                let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
                for _ in 0..count {
                    if flags & 0x200 != 0 {
                        d[f + size_at..f + size_at + 4].copy_from_slice(&[0; 4]);
                    }
                    f += per;
                }
                n += count;
            }
        }
    }
    n
}

/// Packets per stream, as ffprobe counts them; fails on any ffprobe message.
fn count_packets(path: &Path) -> Vec<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "ffprobe {}: {err}", path.display());
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().trim_end_matches(',').parse().unwrap()).collect()
}

#[test]
fn a_track_of_empty_samples_gets_a_table_of_zero_sizes() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut data = fragmented(dir.path());
    let moov = top_level_boxes(&data).into_iter().find(|b| &b.0 == b"moov").map(|b| (b.1, b.2)).unwrap();
    let id = audio_track_id(&data, moov);
    let emptied = empty_track_samples(&mut data, id);
    assert!(emptied > 50, "{emptied} audio samples");
    let crafted = dir.path().join("empty-audio.mp4");
    std::fs::write(&crafted, &data).unwrap();
    let video = count_packets(&dir.path().join("full.mp4"))[0];

    // remux --to mp4 and finalize: every sample is kept, empty ones too, and FFmpeg reads
    // the tables ("Sample size 1937011555 is too large" when stsz has no table).
    let remuxed = dir.path().join("remuxed.mp4");
    livemux_ok(&["remux", crafted.to_str().unwrap(), "--to", "mp4", "-o", remuxed.to_str().unwrap()]);
    let finalized = dir.path().join("finalized.mp4");
    std::fs::copy(&crafted, &finalized).unwrap();
    livemux_ok(&["finalize", finalized.to_str().unwrap()]);
    for out in [&remuxed, &finalized] {
        let counts = count_packets(out);
        assert_eq!(counts.len(), 2, "{}", out.display());
        assert_eq!(counts[0], video, "{}: video packets", out.display());
        assert_eq!(counts[1], emptied as u64, "{}: every empty audio sample", out.display());
        let bytes = std::fs::read(out).unwrap();
        let stsz: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| w == b"stsz").map(|(i, _)| i - 4).collect();
        // The audio stsz: sample_size 0 and a table of zeros, one per sample.
        let table_of_zeros = |at: usize| {
            let n = be32(&bytes, at + 16) as usize;
            n > 0 && be32(&bytes, at) as usize == 20 + 4 * n && (0..n).all(|i| be32(&bytes, at + 20 + 4 * i) == 0)
        };
        let audio = *stsz
            .iter()
            .find(|&&at| table_of_zeros(at))
            .unwrap_or_else(|| panic!("{}: no stsz with a table of zeros", out.display()));
        assert_eq!(be32(&bytes, audio + 12), 0, "sample_size 0: a table follows");
        assert_eq!(be32(&bytes, audio) as usize, 20 + 4 * be32(&bytes, audio + 16) as usize);
        eprintln!(
            "{}: {} empty audio samples in a table, ffprobe counts {counts:?}",
            out.display(),
            be32(&bytes, audio + 16)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Counts that claim more samples than the file holds.

fn mp4_box(name: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(name);
    b.extend_from_slice(body);
    b
}

fn full_box(name: &[u8; 4], words: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = std::iter::once(0u32).chain(words.iter().copied()).flat_map(u32::to_be_bytes).collect();
    mp4_box(name, &body)
}

/// A small MP4 whose 8 audio tracks each claim `samples` samples of one byte (constant
/// `stsz`: 20 bytes for any count) in a 64-byte mdat.
fn claims_huge_counts(samples: u32) -> Vec<u8> {
    let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0isomiso2mp41");
    let mdat_at = file.len() as u32;
    file.extend_from_slice(&mp4_box(b"mdat", &[0u8; 64]));
    let mut mvhd = vec![0u32; 25];
    mvhd[2] = 1000; // timescale
    mvhd[4] = 0x0001_0000; // rate
    mvhd[5] = 0x0100_0000; // volume
    mvhd[24] = 9; // next track id
    let mut moov_body = full_box(b"mvhd", &mvhd);
    for id in 1..=8u32 {
        let mut tkhd = vec![0u32; 20];
        tkhd[2] = id;
        let tkhd = {
            let mut b = full_box(b"tkhd", &tkhd);
            b[11] = 3; // enabled, in movie
            b
        };
        let mdhd = full_box(b"mdhd", &[0, 0, 48_000, samples, 0x55C4_0000]);
        let hdlr = mp4_box(b"hdlr", &[&[0u8; 8][..], b"soun", &[0u8; 13]].concat());
        let smhd = full_box(b"smhd", &[0]);
        let dref = full_box(b"dref", &[1]);
        let dinf = mp4_box(b"dinf", &[dref, full_box(b"url ", &[])].concat());
        // An audio entry livemux does not know: kept verbatim.
        let mut entry = vec![0, 0, 0, 36, b'x', b'a', b'u', b'd', 0, 0, 0, 0, 0, 0, 0, 1];
        entry.extend_from_slice(&[0; 8]);
        entry.extend_from_slice(&[0, 2, 0, 16, 0, 0, 0, 0, 0xBB, 0x80, 0, 0]);
        let stsd = [full_box(b"stsd", &[1]), entry].concat();
        let stsd = {
            let mut b = stsd;
            let len = b.len() as u32;
            b[..4].copy_from_slice(&len.to_be_bytes());
            b
        };
        let stbl = mp4_box(
            b"stbl",
            &[
                stsd,
                full_box(b"stts", &[1, samples, 1]),
                full_box(b"stsc", &[1, 1, samples, 1]),
                full_box(b"stsz", &[1, samples]),
                full_box(b"stco", &[1, mdat_at + 8]),
            ]
            .concat(),
        );
        let minf = mp4_box(b"minf", &[smhd, dinf, stbl].concat());
        let mdia = mp4_box(b"mdia", &[mdhd, hdlr, minf].concat());
        moov_body.extend_from_slice(&mp4_box(b"trak", &[tkhd, mdia].concat()));
    }
    file.extend_from_slice(&mp4_box(b"moov", &moov_body));
    file
}

/// Peak resident memory of a finished child, from `/usr/bin/time -f %M` (KiB), if present.
fn run_measured(args: &[&str]) -> (Output, Option<u64>, Duration) {
    let start = Instant::now();
    let bin = env!("CARGO_BIN_EXE_livemux");
    if Path::new("/usr/bin/time").exists() {
        let out = Command::new("/usr/bin/time").args(["-f", "peak_rss_kib=%M", bin]).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let rss = err.lines().find_map(|l| l.strip_prefix("peak_rss_kib=")).and_then(|v| v.trim().parse().ok());
        return (out, rss, start.elapsed());
    }
    // No time(1): cap the address space instead, so that a big allocation fails.
    let cmd = format!("ulimit -v 2000000; exec \"{bin}\" \"$@\"");
    let out = Command::new("sh").args(["-c", &cmd, "sh"]).args(args).output().unwrap();
    (out, None, start.elapsed())
}

#[test]
fn append_refuses_counts_the_file_cannot_hold_before_allocating() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = make_input(dir.path(), "target.mp4", 1, 15);
    let before = std::fs::read(&target).unwrap();
    let hostile = dir.path().join("hostile.mp4");
    let bytes = claims_huge_counts(1 << 25);
    assert!(bytes.len() < 10_000, "{} bytes", bytes.len());
    std::fs::write(&hostile, &bytes).unwrap();
    for args in [
        vec!["append", target.to_str().unwrap(), hostile.to_str().unwrap()],
        vec!["append", hostile.to_str().unwrap(), target.to_str().unwrap()],
    ] {
        let (out, rss, took) = run_measured(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("{args:?}: exit {:?} in {took:?}, peak RSS {rss:?} KiB: {err}", out.status.code());
        if let Some(kib) = rss {
            assert!(kib < 200 << 10, "{args:?}: peak RSS {kib} KiB");
        }
        assert!(took < Duration::from_secs(20), "{args:?}: {took:?}");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("claims 33554432 samples of 1 bytes"), "{args:?}: {err}");
        assert!(err.contains("has only"), "{err}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), before, "TARGET unchanged");
    assert_eq!(std::fs::read(&hostile).unwrap(), bytes, "the hostile TARGET unchanged");
}

// ---------------------------------------------------------------------------------------
// 5. Append slices that cut inside a group of B-frames.

/// (dts, pts) of every video packet, in the stream's time base.
fn video_times(path: &Path) -> Vec<(i64, i64)> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=dts,pts", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<i64> = l.split(',').map(|x| x.trim().parse().unwrap()).collect();
            (v[1], v[0])
        })
        .collect()
}

#[test]
fn append_slices_inside_a_group_of_b_frames_keep_time_monotonic() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Long GOPs, so that chunks (about 1 s, with audio interleaved) end inside one.
    let a = make_input(dir.path(), "a.mp4", 4, 48);
    let t = dir.path().join("t.mp4");
    std::fs::copy(&a, &t).unwrap();
    let t_slice = format!("{}[0:-1]", t.display());
    let a_slice = format!("{}[0:1]", a.display());
    let err = livemux_ok(&["append", &t_slice, &a_slice, a.to_str().unwrap()]);

    let errors = decode_errors(&t);
    assert!(!errors.contains("non monotonically increasing dts"), "{errors}");
    assert!(errors.is_empty(), "{errors}");
    assert!(err.contains("B-frames"), "the cut inside a group of B-frames is reported: {err}");
    let times = video_times(&t);
    assert!(times.windows(2).all(|w| w[0].0 < w[1].0), "DTS strictly increase: {times:?}");
    let mut pts: Vec<i64> = times.iter().map(|t| t.1).collect();
    pts.sort();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "no two frames at the same PTS: {pts:?}");
    assert!(times.iter().all(|(d, p)| p >= d), "PTS never before DTS");
    // Every packet of the three pieces is there.
    let whole = framemd5(&a);
    let got = framemd5(&t);
    let video = |v: &[FramePacket]| stream(v, 0).len();
    assert!(video(&got) > video(&whole) && video(&got) < 3 * video(&whole), "{} of {}", video(&got), video(&whole));
}
