//! `--to mp4` and `livemux finalize`: fragmented MP4 while recording, a regular MP4 at the
//! end, no media rewritten, and a valid file at every moment of the conversion. FFmpeg is
//! the independent reader; the crate's own parser checks the many crash states cheaply.

mod common;

use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use livemux::formats::mp4::file::read_moov;
use livemux::formats::mp4::finalize::{plan, scan, Scanned};
use livemux::formats::mp4::moov::parse_movie;
use livemux::formats::WriteStep;
use livemux::io::apply_in_memory;
use livemux::model::{Fragment, FragmentKind};
use livemux::pipeline::Pipeline;
use livemux::stages::mux::{MuxConfig, MuxFormat};
use livemux::stages::sink::SinkConfig;
use livemux::stages::source::SourceConfig;

fn remux(input: &Path, output: &Path, args: &[&str]) {
    let out = livemux().arg("remux").arg(input).arg("-o").arg(output).args(args).output().unwrap();
    assert!(out.status.success(), "{}: {}", input.display(), String::from_utf8_lossy(&out.stderr));
}

fn finalize(path: &Path) -> std::process::Output {
    livemux().arg("finalize").arg(path).output().unwrap()
}

/// The direct children of the box at `range` (a container).
fn children(data: &[u8], start: usize, end: usize) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut at = start;
    while at + 8 <= end {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        out.push(data[at + 4..at + 8].try_into().unwrap());
        if size < 8 {
            break;
        }
        at += size;
    }
    out
}

/// Asserts the file is a regular MP4: top-level ftyp, one moov without mvex, mdat, no
/// fragment. Returns the top-level box types.
fn assert_regular(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let boxes = top_level_boxes(&data);
    let names: Vec<String> = boxes.iter().map(|b| String::from_utf8_lossy(&b.0).into_owned()).collect();
    assert_eq!(boxes.iter().map(|b| b.1 + b.2).next_back(), Some(data.len()), "{}: {names:?}", path.display());
    assert!(!names.iter().any(|n| n == "moof" || n == "mfra" || n == "free"), "{}: {names:?}", path.display());
    let moovs: Vec<_> = boxes.iter().filter(|b| &b.0 == b"moov").collect();
    assert_eq!(moovs.len(), 1, "{}: {names:?}", path.display());
    let kids = children(&data, moovs[0].1 + 8, moovs[0].1 + moovs[0].2);
    assert!(kids.iter().all(|k| k != b"mvex"), "{}: the moov still has mvex", path.display());
    assert!(kids.iter().any(|k| k == b"trak"));
    names
}

fn duration(path: &Path) -> f64 {
    let (ok, text) = ffprobe(path, "format=duration");
    assert!(ok, "{}: {text}", path.display());
    text.trim().trim_start_matches("duration=").parse().unwrap()
}

/// Same bytes per packet, and the same timestamps (`exact`) or the same spacing (FFmpeg
/// applies the edit lists of a fragmented input differently from a regular file's).
fn check_same_media(input: &Path, output: &Path, exact: bool) {
    let (a, b) = (framemd5(input), framemd5(output));
    let what = format!("{} -> {}", input.display(), output.display());
    if exact {
        assert_same_packets(&a, &b, &what);
        return;
    }
    let streams = a.iter().map(|p| p.stream).max().unwrap() + 1;
    assert_eq!(streams, b.iter().map(|p| p.stream).max().unwrap() + 1, "{what}");
    for s in 0..streams {
        let (x, y) = (stream(&a, s), stream(&b, s));
        assert_eq!(x.len(), y.len(), "{what}: stream {s} packet count");
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            assert_eq!((p.size, &p.md5), (q.size, &q.md5), "{what}: stream {s} packet {i}");
            assert_eq!(p.dts - x[0].dts, q.dts - y[0].dts, "{what}: stream {s} packet {i} dts spacing");
            assert_eq!(p.pts - x[0].pts, q.pts - y[0].pts, "{what}: stream {s} packet {i} pts spacing");
        }
    }
}

