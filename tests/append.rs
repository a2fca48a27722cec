//! `livemux append`: corpus and browser recordings appended in steps and with slices,
//! checked packet by packet with FFmpeg; bytes written per append; crash states replayed
//! step by step and SIGKILL during appends; incompatible sources refused; the lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use livemux::append::{append, AppendRequest};
use livemux::formats::mp4::append::{self as planner, AppendOptions, ChunkSlice, InputData, Mode, Step};
use livemux::io::apply_in_memory;

fn tools_file(name: &str) -> PathBuf {
    root().join("tests/fixtures/tools").join(name)
}

fn copy(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

fn run_append(args: &[String]) -> Output {
    livemux().arg("append").args(args).output().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn append_ok(args: &[String]) -> String {
    let out = run_append(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "livemux append {args:?}: {err}");
    err
}

/// The time base of every stream: ticks per second.
fn time_bases(path: &Path) -> Vec<i64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=time_base", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().strip_prefix("1/").unwrap_or_else(|| panic!("time base {l}")).parse().unwrap())
        .collect()
}

/// One input's packets as FFmpeg reads them, with its time bases.
struct Part {
    what: String,
    packets: Vec<FramePacket>,
    tb: Vec<i64>,
}

fn part(path: &Path) -> Part {
    Part { what: s(path), packets: framemd5(path), tb: time_bases(path) }
}

/// The first `n` fragments of a fragmented MP4 (everything before the first `moof`, then
/// fragments `from..to`), written to `dir`: what a slice of fragments holds.
fn fragments(path: &Path, range: std::ops::Range<usize>, dir: &Path, name: &str) -> PathBuf {
    let data = std::fs::read(path).unwrap();
    let boxes = top_level_boxes(&data);
    let first = boxes.iter().position(|b| &b.0 == b"moof").unwrap();
    let moofs: Vec<usize> = boxes.iter().enumerate().filter(|(_, b)| &b.0 == b"moof").map(|(i, _)| i).collect();
    let mut out = data[..boxes[first].1].to_vec();
    for (k, &i) in moofs.iter().enumerate() {
        if range.contains(&k) {
            let end = moofs.get(k + 1).map_or(data.len(), |&j| boxes[j].1);
            out.extend_from_slice(&data[boxes[i].1..end]);
        }
    }
    let dst = dir.join(name);
    std::fs::write(&dst, out).unwrap();
    dst
}

/// Packets in the last chunk of a progressive file as FFmpeg stores them: the trailing run
/// of one stream's packets in file order.
fn last_chunk_packets(path: &Path) -> (u32, usize) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,pos", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let mut packets: Vec<(u32, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.trim().split(',');
            (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap())
        })
        .collect();
    packets.sort_by_key(|p| p.1);
    let last = packets.last().unwrap().0;
    (last, packets.iter().rev().take_while(|p| p.0 == last).count())
}

/// `part` without its last `n` packets of stream `stream`.
fn drop_tail(mut p: Part, stream: u32, n: usize) -> Part {
    let idx: Vec<usize> = p.packets.iter().enumerate().filter(|(_, q)| q.stream == stream).map(|(i, _)| i).collect();
    for &i in idx[idx.len() - n..].iter().rev() {
        p.packets.remove(i);
    }
    p.what += &format!(" minus {n} packets of stream {stream}");
    p
}

