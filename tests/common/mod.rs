//! Shared test helpers: fixtures, external oracles (ffmpeg, ffprobe, mkvinfo) and running
//! the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether missing tools must fail the test (CI sets LIVEMUX_REQUIRE_TOOLS=1).
pub fn tools_required() -> bool {
    std::env::var("LIVEMUX_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success())
        || Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// True when every tool is installed. Otherwise fails the test if tools are required, or
/// says loudly that the test is skipped.
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<_> = names.iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if tools_required() {
        panic!("LIVEMUX_REQUIRE_TOOLS=1 but {missing:?} are not installed");
    }
    eprintln!("SKIPPED: {missing:?} not installed (set LIVEMUX_REQUIRE_TOOLS=1 to make this an error)");
    false
}

/// Directory of the FFmpeg-made fixtures, generated on first use.
pub fn generated() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("tests/fixtures/generated");
        if !dir.join(".complete-5").exists() {
            let status = Command::new("flock")
                .arg(root().join("tests/fixtures/.lock"))
                .arg(root().join("scripts/make-fixtures.sh"))
                .arg(&dir)
                .status()
                .expect("run scripts/make-fixtures.sh");
            assert!(status.success(), "scripts/make-fixtures.sh failed");
        }
        dir
    })
    .clone()
}

pub fn generated_file(name: &str) -> PathBuf {
    generated().join(name)
}

/// The blobs a Chromium recording was delivered in, in order.
pub fn browser_chunks(name: &str) -> Vec<Vec<u8>> {
    let dir = root().join("tests/fixtures/browser").join(format!("{name}.chunks"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// A Chromium recording as one file (its blobs concatenated), written to `dir`.
pub fn browser_file(name: &str, dir: &Path) -> PathBuf {
    let ext = if name.contains("webm") {
        "webm"
    } else if name.contains("mkv") {
        "mkv"
    } else {
        "mp4"
    };
    let path = dir.join(format!("{name}.{ext}"));
    std::fs::write(&path, browser_chunks(name).concat()).unwrap();
    path
}

pub fn browser_mp4_names() -> Vec<&'static str> {
    vec!["chrome_mp4_avc1_opus", "chrome_mp4_vp9_opus", "chrome_mp4_av01_opus", "chrome_audio_mp4_opus"]
}

/// One packet as `ffmpeg -f framemd5` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePacket {
    pub stream: u32,
    pub dts: i64,
    pub pts: i64,
    pub duration: i64,
    pub size: u64,
    pub md5: String,
}

fn parse_framemd5(text: &str) -> Vec<FramePacket> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            FramePacket {
                stream: f[0].parse().unwrap(),
                dts: f[1].parse().unwrap(),
                pts: f[2].parse().unwrap(),
                duration: f[3].parse().unwrap(),
                size: f[4].parse().unwrap(),
                md5: f[5].to_string(),
            }
        })
        .collect()
}

fn run_framemd5(path: &Path, codec_args: &[&str]) -> Vec<FramePacket> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0"])
        .args(codec_args)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg framemd5 {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    parse_framemd5(&String::from_utf8_lossy(&out.stdout))
}

/// Per-packet sizes and MD5s of every stream, as FFmpeg reads them (no decoding).
pub fn framemd5(path: &Path) -> Vec<FramePacket> {
    run_framemd5(path, &["-c", "copy"])
}

/// Per-frame MD5s after decoding.
pub fn decoded_framemd5(path: &Path) -> Vec<FramePacket> {
    run_framemd5(path, &[])
}

/// Packets of one stream, in decode order.
pub fn stream(packets: &[FramePacket], stream: u32) -> Vec<FramePacket> {
    packets.iter().filter(|p| p.stream == stream).cloned().collect()
}