/// Every corpus-like input the fragmented writer is tested with, as (path, exact times).
fn corpus(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut inputs: Vec<(PathBuf, bool)> = [
        "h264_aac_moov_end.mp4",
        "h264_aac_faststart.mp4",
        "hevc_aac_moov_end.mov",
        "aac_only.mp4",
        "two_audio.mp4",
        "pcm_s16le.mov",
        "h264_aac_reference_1s.mp4",
        "h264_aac_fragmented.mp4",
    ]
    .iter()
    .map(|n| (generated_file(n), true))
    .collect();
    // Fragmented with edit lists, which FFmpeg ignores in fragmented files only.
    inputs.extend(["h264_aac_cmaf.mp4", "h264_aac.ismv"].iter().map(|n| (generated_file(n), false)));
    if tools(&["gst-launch-1.0"]) {
        inputs.extend(["gst_h264_fragmented.mp4", "gst_h264_robust.mp4"].iter().map(|n| (generated_file(n), true)));
    }
    inputs.extend(browser_mp4_names().into_iter().map(|n| (browser_file(n, dir), true)));
    inputs
}

#[test]
fn every_input_remuxed_to_mp4_is_regular_with_identical_packets() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (input, exact) in corpus(dir.path()) {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        for (variant, args, layout) in [
            ("faststart", &["--to", "mp4"][..], ["ftyp", "moov", "mdat"]),
            ("moov-end", &["--to", "mp4", "--reserve-ms", "0"][..], ["ftyp", "mdat", "moov"]),
        ] {
            let out = dir.path().join(format!("{name}.{variant}.mp4"));
            remux(&input, &out, args);
            assert_eq!(assert_regular(&out), layout, "{name} {variant}");
            check_same_media(&input, &out, exact);
            let (want, got) = (duration(&input), duration(&out));
            assert!((want - got).abs() < 0.05, "{name} {variant}: duration {got}, input {want}");
        }
    }
    // The default for an .mp4 file is mp4; for .m4s or stdout, fmp4.
    let input = generated_file("h264_aac_moov_end.mp4");
    let (mp4, m4s) = (dir.path().join("default.mp4"), dir.path().join("default.m4s"));
    remux(&input, &mp4, &[]);
    assert_regular(&mp4);
    remux(&input, &m4s, &[]);
    assert!(top_level_boxes(&std::fs::read(&m4s).unwrap()).iter().any(|b| &b.0 == b"moof"));
    let res = livemux().arg("remux").arg(&input).args(["--to", "mp4", "-o", "-"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2), "a stream cannot be finished in place");
}

/// Every fragment the mux stage hands the sink for `input` with `mux`, in order.
fn mux_in_process(input: &Path, mux: MuxConfig) -> Vec<Fragment> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceConfig::default().with_path(input);
        let sink = SinkConfig::new(dir.path().join("unused.mp4"));
        let mut p = Pipeline::remux(source, Default::default(), mux, sink).unwrap();
        let mut rx = p.collect_output().unwrap();
        let run = tokio::spawn(p.run(Default::default()));
        let mut fragments = Vec::new();
        while let Some(f) = rx.recv().await {
            fragments.push(f);
        }
        run.await.unwrap().unwrap();
        fragments
    })
}

/// What the mux stage hands the sink for `input` with `--to mp4`: the bytes written while
/// recording, and the in-place writes of the clean stop.
fn record_in_process(input: &Path, reserve_ms: u64) -> (Vec<u8>, Vec<WriteStep>) {
    let mux = MuxConfig { format: MuxFormat::Mp4, reserve_ms, ..MuxConfig::default() };
    let (mut recorded, mut steps) = (Vec::new(), Vec::new());
    for f in mux_in_process(input, mux) {
        if f.kind == FragmentKind::Finalize {
            steps.push(WriteStep::Write { offset: f.offset, data: f.to_bytes() });
        } else {
            assert_eq!(f.offset, recorded.len() as u64, "fragments follow each other");
            apply_in_memory(&mut recorded, &[], &WriteStep::for_fragment(&f));
        }
    }
    (recorded, steps)
}

/// The reserved free box right after ftyp: (offset, size).
fn reserved_box(recorded: &[u8]) -> (u64, u64) {
    let boxes = top_level_boxes(recorded);
    let free = boxes.iter().find(|b| &b.0 == b"free").expect("a reserved free box");
    (free.1 as u64, free.2 as u64)
}

