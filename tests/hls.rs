//! `--to hls`: the segments hold the input's packets, the playlists are what players and
//! FFmpeg read, a kill at any moment leaves a playlist naming only complete segments, a
//! restart continues it, hls.js plays it live and to the end, and a segment is named soon
//! after the bytes that complete it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A media playlist as this test reads it (strictly: unknown lines fail).
#[derive(Debug, Default)]
struct Playlist {
    event: bool,
    endlist: bool,
    target: f64,
    /// (init segment it follows, whether a discontinuity precedes it, EXTINF, name).
    segments: Vec<(String, bool, f64, String)>,
}

impl Playlist {
    fn total(&self) -> f64 {
        self.segments.iter().map(|s| s.2).sum()
    }

    fn names(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.3.as_str()).collect()
    }
}

fn parse_playlist(text: &str) -> Result<Playlist, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("no #EXTM3U first".into());
    }
    let mut p = Playlist::default();
    let (mut map, mut disc, mut inf) = (None::<String>, false, None::<f64>);
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.trim_end_matches(',').parse().map_err(|_| format!("bad EXTINF {line:?}"))?;
            inf = Some(d);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=") {
            map = Some(v.trim_matches('"').to_string());
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if line == "#EXT-X-ENDLIST" {
            p.endlist = true;
        } else if line == "#EXT-X-PLAYLIST-TYPE:EVENT" {
            p.event = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().map_err(|_| format!("bad {line:?}"))?;
        } else if line.starts_with("#EXT-X-VERSION:") || line.starts_with("#EXT-X-MEDIA-SEQUENCE:") {
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        } else {
            let d = inf.take().ok_or_else(|| format!("{line} has no EXTINF"))?;
            let m = map.clone().ok_or_else(|| format!("{line} has no EXT-X-MAP before it"))?;
            if p.endlist {
                return Err(format!("{line} after EXT-X-ENDLIST"));
            }
            p.segments.push((m, std::mem::take(&mut disc), d, line.to_string()));
        }
    }
    if inf.is_some() {
        return Err("EXTINF without a segment".into());
    }
    Ok(p)
}

fn read_playlist(dir: &Path) -> Playlist {
    let text = std::fs::read_to_string(dir.join("stream.m3u8"))
        .unwrap_or_else(|e| panic!("{}: no media playlist: {e}", dir.display()));
    parse_playlist(&text).unwrap_or_else(|e| panic!("{}: {e}:\n{text}", dir.display()))
}

/// Whether `data` is exactly a sequence of whole top-level boxes, and which.
fn whole_boxes(data: &[u8]) -> Option<Vec<[u8; 4]>> {
    let boxes = top_level_boxes(data);
    let end = boxes.last().map_or(0, |b| b.1 + b.2);
    (end == data.len()).then(|| boxes.iter().map(|b| b.0).collect())
}

/// Checks that every file the playlist names is there and complete (the init segment
/// `ftyp moov`, each segment `moof mdat`); returns init + segments concatenated per run
/// (one fragmented MP4 per init segment).
fn check_complete(dir: &Path, p: &Playlist) -> Vec<Vec<u8>> {
    let mut runs: Vec<(String, Vec<u8>)> = Vec::new();
    for (init, _, _, name) in &p.segments {
        if runs.last().is_none_or(|r| &r.0 != init) {
            let data = std::fs::read(dir.join(init)).unwrap_or_else(|e| panic!("{init}: {e}"));
            assert_eq!(whole_boxes(&data), Some(vec![*b"ftyp", *b"moov"]), "{}: {init}", dir.display());
            runs.push((init.clone(), data));
        }
        let seg = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {name}: {e}", dir.display()));
        assert_eq!(whole_boxes(&seg), Some(vec![*b"moof", *b"mdat"]), "{}: {name} is not complete", dir.display());
        runs.last_mut().unwrap().1.extend_from_slice(&seg);
    }
    runs.into_iter().map(|r| r.1).collect()
}

/// Size and MD5 of each packet, per stream: what survives any container change.
fn payloads(packets: &[FramePacket]) -> BTreeMap<u32, Vec<(u64, String)>> {
    let mut out: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for p in packets {
        out.entry(p.stream).or_default().push((p.size, p.md5.clone()));
    }
    out
}

