//! Damaged and hostile MP4 input: missing bytes are skipped and named, damaged payload is
//! reported, a late index is used, counts and sizes from the input cannot make livemux
//! allocate or loop without bound, and memory stays bounded on hostile streams.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

const REMUX_ARGS: [&str; 4] = ["--to", "fmp4", "--durability", "none"];

fn find(d: &[u8], start: usize, end: usize, fourcc: &[u8; 4]) -> Option<(usize, usize)> {
    children(d, start, end).into_iter().find(|c| &c.0 == fourcc).map(|c| (c.1, c.2))
}

/// Runs livemux with `input` on its stdin (written from a thread, in `chunk`-sized writes),
/// returning its status, stderr and the highest VmHWM (KiB) seen while it ran.
fn run_piped(args: &[&str], input: Vec<u8>, chunk: usize, timeout: Duration) -> (ExitStatus, String, u64) {
    let mut child =
        livemux().args(args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for c in input.chunks(chunk.max(1)) {
            if stdin.write_all(c).is_err() {
                return;
            }
        }
    });
    let (status, peak) = wait_measuring(&mut child, timeout);
    let _ = writer.join();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err, peak)
}

/// VmHWM of a running process, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child`, killing it past `timeout` (a failure), and samples its peak RSS.
fn wait_measuring(child: &mut std::process::Child, timeout: Duration) -> (ExitStatus, u64) {
    let start = Instant::now();
    let mut peak = 0;
    loop {
        if let Some(kb) = vm_hwm(child.id()) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("livemux still running after {timeout:?} (peak RSS {} MiB)", peak / 1024);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The Chromium H.264 recording as one byte string, and its upload split into pieces of
/// `piece` bytes (the page's blob is sent in parts).
fn chrome_avc1() -> Vec<u8> {
    browser_chunks("chrome_mp4_avc1_opus").concat()
}

#[test]
fn a_missing_upload_chunk_is_skipped_and_everything_else_kept() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole_data = chrome_avc1();
    let whole = dir.path().join("whole.mp4");
    std::fs::write(&whole, &whole_data).unwrap();
    let all = framemd5(&whole);
    let moofs: Vec<usize> =
        children(&whole_data, 0, whole_data.len()).iter().filter(|c| &c.0 == b"moof").map(|c| c.1).collect();
    assert_eq!(moofs.len(), 2, "the fixture has two fragments");
    // Uploads of 32 KiB: drop one inside the first fragment's media (its 'mdat' then seems
    // to swallow the second 'moof'), and the one that holds the second 'moof' header.
    const PIECE: usize = 32 << 10;
    for drop in [2, moofs[1] / PIECE] {
        let gap = drop * PIECE..((drop + 1) * PIECE).min(whole_data.len());
        let mut damaged = whole_data[..gap.start].to_vec();
        damaged.extend_from_slice(&whole_data[gap.end..]);
        let input = dir.path().join(format!("damaged_{drop}.mp4"));
        std::fs::write(&input, &damaged).unwrap();
        let output = dir.path().join(format!("out_{drop}.mp4"));
        let res = livemux().arg("remux").arg(&input).arg("-o").arg(&output).args(REMUX_ARGS).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "piece {drop}: {err}");
        assert!(err.contains("damaged input"), "piece {drop}: the skipped bytes are named: {err}");
        let got = framemd5(&output);
        // FFmpeg on the same bytes: what it reads (it may stop at the damage).
        let ffmpeg_reads = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "quiet", "-i"])
            .arg(&input)
            .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&ffmpeg_reads.stdout).lines().filter(|l| !l.starts_with('#')).count();
        assert!(got.len() + 2 >= theirs, "piece {drop}: livemux kept {}, FFmpeg reads {theirs}", got.len());
        // The video packets that lie before the gap are the original's. (Chromium writes a
        // fragment's video, then its audio: the first fragment's audio lies after the gap.)
        let (a, b) = (stream(&all, 0), stream(&got, 0));
        let same_prefix = a.iter().zip(&b).take_while(|(x, y)| x.md5 == y.md5).count();
        assert!(same_prefix > 30, "piece {drop}: video packets before the gap are kept ({same_prefix})");
        if drop == 2 {
            // The second fragment, found inside the first one's 'mdat', is kept whole.
            for (track_id, start) in fragment_starts(&whole_data, moofs[1]) {
                let s = stream(&all, track_id - 1);
                for p in s.iter().filter(|p| p.dts >= start) {
                    assert!(
                        got.iter().any(|q| q.stream == p.stream && q.md5 == p.md5),
                        "piece {drop}: {p:?} of fragment 2 kept"
                    );
                }
            }
        }
        assert!(got.len() > 100, "piece {drop}: {} packets", got.len());
    }
}

