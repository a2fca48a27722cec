//! Scale-out: three `livemux serve --store` workers behind HAProxy (deploy/haproxy.cfg, its
//! ports replaced), twenty concurrent tus-js-client uploads (deferred length, a piece a
//! second), one worker killed with SIGKILL mid-upload and restarted later. Every recording
//! completes, byte-identical to `livemux remux` of its input (so nothing acknowledged was
//! lost) and packet-identical to it by ffmpeg; the objects are regular MP4 / seekable WebM
//! that Chromium plays from the store's URL (presigned) to the end and seeks in.
//!
//! Needs haproxy, node with tests/js and tests/browser installed, chromium, ffmpeg and
//! moto_server; fails under LIVEMUX_REQUIRE_TOOLS=1 when one is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::server::Server;
use serde_json::Value;

const UPLOADS: usize = 20;
/// Parts of 64 KiB (moto told so), so that the recordings are composed of several.
const PART: u64 = 64 << 10;

fn ready() -> bool {
    if !common::tools(&["haproxy", "node", "chromium", "ffmpeg"]) {
        return false;
    }
    let root = common::root();
    for (package, how) in [
        ("tests/js/node_modules/tus-js-client/package.json", "npm ci --prefix tests/js"),
        ("tests/browser/node_modules/playwright-core/package.json", "npm ci --prefix tests/browser"),
    ] {
        if !root.join(package).is_file() {
            let why = format!("{package} is missing (run `{how}`)");
            assert!(!common::tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but {why}");
            eprintln!("SKIPPED: {why}");
            return false;
        }
    }
    true
}

/// HAProxy running deploy/haproxy.cfg with its ports replaced; killed on drop.
struct Haproxy {
    child: Child,
    url: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy(workers: &[&Server], dir: &Path) -> Haproxy {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = std::fs::read_to_string(common::root().join("deploy/haproxy.cfg")).unwrap();
    assert!(cfg.contains("bind :8080"), "deploy/haproxy.cfg binds :8080");
    cfg = cfg.replace("bind :8080", &format!("bind 127.0.0.1:{port}"));
    for (i, w) in workers.iter().enumerate() {
        let default = format!("127.0.0.1:{}", 8081 + i);
        assert!(cfg.contains(&default), "deploy/haproxy.cfg has a server at {default}");
        cfg = cfg.replace(&default, w.url.trim_start_matches("http://"));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .spawn()
        .expect("start haproxy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = || std::fs::read_to_string(dir.join("haproxy.log")).unwrap();
        assert!(child.try_wait().unwrap().is_none(), "haproxy exited: {}", log());
        assert!(Instant::now() < deadline, "haproxy did not listen: {}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    Haproxy { child, url: format!("http://127.0.0.1:{port}") }
}

/// `livemux remux -` of `data` on stdin.
fn remuxed(data: &[u8], out: &Path) -> Vec<u8> {
    use std::io::Write;
    let mut child = common::livemux()
        .args(["remux", "-", "-q", "--reserve-ms", "60000", "-o"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::read(out).unwrap()
}

#[test]
fn three_workers_one_killed_twenty_uploads_complete() {
    if !ready() {
        return;
    }
    let Some(moto) = Moto::start_with_min_part(Some(PART)) else { return };
    moto.bucket("scale");
    let tmp = tempfile::tempdir().unwrap();
    let part = PART.to_string();
    let args = [
        "--store",
        "s3://scale/rec",
        "--store-part-bytes",
        &part,
        "--store-lease-secs",
        "4",
        "--store-release-secs",
        "2",
    ];
    let mut workers: Vec<Server> = (0..3).map(|_| Server::start_with(None, &args, &moto.env())).collect();
    let lb = haproxy(&workers.iter().collect::<Vec<_>>(), tmp.path());

    // Two recordings a browser made (MP4, WebM), each uploaded ten times, in pieces of
    // about a second of media (they are 6 s long), one a second.
    let inputs: Vec<(PathBuf, Vec<u8>, &str)> = [("chrome_mp4_avc1_opus", "mp4"), ("chrome_webm_vp8_opus", "webm")]
        .iter()
        .map(|(name, ext)| {
            let data = common::browser_chunks(name).concat();
            let path = tmp.path().join(format!("{name}.{ext}"));
            std::fs::write(&path, &data).unwrap();
            (path, data, *ext)
        })
        .collect();
    let started = Instant::now();
    let clients: Vec<(Child, usize, PathBuf)> = (0..UPLOADS)
        .map(|i| {
            let (path, data, _) = &inputs[i % inputs.len()];
            let (out, err) = (tmp.path().join(format!("up{i}.out")), tmp.path().join(format!("up{i}.err")));
            let child = Command::new("node")
                .arg(common::root().join("tests/js/upload.mjs"))
                .args(["--endpoint", &format!("{}/files/", lb.url), "--mode", "pieces"])
                .arg("--file")
                .arg(path)
                .args(["--piece-bytes", &data.len().div_ceil(6).to_string(), "--piece-delay-ms", "1000"])
                .args(["--retry-delays", "0,500,1000,1000,2000,2000,3000,3000,5000,5000,5000,5000,5000,5000"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .expect("run node");
            (child, i % inputs.len(), out)
        })
        .collect();

    // Mid-upload: once it has taken three uploads and written some of their bytes, one
    // worker dies; it comes back later.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = workers[1].log.lock().unwrap().clone();
        let taken = log.iter().filter(|l| l.contains("taken from the store")).count();
        let written = log.iter().filter(|l| l.contains("\"event\":\"created\"")).count();
        if taken >= 3 {
            eprintln!("worker 2 holds {taken} uploads ({written} created there)");
            break;
        }
        assert!(Instant::now() < deadline, "worker 2 took no uploads within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    workers[1].kill9();
    let before_kill = workers[1].log.lock().unwrap().clone();
    let killed_at = started.elapsed();
    std::thread::sleep(Duration::from_secs(6));
    workers[1].restart();

    let mut done = Vec::new();
    for (i, (mut child, input, out)) in clients.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(180);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "upload {i} still running after 180 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = std::fs::read_to_string(tmp.path().join(format!("up{i}.err"))).unwrap();
        assert!(status.success(), "upload {i}: {status}: {err}");
        let line = std::fs::read_to_string(&out).unwrap();
        let v: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
        done.push((v["url"].as_str().unwrap().to_string(), input));
    }
    eprintln!(
        "{UPLOADS} uploads done in {:.1} s (worker 2 killed at {killed_at:.1?})",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let expected: Vec<Vec<u8>> =
        inputs.iter().map(|(path, data, ext)| remuxed(data, &path.with_extension(format!("want.{ext}")))).collect();
    let store = moto.store("s3://scale");
    let mut videos = serde_json::Map::new();
    for (i, (url, input)) in done.iter().enumerate() {
        let (path, _, ext) = &inputs[*input];
        let status: Value = http.get(format!("{url}/status")).send().unwrap().json().unwrap();
        assert_eq!(status["state"], "finished", "upload {i}: {status}");
        let key = status["output"].as_str().unwrap().to_string();
        let id = url.rsplit('/').next().unwrap();
        assert_eq!(key, format!("rec/{id}/recording.{ext}"));
        // From the load balancer (any worker), and the object itself.
        let got = http.get(format!("{url}/output")).send().unwrap().bytes().unwrap();
        assert!(got[..] == expected[*input][..], "upload {i}: the output is not livemux remux of its input");
        let object = common::block_on(store.get(&key)).unwrap().0;
        assert!(object == got, "upload {i}: GET /output is not the object {key}");
        if i < 2 {
            let file = tmp.path().join(format!("got{i}.{ext}"));
            std::fs::write(&file, &object).unwrap();
            common::assert_same_packets(&common::framemd5(path), &common::framemd5(&file), &format!("upload {i}"));
            let signed = store.presigned_get(&key, Duration::from_secs(600));
            videos.insert(format!("upload{i}.{ext}"), Value::String(signed.to_string()));
        }
    }
    // Each client kept its upload (none started over: a retry resumes the same one).
    let mut logs: Vec<String> = before_kill.clone();
    for w in &workers {
        logs.extend(w.log.lock().unwrap().iter().cloned());
    }
    let created = logs.iter().filter(|l| l.contains("\"event\":\"created\"")).count();
    assert_eq!(created, UPLOADS, "uploads created: a client started over");
    // The kill hit uploads: some were taken over from the store by another worker.
    let resumed: usize = workers.iter().map(|w| w.events().iter().filter(|e| e["event"] == "resumed").count()).sum();
    if resumed == 0 {
        for l in &before_kill {
            eprintln!("w2 before: {l}");
        }
        for (i, w) in workers.iter().enumerate() {
            for l in w.log.lock().unwrap().iter() {
                eprintln!("w{}: {l}", i + 1);
            }
        }
    }
    assert!(resumed > 0, "no upload was taken over: the kill hit nothing");
    eprintln!("{resumed} uploads taken over from the store after the kill");

    // Chromium plays them from the store's URL to the end, seeks to the middle and plays on.
    let out = Command::new("node")
        .arg(common::root().join("tests/browser/play.mjs"))
        .args(["--base", &lb.url, "--videos", &Value::Object(videos.clone()).to_string()])
        .current_dir(common::root().join("tests/browser"))
        .output()
        .expect("run play.mjs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let reports: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(reports.len(), videos.len(), "play.mjs: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    for r in &reports {
        assert_eq!(r["ok"], true, "{r}");
        let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("no {k} in {r}"));
        let duration = num("duration");
        assert!(duration > 5.0 && duration.is_finite(), "{r}: a seekable file has its duration");
        assert!((num("endedAt") - duration).abs() < 0.1, "{r}: did not play to the end");
        assert!((num("seekedAt") - num("middle")).abs() < 0.5, "{r}: the seek landed elsewhere");
        assert!(num("after") > num("seekedAt") && num("frames") > 0.0, "{r}: did not play on after the seek");
    }
}