fn remux_hls(input: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    livemux().arg("remux").arg(input).args(["--to", "hls", "-o"]).arg(dir).args(extra).output().unwrap()
}

/// The inputs HLS can carry: Chromium's recordings (all but VP8) and FFmpeg's files.
fn hls_inputs(tmp: &Path) -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = [
        "chrome_mp4_avc1_opus",
        "chrome_mp4_vp9_opus",
        "chrome_mp4_av01_opus",
        "chrome_audio_mp4_opus",
        "chrome_webm_vp9_opus",
        "chrome_webm_av1_opus",
        "chrome_webm_h264_opus",
        "chrome_mkv_avc1_opus",
        "chrome_audio_webm_opus",
    ]
    .iter()
    .map(|n| browser_file(n, tmp))
    .collect();
    for f in
        ["h264_aac_moov_end.mp4", "h264_aac_fragmented.mp4", "hevc_aac_moov_end.mov", "aac_only.mp4", "h264_opus.mkv"]
    {
        inputs.push(generated_file(f));
    }
    inputs
}

#[test]
fn segments_hold_the_packets_of_every_input_hls_can_carry() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for input in hls_inputs(tmp.path()) {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tmp.path().join(format!("{name}.hls"));
        let out = remux_hls(&input, &dir, &[]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));

        let p = read_playlist(&dir);
        assert!(p.event && p.endlist, "{name}: {p:?}");
        assert!(!p.segments.is_empty());
        assert!(p.segments.iter().all(|s| s.2 <= p.target + 0.5), "{name}: a segment past the target: {p:?}");
        let runs = check_complete(&dir, &p);
        assert_eq!(runs.len(), 1);

        // The same fragments as `--to fmp4` cut to the same length.
        let fmp4 = tmp.path().join(format!("{name}.fmp4.mp4"));
        let out = livemux()
            .arg("remux")
            .arg(&input)
            .args(["--to", "fmp4", "--fragment-ms", "2000", "--max-fragment-ms", "4000", "-o"])
            .arg(&fmp4)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(&fmp4).unwrap() == runs[0], "{name}: segments differ from the fmp4 fragments");

        // Every packet of the input, in order, by an independent reader: the segments
        // concatenated, and the playlist through FFmpeg's HLS demuxer.
        let concat = tmp.path().join(format!("{name}.concat.mp4"));
        std::fs::write(&concat, &runs[0]).unwrap();
        let index = dir.join("index.m3u8");
        if ["chrome_webm_h264_opus.webm", "chrome_mkv_avc1_opus.mkv"].contains(&name.as_str()) {
            // Chromium writes H.264 in Matroska with start codes, MP4 carries lengths:
            // the packets differ in bytes, not in the pictures they decode to.
            let want = payloads(&decoded_framemd5(&input));
            assert_eq!(payloads(&decoded_framemd5(&concat)), want, "{name}: decoded segments");
            assert_eq!(payloads(&decoded_framemd5(&index)), want, "{name}: decoded via the playlist");
        } else {
            let want = payloads(&framemd5(&input));
            assert_eq!(payloads(&framemd5(&concat)), want, "{name}: segments");
            assert_eq!(payloads(&framemd5(&index)), want, "{name}: via the playlist");
        }
        let (ok, text) = ffprobe(&index, "stream=codec_name");
        assert!(ok, "{name}: ffprobe: {text}");

        // The multivariant playlist names the codecs players check before loading.
        let index_text = std::fs::read_to_string(&index).unwrap();
        let codecs = index_text.split("CODECS=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
        let expect: &[&str] = match name.as_str() {
            n if n.contains("avc1") || n.contains("h264") => &["avc1."],
            n if n.contains("vp9") => &["vp09.00.21.08"],
            n if n.contains("av1") || n.contains("av01") => &["av01.0."],
            n if n.contains("hevc") => &["hvc1.1.6.L"],
            _ => &[],
        };
        for e in expect {
            assert!(codecs.split(',').any(|c| c.starts_with(e)), "{name}: CODECS=\"{codecs}\" lacks {e}");
        }
        let audio = if name.contains("aac") { "mp4a.40.2" } else { "Opus" };
        assert!(codecs.split(',').any(|c| c == audio), "{name}: CODECS=\"{codecs}\" lacks {audio}");
        assert!(index_text.contains("#EXT-X-STREAM-INF:BANDWIDTH="), "{index_text}");
    }
}

