//! `livemux serve` operations: the pre-create hook (refuse, name), the post hook and the
//! event lines (finished, terminated), `/metrics` and `/healthz`, against a real server
//! process and a small HTTP hook server in the test.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::Server;
use serde_json::Value;

/// One request the hook server got.
#[derive(Clone, Debug)]
struct HookCall {
    path: String,
    body: Value,
}

/// A backend's hook endpoints on a free loopback port, answering HTTP/1.1 by hand:
/// - `POST /pre`: by the upload's metadata `hook`: `refuse` → 403 "no uploads today",
///   `name` → 200 `{"rec": <metadata name>}`, otherwise 204 (allowed as is);
/// - `POST /post`: 200.
struct HookServer {
    url: String,
    calls: Arc<Mutex<Vec<HookCall>>>,
}

impl HookServer {
    fn start() -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || answer(conn, &seen));
            }
        });
        HookServer { url, calls }
    }

    fn calls(&self, path: &str) -> Vec<Value> {
        self.calls.lock().unwrap().iter().filter(|c| c.path == path).map(|c| c.body.clone()).collect()
    }

    /// Waits (at most 30 s) for a post-hook call with `event` for `id`.
    fn wait_post(&self, id: &str, event: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.calls("/post").into_iter().find(|v| v["id"] == id && v["event"] == event) {
                return v;
            }
            assert!(Instant::now() < deadline, "the post hook was not told {event} of {id}: {:?}", self.calls("/post"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads one request from `conn`, records it in `seen`, then answers it
/// (recorded first: the server may act on the answer before this thread
/// runs again).
fn answer(mut conn: TcpStream, seen: &Mutex<Vec<HookCall>>) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let body: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    let (status, reply) = match path.as_str() {
        "/pre" => match body["metadata"]["hook"].as_str() {
            Some("refuse") => ("403 Forbidden", "no uploads today".to_string()),
            Some("name") => ("200 OK", serde_json::json!({"rec": body["metadata"]["name"]}).to_string()),
            _ => ("204 No Content", String::new()),
        },
        "/post" => ("200 OK", String::new()),
        _ => ("404 Not Found", String::new()),
    };
    seen.lock().unwrap().push(HookCall { path, body });
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    Some(())
}

/// Standard base64 (the `Upload-Metadata` values).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} {}", base64(v.as_bytes()))).collect::<Vec<_>>().join(",")
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// `POST /files/` with `Upload-Length` and `Upload-Metadata`.
fn create(s: &Server, length: u64, meta: &[(&str, &str)]) -> reqwest::blocking::Response {
    client()
        .post(s.at("/files/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata(meta))
        .send()
        .unwrap()
}

/// The upload id of a 201's `Location` (absolute or not).
fn location_id(resp: &reqwest::blocking::Response) -> String {
    let loc = resp.headers()["location"].to_str().unwrap();
    let (_, id) = loc.rsplit_once("/files/").unwrap_or_else(|| panic!("Location {loc}"));
    id.to_string()
}

fn patch(s: &Server, id: &str, offset: u64, data: &[u8]) {
    let resp = client()
        .patch(s.at(&format!("/files/{id}")))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204, "PATCH {id} at {offset}: {:?}", resp.text());
    let end = offset + data.len() as u64;
    assert_eq!(resp.headers()["upload-offset"].to_str().unwrap(), end.to_string());
}

/// The subdirectories of the data dir (one per upload).
fn upload_dirs(s: &Server) -> Vec<String> {
    match std::fs::read_dir(&s.data_dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits (at most 30 s) until the server logged `event` for `id`.
fn wait_event(s: &Server, id: &str, event: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = s.events().into_iter().find(|v| v["id"] == id && v["event"] == event) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {event} event for {id} in the log:\n{}",
            s.log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The samples of a Prometheus text exposition (format 0.0.4), checked line by line:
/// `# HELP`/`# TYPE` comments, every sample after its family's TYPE, quoted and escaped
/// labels, numeric values, histogram buckets with `le`, cumulative and ending in `+Inf`
/// equal to `_count`. Keyed by `name{labels}` as written.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with('\n'), "no final newline");
    let is_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            assert!(f.len() == 3 && is_name(f[1]) && (f[0] == "HELP" || f[0] == "TYPE"), "bad comment {line:?}");
            if f[0] == "TYPE" {
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&f[2]), "{line:?}");
                assert!(types.insert(f[1].to_string(), f[2].to_string()).is_none(), "second TYPE {line:?}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels {line:?}"))),
            None => (series, ""),
        };
        assert!(is_name(name), "bad name {line:?}");
        let mut le = None;
        if !labels.is_empty() {
            // Label values written here hold no commas or escaped quotes.
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label {line:?}"));
                assert!(is_name(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "bad label {line:?}");
                if k == "le" {
                    le = Some(v.trim_matches('"').to_string());
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t: &String| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line:?}");
        if name.ends_with("_bucket") && family != name {
            let le = le.unwrap_or_else(|| panic!("bucket without le: {line:?}"));
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            buckets.entry(family.to_string()).or_default().push((le, value));
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "duplicate series {line:?}");
    }
    for (family, b) in &buckets {
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family} buckets not cumulative: {b:?}");
        assert_eq!(b.last().unwrap().0, f64::INFINITY, "{family} has no +Inf bucket");
        assert_eq!(Some(&b.last().unwrap().1), samples.get(&format!("{family}_count")), "{family}: +Inf != _count");
    }
    samples
}

#[test]
fn pre_create_hook_refuses_or_is_unavailable() {
    let hooks = HookServer::start();
    let s = Server::start(&["--hook-pre-create", &format!("{}/pre", hooks.url)]);
    let resp = create(&s, 1000, &[("hook", "refuse"), ("filename", "a.mp4")]);
    assert_eq!(resp.status(), 403);
    assert!(resp.text().unwrap().contains("no uploads today"));
    assert_eq!(upload_dirs(&s), Vec::<String>::new(), "a refused upload left a directory");
    let pre = hooks.calls("/pre");
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(pre[0]["length"], 1000);
    assert_eq!(pre[0]["metadata"]["filename"], "a.mp4");
    assert!(s.events().is_empty(), "events for a refused upload: {:?}", s.events());

    // A hook nobody answers: 503, and nothing created either.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/pre", closed.local_addr().unwrap());
    drop(closed);
    let s = Server::start(&["--hook-pre-create", &dead]);
    let resp = create(&s, 1000, &[]);
    assert_eq!(resp.status(), 503);
    assert_eq!(upload_dirs(&s), Vec::<String>::new());

    let resp = client().get(s.at("/healthz")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap().trim(), "ok");
}

#[test]
fn hooks_events_and_metrics_follow_uploads() {
    let hooks = HookServer::start();
    let s = Server::start(&[
        "--hook-pre-create",
        &format!("{}/pre", hooks.url),
        "--hook-post",
        &format!("{}/post", hooks.url),
    ]);
    // A Chromium recording, sent in 32 KiB PATCHes.
    let file = common::browser_chunks("chrome_mp4_avc1_opus").concat();
    let chunks: Vec<&[u8]> = file.chunks(32 * 1024).collect();
    let total = file.len() as u64;

    // Named by the hook; finished by its last PATCH.
    let resp = create(&s, total, &[("hook", "name"), ("name", "named-1")]);
    assert_eq!(resp.status(), 201, "{:?}", resp.text());
    assert!(resp.headers()["location"].to_str().unwrap().ends_with("/files/named-1"), "{:?}", resp.headers());
    let mut offset = 0;
    for c in &chunks {
        patch(&s, "named-1", offset, c);
        offset += c.len() as u64;
    }
    let done = hooks.wait_post("named-1", "finished");
    assert_eq!(done["v"], 1);
    assert_eq!(done["offset"], total);
    assert_eq!(done["length"], total);
    assert_eq!(done["output"], s.output_name("named-1/recording.mp4"));
    let output = client().get(s.at("/files/named-1/output")).header("Tus-Resumable", "1.0.0").send().unwrap();
    let output_len = output.bytes().unwrap().len() as u64;
    assert_eq!(done["output_bytes"], output_len);
    assert!(done["duration_ms"].as_u64().unwrap() > 1000, "{done}");
    let kinds: Vec<&str> = done["tracks"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"video") && kinds.contains(&"audio"), "{done}");
    assert_eq!(done["tracks"][0]["number"], 1);
    let status: Value =
        client().get(s.at("/files/named-1/status")).header("Tus-Resumable", "1.0.0").send().unwrap().json().unwrap();
    assert_eq!(status["state"], "finished");

    // Allowed as is (an anonymous id), then deleted.
    let first = chunks[0];
    let resp = create(&s, total, &[]);
    assert_eq!(resp.status(), 201);
    let id = location_id(&resp);
    assert_ne!(id, "named-1");
    patch(&s, &id, 0, first);
    let resp = client().delete(s.at(&format!("/files/{id}"))).header("Tus-Resumable", "1.0.0").send().unwrap();
    assert_eq!(resp.status(), 204);
    let gone = hooks.wait_post(&id, "terminated");
    assert_eq!(gone["offset"], first.len() as u64);
    assert!(!s.data_dir.join(&id).exists());
    assert_eq!(hooks.calls("/pre").len(), 2);

    // One event line per state change, and only those.
    wait_event(&s, "named-1", "finished");
    wait_event(&s, &id, "terminated");
    let events = s.events();
    let seen = |who: &str| -> Vec<String> {
        events.iter().filter(|e| e["id"] == who).map(|e| e["event"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(seen("named-1"), ["created", "finished"], "{events:?}");
    assert_eq!(seen(&id), ["created", "terminated"], "{events:?}");
    for e in &events {
        assert_eq!(e["v"], 1, "{e}");
        let time = e["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }
    let post_ids: Vec<String> = hooks.calls("/post").iter().map(|v| format!("{} {}", v["id"], v["event"])).collect();
    assert_eq!(post_ids.len(), 2, "the post hook is told of ends only, once: {post_ids:?}");

    // The counters.
    let resp = client().get(s.at("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let text = resp.text().unwrap();
    let m = parse_metrics(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert_eq!(get("livemux_bytes_acknowledged_total"), (total + first.len() as u64) as f64, "{text}");
    assert_eq!(get("livemux_uploads_active"), 0.0, "{text}");
    assert_eq!(get("livemux_uploads_started_total"), 2.0, "{text}");
    assert_eq!(get("livemux_uploads_ended_total{state=\"finished\"}"), 1.0, "{text}");
    assert_eq!(get("livemux_uploads_ended_total{state=\"terminated\"}"), 1.0, "{text}");
    assert!(get("livemux_patch_duration_seconds_count") >= (chunks.len() + 1) as f64, "{text}");
    assert!(get("livemux_flush_duration_seconds_count") >= 1.0, "{text}");

    let resp = client().get(s.at("/healthz")).send().unwrap();
    assert_eq!(resp.status(), 200);
}

/// The test's own helpers, without a server: the metrics checker reads what the renderer
/// writes (and catches what it must), base64 matches RFC 4648's vectors.
#[test]
fn helpers() {
    let m = livemux::server::metrics::Metrics::new();
    m.uploads(1);
    m.bytes_in(10);
    m.ended("finished");
    m.error(409, "offset_mismatch");
    m.patch(Duration::from_millis(3));
    m.flush(Duration::from_millis(2), 4);
    let text = m.render();
    let s = parse_metrics(&text);
    assert_eq!(s["livemux_bytes_acknowledged_total"], 10.0);
    assert_eq!(s["livemux_errors_total{status=\"409\",kind=\"offset_mismatch\"}"], 1.0);
    assert_eq!(s["livemux_patch_duration_seconds_bucket{le=\"0.0025\"}"], 0.0);
    assert_eq!(s["livemux_patch_duration_seconds_bucket{le=\"0.005\"}"], 1.0);
    for bad in [
        "# TYPE x counter\nx 1\nx 2\n",
        "y 1\n",
        "# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\nx_count 1\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse_metrics(bad)).is_err(), "accepted {bad:?}");
    }
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, coded) in vectors {
        assert_eq!(base64(plain.as_bytes()), coded);
    }
}