/// `(track_ID, base media decode time)` of each track of the fragment whose 'moof' is at `at`.
fn fragment_starts(d: &[u8], at: usize) -> Vec<(u32, i64)> {
    let size = be32(d, at) as usize;
    children(d, at + 8, at + size)
        .iter()
        .filter(|c| &c.0 == b"traf")
        .map(|traf| {
            let (tfhd, _) = find(d, traf.1 + 8, traf.1 + traf.2, b"tfhd").unwrap();
            let (tfdt, _) = find(d, traf.1 + 8, traf.1 + traf.2, b"tfdt").unwrap();
            let time = if d[tfdt + 8] == 1 {
                u64::from_be_bytes(d[tfdt + 12..tfdt + 20].try_into().unwrap()) as i64
            } else {
                be32(d, tfdt + 12) as i64
            };
            (be32(d, tfhd + 12), time)
        })
        .collect()
}

/// The per-sample sizes of the first video `trun` of the first fragment: (offset of the
/// first size field, stride, count, flags).
fn first_trun_sizes(d: &[u8]) -> (usize, usize, usize) {
    let moof = children(d, 0, d.len()).into_iter().find(|c| &c.0 == b"moof").unwrap();
    let traf = children(d, moof.1 + 8, moof.1 + moof.2).into_iter().find(|c| &c.0 == b"traf").unwrap();
    let (trun, _) = find(d, traf.1 + 8, traf.1 + traf.2, b"trun").unwrap();
    let flags = be32(d, trun + 8) & 0xFF_FFFF;
    assert!(flags & 0x200 != 0, "sizes per sample");
    let count = be32(d, trun + 12) as usize;
    let mut at = trun + 16;
    if flags & 1 != 0 {
        at += 4;
    }
    if flags & 4 != 0 {
        at += 4;
    }
    if flags & 0x100 != 0 {
        at += 4;
    }
    let stride = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count() * 4;
    (at, stride, count)
}

#[test]
fn damaged_payload_in_a_valid_layout_is_reported_and_kept() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole_data = chrome_avc1();
    let whole = dir.path().join("whole.mp4");
    std::fs::write(&whole, &whole_data).unwrap();
    let all = framemd5(&whole);
    let (sizes_at, stride, count) = first_trun_sizes(&whole_data);
    assert!(count > 10);

    // (1) Sizes that split samples wrongly: sample 5 gains 100 bytes that sample 6 loses.
    let mut resized = whole_data.clone();
    let s5 = sizes_at + 5 * stride;
    let s6 = sizes_at + 6 * stride;
    let (a, b) = (be32(&resized, s5), be32(&resized, s6));
    assert!(b > 200);
    resized[s5..s5 + 4].copy_from_slice(&(a + 100).to_be_bytes());
    resized[s6..s6 + 4].copy_from_slice(&(b - 100).to_be_bytes());

    // (2) Bytes overwritten in the 'mdat': the length prefix of video sample 3.
    let mut overwritten = whole_data.clone();
    let mdat = children(&whole_data, 0, whole_data.len()).into_iter().find(|c| &c.0 == b"mdat").unwrap();
    let sample3 = mdat.1 + 8 + (0..3).map(|i| be32(&whole_data, sizes_at + i * stride) as usize).sum::<usize>();
    overwritten[sample3..sample3 + 4].copy_from_slice(&[0x7f, 0x12, 0x34, 0x56]);

    for (name, data, sample) in [("resized", resized, "sample 5 "), ("overwritten", overwritten, "sample 3 ")] {
        let input = dir.path().join(format!("{name}.mp4"));
        std::fs::write(&input, &data).unwrap();
        let output = dir.path().join(format!("{name}_out.mp4"));
        let res = livemux().arg("remux").arg(&input).arg("-o").arg(&output).args(REMUX_ARGS).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{name}: {err}");
        assert!(err.contains(&format!("track 1: {sample}")) && err.contains("is damaged"), "{name}: {err}");
        assert!(err.contains("byte offset"), "{name}: the note names the offset: {err}");
        let got = framemd5(&output);
        assert_eq!(got.len(), all.len(), "{name}: every packet is kept");
    }
}