#[test]
fn vp8_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let input = browser_file("chrome_webm_vp8_opus", tmp.path());
    let dir = tmp.path().join("out");
    let out = remux_hls(&input, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vp8") && err.contains("hls") && err.contains("HLS players take"), "{err}");
    assert!(!dir.join("stream.m3u8").exists() && !dir.join("init-0.mp4").exists());
    // --skip-unsupported keeps the audio.
    let out = remux_hls(&input, &dir, &["--skip-unsupported"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(dir.join("index.m3u8")).unwrap().contains("CODECS=\"Opus\""));
}

#[test]
fn output_names_and_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("samples/chrome_mp4_avc1_opus.mp4");
    // -o DIR/index.m3u8 is the same as -o DIR; another name names the multivariant playlist.
    let out = livemux().arg("remux").arg(&input).arg("-o").arg(tmp.path().join("a/index.m3u8")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tmp.path().join("a/index.m3u8").exists() && tmp.path().join("a/stream.m3u8").exists());
    let out = remux_hls(&input, &tmp.path().join("b/live.m3u8"), &["--segment-ms", "1000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tmp.path().join("b/live.m3u8").exists() && !tmp.path().join("b/index.m3u8").exists());
    assert!(read_playlist(&tmp.path().join("b")).segments.len() >= 2);

    for args in [
        &["--to", "hls", "-o", "-"][..],
        &["--to", "fmp4", "--segment-ms", "1000", "-o", "x.mp4"],
        &["--to", "hls", "-o", "c/stream.m3u8"],
    ] {
        let out = livemux().current_dir(tmp.path()).arg("remux").arg(&input).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_second_run_continues_the_playlist_and_overwrites_nothing() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("samples/chrome_mp4_avc1_opus.mp4");
    let dir = tmp.path().join("rec");
    assert!(remux_hls(&input, &dir, &[]).status.success());
    let first = read_playlist(&dir);
    let before = files(&dir);
    let out = remux_hls(&input, &dir, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = read_playlist(&dir);
    let n = first.segments.len();
    assert_eq!(p.segments.len(), 2 * n);
    assert_eq!(p.names()[..n], first.names()[..]);
    assert!(p.segments[n].1 && p.segments[n].0 == "init-1.mp4", "{p:?}");
    assert_eq!(p.segments[n].3, format!("seg-{n:06}.m4s"));
    for (name, data) in before.iter().filter(|(n, _)| !n.ends_with(".m3u8")) {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), data, "{name} changed");
    }
    let runs = check_complete(&dir, &p);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], runs[1]);
    let once = payloads(&framemd5(&input));
    let twice = payloads(&framemd5(&dir.join("index.m3u8")));
    for (s, packets) in &once {
        assert_eq!(twice[s], [packets.clone(), packets.clone()].concat(), "stream {s}");
    }
}

/// One run's init and segments as one fragmented MP4 file beside `dir`, for FFmpeg (its
/// HLS demuxer starts a playlist without EXT-X-ENDLIST near its live edge).
fn write_run(dir: &Path, run: &[u8]) -> PathBuf {
    let path = dir.with_extension("run.mp4");
    std::fs::write(&path, run).unwrap();
    path
}

/// Name → bytes of every regular file in `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// A fragmented MP4 cut into what a live writer delivers: the header, then each
/// fragment (moof + mdat), with the media time each one starts at.
fn live_pieces(data: &[u8]) -> Vec<(Vec<u8>, f64)> {
    let boxes = top_level_boxes(data);
    let first_moof = boxes.iter().position(|b| &b.0 == b"moof").unwrap();
    let mut pieces = vec![(data[..boxes[first_moof].1].to_vec(), 0.0)];
    let moofs: Vec<usize> = boxes.iter().filter(|b| &b.0 == b"moof").map(|b| b.1).collect();
    for (i, &start) in moofs.iter().enumerate() {
        let end = moofs.get(i + 1).copied().unwrap_or(data.len());
        pieces.push((data[start..end].to_vec(), 0.0));
    }
    // FFmpeg's fixture: 10 s, one fragment per 2 s GOP.
    let per = 10.0 / (pieces.len() - 1) as f64;
    for (i, p) in pieces.iter_mut().enumerate().skip(1) {
        p.1 = (i - 1) as f64 * per;
    }
    pieces
}