/// Checks `out` against the concatenation of `parts`, stream by stream: the same packet
/// bytes in order; within each part the same relative decode and presentation times (in
/// seconds, whatever the time bases); decode times continuous across the joins: increasing,
/// with no gap longer than the longest step within the part before. (FFmpeg's packet
/// durations are no oracle here: it reports the average frame duration.)
fn assert_concatenation(out: &Path, parts: &[Part]) {
    let got = framemd5(out);
    let tb = time_bases(out);
    let streams = parts[0].tb.len();
    assert_eq!(tb.len(), streams, "{}: stream count", s(out));
    for st in 0..streams as u32 {
        let o = stream(&got, st);
        let want: usize = parts.iter().map(|p| stream(&p.packets, st).len()).sum();
        assert_eq!(o.len(), want, "{}: stream {st} packet count", s(out));
        let mut i = 0;
        let mut prev_step: Option<i64> = None;
        for p in parts {
            if let Some(step) = prev_step {
                let gap = o[i].dts - o[i - 1].dts;
                assert!(
                    gap > 0 && gap <= step,
                    "{}: stream {st}: gap of {gap} before {} (steps up to {step})",
                    s(out),
                    p.what
                );
            }
            let input = stream(&p.packets, st);
            let (otb, itb) = (tb[st as usize] as i128, p.tb[st as usize] as i128);
            // out/otb - in/itb must be the same for every packet of the part.
            let shift = |a: i64, b: i64| (a as i128 * itb - b as i128 * otb, otb * itb);
            let (d0, p0) = (shift(o[i].dts, input[0].dts), shift(o[i].pts, input[0].pts));
            for (k, q) in input.iter().enumerate() {
                let r = &o[i + k];
                assert_eq!((r.size, &r.md5), (q.size, &q.md5), "{}: stream {st} packet {} ({})", s(out), i + k, p.what);
                assert_eq!(
                    shift(r.dts, q.dts),
                    d0,
                    "{}: stream {st} packet {}: relative dts ({})",
                    s(out),
                    i + k,
                    p.what
                );
                assert_eq!(
                    shift(r.pts, q.pts),
                    p0,
                    "{}: stream {st} packet {}: relative pts ({})",
                    s(out),
                    i + k,
                    p.what
                );
            }
            prev_step = o[i..i + input.len()].windows(2).map(|w| w[1].dts - w[0].dts).max();
            i += input.len();
        }
        for (k, w) in o.windows(2).enumerate() {
            assert!(w[1].dts > w[0].dts, "{}: stream {st}: dts not increasing at packet {}", s(out), k + 1);
        }
    }
}

fn assert_decodes(path: &Path) {
    let errors = decode_errors(path);
    assert_eq!(errors, "", "{}: decode errors", s(path));
}

#[test]
fn corpus_recordings_appended_in_steps_and_with_slices() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frag = generated_file("h264_aac_fragmented.mp4");
    let ref_1s = tools_file("h264_aac_reference_1s.mp4");
    let moov_end = tools_file("h264_aac_moov_end.mp4");
    let faststart = generated_file("h264_aac_faststart.mp4");
    let n_frag = top_level_boxes(&std::fs::read(&frag).unwrap()).iter().filter(|b| &b.0 == b"moof").count();
    assert!(n_frag >= 4);

    // 1. A fragmented TARGET without its last fragment, plus a 1 s corpus clip: rewritten.
    let t = copy(&frag, d, "t.mp4");
    let err = append_ok(&[format!("{}[0:-1]", s(&t)), s(&ref_1s)]);
    assert!(err.contains("by a rewrite (TARGET is fragmented)"), "{err}");
    let mut parts = vec![part(&fragments(&frag, 0..n_frag - 1, d, "frag_head.mp4")), part(&ref_1s)];
    assert_concatenation(&t, &parts);

    // 2. Fragments 1 and 2 of the fragmented recording.
    append_ok(&[s(&t), format!("{}[1:3]", s(&frag))]);
    parts.push(part(&fragments(&frag, 1..3, d, "frag_1_3.mp4")));
    assert_concatenation(&t, &parts);

    // 3. Two progressive recordings at once (moov last, moov first).
    append_ok(&[s(&t), s(&moov_end), s(&faststart)]);
    parts.push(part(&moov_end));
    parts.push(part(&faststart));
    assert_concatenation(&t, &parts);

    // 4. Trim TARGET's last chunk (the last chunk of the faststart recording).
    let err = append_ok(&[format!("{}[0:-1]", s(&t))]);
    assert!(err.contains("0 chunks appended"), "{err}");
    let (stream_id, n) = last_chunk_packets(&faststart);
    let last = parts.pop().unwrap();
    parts.push(drop_tail(last, stream_id, n));
    assert_concatenation(&t, &parts);
    assert_decodes(&t);

    // The same in one command.
    let one = copy(&frag, d, "one.mp4");
    append_ok(&[
        format!("{}[0:-1]", s(&one)),
        s(&ref_1s),
        format!("{}[1:3]", s(&frag)),
        s(&moov_end),
        format!("{}[:-1]", s(&faststart)),
    ]);
    assert!(framemd5(&one) == framemd5(&t), "one-shot and step-by-step appends differ");
}

