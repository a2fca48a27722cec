//! Real tus clients against `livemux serve`: tus-js-client in Node (tests/js/upload.mjs) and
//! tuspy (tests/py/upload.py) upload corpus files whole, in chunks and as a live recording
//! does (Upload-Defer-Length, one PATCH per MediaRecorder blob, the length with the last);
//! each recording must end `finished` and its output (whole and by Range) must be byte for
//! byte `livemux remux` of the same file, and readable by ffprobe. The clients are the ones
//! backends and apps use unchanged, so this is the compatibility promise of the issue.
//!
//! Needs node with `npm ci --prefix tests/js`, python3 with
//! `python3 -m pip install -r tests/py/requirements.txt`, and ffprobe; without them each
//! test says SKIPPED, unless LIVEMUX_REQUIRE_TOOLS=1, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::blocking::Client;
use serde_json::Value;

/// Which client uploads, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    /// tus-js-client, known length, one PATCH.
    JsWhole,
    /// tus-js-client, known length, the first 64 KiB in the POST (creation-with-upload),
    /// then 64 KiB PATCHes.
    JsChunks,
    /// tus-js-client, Upload-Defer-Length, one PATCH per piece.
    JsPieces,
    /// tuspy, known length, one PATCH.
    PyWhole,
    /// tuspy, known length, 64 KiB PATCHes with Upload-Checksum sha1.
    PyChunks,
    /// tuspy (deferred-length subclass), one PATCH per piece.
    PyPieces,
}

impl Way {
    fn js(self) -> bool {
        matches!(self, Way::JsWhole | Way::JsChunks | Way::JsPieces)
    }
}

/// One corpus input.
struct Input {
    name: String,
    /// The input as one file.
    file: PathBuf,
    /// The MediaRecorder blobs it was delivered in (browser recordings only).
    chunks: Option<PathBuf>,
    /// Extension of the output the server makes (and of the `livemux remux` to compare).
    ext: &'static str,
}

fn output_ext(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("webm") => "webm",
        Some("mkv") => "mkv",
        _ => "mp4",
    }
}

/// Corpus-like inputs: a sample, Chromium recordings (MP4, WebM, Matroska), and files made
/// by other tools (a regular MP4 and a QuickTime file with the index at the end).
fn inputs(dir: &Path) -> Vec<Input> {
    let root = common::root();
    let mut v = Vec::new();
    for f in [
        root.join("samples/chrome_mp4_avc1_opus.mp4"),
        root.join("tests/fixtures/tools/h264_aac_reference_1s.mp4"),
        root.join("tests/fixtures/tools/hevc_aac_moov_end.mov"),
    ] {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        v.push(Input { name, ext: output_ext(&f), file: f, chunks: None });
    }
    for name in ["chrome_webm_vp9_opus", "chrome_mkv_avc1_opus", "chrome_mp4_vp9_opus", "chrome_audio_webm_opus"] {
        let file = common::browser_file(name, dir);
        let chunks = root.join("tests/fixtures/browser").join(format!("{name}.chunks"));
        v.push(Input { name: name.to_string(), ext: output_ext(&file), file, chunks: Some(chunks) });
    }
    v
}

/// Whether the client (and ffprobe, for the check) can run; skips or fails as
/// `common::tools` does.
fn ready(js: bool) -> bool {
    let tool = if js { "node" } else { "python3" };
    if !common::tools(&[tool, "ffprobe"]) {
        return false;
    }
    let (ok, what) = if js {
        let dir = common::root().join("tests/js/node_modules/tus-js-client/package.json");
        (dir.is_file(), "tus-js-client is not installed (run `npm ci --prefix tests/js`)")
    } else {
        let ok =
            Command::new(common::python()).args(["-c", "import tusclient"]).output().is_ok_and(|o| o.status.success());
        (ok, "tuspy is not installed (run `python3 -m pip install -r tests/py/requirements.txt`)")
    };
    if ok {
        return true;
    }
    if common::tools_required() {
        panic!("LIVEMUX_REQUIRE_TOOLS=1 but {what}");
    }
    eprintln!("SKIPPED: {what} (set LIVEMUX_REQUIRE_TOOLS=1 to make this an error)");
    false
}

/// Runs a client command with a time bound; returns its stdout, or panics with its stderr.
fn run(mut cmd: Command, what: &str, limit: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}; stderr: {}", std::fs::read_to_string(&err).unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{what}: {status}; stderr: {stderr}");
    std::fs::read_to_string(&out).unwrap()
}