/// `livemux remux - --to hls -o DIR`, fed through a pipe.
fn spawn_hls(dir: &Path) -> Child {
    livemux()
        .args(["remux", "-", "--to", "hls", "-o"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes the pieces to `child`'s stdin at their media times; at `stop` kills it
/// (SIGKILL), without one closes stdin after the last piece and waits for success.
/// Returns when each piece was written.
fn feed_paced(child: &mut Child, pieces: &[(Vec<u8>, f64)], stop: Option<Duration>) -> Vec<Instant> {
    let start = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = Vec::new();
    for (data, at) in pieces {
        let due = start + Duration::from_secs_f64(*at);
        if let Some(stop) = stop {
            if due >= start + stop {
                break;
            }
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
        sent.push(Instant::now());
    }
    match stop {
        Some(stop) => {
            if let Some(wait) = (start + stop).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        None => {
            drop(stdin);
            let out = child.wait().unwrap();
            assert!(out.success());
        }
    }
    sent
}

/// hls.js in headless Chromium (tests/browser/hls.mjs) over `dirs`: its JSON reports, one
/// per directory. `None` when the browser tools are missing (and not required).
fn hls_js(mode: &str, dirs: &[PathBuf]) -> Option<Vec<Value>> {
    if !tools(&["chromium", "node"]) {
        return None;
    }
    let browser = root().join("tests/browser");
    let installed = browser.join("node_modules/hls.js/package.json").exists()
        && browser.join("node_modules/playwright-core/package.json").exists();
    if !installed {
        let msg = "tests/browser has no node_modules: run `npm ci --prefix tests/browser`";
        assert!(!tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but {msg}");
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let list = serde_json::to_string(&dirs.iter().map(|d| d.to_string_lossy()).collect::<Vec<_>>()).unwrap();
    let out = Command::new("node")
        .current_dir(&browser)
        .args(["hls.mjs", "--mode", mode, "--dirs", &list])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reports: Vec<Value> = BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap_or_else(|e| panic!("hls.mjs: {e}\n{stderr}")))
        .collect();
    assert_eq!(reports.len(), dirs.len(), "hls.mjs: {reports:?}\n{stderr}");
    for r in &reports {
        assert_eq!(r["ok"], true, "hls.js: {r}\n{}", stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n"));
    }
    Some(reports)
}

/// SIGKILL at 20 moments while a paced live stream is written: each time the playlist
/// parses, names only complete segments whose packets are a prefix of the input's; five
/// of the directories get a second run that continues them; hls.js plays every one to
/// the end.
#[test]
fn kill9_at_20_moments_leaves_playlists_that_play_to_the_end() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let input = generated_file("h264_aac_fragmented.mp4");
    let data = std::fs::read(&input).unwrap();
    let pieces = live_pieces(&data);
    let want = payloads(&framemd5(&input));
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Lcg(0x4c53);
    // All 20 at once, each on its own directory: a kill between 2.5 s (the first 2 s
    // segment is complete once the next GOP arrives) and 9.5 s.
    let runs: Vec<(PathBuf, Duration)> =
        (0..20).map(|i| (tmp.path().join(format!("k{i:02}")), Duration::from_millis(2500 + rng.next(7000)))).collect();
    std::thread::scope(|s| {
        for (dir, at) in &runs {
            let pieces = &pieces;
            s.spawn(move || feed_paced(&mut spawn_hls(dir), pieces, Some(*at)));
        }
    });
    let mut dirs = Vec::new();
    for (i, (dir, at)) in runs.iter().enumerate() {
        let what = format!("kill at {at:?}");
        let p = read_playlist(dir);
        assert!(p.event && !p.endlist && !p.segments.is_empty(), "{what}: {p:?}");
        let runs = check_complete(dir, &p);
        let got = payloads(&framemd5(&write_run(dir, &runs[0])));
        for (s, packets) in &got {
            assert!(!packets.is_empty() && want[s].starts_with(packets), "{what}: stream {s} is not a prefix");
        }
        let (ok, text) = ffprobe(&dir.join("index.m3u8"), "stream=codec_name");
        assert!(ok, "{what}: ffprobe: {text}");
        if i % 4 == 0 {
            // Restarted on the same directory: continued after a discontinuity, nothing
            // of the killed run changed.
            let before = files(dir);
            let mut child = spawn_hls(dir);
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&data).unwrap();
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{what}: restart: {}", String::from_utf8_lossy(&out.stderr));
            for (name, bytes) in before.iter().filter(|(n, _)| !n.starts_with('.') && !n.ends_with(".m3u8")) {
                assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{what}: {name} changed");
            }
            let q = read_playlist(dir);
            assert!(q.endlist && q.names().starts_with(&p.names()), "{what}: {q:?}");
            let n = p.segments.len();
            assert!(q.segments[n].1 && q.segments[n].0 == "init-1.mp4", "{what}: {q:?}");
            let runs = check_complete(dir, &q);
            assert_eq!(runs.len(), 2);
            assert_eq!(payloads(&framemd5(&write_run(dir, &runs[1]))), want, "{what}: after the restart");
        }
        dirs.push(dir.clone());
    }
    if let Some(reports) = hls_js("end", &dirs) {
        for (dir, r) in dirs.iter().zip(&reports) {
            let p = read_playlist(dir);
            let total = r["total"].as_f64().unwrap();
            assert!(
                (total - p.total()).abs() < 0.01,
                "{}: hls.js total {total}, playlist {}",
                dir.display(),
                p.total()
            );
            assert!(r["reached"].as_f64().unwrap() >= total - 0.5, "{}: {r}", dir.display());
            assert_eq!(r["live"], !p.endlist, "{r}");
        }
    }
}

/// hls.js plays the playlist while it is being written: its position advances, the
/// seekable range grows, a seek back to 0 plays; after EXT-X-ENDLIST it plays to the end.
#[test]
fn hls_js_plays_while_recording_and_to_the_end() {
    if !tools(&["chromium", "node"]) {
        return;
    }
    let input = generated_file("h264_aac_fragmented.mp4");
    let pieces = live_pieces(&std::fs::read(&input).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let mut child = spawn_hls(&dir);
    let player = {
        let dir = dir.clone();
        std::thread::spawn(move || hls_js("live", &[dir]))
    };
    feed_paced(&mut child, &pieces, None);
    let Some(reports) = player.join().unwrap() else { return };
    let r = &reports[0];
    let samples: Vec<(f64, f64, bool)> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["t"].as_f64().unwrap(), s["seekable"].as_f64().unwrap(), s["live"].as_bool().unwrap()))
        .collect();
    let live: Vec<_> = samples.iter().filter(|s| s.2).collect();
    assert!(live.len() >= 8, "too few samples while live: {r}");
    let seekable: Vec<f64> = live.iter().map(|s| s.1).collect();
    assert!(seekable.windows(2).all(|w| w[1] >= w[0]), "the seekable range shrank: {seekable:?}");
    let mut grew = seekable.clone();
    grew.dedup();
    assert!(grew.len() >= 3, "the seekable range did not grow while live: {seekable:?}");
    assert!(live.iter().map(|s| s.0).fold(0.0, f64::max) > 2.5, "playback did not advance: {r}");
    let zero = &r["zero"];
    assert_eq!(zero["live"], true, "the seek to 0 was not made while live: {r}");
    assert!(zero["from"].as_f64().unwrap() < 0.5, "{zero}");
    assert!(
        zero["after"].as_f64().unwrap() > zero["from"].as_f64().unwrap() + 0.3,
        "no playback after the seek to 0: {zero}"
    );
    let total = r["total"].as_f64().unwrap();
    assert!((total - 10.0).abs() < 0.2, "{r}");
    assert!(r["reached"].as_f64().unwrap() >= total - 0.5, "did not play to the end: {r}");
}

/// The playlist names a segment soon after the input bytes that complete it: the write of
/// the segment, its fsync, the playlist's replacement and the directory's fsync.
#[test]
fn a_segment_is_named_within_50_ms_of_the_bytes_that_complete_it() {
    let input = generated_file("h264_aac_fragmented.mp4");
    let pieces = live_pieces(&std::fs::read(&input).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let mut child = spawn_hls(&dir);
    let watcher = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            // (when, segments named): polled every millisecond.
            let mut seen = Vec::new();
            let mut last = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(text) = std::fs::read_to_string(dir.join("stream.m3u8")) {
                    let p = parse_playlist(&text).unwrap();
                    if p.segments.len() != last {
                        last = p.segments.len();
                        seen.push((Instant::now(), last));
                    }
                    if p.endlist {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        })
    };
    let sent = feed_paced(&mut child, &pieces, None);
    let seen = watcher.join().unwrap();
    // Each of FFmpeg's fragments ends at a GOP's end, so the piece that completes a segment
    // is its own last one (the input's fragment boundary closes it): measured, as in
    // tests/live.rs, from the last write before the playlist named it.
    let mut lat: Vec<Duration> = Vec::new();
    for (when, n) in &seen {
        let cause =
            sent.iter().rev().find(|s| *s <= when).unwrap_or_else(|| panic!("segment {n} named before any input"));
        lat.push(when.duration_since(*cause));
    }
    assert!(lat.len() >= 3, "segments named: {seen:?}");
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let max = *lat.last().unwrap();
    eprintln!("segment named after its last bytes: p50 {p50:?}, max {max:?} ({} segments)", lat.len());
    assert!(p50 <= Duration::from_millis(50), "p50 {p50:?}: {lat:?}");
    // A loaded 2-core machine can stall an fsync; no segment may wait for the next input.
    assert!(max < Duration::from_millis(1500), "{lat:?}");
}

/// `--follow` on a growing file, and the pipeline that writes HLS beside the recording.
#[test]
fn follow_and_a_pipeline_beside_the_file() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let input = generated_file("h264_aac_fragmented.mp4");
    let data = std::fs::read(&input).unwrap();
    let want = payloads(&framemd5(&input));
    let tmp = tempfile::tempdir().unwrap();
    let growing = tmp.path().join("growing.mp4");
    std::fs::write(&growing, b"").unwrap();
    let dir = tmp.path().join("follow");
    let child = livemux()
        .arg("remux")
        .arg(&growing)
        .args(["--follow", "--idle-timeout-ms", "700", "--to", "hls", "-o"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
    for piece in data.chunks(100_000) {
        f.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(read_playlist(&dir).endlist);
    assert_eq!(payloads(&framemd5(&dir.join("index.m3u8"))), want);

    // pipelines/record-with-hls.toml: a regular MP4 and an HLS directory from one input.
    let file = tmp.path().join("rec.mp4");
    let hls = tmp.path().join("rec-hls");
    let mut child = livemux()
        .current_dir(root())
        .args(["run", "pipelines/record-with-hls.toml", "--set"])
        .arg(format!("file.path={}", file.display()))
        .arg("--set")
        .arg(format!("live.path={}", hls.display()))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(payloads(&framemd5(&file)), want);
    assert_eq!(payloads(&framemd5(&hls.join("index.m3u8"))), want);
    assert!(read_playlist(&hls).endlist);
}

/// A `Recording` with live HLS beside its file: the HLS directory is what `--to hls` makes
/// of the same bytes, fed in small pieces, and the file is untouched by it.
#[test]
fn a_recording_keeps_live_hls_beside_its_file() {
    use livemux::{Recording, RecordingOptions};
    let input = root().join("samples/chrome_mp4_avc1_opus.mp4");
    let data = bytes::Bytes::from(std::fs::read(&input).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let (file, live) = (tmp.path().join("rec.mp4"), tmp.path().join("live"));
    let mut rec = Recording::create(&file, RecordingOptions::default().live_hls(&live)).unwrap();
    for at in (0..data.len()).step_by(7_001) {
        rec.push(data.slice(at..data.len().min(at + 7_001))).unwrap();
    }
    let report = rec.finish().unwrap();
    assert!(report.notes.iter().all(|n| !n.contains("HLS")), "{:?}", report.notes);

    let alone = tmp.path().join("alone.mp4");
    let remux = livemux().arg("remux").arg(&input).arg("-o").arg(&alone).args(["--reserve-ms", "60000"]).output();
    assert!(remux.unwrap().status.success());
    assert!(std::fs::read(&file).unwrap() == std::fs::read(&alone).unwrap(), "the file changed with live HLS");
    let hls = tmp.path().join("hls");
    assert!(remux_hls(&input, &hls, &[]).status.success());
    let (a, b) = (read_playlist(&live), read_playlist(&hls));
    assert!(a.endlist && a.names() == b.names());
    assert_eq!(check_complete(&live, &a), check_complete(&hls, &b));
}