#[test]
fn a_moov_after_the_media_on_a_pipe_is_used_for_the_packets() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("tests/fixtures/tools");
    let file = fixtures.join("h264_aac_moov_end.mp4");
    let reference = fixtures.join("h264_aac_reference_1s.mp4");
    let expected = framemd5(&file);
    let data = std::fs::read(&file).unwrap();
    for (name, chunk) in [("whole", data.len()), ("chunked", 4096)] {
        let output = dir.path().join(format!("{name}.mp4"));
        let out_s = output.to_str().unwrap();
        let args = ["remux", "-", "--reference", reference.to_str().unwrap(), "-o", out_s, "--durability", "none"];
        let (status, err, _) = run_piped(&args, data.clone(), chunk, Duration::from_secs(60));
        assert!(status.success(), "{name}: {err}");
        assert!(err.contains("the media was split with it"), "{name}: {err}");
        let got = framemd5(&output);
        assert_same_packets(&expected, &got, name);
    }
}

/// A copy of the reference whose first track's `stsz` claims 2^32-1 samples of 1000 bytes
/// (a constant size: no per-sample bytes back the count), all in its first chunk.
fn lying_reference(dir: &Path) -> PathBuf {
    let mut d = std::fs::read(root().join("tests/fixtures/tools/h264_aac_reference_1s.mp4")).unwrap();
    let (moov, size) = find(&d, 0, d.len(), b"moov").unwrap();
    let trak = children(&d, moov + 8, moov + size).into_iter().find(|c| &c.0 == b"trak").unwrap();
    let mut at = (trak.1, trak.2);
    for name in [b"mdia", b"minf", b"stbl"] {
        at = find(&d, at.0 + 8, at.0 + at.1, name).unwrap();
    }
    let (stsz, _) = find(&d, at.0 + 8, at.0 + at.1, b"stsz").unwrap();
    d[stsz + 12..stsz + 16].copy_from_slice(&1000u32.to_be_bytes());
    d[stsz + 16..stsz + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    // ... all in the first chunk (first_chunk, samples_per_chunk of the first entry).
    let (stsc, _) = find(&d, at.0 + 8, at.0 + at.1, b"stsc").unwrap();
    d[stsc + 20..stsc + 24].copy_from_slice(&u32::MAX.to_be_bytes());
    let path = dir.join("lying_reference.mp4");
    std::fs::write(&path, d).unwrap();
    path
}

#[test]
fn a_reference_claiming_four_billion_samples_fails_fast_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let reference = lying_reference(dir.path());
    // A recording cut before its index: recovery needs the reference.
    let data = std::fs::read(root().join("tests/fixtures/tools/h264_aac_moov_end.mp4")).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &data[..300_000]).unwrap();
    let out = dir.path().join("out.mp4");
    for args in [
        vec!["recover", cut.to_str().unwrap(), "--reference", reference.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["probe", cut.to_str().unwrap(), "--reference", reference.to_str().unwrap()],
    ] {
        let mut child = livemux().args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (status, peak) = wait_measuring(&mut child, Duration::from_secs(20));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(1), "{}: {err}", args[0]);
        assert!(err.contains("past the end of the file"), "{}: {err}", args[0]);
        assert!(peak < 100 << 10, "{}: peak RSS {} MiB", args[0], peak >> 10);
    }
    assert!(!out.exists());
}