/// What `ffmpeg -v error` prints while decoding everything (empty when clean).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ffprobe` format fields as key=value pairs.
pub fn ffprobe(path: &Path, entries: &str) -> (bool, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "default=nw=1"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    (
        out.status.success() && out.stderr.is_empty(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The livemux binary.
pub fn livemux() -> Command {
    Command::new(env!("CARGO_BIN_EXE_livemux"))
}

/// Asserts two packet lists carry the same bytes in the same order per stream.
pub fn assert_same_packets(input: &[FramePacket], output: &[FramePacket], what: &str) {
    let streams = input.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    assert_eq!(streams, output.iter().map(|p| p.stream).max().map_or(0, |m| m + 1), "{what}: stream count");
    for s in 0..streams {
        let (a, b) = (stream(input, s), stream(output, s));
        assert_eq!(a.len(), b.len(), "{what}: stream {s} packet count");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!((x.size, &x.md5), (y.size, &y.md5), "{what}: stream {s} packet {i}");
            assert_eq!((x.dts, x.pts), (y.dts, y.pts), "{what}: stream {s} packet {i} timestamps");
        }
    }
}

/// Top-level boxes of an MP4 file: (type, offset, size); stops at the first box that
/// runs past the end (a torn tail).
pub fn top_level_boxes(data: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        let fourcc: [u8; 4] = data[off + 4..off + 8].try_into().unwrap();
        let size = match size32 {
            1 if off + 16 <= data.len() => u64::from_be_bytes(data[off + 8..off + 16].try_into().unwrap()) as usize,
            0 => data.len() - off,
            n => n,
        };
        if size < 8 || off + size > data.len() {
            break;
        }
        out.push((fourcc, off, size));
        off += size;
    }
    out
}

/// A big-endian u32 at `at`.
pub fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// Boxes directly inside `d[start..end]`: (type, offset, size); stops at a box that does
/// not fit.
pub fn children(d: &[u8], start: usize, end: usize) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = start;
    while at + 8 <= end {
        let size = be32(d, at) as usize;
        if size < 8 || at + size > end {
            break;
        }
        out.push((d[at + 4..at + 8].try_into().unwrap(), at, size));
        at += size;
    }
    out
}

/// The longest prefix of a fragmented MP4 that ends after a complete moof+mdat.
pub fn complete_fragments_prefix(data: &[u8]) -> &[u8] {
    let boxes = top_level_boxes(data);
    let end = boxes.iter().filter(|b| &b.0 == b"mdat").map(|b| b.1 + b.2).next_back().unwrap_or(0);
    let header_end = boxes.iter().find(|b| &b.0 == b"moov").map(|b| b.1 + b.2).unwrap_or(0);
    &data[..end.max(header_end)]
}

/// Asserts every stream of `part` is a prefix of the same stream of `whole`.
pub fn assert_prefix(whole: &[FramePacket], part: &[FramePacket], what: &str) {
    let streams = whole.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    for s in 0..streams {
        let (a, b) = (stream(whole, s), stream(part, s));
        assert!(b.len() <= a.len(), "{what}: stream {s} has more packets than the input");
        if let Some(i) = (0..b.len()).find(|&i| a[i] != b[i]) {
            panic!("{what}: stream {s} is not a prefix: packet {i} is {:?}, expected {:?}", b[i], a[i]);
        }
    }
}

/// Like [`assert_prefix`], for a regular MP4 cut short and finalized: the last packet of
/// each stream may differ in duration (its edit list ends with the media that arrived, in
/// the movie timescale, usually milliseconds).
pub fn assert_cut_prefix(whole: &[FramePacket], part: &[FramePacket], what: &str) {
    let streams = whole.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    for s in 0..streams {
        let (a, b) = (stream(whole, s), stream(part, s));
        assert!(b.len() <= a.len(), "{what}: stream {s} has more packets than the input");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let same = (x.dts, x.pts, x.size, &x.md5) == (y.dts, y.pts, y.size, &y.md5);
            let last = i + 1 == b.len();
            assert!(
                same && (x.duration == y.duration || last),
                "{what}: stream {s} packet {i} is {y:?}, expected {x:?}"
            );
        }
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// A small deterministic pseudo-random sequence (tests must be reproducible).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}
pub mod moto;
pub mod server;

/// Runs a future to completion on a runtime of its own (the store client is async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The Python with the test packages (tests/py/requirements.txt): `LIVEMUX_PYTHON`, else python3.
pub fn python() -> String {
    std::env::var("LIVEMUX_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether `python()` has jsonschema; skips or fails as [`tools`] does.
pub fn jsonschema_ready() -> bool {
    if !tools(&["python3"]) {
        return false;
    }
    let ok = Command::new(python()).args(["-c", "import jsonschema"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        let why = "jsonschema is not installed (python3 -m pip install -r tests/py/requirements.txt, LIVEMUX_PYTHON)";
        assert!(!tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but {why}");
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// Validates `json` (one document, or one per line with `lines`) against `schemas/<schema>`
/// with tests/py/validate.py; panics with every violation.
pub fn validate_json(schema: &str, json: &str, lines: bool) {
    use std::io::Write;
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/py/validate.py")).arg(root().join("schemas").join(schema));
    if lines {
        cmd.arg("--lines");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tests/py/validate.py");
    child.stdin.take().unwrap().write_all(json.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "JSON does not match schemas/{schema}:\n{}\n--- the JSON:\n{json}",
        String::from_utf8_lossy(&out.stderr)
    );
}