#[test]
fn faststart_writes_every_media_byte_once() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let input = generated_file("h264_aac_moov_end.mp4");
    let (recorded, steps) = record_in_process(&input, 600_000);
    let (f, r) = reserved_box(&recorded);
    // The header and every fragment are written once, one after the other; the finalize
    // writes stay inside the reserved free box, which holds no media.
    let mut file = recorded.clone();
    let finalize_bytes: u64 = steps.iter().map(WriteStep::len).sum();
    for s in &steps {
        let WriteStep::Write { offset, data } = s else { panic!("{s:?}") };
        assert!(*offset >= f && offset + data.len() as u64 <= f + r, "a write outside the reserve: {s:?}");
        apply_in_memory(&mut file, &[], std::slice::from_ref(s));
    }
    assert_eq!(file.len(), recorded.len(), "faststart appends nothing");
    let (moov_at, hl, moov) = read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
    assert_eq!(moov_at, f, "the moov is where the free box was, before the media");
    let movie = parse_movie(&moov, moov_at, hl).unwrap();
    let mut media = 0u64;
    for t in &movie.tracks {
        for s in t.table.samples() {
            let s = s.unwrap();
            assert!(s.offset >= f + r, "a sample inside the reserve: {s:?}");
            media += s.size as u64;
        }
    }
    eprintln!(
        "faststart: {} bytes written while recording ({media} of them media), {finalize_bytes} at the clean stop \
         ({} steps) inside the {r}-byte reserve: moov {} bytes; media written once, nothing appended",
        recorded.len(),
        steps.len(),
        moov.len()
    );
    assert_eq!(finalize_bytes, moov.len() as u64 + 8, "the moov and one 8-byte mdat header, nothing else");

    // The command line writes exactly these bytes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    remux(&input, &out, &["--to", "mp4", "--reserve-ms", "600000"]);
    assert!(std::fs::read(&out).unwrap() == file, "the sink wrote what the muxer planned");
    assert_eq!(assert_regular(&out), ["ftyp", "moov", "mdat"]);
    check_same_media(&input, &out, true);

    // moov at the end: the moov, an 8-byte free header and the 16-byte switch.
    let (recorded, steps) = record_in_process(&input, 0);
    let appended = steps.iter().map(WriteStep::len).sum::<u64>();
    let mut file = recorded.clone();
    apply_in_memory(&mut file, &[], &steps);
    let (_, _, moov) = read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
    assert_eq!(appended, moov.len() as u64 + 8 + 16);
    assert_eq!(file.len() as u64, recorded.len() as u64 + moov.len() as u64 + 8);
    eprintln!("moov at the end: {} bytes recorded, {appended} written at the clean stop", recorded.len());
}

/// The sectors a write covers, as ranges of its data (sectors are what a disk writes whole).
fn sectors(offset: u64, len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < len {
        let abs = offset + at as u64;
        let end = ((abs / 512 + 1) * 512 - offset) as usize;
        out.push((at, end.min(len)));
        at = end.min(len);
    }
    out
}

/// Subsets of `n` sectors that may have reached the disk when a crash hits before the
/// step's fsync (each other subset behaves like one of these: a sector lands or not).
fn landed_subsets(n: usize) -> Vec<Vec<usize>> {
    if n <= 6 {
        return (1..(1u32 << n) - 1).map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect()).collect();
    }
    let mut out = Vec::new();
    for i in [0, 1, n / 2, n - 2, n - 1] {
        out.push(vec![i]);
        out.push((0..n).filter(|&j| j != i).collect());
    }
    out.push((0..n / 2).collect());
    out.push((n / 2..n).collect());
    out.push((0..n).step_by(2).collect());
    out.push((1..n).step_by(2).collect());
    out
}

/// Every state the file can be in if the machine stops while `steps` are applied, each
/// step made durable before the next: every prefix of the steps, and within a write any
/// of its sectors landed or not (a hole past the old end reads as zeros). The flag says
/// whether the cut tail (if any) is gone: before that, readers may see more packets.
fn crash_states(initial: &[u8], steps: &[WriteStep]) -> Vec<(String, Vec<u8>, bool)> {
    let mut tail_gone = !steps.iter().any(|s| matches!(s, WriteStep::Truncate { .. }));
    let mut out = vec![("before the first step".to_string(), initial.to_vec(), tail_gone)];
    let mut cur = initial.to_vec();
    for (k, step) in steps.iter().enumerate() {
        if let WriteStep::Write { offset, data } = step {
            let pieces = sectors(*offset, data.len());
            for landed in landed_subsets(pieces.len()) {
                let mut state = cur.clone();
                let end = landed.iter().map(|&i| *offset as usize + pieces[i].1).max().unwrap();
                if state.len() < end {
                    state.resize(end, 0);
                }
                for &i in &landed {
                    let (a, b) = pieces[i];
                    let piece = WriteStep::Write { offset: offset + a as u64, data: data.slice(a..b) };
                    apply_in_memory(&mut state, &[], &[piece]);
                }
                out.push((format!("step {k}, sectors {landed:?} of {}", pieces.len()), state, tail_gone));
            }
        }
        apply_in_memory(&mut cur, &[], std::slice::from_ref(step));
        tail_gone |= matches!(step, WriteStep::Truncate { .. });
        out.push((format!("after step {k} ({step:?})", step = short(step)), cur.clone(), tail_gone));
    }
    out
}