#[test]
fn browser_recordings_as_sources() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rec = browser_file("chrome_mp4_avc1_opus", d);
    let probe = browser_file("chrome_mp4_avc1_opus_probe", d);
    let t = copy(&rec, d, "t.mp4");
    append_ok(&[s(&t), s(&probe)]);
    append_ok(&[s(&t), format!("{}[-1]", s(&rec)), s(&probe)]);
    let n = top_level_boxes(&std::fs::read(&rec).unwrap()).iter().filter(|b| &b.0 == b"moof").count();
    let parts = [part(&rec), part(&probe), part(&fragments(&rec, n - 1..n, d, "rec_last.mp4")), part(&probe)];
    assert_concatenation(&t, &parts);
    assert_decodes(&t);
}

#[test]
fn other_recordings_hevc_mov_two_audio_tracks_pcm() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (target, source) in [
        (tools_file("hevc_aac_reference_1s.mov"), tools_file("hevc_aac_moov_end.mov")),
        (generated_file("two_audio.mp4"), generated_file("two_audio.mp4")),
        (generated_file("pcm_s16le.mov"), generated_file("pcm_s16le.mov")),
    ] {
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        let t = copy(&target, d, &name);
        append_ok(&[s(&t), s(&source)]);
        append_ok(&[s(&t), s(&source)]);
        assert_concatenation(&t, &[part(&target), part(&source), part(&source)]);
        assert_decodes(&t);
    }
}

/// Encodes `seconds` of the corpus settings (testsrc2 640x360 30 fps, x264 veryfast with
/// B-frames, AAC 48 kHz mono) with extra FFmpeg arguments.
fn encode(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "96k"])
        .args(extra)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn sources_with_other_timescales_are_converted_exactly() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ref_1s = tools_file("h264_aac_reference_1s.mp4");
    // 90 kHz: 3000 ticks a frame, exactly 512 in TARGET's 15360.
    let ts90k = encode(d, "ts90k.mp4", 2, &["-video_track_timescale", "90000"]);
    let t = copy(&ref_1s, d, "t.mp4");
    append_ok(&[s(&t), s(&ts90k)]);
    assert_eq!(time_bases(&t), [15360, 48000]);
    assert_concatenation(&t, &[part(&ref_1s), part(&ts90k)]);
    // 1 kHz: 33 and 34 ms frames are not whole ticks of 15360: the track moves to 384000.
    let ts1k = encode(d, "ts1k.mp4", 2, &["-video_track_timescale", "1000"]);
    let err = append_ok(&[s(&t), s(&ts1k)]);
    assert!(err.contains("timescale changed from 15360 to 384000"), "{err}");
    assert_eq!(time_bases(&t), [384000, 48000]);
    assert_concatenation(&t, &[part(&ref_1s), part(&ts90k), part(&ts1k)]);
    assert_decodes(&t);
}

