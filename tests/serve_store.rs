//! `livemux serve --store s3://...` against a real S3-compatible server process (moto_server):
//! the recording composed in the store, served by any worker, byte-identical to `livemux
//! remux` of the same bytes; a worker killed mid-upload taken over by another with nothing
//! acknowledged lost; a live owner not taken over, and a stale owner that comes back fenced;
//! an upload whose worker and client both went finalized by the sweep of another worker.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::server::Server;
use reqwest::blocking::{Client, Response};

/// Parts of 64 KiB (moto told so), so that a 200 KB recording is composed of several.
const PART: u64 = 64 << 10;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// A worker on the store `url` of `moto`, with its own data dir.
fn worker(moto: &Moto, url: &str, extra: &[&str]) -> Server {
    let part = PART.to_string();
    let mut args = vec!["--store", url, "--store-part-bytes", &part];
    args.extend_from_slice(extra);
    Server::start_with(None, &args, &moto.env())
}

fn create(c: &Client, s: &Server) -> String {
    let r = c.post(s.at("/files/")).header("Tus-Resumable", "1.0.0").header("Upload-Defer-Length", "1").send().unwrap();
    assert_eq!(r.status().as_u16(), 201, "create: {}", r.text().unwrap_or_default());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    loc.rsplit('/').next().unwrap().to_string()
}

fn patch(c: &Client, s: &Server, id: &str, offset: u64, body: &[u8], total: Option<u64>) -> Response {
    let mut r = c
        .patch(s.at(&format!("/files/{id}")))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream");
    if let Some(t) = total {
        r = r.header("Upload-Length", t.to_string());
    }
    r.body(body.to_vec()).send().unwrap()
}

fn head(c: &Client, s: &Server, id: &str) -> Response {
    c.head(s.at(&format!("/files/{id}"))).header("Tus-Resumable", "1.0.0").send().unwrap()
}