fn short(step: &WriteStep) -> String {
    match step {
        WriteStep::Write { offset, data } => format!("write {} bytes at {offset}", data.len()),
        WriteStep::Truncate { len } => format!("truncate to {len}"),
        other => format!("{other:?}"),
    }
}

/// The crate's own reading of a state: samples per track, every sample of a regular file
/// inside an mdat.
fn own_counts(state: &[u8]) -> Result<Vec<u32>, String> {
    let len = state.len() as u64;
    match scan(&mut Cursor::new(state), len).map_err(|e| e.to_string())? {
        Scanned::Fragmented { index, .. } => Ok(index.sample_counts()),
        Scanned::Regular { samples } => {
            let mdats: Vec<(u64, u64)> = top_level_boxes(state)
                .iter()
                .filter(|b| &b.0 == b"mdat")
                .map(|b| {
                    let header = if u32::from_be_bytes(state[b.1..b.1 + 4].try_into().unwrap()) == 1 { 16 } else { 8 };
                    ((b.1 + header) as u64, (b.1 + b.2) as u64)
                })
                .collect();
            let (at, hl, moov) = read_moov(&mut Cursor::new(state), len).map_err(|e| e.to_string())?.unwrap();
            let movie = parse_movie(&moov, at, hl).map_err(|e| e.to_string())?;
            for t in &movie.tracks {
                for s in t.table.samples() {
                    let s = s.map_err(|e| e.to_string())?;
                    let end = s.offset + s.size as u64;
                    if !mdats.iter().any(|&(a, b)| s.offset >= a && end <= b) {
                        return Err(format!("sample {s:?} is outside every mdat"));
                    }
                }
            }
            Ok(samples)
        }
    }
}

/// Replays `steps` on `initial` cut at every point; every state must hold every packet of
/// the finished file, by the crate's parser and by FFmpeg (each distinct state once).
fn replay(name: &str, initial: &[u8], steps: &[WriteStep], dir: &Path) -> usize {
    let mut last = initial.to_vec();
    apply_in_memory(&mut last, &[], steps);
    let expected_counts = own_counts(&last).unwrap();
    let states = crash_states(initial, steps);
    // The crate's parser on every state first (no external tool needed)...
    for (what, state, _) in &states {
        let counts = own_counts(state).unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
        assert_eq!(counts, expected_counts, "{name}, {what}: samples per track");
        // `livemux finalize` completes an interrupted conversion from any state.
        let mut again = state.clone();
        let p = plan(&mut Cursor::new(state), state.len() as u64).unwrap();
        apply_in_memory(&mut again, &[], &p.steps);
        let Ok(Scanned::Regular { samples }) = scan(&mut Cursor::new(&again), again.len() as u64) else {
            panic!("{name}, {what}: finalizing again does not give a regular MP4: {:?}", p.notes);
        };
        assert_eq!(samples, expected_counts, "{name}, {what}: finalized again");
    }
    // ...then FFmpeg on each distinct state.
    let final_path = dir.join(format!("{name}.final.mp4"));
    std::fs::write(&final_path, &last).unwrap();
    let expected = framemd5(&final_path);
    let mut seen = HashSet::new();
    for (what, state, tail_gone) in &states {
        if !seen.insert(state.clone()) {
            continue;
        }
        let path = dir.join(format!("{name}.state.mp4"));
        std::fs::write(&path, state).unwrap();
        let (ok, text) = ffprobe(&path, "format=format_name");
        assert!(ok, "{name}, {what}: ffprobe: {text}");
        let got = framemd5(&path);
        let streams = expected.iter().map(|p| p.stream).max().unwrap() + 1;
        for s in 0..streams {
            let bytes = |v: &[FramePacket]| stream(v, s).into_iter().map(|p| (p.size, p.md5)).collect::<Vec<_>>();
            let (mut got, want) = (bytes(&got), bytes(&expected));
            if !tail_gone {
                // FFmpeg also reads what it can of an incomplete last fragment.
                got.truncate(want.len());
            }
            assert_eq!(got, want, "{name}, {what}: stream {s} packets");
        }
    }
    eprintln!("{name}: {} crash states, {} distinct, all valid", states.len(), seen.len());
    states.len()
}

