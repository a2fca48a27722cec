//! The browser client end to end: headless Chromium with a fake camera loads the demo page of
//! `livemux serve --demo` and records 20 s as MP4 (avc1+opus) and as WebM (vp9+opus) at once
//! through `web/livemux-recorder.js` (MediaRecorder → tus-js-client, deferred length), while the
//! test kills the server with SIGKILL at random moments and restarts it on the same port and
//! data dir. Every recording must end finalized, hold exactly the packets of the blobs the page
//! produced (the page keeps its own copy), and play to the end and seek in Chromium.
//!
//! Chromium is driven by tests/browser/*.mjs (playwright-core on the system's Chromium):
//! `npm ci --prefix tests/browser` installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::server::Server;
use common::*;
use serde_json::Value;

/// Seconds each recording lasts.
const SECONDS: u64 = 20;
/// Kills of the server while the recordings run, at least.
const MIN_KILLS: usize = 10;
/// What the page records: (name, MediaRecorder mime type).
const FORMATS: [(&str, &str); 2] = [("mp4", "video/mp4;codecs=avc1,opus"), ("webm", "video/webm;codecs=vp9,opus")];

fn browser_dir() -> PathBuf {
    root().join("tests/browser")
}

/// Chromium, node, FFmpeg and the npm packages of tests/browser; fails under
/// LIVEMUX_REQUIRE_TOOLS=1 when one is missing, else says loudly that the test is skipped.
fn browser_tools() -> bool {
    if !tools(&["chromium", "node", "ffmpeg"]) {
        return false;
    }
    let package = browser_dir().join("node_modules/playwright-core/package.json");
    if package.exists() {
        return true;
    }
    let msg = "tests/browser has no node_modules/playwright-core: run `npm ci --prefix tests/browser`";
    assert!(!tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but {msg}");
    eprintln!("SKIPPED: {msg} (set LIVEMUX_REQUIRE_TOOLS=1 to make this an error)");
    false
}

/// A node script of tests/browser with its stdout as JSON lines on a channel and its stderr
/// in a file (for failure messages).
fn node(script: &str, args: &[&str], stderr: &Path) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("run node");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                Err(_) => eprintln!("node: {line}"),
            }
        }
    });
    (child, rx)
}

/// The last lines of a node script's stderr.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// GET `url` as bytes, asserting 200.
fn get(url: &str) -> Vec<u8> {
    let res = http().get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status(), 200, "GET {url}");
    res.bytes().unwrap().to_vec()
}