#[test]
fn incompatible_sources_are_refused_and_target_is_unchanged() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = copy(&tools_file("h264_aac_reference_1s.mp4"), d, "t.mp4");
    // Put TARGET in the reserved layout first, so that a refusal is not a no-op rewrite.
    append_ok(&[s(&t), s(&tools_file("h264_aac_reference_1s.mp4"))]);
    let ultrafast = encode(d, "ultrafast.mp4", 1, &["-preset", "ultrafast"]);
    let ok = tools_file("h264_aac_reference_1s.mp4");
    for (source, message) in [
        (generated_file("two_audio.mp4"), "track layouts differ: TARGET has 2 track(s)"),
        (
            tools_file("hevc_aac_reference_1s.mov"),
            "track 1: codecs differ: TARGET's is h264 ('avc1'), the source's is hevc",
        ),
        (
            generated_file("recover_small_25fps_nob_44k_stereo.mp4"),
            "track 1: resolutions differ: TARGET's is 640x360, the source's is 320x240",
        ),
        (generated_file("recover_opus.mp4"), "track 2: codecs differ: TARGET's is aac ('mp4a'), the source's is opus"),
        (generated_file("aac_only.mp4"), "track layouts differ"),
        (ultrafast, "track 1: its h264 parameters differ from TARGET's"),
    ] {
        let before = std::fs::read(&t).unwrap();
        // A compatible source before the incompatible one: nothing is written either.
        let out = run_append(&[s(&t), s(&ok), s(&source)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", s(&source));
        assert!(err.contains(message) && err.contains("is unchanged"), "{}: {err}", s(&source));
        assert!(std::fs::read(&t).unwrap() == before, "{}: TARGET changed", s(&source));
    }
    // Usage errors: exit 2, unchanged too.
    let before = std::fs::read(&t).unwrap();
    for args in [
        vec![format!("{}[1:]", s(&t)), s(&ok)],
        vec![s(&t), format!("{}[x]", s(&ok))],
        vec![s(&t), format!("{}[1000:]", s(&ok))],
    ] {
        let out = run_append(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(std::fs::read(&t).unwrap() == before);
}

#[test]
fn after_the_first_rewrite_appends_write_media_index_and_at_most_4_kib() {
    let dir = tempfile::tempdir().unwrap();
    let clip = tools_file("h264_aac_reference_1s.mp4");
    let t = copy(&clip, dir.path(), "t.mp4");
    let request = |options| AppendRequest {
        target: t.clone(),
        sources: vec![(clip.clone(), ChunkSlice::All)],
        options,
        ..Default::default()
    };
    let mut rewrites = 0;
    let mut worst = 0i64;
    for n in 0..20 {
        let r = append(&request(AppendOptions::default())).unwrap();
        match r.plan.mode {
            Mode::Rewrite(_) => rewrites += 1,
            Mode::InPlace => {
                let extra = r.bytes_written as i64 - (r.plan.media_bytes + r.plan.index_bytes) as i64;
                assert!(extra <= 4096, "append {n}: {} bytes written for {r:?}", r.bytes_written);
                worst = worst.max(extra);
            }
        }
        assert_eq!(std::fs::metadata(&t).unwrap().len(), r.plan.len_after);
    }
    eprintln!("20 appends of 1 s: {rewrites} rewrites; in place, at most {worst} bytes beyond media and index");
    assert!(rewrites <= (21f64).log2() as usize + 2, "{rewrites} rewrites");
    assert!(rewrites >= 2, "the doubling rule was exercised");
    // With room for 1000 more frames, the next 19 appends stay in place.
    let t2 = copy(&clip, dir.path(), "t2.mp4");
    let r = append(&AppendRequest {
        target: t2.clone(),
        ..request(AppendOptions { future_frames: 1000, ..Default::default() })
    })
    .unwrap();
    assert!(matches!(r.plan.mode, Mode::Rewrite(_)));
    for _ in 0..19 {
        let r = append(&AppendRequest { target: t2.clone(), ..request(AppendOptions::default()) }).unwrap();
        assert_eq!(r.plan.mode, Mode::InPlace);
    }
    if tools(&["ffmpeg", "ffprobe"]) {
        let p = part(&clip);
        let parts: Vec<Part> =
            (0..21).map(|_| Part { what: p.what.clone(), packets: p.packets.clone(), tb: p.tb.clone() }).collect();
        assert_concatenation(&t, &parts);
        assert!(framemd5(&t) == framemd5(&t2), "one file rewritten 1 time, the other several: same packets");
    }
}

/// Every state a crash can leave during an in-place append, on disk: each prefix of the
/// steps, with any subset of the writes between two barriers, the last one maybe torn.
#[test]
fn crash_replay_every_state_is_the_old_or_the_new_file() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = copy(&tools_file("h264_aac_reference_1s.mp4"), d, "t.mp4");
    append_ok(&[s(&t), s(&tools_file("h264_aac_reference_1s.mp4")), "--future-frames".into(), "300".into()]);
    let frag = generated_file("h264_aac_fragmented.mp4");
    let faststart = generated_file("h264_aac_faststart.mp4");
    let read = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let data = InputData::read(&mut std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
        (bytes, data)
    };
    let (tb, td) = read(&t);
    let (fb, fd) = read(&frag);
    let (sb, sd) = read(&faststart);
    let sources = [
        planner::SourceInput { data: &fd, name: "frag", slice: ChunkSlice::Range { start: Some(1), stop: Some(3) } },
        planner::SourceInput { data: &sd, name: "faststart", slice: ChunkSlice::All },
    ];
    let plan =
        planner::plan(&td, "t", ChunkSlice::Range { start: None, stop: Some(-2) }, &sources, &AppendOptions::default())
            .unwrap();
    assert_eq!(plan.mode, Mode::InPlace);
    let inputs: Vec<&[u8]> = vec![&tb, &fb, &sb];
    let old = framemd5(&t);
    let mut new_bytes = tb.clone();
    apply_in_memory(&mut new_bytes, &inputs, &plan.steps);
    let new_path = d.join("new.mp4");
    std::fs::write(&new_path, &new_bytes).unwrap();
    let new = framemd5(&new_path);
    assert_ne!(old, new);

    let groups: Vec<&[Step]> = plan.steps.split(|s| *s == Step::Sync).collect();
    assert!(groups[0].len() >= 3, "{} writes before the first barrier", groups[0].len());
    let state = d.join("state.mp4");
    let mut seen = std::collections::HashSet::new();
    let (mut olds, mut news) = (0, 0);
    for g in 0..groups.len() {
        let mut base = tb.clone();
        for done in &groups[..g] {
            apply_in_memory(&mut base, &inputs, done);
        }
        let w = groups[g];
        for mask in 0u32..(1 << w.len()) {
            for torn in [false, true] {
                let mut bytes = base.clone();
                let chosen: Vec<&Step> = (0..w.len()).filter(|i| mask & (1 << i) != 0).map(|i| &w[i]).collect();
                for (n, step) in chosen.iter().enumerate() {
                    let step = match (torn && n + 1 == chosen.len(), *step) {
                        (true, Step::Write { offset, data }) if data.len() > 4 => {
                            Step::Write { offset: *offset, data: data.slice(..data.len() / 2) }
                        }
                        (true, Step::Copy { input, from, len, to }) => {
                            Step::Copy { input: *input, from: *from, len: len / 2, to: *to }
                        }
                        (_, s) => s.clone(),
                    };
                    apply_in_memory(&mut bytes, &inputs, std::slice::from_ref(&step));
                }
                if !seen.insert(bytes.clone()) {
                    continue;
                }
                std::fs::write(&state, &bytes).unwrap();
                let (ok, text) = ffprobe(&state, "format=duration");
                assert!(ok, "group {g} writes {mask:b} torn {torn}: does not open: {text}");
                let got = framemd5(&state);
                if got == old {
                    olds += 1;
                } else if got == new {
                    news += 1;
                } else {
                    panic!("group {g} writes {mask:b} torn {torn}: neither the old nor the new file");
                }
            }
        }
    }
    eprintln!("{} distinct crash states: {olds} old, {news} new", seen.len());
    assert!(olds > 4 && news > 0);
}

#[test]
fn sigkill_during_20_appends_leaves_the_old_or_the_new_file() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = tools_file("h264_aac_reference_1s.mp4");
    let frag = generated_file("h264_aac_fragmented.mp4");
    let t = copy(&clip, d, "t.mp4");
    let clip_packets = framemd5(&clip);
    let frag_part = fragments(&frag, 0..1, d, "frag0.mp4");
    let frag_packets = framemd5(&frag_part);
    let mut expected = framemd5(&t);
    let mut rng = Lcg(0xa99e);
    let (mut killed, mut completed) = (0, 0);
    for run in 0..20 {
        let (source, packets) =
            if run % 3 == 2 { (format!("{}[0:1]", s(&frag)), &frag_packets) } else { (s(&clip), &clip_packets) };
        let mut child = livemux()
            .args(["append", &s(&t), &source])
            .env("LIVEMUX_APPEND_STEP_PAUSE_MS", "25")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next(160)));
        signal(child.id(), "KILL");
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        } else {
            killed += 1;
        }
        let (ok, text) = ffprobe(&t, "format=duration");
        assert!(ok, "run {run}: TARGET does not open after the kill: {text}");
        let got = framemd5(&t);
        // Appended: in every stream the source's packets follow the old ones.
        let bytes = |v: &[FramePacket], st| stream(v, st).into_iter().map(|p| (p.size, p.md5)).collect::<Vec<_>>();
        let grown = (0..2).all(|st| {
            let mut want = bytes(&expected, st);
            want.extend(bytes(packets, st));
            bytes(&got, st) == want
        });
        assert!(got == expected || grown, "run {run}: TARGET is neither the old file nor the old file + the source");
        if status.success() {
            assert!(grown, "run {run}: the append completed");
        }
        expected = got;
    }
    eprintln!("20 appends: {killed} killed, {completed} completed before the kill");
    assert!(killed >= 10, "most runs were killed mid-append ({killed})");
    // A final append completes on whatever state the kills left (and clears a stale temp file).
    append_ok(&[s(&t), s(&clip)]);
    assert!(!livemux::append::temp_path(&t).exists());
    assert_decodes(&t);
}