#[test]
fn finalize_survives_a_crash_at_every_write() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    // The clean stop of --to mp4: faststart, and moov at the end.
    let input = generated_file("h264_aac_moov_end.mp4");
    for (name, reserve) in [("faststart", 600_000), ("moov-end", 0)] {
        let (recorded, steps) = record_in_process(&input, reserve);
        assert_eq!(steps.len(), 2, "{name}");
        total += replay(name, &recorded, &steps, dir.path());
    }
    // livemux finalize: Chromium's layout, FFmpeg's with an mfra, and a cut one.
    let chrome = std::fs::read(browser_file("chrome_mp4_vp9_opus", dir.path())).unwrap();
    let ffmpeg = std::fs::read(generated_file("h264_aac_fragmented.mp4")).unwrap();
    let cut = std::fs::read(generated_file("h264_aac_fragmented_truncated.mp4")).unwrap();
    for (name, data, truncates) in [("chrome", chrome, false), ("mfra", ffmpeg, true), ("cut", cut, true)] {
        let p = plan(&mut Cursor::new(&data), data.len() as u64).unwrap();
        assert_eq!(matches!(p.steps[0], WriteStep::Truncate { .. }), truncates, "{name}: {:?}", p.notes);
        total += replay(name, &data, &p.steps, dir.path());
    }
    assert!(total > 50, "{total} states");
}

/// The replay is able to fail: the same writes with the switch first leave, after the
/// first step, an mdat that runs past the end of the file and no moov.
#[test]
#[should_panic(expected = "after step 0")]
fn replay_catches_a_wrong_write_order() {
    let (recorded, mut steps) = record_in_process(&generated_file("h264_aac_moov_end.mp4"), 0);
    steps.reverse();
    replay("wrong-order", &recorded, &steps, tempfile::tempdir().unwrap().path());
}

/// Starts `livemux remux - --to mp4 -o OUT` fed `data` at about `bytes_per_sec`, input
/// left open (the run ends only when killed).
fn paced_recording(data: Vec<u8>, out: &Path, bytes_per_sec: usize) -> Child {
    let mut child = livemux()
        .args(["remux", "-", "--to", "mp4", "--fragment-ms", "200", "--max-fragment-ms", "400", "-o"])
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        for c in data.chunks(bytes_per_sec / 100) {
            if stdin.write_all(c).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    child
}

#[test]
fn sigkill_during_a_recording_then_finalize_keeps_every_complete_fragment() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let input = generated_file("h264_aac_faststart.mp4");
    let data = std::fs::read(&input).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let whole_path = dir.path().join("whole.mp4");
    remux(&input, &whole_path, &["--to", "mp4"]);
    let whole = framemd5(&whole_path);
    let mut rng = Lcg(0xf1a1);
    for run in 0..4 {
        let out = dir.path().join(format!("killed-{run}.mp4"));
        let mut child = paced_recording(data.clone(), &out, 1 << 20);
        // Past the header (with its reserved free box) and a few fragments.
        let start = Instant::now();
        while std::fs::metadata(&out).map_or(0, |m| m.len()) < 900_000 {
            assert!(start.elapsed() < Duration::from_secs(10), "no output after 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.next(300)));
        signal(child.id(), "KILL");
        child.wait().unwrap();

        let bytes = std::fs::read(&out).unwrap();
        let complete = dir.path().join(format!("complete-{run}.mp4"));
        std::fs::write(&complete, complete_fragments_prefix(&bytes)).unwrap();
        let fragments = framemd5(&complete);
        assert!(!fragments.is_empty());

        let res = finalize(&out);
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "run {run}: {err}");
        assert!(err.contains("faststart"), "run {run}: the reserved box takes the index: {err}");
        assert_eq!(assert_regular(&out), ["ftyp", "moov", "mdat"], "run {run}");
        let got = framemd5(&out);
        for s in 0..2 {
            assert_eq!(stream(&got, s).len(), stream(&fragments, s).len(), "run {run}: stream {s}: every fragment");
        }
        assert_cut_prefix(&whole, &got, &format!("run {run}"));
        assert_eq!(decode_errors(&out), "", "run {run}");
        let again = finalize(&out);
        assert!(again.status.success() && String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
    }
}

#[test]
fn finalize_turns_chromium_recordings_into_regular_mp4s_with_identical_packets() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in browser_mp4_names() {
        let original = browser_file(name, dir.path());
        let copy = dir.path().join(format!("{name}.finalized.mp4"));
        std::fs::copy(&original, &copy).unwrap();
        let res = finalize(&copy);
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{name}: {err}");
        assert!(err.contains("moov at the end"), "{name}: {err}");
        assert_eq!(assert_regular(&copy), ["ftyp", "mdat", "moov"], "{name}");
        assert_same_packets(&framemd5(&original), &framemd5(&copy), name);
        assert!((duration(&original) - duration(&copy)).abs() < 0.05, "{name}: duration");
        // Again: nothing to do, nothing changed.
        let before = std::fs::read(&copy).unwrap();
        let res = finalize(&copy);
        assert!(res.status.success() && String::from_utf8_lossy(&res.stderr).contains("nothing to do"));
        assert!(std::fs::read(&copy).unwrap() == before);
    }
    // A file without an index is refused with the way out, and left alone.
    let cut = dir.path().join("cut.mp4");
    std::fs::copy(generated_file("h264_aac_truncated_60pct.mp4"), &cut).unwrap();
    let res = finalize(&cut);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("livemux recover"));
    assert!(std::fs::read(&cut).unwrap() == std::fs::read(generated_file("h264_aac_truncated_60pct.mp4")).unwrap());
}