/// The durable offset by HEAD, waiting while another worker's lease runs (423).
fn offset_when_free(c: &Client, s: &Server, id: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = head(c, s, id);
        match r.status().as_u16() {
            200 => return r.headers()["upload-offset"].to_str().unwrap().parse().unwrap(),
            423 => assert!(r.headers().contains_key("retry-after"), "423 without Retry-After"),
            other => panic!("HEAD: {other}"),
        }
        assert!(Instant::now() < deadline, "the upload was not free within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn status(c: &Client, s: &Server, id: &str) -> serde_json::Value {
    c.get(s.at(&format!("/files/{id}/status"))).send().unwrap().json().unwrap()
}

fn status_code(c: &Client, s: &Server, id: &str) -> u16 {
    c.get(s.at(&format!("/files/{id}/status"))).send().unwrap().status().as_u16()
}

fn metric(c: &Client, s: &Server, what: &str) -> u64 {
    let text = c.get(s.at("/metrics")).send().unwrap().text().unwrap();
    let key = format!("livemux_store_bytes_total{{what=\"{what}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&key)).unwrap_or_else(|| panic!("no {key} in /metrics"));
    line[key.len()..].parse().unwrap()
}

/// `livemux remux -` of `data` on stdin (what a recording of those bytes is, byte for byte).
fn remuxed(data: &[u8], ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("expected.{ext}"));
    let mut child = common::livemux()
        .args(["remux", "-", "-q", "--reserve-ms", "60000", "-o"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::read(&out).unwrap()
}

fn assert_identical(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes, differs from livemux remux ({} bytes) from byte {first}", got.len(), want.len());
    }
}

/// The sample in pieces of about a second of media (it is 6 s long).
fn sample_pieces(name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data = common::browser_chunks(name).concat();
    let pieces = data.chunks(data.len().div_ceil(6)).map(<[u8]>::to_vec).collect();
    (data, pieces)
}

fn keys(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
    let s = moto.store(&format!("s3://{bucket}"));
    common::block_on(s.list(prefix)).unwrap().into_iter().map(|o| (o.key, o.size)).collect()
}

#[test]
fn a_recording_is_composed_in_the_store_and_any_worker_serves_it() {
    let Some(moto) = Moto::start_with_min_part(Some(PART)) else { return };
    moto.bucket("rec");
    let c = client();
    let a = worker(&moto, "s3://rec/in/here", &[]);
    let b = worker(&moto, "s3://rec/in/here", &[]);
    for (name, ext) in [("chrome_mp4_avc1_opus", "mp4"), ("chrome_webm_vp8_opus", "webm")] {
        let (data, pieces) = sample_pieces(name);
        let id = create(&c, &a);
        let mut offset = 0u64;
        for (i, piece) in pieces.iter().enumerate() {
            let total = (i + 1 == pieces.len()).then_some(data.len() as u64);
            let r = patch(&c, &a, &id, offset, piece, total);
            assert_eq!(r.status().as_u16(), 204, "{name} piece {i}: {}", r.text().unwrap_or_default());
            offset += piece.len() as u64;
        }
        let key = format!("in/here/{id}/recording.{ext}");
        let st = status(&c, &b, &id);
        assert_eq!(st["state"], "finished", "{st}");
        assert_eq!(st["output"], key.as_str(), "status names the object");
        assert_eq!(st["offset"], data.len() as u64);
        let want = remuxed(&data, ext);
        let stored = common::block_on(moto.store("s3://rec").get(&key)).unwrap().0;
        assert_identical(&stored, &want, &format!("{name}: the object {key}"));
        // Any worker serves it, ranges too.
        for s in [&a, &b] {
            let got = c.get(s.at(&format!("/files/{id}/output"))).send().unwrap();
            assert_eq!(got.status().as_u16(), 200);
            assert_identical(&got.bytes().unwrap(), &want, &format!("{name}: GET /output"));
            let r = c.get(s.at(&format!("/files/{id}/output"))).header("Range", "bytes=100-199").send().unwrap();
            assert_eq!(r.status().as_u16(), 206);
            assert_eq!(&r.bytes().unwrap()[..], &want[100..200]);
        }
        // What only a recording in progress needs is gone.
        let left: Vec<String> = keys(&moto, "rec", &format!("in/here/{id}/")).into_iter().map(|k| k.0).collect();
        assert_eq!(left, [format!("in/here/{id}/recording.{ext}"), format!("in/here/{id}/state.json")]);
        // A finished upload takes no more bytes, on any worker.
        assert_eq!(patch(&c, &b, &id, offset, b"x", None).status().as_u16(), 410);
        // Deleted (from any worker), its recording goes too.
        let r = c.delete(b.at(&format!("/files/{id}"))).header("Tus-Resumable", "1.0.0").send().unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let left: Vec<String> = keys(&moto, "rec", &format!("in/here/{id}/")).into_iter().map(|k| k.0).collect();
        assert_eq!(left, [format!("in/here/{id}/state.json")], "DELETE leaves the state (terminated) only");
        assert_eq!(status_code(&c, &a, &id), 410);
    }
    // Media went into the object by the store's own copies; nothing was downloaded.
    assert!(metric(&c, &a, "copied") > 0, "no part was copied server-side");
    assert_eq!(metric(&c, &a, "downloaded"), 0);
    assert!(metric(&c, &a, "input_uploaded") > 0);
}

#[test]
fn a_worker_killed_mid_upload_is_taken_over_by_another() {
    let Some(moto) = Moto::start_with_min_part(Some(PART)) else { return };
    moto.bucket("rec");
    let c = client();
    let quick = ["--store-lease-secs", "3", "--store-release-secs", "2"];
    let mut a = worker(&moto, "s3://rec/k", &quick);
    let b = worker(&moto, "s3://rec/k", &quick);
    let (data, pieces) = sample_pieces("chrome_mp4_avc1_opus");
    let id = create(&c, &a);
    let mut acked = 0u64;
    for piece in &pieces[..3] {
        assert_eq!(patch(&c, &a, &id, acked, piece, None).status().as_u16(), 204);
        acked += piece.len() as u64;
    }
    a.kill9();
    // B waits out A's lease (by the store's clock), then takes it from the input log.
    let offset = offset_when_free(&c, &b, &id);
    assert_eq!(offset, acked, "everything acknowledged, nothing more");
    let mut at = offset;
    for (i, piece) in pieces.iter().enumerate().skip(3) {
        let total = (i + 1 == pieces.len()).then_some(data.len() as u64);
        assert_eq!(patch(&c, &b, &id, at, piece, total).status().as_u16(), 204);
        at += piece.len() as u64;
    }
    let st = status(&c, &b, &id);
    assert_eq!(st["state"], "finished", "{st}");
    let got = c.get(b.at(&format!("/files/{id}/output"))).send().unwrap().bytes().unwrap();
    assert_identical(&got, &remuxed(&data, "mp4"), "taken over");
    assert_eq!(metric(&c, &b, "downloaded"), acked, "the takeover read the input log once");
    assert!(b.events().iter().any(|e| e["event"] == "resumed" && e["id"] == id.as_str()));
}

#[test]
fn an_upload_left_by_a_dead_worker_and_its_client_is_finalized_by_another() {
    let Some(moto) = Moto::start_with_min_part(Some(PART)) else { return };
    moto.bucket("rec");
    let c = client();
    let quick = ["--store-lease-secs", "2", "--store-release-secs", "1", "--idle-finalize-secs", "4"];
    let mut a = worker(&moto, "s3://rec/s", &quick);
    let (_, pieces) = sample_pieces("chrome_mp4_avc1_opus");
    let id = create(&c, &a);
    let mut acked = Vec::new();
    for piece in &pieces[..3] {
        assert_eq!(patch(&c, &a, &id, acked.len() as u64, piece, None).status().as_u16(), 204);
        acked.extend_from_slice(piece);
    }
    let open = || keys(&moto, "rec", "s/_open/").into_iter().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(open(), [format!("s/_open/{id}")], "the upload is listed as open");
    a.kill9();
    // The client is gone too: no request names the upload. B, started after, never heard
    // of it; its sweep finds it in the store once nobody wrote it for 4 s.
    let b = worker(&moto, "s3://rec/s", &quick);
    let store = moto.store("s3://rec");
    let state = || -> serde_json::Value {
        serde_json::from_slice(&common::block_on(store.get(&format!("s/{id}/state.json"))).unwrap().0).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while state()["state"] == "recording" {
        assert!(Instant::now() < deadline, "not finalized within 60 s: {}", state());
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = state();
    assert_eq!(st["state"], "abandoned", "{st}");
    let key = format!("s/{id}/recording.mp4");
    assert_eq!(st["output"], key.as_str());
    let stored = common::block_on(store.get(&key)).unwrap().0;
    assert_identical(&stored, &remuxed(&acked, "mp4"), "finalized by the sweep");
    // B says so, and nothing of it is left open (both just after the state is written).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !open().is_empty() || !b.events().iter().any(|e| e["event"] == "abandoned" && e["id"] == id.as_str()) {
        assert!(Instant::now() < deadline, "still open: {:?}, or no event: {:?}", open(), b.events());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a PATCH's head and the first half of its body, and returns the connection (the
/// rest is sent by [`finish_patch`]).
fn start_patch(s: &Server, id: &str, offset: u64, body: &[u8]) -> TcpStream {
    let addr = s.url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH /files/{id} HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..body.len() / 2]).unwrap();
    conn
}

/// Sends the rest of the body; the answer's status line.
fn finish_patch(mut conn: TcpStream, body: &[u8]) -> String {
    conn.write_all(&body[body.len() / 2..]).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer
}

#[test]
fn a_live_owner_is_not_taken_over_and_a_stale_one_cannot_write() {
    let Some(moto) = Moto::start_with_min_part(Some(PART)) else { return };
    moto.bucket("rec");
    let c = client();
    let quick = ["--store-lease-secs", "3", "--store-release-secs", "2"];
    let a = worker(&moto, "s3://rec/f", &quick);
    let b = worker(&moto, "s3://rec/f", &quick);
    let (data, pieces) = sample_pieces("chrome_mp4_avc1_opus");
    let id = create(&c, &a);
    assert_eq!(patch(&c, &a, &id, 0, &pieces[0], None).status().as_u16(), 204);
    let mut acked = pieces[0].len() as u64;
    // A owns it and is alive: B refuses to take it.
    let r = head(&c, &b, &id);
    assert_eq!(r.status().as_u16(), 423, "a live owner's upload was taken");
    assert!(r.headers().contains_key("retry-after"));
    // A takes half a PATCH, then stops (SIGSTOP) past its lease: B takes the upload over
    // and writes on.
    let conn = start_patch(&a, &id, acked, &pieces[1]);
    std::thread::sleep(Duration::from_millis(300));
    common::signal(a.pid(), "STOP");
    let offset = offset_when_free(&c, &b, &id);
    assert_eq!(offset, acked, "the half PATCH of the stopped owner was not taken");
    for piece in &pieces[1..3] {
        assert_eq!(patch(&c, &b, &id, acked, piece, None).status().as_u16(), 204);
        acked += piece.len() as u64;
    }
    // A comes back and finishes its PATCH: its conditional write fails; it answers 423,
    // stores nothing and drops the upload.
    common::signal(a.pid(), "CONT");
    let answer = finish_patch(conn, &pieces[1]);
    assert!(answer.starts_with("HTTP/1.1 423"), "the stale owner answered: {answer}");
    assert!(
        a.log.lock().unwrap().iter().any(|l| l.contains("another worker took this upload over")),
        "the stale owner says why it stopped"
    );
    // B, the owner, is unaffected: the upload ends as one uninterrupted run would.
    assert_eq!(offset_when_free(&c, &b, &id), acked);
    let mut at = acked;
    for (i, piece) in pieces.iter().enumerate().skip(3) {
        let total = (i + 1 == pieces.len()).then_some(data.len() as u64);
        assert_eq!(patch(&c, &b, &id, at, piece, total).status().as_u16(), 204);
        at += piece.len() as u64;
    }
    let got = c.get(b.at(&format!("/files/{id}/output"))).send().unwrap().bytes().unwrap();
    assert_identical(&got, &remuxed(&data, "mp4"), "after fencing");
}

#[test]
fn store_flags_are_checked() {
    let run = |args: &[&str]| {
        let out = common::livemux().arg("serve").args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["--store", "bucket/prefix"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("s3://BUCKET/PREFIX"), "{err}");
    let (code, err) = run(&["--store-lease-secs", "5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("need --store"), "{err}");
    let (code, err) = run(&["--store", "s3://b/p", "--store-lease-secs", "3", "--store-release-secs", "3"]);
    assert_eq!(code, Some(2), "{err}");
    // A data dir with uploads of a server without a store is not emptied.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("old/upload.json"), "{}").unwrap();
    let out = common::livemux()
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "s3://b/p", "--data-dir"])
        .arg(dir.path())
        .envs([("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --store"));
    assert!(Path::new(&dir.path().join("old/upload.json")).exists());
}