#[test]
fn two_appends_at_once_wait_for_each_other() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = tools_file("h264_aac_reference_1s.mp4");
    let t = copy(&clip, d, "t.mp4");
    append_ok(&[s(&t), s(&clip), "--future-frames".into(), "300".into()]);
    let spawn = || {
        livemux()
            .args(["append", &s(&t), &s(&clip)])
            .env("LIVEMUX_APPEND_STEP_PAUSE_MS", "40")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..3).map(|_| spawn()).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let p = part(&clip);
    let parts: Vec<Part> =
        (0..5).map(|_| Part { what: p.what.clone(), packets: p.packets.clone(), tb: p.tb.clone() }).collect();
    assert_concatenation(&t, &parts);
}

#[test]
fn other_codec_parameters_become_a_second_sample_entry_only_when_asked() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = tools_file("h264_aac_reference_1s.mp4");
    let ultrafast = encode(d, "ultrafast.mp4", 1, &["-preset", "ultrafast"]);
    let t = copy(&clip, d, "t.mp4");
    let out = run_append(&[s(&t), s(&ultrafast)]);
    assert_eq!(out.status.code(), Some(1));
    let err = append_ok(&[s(&t), s(&ultrafast), "--new-sample-entries".into()]);
    assert!(err.contains("get a sample entry of their own"), "{err}");
    assert_concatenation(&t, &[part(&clip), part(&ultrafast)]);
    // FFmpeg's decoder switches parameters at the second entry: every picture decodes as it
    // does from its own file (its H.264 parser still logs errors, so no decode_errors check).
    let pictures = |p: &Path| stream(&decoded_framemd5(p), 0).into_iter().map(|f| f.md5).collect::<Vec<_>>();
    let mut want = pictures(&clip);
    want.extend(pictures(&ultrafast));
    assert!(pictures(&t) == want, "decoded pictures differ");
}