// ------------------------------------------------------------------- the running index

/// One write of a `--to mp4` recording to a file, as the file output makes them.
#[derive(Clone, Debug)]
enum RecWrite {
    Append(Vec<u8>),
    InPlace(u64, bytes::Bytes),
}

/// The writes of recording `input` with `--to mp4` (fragments of 400 to 800 ms), in the
/// order a file output makes them: each fragment's index entries, the fragment, its index
/// counts (`counts_first`: the counts before the fragment, the wrong order). The clean
/// stop's writes are left out: this is the file while it records.
fn recording_writes(input: &Path, counts_first: bool) -> Vec<RecWrite> {
    let fragment = livemux::formats::fragmenter::FragmentPolicy::new(400, 800);
    let mux = MuxConfig { format: MuxFormat::Mp4, fragment, ..MuxConfig::default() };
    let in_place =
        |w: &[(u64, bytes::Bytes)]| w.iter().map(|(at, d)| RecWrite::InPlace(*at, d.clone())).collect::<Vec<_>>();
    let mut writes = Vec::new();
    for f in mux_in_process(input, mux).iter().filter(|f| f.kind != FragmentKind::Finalize && !f.is_empty()) {
        writes.extend(in_place(&f.index.prepare));
        if counts_first {
            writes.extend(in_place(&f.index.publish));
        }
        writes.push(RecWrite::Append(f.to_bytes().to_vec()));
        if !counts_first {
            writes.extend(in_place(&f.index.publish));
        }
    }
    writes
}

/// Reads each top-level `sidx` of `state` as a player would and checks that it counts only
/// whole fragments of the file: each reference starts at a `moof` and ends inside the
/// file. Returns where the references of each box end.
fn running_index_ends(state: &[u8], what: &str) -> Vec<u64> {
    let boxes = top_level_boxes(state);
    let moofs: HashSet<usize> = boxes.iter().filter(|b| &b.0 == b"moof").map(|b| b.1).collect();
    let mut ends = Vec::new();
    for &(_, at, size) in boxes.iter().filter(|b| &b.0 == b"sidx") {
        let b = &state[at..at + size];
        let first_offset = u64::from_be_bytes(b[28..36].try_into().unwrap());
        let count = u16::from_be_bytes(b[38..40].try_into().unwrap()) as usize;
        let mut end = (at + size) as u64 + first_offset;
        for i in 0..count {
            let e = &b[40 + 12 * i..52 + 12 * i];
            let size = u64::from(u32::from_be_bytes(e[..4].try_into().unwrap()) & 0x7fff_ffff);
            assert!(end + size <= state.len() as u64, "{what}: sidx at {at} counts bytes past the end of the file");
            assert!(moofs.contains(&(end as usize)), "{what}: sidx at {at}: reference {i} does not start at a moof");
            end += size;
        }
        ends.push(end);
    }
    ends
}