fn ftyp() -> Vec<u8> {
    let mut v = 24u32.to_be_bytes().to_vec();
    v.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    v
}

/// Hostile streams on stdin: bounded memory, a clean end (never a panic), in bounded time.
#[test]
fn hostile_streams_on_stdin_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // After an index, zeros are damage that is scanned (and dropped) to the end.
    let zeros = [browser_chunks("chrome_mp4_avc1_opus")[0].clone(), vec![0u8; 200 << 20]].concat();
    let mut tiny = ftyp();
    for _ in 0..1_000_000 {
        tiny.extend_from_slice(b"\0\0\0\x08free");
    }
    let mut moov_3g = ftyp();
    moov_3g.extend_from_slice(&(3u32 << 30).to_be_bytes());
    moov_3g.extend_from_slice(b"moov");
    moov_3g.extend(vec![0x55u8; 16 << 20]);
    let mut rng = Lcg(7);
    let mut mdat_huge = ftyp();
    mdat_huge.extend_from_slice(b"\0\0\0\x01mdat");
    mdat_huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    mdat_huge.extend((0..(32 << 20)).map(|_| rng.next(256) as u8));
    for (name, input) in
        [("200 MB of zeros", zeros), ("10^6 tiny boxes", tiny), ("moov of 3 GB", moov_3g), ("mdat of 2^40", mdat_huge)]
    {
        let out = dir.path().join(format!("{}.mp4", name.replace(' ', "_")));
        let args = ["remux", "-", "-o", out.to_str().unwrap(), "--to", "fmp4", "--durability", "none"];
        let started = Instant::now();
        let (status, err, peak) = run_piped(&args, input, 1 << 16, Duration::from_secs(60));
        eprintln!("{name}: {:?}, peak RSS {} KiB, {:.1} s", status.code(), peak, started.elapsed().as_secs_f64());
        assert!(matches!(status.code(), Some(0 | 1)), "{name}: {status:?} {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(peak < 100 << 10, "{name}: peak RSS {} MiB", peak >> 10);
        assert!(started.elapsed() < Duration::from_secs(40), "{name}: took {:?}", started.elapsed());
    }
}

/// Past the buffer limit, the packets found by scanning go out as they are, and the late
/// index is noted as unused: the output is the scan's (as before late indexes were used).
#[test]
fn past_the_buffer_limit_a_late_moov_is_not_used() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("tests/fixtures/tools");
    let data = std::fs::read(fixtures.join("h264_aac_moov_end.mp4")).unwrap();
    assert!(data.len() > 1 << 20, "more media than the 1 MiB limit below");
    let output = dir.path().join("out.mp4");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"stage = [
  {{ kind = "source", path = "-" }},
  {{ kind = "probe" }},
  {{ kind = "codecpar-extract", reference = "{}" }},
  {{ kind = "packet-split", buffer_limit_mb = 1 }},
  {{ kind = "mux", format = "fmp4" }},
  {{ kind = "sink", path = "{}", durability = "none" }},
]
"#,
            fixtures.join("h264_aac_reference_1s.mp4").display(),
            output.display()
        ),
    )
    .unwrap();
    let (status, err, _) = run_piped(&["run", pipeline.to_str().unwrap()], data, 1 << 16, Duration::from_secs(60));
    assert!(status.success(), "{err}");
    assert!(err.contains("over the limit of 1048576"), "{err}");
    assert!(err.contains("it was not used"), "{err}");
    let got = framemd5(&output);
    assert!(got.len() > 700, "the scanned packets are kept: {}", got.len());
}