/// Uploads `input` with a client; returns the upload URL the client printed.
fn upload(s: &Server, input: &Input, way: Way, token: Option<&str>, piece_delay_ms: u32) -> String {
    let root = common::root();
    let endpoint = s.at("/files/");
    let mut cmd = if way.js() {
        let mut c = Command::new("node");
        c.arg(root.join("tests/js/upload.mjs"));
        c
    } else {
        let mut c = Command::new(common::python());
        c.arg(root.join("tests/py/upload.py"));
        c
    };
    cmd.args(["--endpoint", &endpoint]);
    let pieces = matches!(way, Way::JsPieces | Way::PyPieces);
    match (&input.chunks, pieces) {
        (Some(chunks), true) => cmd.arg("--chunks").arg(chunks),
        _ => cmd.arg("--file").arg(&input.file),
    };
    match way {
        Way::JsWhole | Way::PyWhole => cmd.args(["--mode", "whole"]),
        Way::JsChunks => cmd.args(["--mode", "whole", "--chunk-size", "65536", "--with-create"]),
        Way::JsPieces => cmd.args(["--mode", "pieces", "--piece-bytes", "32768"]),
        Way::PyChunks => cmd.args(["--mode", "chunked", "--chunk-size", "65536", "--checksum"]),
        Way::PyPieces => cmd.args(["--mode", "pieces", "--chunk-size", "32768"]),
    };
    if pieces && piece_delay_ms > 0 {
        cmd.args(["--piece-delay-ms", &piece_delay_ms.to_string()]);
    }
    // A file name in the metadata for some, none for others (tuspy then sends an empty
    // Upload-Metadata header, which must be accepted).
    if matches!(way, Way::JsWhole | Way::PyChunks | Way::JsPieces) {
        cmd.args(["--metadata", &format!("filename={}.{}", input.name, input.ext)]);
    }
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let what = format!("{way:?} upload of {}", input.name);
    let stdout = run(cmd, &what, Duration::from_secs(180));
    let line = stdout.lines().last().unwrap_or_else(|| panic!("{what}: printed nothing"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
    let url = v["url"].as_str().unwrap_or_else(|| panic!("{what}: no url in {line}")).to_string();
    assert_eq!(v["bytes"], std::fs::metadata(&input.file).unwrap().len(), "{what}: bytes sent");
    assert!(url.starts_with(&endpoint), "{what}: upload URL {url} is not under {endpoint}");
    url
}

/// `livemux remux INPUT -o out.EXT`, as bytes.
fn remuxed(input: &Input, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{}.remuxed.{}", input.name, input.ext));
    if !out.exists() {
        // --reserve-ms: what serve reserves (a finished file's is sized from its duration).
        let mut cmd = common::livemux();
        let o = cmd.arg("remux").arg(&input.file).arg("-o").arg(&out).args(["--reserve-ms", "60000"]).output().unwrap();
        assert!(o.status.success(), "livemux remux {}: {}", input.name, String::from_utf8_lossy(&o.stderr));
    }
    std::fs::read(&out).unwrap()
}

fn get(c: &Client, url: &str, token: Option<&str>) -> reqwest::blocking::RequestBuilder {
    let b = c.get(url);
    match token {
        Some(t) => b.bearer_auth(t),
        None => b,
    }
}

/// Checks an upload ended `finished` with an output equal to `livemux remux` of its input,
/// served whole and by Range, and that ffprobe reads it.
fn check(s: &Server, c: &Client, url: &str, input: &Input, token: Option<&str>, dir: &Path, what: &str) {
    let len = std::fs::metadata(&input.file).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let r = get(c, &format!("{url}/status"), token).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{what}: GET status");
        let v: Value = r.json().unwrap();
        if v["state"] != "recording" {
            break v;
        }
        assert!(Instant::now() < deadline, "{what}: still recording 60 s after the last PATCH: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["state"], "finished", "{what}: {status}");
    assert_eq!(status["offset"], len, "{what}: {status}");
    assert_eq!(status["length"], len, "{what}: {status}");
    let id = url.rsplit('/').next().unwrap();
    assert_eq!(status["output"], s.output_name(&format!("{id}/recording.{}", input.ext)), "{what}: {status}");
    assert!(status["tracks"].as_array().is_some_and(|t| !t.is_empty()), "{what}: tracks: {status}");
    assert!(status["duration_ms"].as_u64().is_some_and(|d| d > 0), "{what}: duration_ms: {status}");

    let expected = remuxed(input, dir);
    let r = get(c, &format!("{url}/output"), token).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what}: GET output");
    let ctype = match input.ext {
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        _ => "video/mp4",
    };
    assert_eq!(r.headers().get("Content-Type").and_then(|v| v.to_str().ok()), Some(ctype), "{what}");
    let body = r.bytes().unwrap();
    assert_eq!(body.len(), expected.len(), "{what}: output length vs livemux remux");
    assert!(body[..] == expected[..], "{what}: output differs from livemux remux of the same file");
    if !s.stored() {
        let on_disk = std::fs::read(s.data_dir.join(id).join(format!("recording.{}", input.ext))).unwrap();
        assert!(on_disk == expected, "{what}: DATA/<id>/recording.{} differs", input.ext);
    }

    // A player's seek: a Range in the middle.
    let (from, to) = (expected.len() / 3, expected.len() / 3 + 4095);
    let r = get(c, &format!("{url}/output"), token).header("Range", format!("bytes={from}-{to}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 206, "{what}: Range");
    let range = r.headers().get("Content-Range").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(range.as_deref(), Some(format!("bytes {from}-{to}/{}", expected.len()).as_str()), "{what}");
    assert!(r.bytes().unwrap()[..] == expected[from..=to], "{what}: Range body");

    let got = dir.join(format!("{id}.{}", input.ext));
    std::fs::write(&got, &body).unwrap();
    let (ok, text) = common::ffprobe(&got, "format=format_name,duration");
    assert!(ok, "{what}: ffprobe: {text}");
}

/// Uploads every input one way and checks each.
fn every_input(way: Way) {
    if !ready(way.js()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&[]);
    let c = Client::new();
    for input in inputs(dir.path()) {
        let what = format!("{way:?} {}", input.name);
        let url = upload(&s, &input, way, None, 10);
        check(&s, &c, &url, &input, None, dir.path(), &what);
    }
}

#[test]
fn tus_js_client_whole() {
    every_input(Way::JsWhole);
}

#[test]
fn tus_js_client_chunks_with_creation_upload() {
    every_input(Way::JsChunks);
}

#[test]
fn tus_js_client_deferred_length_pieces() {
    every_input(Way::JsPieces);
}

#[test]
fn tuspy_whole() {
    every_input(Way::PyWhole);
}

#[test]
fn tuspy_chunks_with_checksums() {
    every_input(Way::PyChunks);
}

#[test]
fn tuspy_deferred_length_pieces() {
    every_input(Way::PyPieces);
}

/// With `--jwt-secret-file`, both clients upload with a token from `livemux token`; the
/// upload is named by the token's `rec`.
#[test]
fn clients_with_a_token() {
    if !ready(true) || !ready(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a shared secret of the backend and livemux\n").unwrap();
    let s = Server::start(&["--jwt-secret-file", secret.to_str().unwrap()]);
    let c = Client::new();
    let all = inputs(dir.path());
    for (way, input, rec) in [(Way::JsPieces, &all[3], "talk-js.1"), (Way::PyWhole, &all[0], "talk_py-2")] {
        let out = common::livemux()
            .args(["token", "--jwt-secret-file", secret.to_str().unwrap(), "--rec", rec, "--scope", "upload"])
            .args(["--ttl", "600"])
            .output()
            .unwrap();
        assert!(out.status.success(), "livemux token: {}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let url = upload(&s, input, way, Some(&token), 0);
        assert_eq!(url, s.at(&format!("/files/{rec}")), "the upload is named by the token's rec");
        check(&s, &c, &url, input, Some(&token), dir.path(), &format!("{way:?} with a token"));
    }
    // Without a token the same client is refused (and says so with a failure).
    let mut cmd = Command::new("node");
    cmd.arg(common::root().join("tests/js/upload.mjs"))
        .args(["--endpoint", &s.at("/files/"), "--retry-delays", ""])
        .arg("--file")
        .arg(&all[0].file)
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "an upload without a token must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A live upload whose server is killed (SIGKILL) and restarted twice while the client
/// paces its pieces: tus-js-client's retries (HEAD, then PATCH from the durable offset)
/// carry it to the end, and the output is still `livemux remux` of the whole file.
#[test]
fn tus_js_client_resumes_across_server_kills() {
    if !ready(true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(&[]);
    let c = Client::new();
    let input = inputs(dir.path()).into_iter().find(|i| i.name == "chrome_webm_vp9_opus").unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(common::root().join("tests/js/upload.mjs"))
        .args(["--endpoint", &s.at("/files/"), "--mode", "pieces", "--piece-delay-ms", "150"])
        .args(["--retry-delays", "100,250,500,1000,1000,2000,2000,3000,5000,5000"])
        .arg("--chunks")
        .arg(input.chunks.as_ref().unwrap());
    let client = std::thread::spawn(move || run(cmd, "upload across kills", Duration::from_secs(180)));
    // 21 pieces at 150 ms: about 3 s of upload; kill at about 1 s and 2 s.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1000));
        s.kill9();
        std::thread::sleep(Duration::from_millis(200));
        s.restart();
    }
    let stdout = client.join().unwrap();
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let url = v["url"].as_str().unwrap().to_string();
    check(&s, &c, &url, &input, None, dir.path(), "tus-js-client across two SIGKILLs");
}