/// Replays a recording's writes cut at every one, and inside each in-place write at every
/// sector: every state is a fragmented MP4 whose packets are those of its complete
/// fragments, and whose running index counts only those; once a fragment's counts are
/// written, the index reaches the end of the file (what FFmpeg needs to use it).
fn replay_recording(name: &str, writes: &[RecWrite], dir: &Path) -> usize {
    let mut cur: Vec<u8> = Vec::new();
    let mut states: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, w) in writes.iter().enumerate() {
        match w {
            RecWrite::Append(data) => cur.extend_from_slice(data),
            RecWrite::InPlace(offset, data) => {
                let pieces = sectors(*offset, data.len());
                for landed in landed_subsets(pieces.len()) {
                    let mut state = cur.clone();
                    for &i in &landed {
                        let (a, b) = pieces[i];
                        state[*offset as usize + a..*offset as usize + b].copy_from_slice(&data[a..b]);
                    }
                    states.push((format!("{name}: write {k}, sectors {landed:?}"), state));
                }
                cur[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            }
        }
        let what = format!(
            "{name}: after write {k} ({})",
            if matches!(w, RecWrite::Append(_)) { "fragment" } else { "index" }
        );
        let published = matches!(w, RecWrite::InPlace(..)) && !matches!(writes.get(k + 1), Some(RecWrite::InPlace(..)));
        if published {
            // The last count of a fragment: every box reaches the end of the file.
            let ends = running_index_ends(&cur, &what);
            assert!(
                !ends.is_empty() && ends.iter().all(|&e| e == cur.len() as u64),
                "{what}: index ends {ends:?}, file {}",
                cur.len()
            );
        }
        states.push((what, cur.clone()));
    }
    let final_path = dir.join(format!("{name}.recorded.mp4"));
    std::fs::write(&final_path, &cur).unwrap();
    let whole = framemd5(&final_path);
    let mut seen = HashSet::new();
    for (what, state) in &states {
        running_index_ends(state, what);
        if !seen.insert(state.clone()) || top_level_boxes(state).iter().all(|b| &b.0 != b"moof") {
            continue;
        }
        let len = state.len() as u64;
        assert!(matches!(scan(&mut Cursor::new(state), len), Ok(Scanned::Fragmented { .. })), "{what}: scan");
        let path = dir.join(format!("{name}.state.mp4"));
        std::fs::write(&path, state).unwrap();
        let (ok, text) = ffprobe(&path, "format=format_name");
        assert!(ok, "{what}: ffprobe: {text}");
        assert_cut_prefix(&whole, &framemd5(&path), what);
    }
    eprintln!("{name}: {} states, {} distinct, all valid", states.len(), seen.len());
    states.len()
}

#[test]
fn the_running_index_is_valid_after_a_crash_at_every_write() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let writes = recording_writes(&generated_file("h264_aac_moov_end.mp4"), false);
    let fragments = writes.iter().filter(|w| matches!(w, RecWrite::Append(_))).count();
    assert!(fragments >= 10, "{fragments} fragments");
    assert!(replay_recording("h264-aac", &writes, dir.path()) > 4 * fragments);
}

/// The replay is able to fail: counts written before their fragment count bytes the file
/// does not have yet.
#[test]
#[should_panic(expected = "counts bytes past the end of the file")]
fn replay_catches_an_index_that_runs_ahead_of_the_file() {
    let writes = recording_writes(&generated_file("h264_aac_moov_end.mp4"), true);
    replay_recording("ahead", &writes, tempfile::tempdir().unwrap().path());
}