/// Polls GET {upload}/status until the state is final; returns the status.
fn wait_finished(upload: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status: Option<Value> = http()
            .get(format!("{upload}/status"))
            .send()
            .ok()
            .filter(|r| r.status() == 200)
            .and_then(|r| r.json().ok());
        if let Some(s) = &status {
            if ["finished", "abandoned", "terminated", "failed"].iter().any(|f| s["state"] == *f) {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "{upload}: not finalized within 90 s of the last byte: {status:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The demo page and its scripts are the files of web/ (embedded in the binary).
fn check_demo_files(server: &Server) {
    for (path, file) in [
        ("/", "web/demo.html"),
        ("/web/livemux-recorder.js", "web/livemux-recorder.js"),
        ("/web/vendor/tus.min.js", "web/vendor/tus.min.js"),
    ] {
        let want = std::fs::read(root().join(file)).unwrap();
        assert!(get(&server.at(path)) == want, "GET {path} is not {file}");
    }
    // The vendored bundle is the one of the tus-js-client the lock pins (web/update-vendor.sh).
    let dist = std::fs::read_to_string(browser_dir().join("node_modules/tus-js-client/dist/tus.min.js")).unwrap();
    let dist: String =
        dist.lines().filter(|l| !l.starts_with("//# sourceMappingURL=")).map(|l| format!("{l}\n")).collect();
    let vendored = std::fs::read_to_string(root().join("web/vendor/tus.min.js")).unwrap();
    assert!(vendored == dist, "web/vendor/tus.min.js is not tests/browser's tus-js-client: run web/update-vendor.sh");
}

#[test]
fn chromium_records_through_the_web_client_while_the_server_is_killed() {
    if !browser_tools() {
        return;
    }
    let started_at = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--demo"]);
    check_demo_files(&server);

    let formats: serde_json::Map<String, Value> =
        FORMATS.iter().map(|(n, m)| (n.to_string(), Value::from(*m))).collect();
    let formats = Value::Object(formats).to_string();
    let seconds = SECONDS.to_string();
    let record_log = dir.path().join("record.log");
    let out = dir.path().to_str().unwrap().to_string();
    let (mut recorder, events) = node(
        "record.mjs",
        &["--base", &server.url, "--out", &out, "--seconds", &seconds, "--formats", &formats],
        &record_log,
    );

    // Seed from LIVEMUX_BROWSER_SEED to replay a failing schedule (as far as a browser allows).
    let seed = std::env::var("LIVEMUX_BROWSER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_b40e);
    eprintln!("kill schedule seed {seed} (LIVEMUX_BROWSER_SEED)");
    let mut rng = Lcg(seed);
    let mut started = 0;
    let mut stopping = 0;
    let mut done: Vec<Value> = Vec::new();
    let mut kills = 0;
    // Kills once every page clicked Stop (the last PATCHes, finalization).
    let mut kills_after_stop = 0;
    let mut next_kill: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 150);
    while done.len() < FORMATS.len() {
        assert!(Instant::now() < deadline, "the recordings did not finish in time\n{}", tail(&record_log));
        let wait = next_kill.map_or(Duration::from_millis(200), |t| t.saturating_duration_since(Instant::now()));
        match events.recv_timeout(wait) {
            Ok(ev) => {
                eprintln!("browser: {ev}");
                match ev["event"].as_str() {
                    Some("started") => {
                        started += 1;
                        if started == FORMATS.len() {
                            // Every page recording and its upload created: start killing.
                            next_kill = Some(Instant::now() + Duration::from_millis(300 + rng.next(900)));
                        }
                    }
                    Some("stopping") => stopping += 1,
                    Some("done") => done.push(ev),
                    Some("failed") => panic!("browser: {ev}\n{}", tail(&record_log)),
                    _ => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("record.mjs ended early ({:?})\n{}", recorder.wait(), tail(&record_log))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if next_kill.is_some_and(|t| Instant::now() >= t) {
            server.kill9();
            kills += 1;
            // Down for a moment (connections refused), then up again on the same port and dir.
            std::thread::sleep(Duration::from_millis(50 + rng.next(600)));
            server.restart();
            if stopping == FORMATS.len() {
                kills_after_stop += 1;
            }
            // Go on killing while recording; after Stop, a few more (and up to MIN_KILLS),
            // then let the uploads finish.
            let more = stopping < FORMATS.len() || kills_after_stop < 3 || kills < MIN_KILLS;
            next_kill = more.then(|| Instant::now() + Duration::from_millis(300 + rng.next(1000)));
        }
    }
    let status = recorder.wait().unwrap();
    assert!(status.success(), "record.mjs: {status}\n{}", tail(&record_log));
    eprintln!("{kills} kills ({kills_after_stop} after Stop) in {:.1} s", started_at.elapsed().as_secs_f64());
    assert!(kills >= MIN_KILLS, "only {kills} kills while recording (want {MIN_KILLS})");

    // Every recording finalized, with the packets of the page's own blobs.
    let mut videos = serde_json::Map::new();
    for ev in &done {
        let name = ev["name"].as_str().unwrap();
        let url = ev["url"].as_str().unwrap();
        let bytes = ev["bytes"].as_u64().unwrap();
        let status = wait_finished(url);
        eprintln!("{name}: {} blobs, {bytes} bytes; status {status}", ev["blobs"]);
        assert_eq!(status["state"], "finished", "{name}: {status}");
        assert_eq!(status["offset"], bytes, "{name}: the server holds another byte count than the page sent: {status}");
        assert!(status["duration_ms"].as_u64().is_some_and(|d| d + 2000 >= SECONDS * 1000), "{name}: {status}");
        let blobs = PathBuf::from(ev["file"].as_str().unwrap());
        let output = dir.path().join(format!("{name}.output.{}", if name == "mp4" { "mp4" } else { "webm" }));
        std::fs::write(&output, get(&format!("{url}/output"))).unwrap();
        if let Some(rel) = status["output"].as_str().filter(|_| !server.stored()) {
            let on_disk = std::fs::read(server.data_dir.join(rel)).unwrap();
            assert!(on_disk == std::fs::read(&output).unwrap(), "{name}: GET output is not {rel}");
        }
        let (want, got) = (framemd5(&blobs), framemd5(&output));
        assert!(want.len() > 100, "{name}: the blobs hold only {} packets", want.len());
        assert_same_packets(&want, &got, &format!("{name}: the page's blobs vs the server's output"));
        videos.insert(name.to_string(), Value::String(format!("{url}/output")));
    }

    // The outputs play to the end and seek in Chromium.
    let play_log = dir.path().join("play.log");
    let videos = Value::Object(videos).to_string();
    let (mut player, reports) = node("play.mjs", &["--base", &server.url, "--videos", &videos], &play_log);
    let mut played = 0;
    while let Ok(r) = reports.recv_timeout(Duration::from_secs(120)) {
        eprintln!("chromium plays: {r}");
        let name = r["name"].as_str().unwrap_or("?").to_string();
        assert_eq!(r["ok"], true, "{name}: {r}\n{}", tail(&play_log));
        let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{name}: no {k} in {r}"));
        let duration = num("duration");
        assert!((duration - SECONDS as f64).abs() < 2.5, "{name}: duration {duration} s, recorded {SECONDS} s: {r}");
        assert!((num("endedAt") - duration).abs() < 0.1, "{name}: did not play to the end: {r}");
        assert!((num("seekedAt") - num("middle")).abs() < 0.5, "{name}: the seek landed elsewhere: {r}");
        assert!(num("after") > num("seekedAt"), "{name}: did not play on after the seek: {r}");
        assert!(num("width") > 0.0 && num("frames") > 0.0, "{name}: no picture: {r}");
        played += 1;
    }
    let status = player.wait().unwrap();
    assert!(status.success() && played == FORMATS.len(), "play.mjs: {status}, {played} played\n{}", tail(&play_log));
    eprintln!("done in {:.1} s", started_at.elapsed().as_secs_f64());
}