/// The `read` and `lseek` calls `ffprobe` makes on a file to open it (strace), to tell
/// whether it read an index or every `moof`.
fn ffprobe_file_calls(path: &Path) -> usize {
    let log = path.with_extension("strace");
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,read,lseek,close", "-o"])
        .arg(&log)
        .args(["ffprobe", "-v", "error", "-show_entries", "format=duration"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ffprobe {}", path.display());
    let opened = format!("\"{}\"", path.display());
    let mut fds = HashSet::new();
    let mut calls = 0;
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        // "PID  call(FD, ...) = RESULT"
        let Some((call, rest)) = line.split_once(' ').and_then(|(_, l)| l.trim_start().split_once('(')) else {
            continue;
        };
        let result = rest.rsplit_once("= ").map(|(_, r)| r.split(' ').next().unwrap_or("")).unwrap_or("");
        if call == "openat" {
            if rest.contains(&opened) {
                fds.insert(result.to_string());
            }
            continue;
        }
        let fd = rest.split([',', ')']).next().unwrap_or("");
        match call {
            "close" => {
                fds.remove(fd);
            }
            "read" | "lseek" if fds.contains(fd) => calls += 1,
            _ => {}
        }
    }
    calls
}

/// A recording killed with SIGKILL opens through its running index: FFmpeg reads and seeks
/// a few times instead of reading every `moof`, as it must without the index (the same file with
/// its `sidx` boxes turned into `free` boxes, which shows the measure can fail).
#[test]
fn a_killed_recording_opens_through_its_running_index() {
    if !tools(&["ffmpeg", "ffprobe", "strace"]) {
        return;
    }
    let data = std::fs::read(generated_file("h264_aac_faststart.mp4")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.mp4");
    let mut child = paced_recording(data, &out, 1 << 20);
    let start = Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 900_000 {
        assert!(start.elapsed() < Duration::from_secs(20), "no output after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // All the input is in (its tail waits for more); the size settles.
    let mut last = 0;
    while std::fs::metadata(&out).unwrap().len() != last {
        last = std::fs::metadata(&out).unwrap().len();
        std::thread::sleep(Duration::from_millis(500));
    }
    signal(child.id(), "KILL");
    child.wait().unwrap();

    let bytes = std::fs::read(&out).unwrap();
    let ends = running_index_ends(&bytes, "killed");
    assert_eq!(ends, vec![bytes.len() as u64; 2], "one sidx per track, counting every fragment");
    let moofs = top_level_boxes(&bytes).iter().filter(|b| &b.0 == b"moof").count();
    let with_index = ffprobe_file_calls(&out);

    let mut hidden = bytes.clone();
    for &(_, at, _) in top_level_boxes(&bytes).iter().filter(|b| &b.0 == b"sidx") {
        hidden[at + 4..at + 8].copy_from_slice(b"free");
    }
    let without = dir.path().join("no-index.mp4");
    std::fs::write(&without, &hidden).unwrap();
    let scanning = ffprobe_file_calls(&without);
    eprintln!("{moofs} fragments: ffprobe reads or seeks {with_index} times with the index, {scanning} without");
    assert!(with_index <= 12, "{with_index} reads and seeks with the index");
    assert!(scanning >= moofs, "{scanning} reads and seeks without it, {moofs} fragments");
    assert_eq!(framemd5(&out), framemd5(&without), "the same packets either way");
}

/// A finished file's duration sizes the reserve and the running index: a short file stays
/// short; the same bytes on stdin (duration unknown) get room for a minute of index and an
/// hour of running index. Both are regular MP4s with the index first.
#[test]
fn a_finished_file_reserves_for_its_own_duration() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let input = common::root().join("samples/chrome_mp4_avc1_opus.mp4");
    let dir = tempfile::tempdir().unwrap();
    let (file, piped) = (dir.path().join("file.mp4"), dir.path().join("piped.mp4"));
    remux(&input, &file, &[]);
    let res = livemux().args(["remux", "-", "-o"]).arg(&piped).stdin(std::fs::File::open(&input).unwrap()).output();
    assert!(res.unwrap().status.success());
    let [len_in, len_file, len_piped] = [&input, &file, &piped].map(|p| std::fs::metadata(p).unwrap().len());
    assert!(len_file * 100 < len_in * 110, "a 6-s file grows by less than 10%: {len_in} -> {len_file}");
    assert!(len_piped > len_file + 100_000, "a live input keeps room for an hour: {len_piped}");
    for p in [&file, &piped] {
        let boxes: Vec<[u8; 4]> = top_level_boxes(&std::fs::read(p).unwrap()).into_iter().map(|b| b.0).collect();
        let (moov, mdat) = (boxes.iter().position(|b| b == b"moov"), boxes.iter().position(|b| b == b"mdat"));
        assert!(moov.unwrap() < mdat.unwrap(), "{}: index first: {boxes:?}", p.display());
    }
    assert_same_packets(&framemd5(&input), &framemd5(&file), "sized from the duration");
    // --reserve-ms given: as asked, whatever the input.
    let asked = dir.path().join("asked.mp4");
    remux(&input, &asked, &["--reserve-ms", "60000"]);
    assert_eq!(std::fs::read(&asked).unwrap(), std::fs::read(&piped).unwrap());
}
