//! `livemux serve`: who may read, write and delete what, where uploads may write, and the
//! limits that keep one client from holding the server (issue 15, "Who may write what"),
//! and the live HLS an upload can be watched through (issue 16).
//!
//! Each test starts its own server (tests/common/server.rs) on a temporary data dir and
//! speaks tus to it with `reqwest::blocking`, or with a raw TCP socket where the point
//! is a misbehaving client (huge heads, stalled bodies, idle connections).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::server::Server;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;

const SECRET: &str = "serve-security-test-secret-0123456789abcdef";
const OTHER_SECRET: &str = "serve-security-test-secret-0123456789abcdeF";

/// The bytes of a short Chromium MP4 recording (avc1 + opus), and the blobs it arrived in.
fn media() -> (Vec<u8>, Vec<Vec<u8>>) {
    let chunks = common::browser_chunks("chrome_mp4_avc1_opus");
    (chunks.concat(), chunks)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An HS256 token with these claims, signed with `secret`.
fn signed(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// A token for `rec` with `scope`, valid for ten minutes.
fn token(rec: &str, scope: &str) -> String {
    signed(SECRET, serde_json::json!({"rec": rec, "scope": scope, "exp": now() + 600, "iat": now()}))
}

/// A server that needs tokens signed with [`SECRET`]; the secret file's dir is returned to
/// be kept alive.
fn secured(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let mut args = vec!["--jwt-secret-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start(&args), dir)
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// A tus request (`Tus-Resumable: 1.0.0`), with a bearer token if given.
fn tus(c: &Client, method: Method, url: &str, token: Option<&str>) -> RequestBuilder {
    let r = c.request(method, url).header("Tus-Resumable", "1.0.0");
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// POST /files/: with `length` a declared length, without one a deferred length.
fn create(s: &Server, c: &Client, token: Option<&str>, length: Option<u64>, metadata: Option<&str>) -> Response {
    let mut r = tus(c, Method::POST, &s.at("/files/"), token);
    r = match length {
        Some(n) => r.header("Upload-Length", n.to_string()),
        None => r.header("Upload-Defer-Length", "1"),
    };
    if let Some(m) = metadata {
        r = r.header("Upload-Metadata", m);
    }
    r.send().unwrap()
}

/// The upload id of a 201's Location (absolute or relative).
fn id_of(resp: &Response) -> String {
    assert_eq!(resp.status(), 201, "creation failed: {:?}", resp.headers());
    let location = resp.headers()["location"].to_str().unwrap();
    location.trim_end_matches('/').rsplit('/').next().unwrap().to_string()
}

/// Creates an upload and returns its id.
fn create_ok(s: &Server, c: &Client, token: Option<&str>, length: Option<u64>) -> String {
    id_of(&create(s, c, token, length, None))
}

fn patch(s: &Server, c: &Client, token: Option<&str>, id: &str, offset: u64, bytes: &[u8]) -> Response {
    patch_final(s, c, token, id, offset, bytes, None)
}

/// PATCH, declaring the length of a deferred upload with `length`.
fn patch_final(
    s: &Server,
    c: &Client,
    token: Option<&str>,
    id: &str,
    offset: u64,
    bytes: &[u8],
    length: Option<u64>,
) -> Response {
    let mut r = tus(c, Method::PATCH, &s.at(&format!("/files/{id}")), token)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string());
    if let Some(n) = length {
        r = r.header("Upload-Length", n.to_string());
    }
    r.body(bytes.to_vec()).send().unwrap()
}

/// The durable offset HEAD reports.
fn offset(s: &Server, c: &Client, token: Option<&str>, id: &str) -> u64 {
    let r = tus(c, Method::HEAD, &s.at(&format!("/files/{id}")), token).send().unwrap();
    assert_eq!(r.status(), 200, "HEAD /files/{id}");
    r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Every request a holder of an upload token for `id` could make on it.
fn every_request(s: &Server, c: &Client, token: Option<&str>, id: &str, at: u64) -> Vec<(String, Response)> {
    let file = s.at(&format!("/files/{id}"));
    vec![
        ("HEAD".into(), tus(c, Method::HEAD, &file, token).send().unwrap()),
        ("PATCH".into(), patch(s, c, token, id, at, b"\0\0\0\x08free")),
        ("DELETE".into(), tus(c, Method::DELETE, &file, token).send().unwrap()),
        ("GET status".into(), tus(c, Method::GET, &format!("{file}/status"), token).send().unwrap()),
        ("GET output".into(), tus(c, Method::GET, &format!("{file}/output"), token).send().unwrap()),
    ]
}

#[test]
fn a_token_for_one_recording_cannot_touch_another() {
    let (s, _secret) = secured(&[]);
    let c = client();
    let (_, chunks) = media();
    let (a_up, b_up) = (token("rec-a", "upload"), token("rec-b", "upload"));
    for (rec, t) in [("rec-a", &a_up), ("rec-b", &b_up)] {
        let id = create_ok(&s, &c, Some(t), None);
        assert_eq!(id, rec, "an authenticated upload's id is the token's rec");
        assert_eq!(patch(&s, &c, Some(t), rec, 0, &chunks[0]).status(), 204);
    }
    let b_offset = chunks[0].len() as u64;

    for t in [&a_up, &token("rec-a", "view")] {
        for (what, r) in every_request(&s, &c, Some(t), "rec-b", b_offset) {
            assert_eq!(r.status(), 403, "{what} /files/rec-b with a token for rec-a");
        }
    }
    // B is untouched: same offset, still recording.
    assert_eq!(offset(&s, &c, Some(&b_up), "rec-b"), b_offset);
    let st: serde_json::Value = tus(&c, Method::GET, &s.at("/files/rec-b/status"), Some(&token("rec-b", "view")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st["state"], "recording", "{st}");
    assert_eq!(st["offset"], b_offset, "{st}");
    // And A's own token still works on A.
    assert_eq!(offset(&s, &c, Some(&a_up), "rec-a"), chunks[0].len() as u64);
    // An upload token for A cannot create B either: POST creates A's upload, which exists.
    let again = create(&s, &c, Some(&a_up), None, None);
    assert!(again.status() != 201 || id_of(&again) == "rec-a", "POST with a token for rec-a made another id");
}

#[test]
fn missing_forged_and_expired_tokens_get_401() {
    let (s, _secret) = secured(&[]);
    let c = client();
    let (_, chunks) = media();
    let good = token("rec", "upload");
    create_ok(&s, &c, Some(&good), None);
    assert_eq!(patch(&s, &c, Some(&good), "rec", 0, &chunks[0]).status(), 204);
    let at = chunks[0].len() as u64;

    let claims = serde_json::json!({"rec": "rec", "scope": "upload", "exp": now() + 600});
    let expired = signed(SECRET, serde_json::json!({"rec": "rec", "scope": "upload", "exp": now() - 60}));
    let forged = signed(OTHER_SECRET, claims.clone());
    let alg_none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    let hs512 =
        jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))
            .unwrap();
    let no_exp = signed(SECRET, serde_json::json!({"rec": "rec", "scope": "upload"}));
    let bad_rec = signed(SECRET, serde_json::json!({"rec": "../rec", "scope": "upload", "exp": now() + 600}));
    // The good token with its claims swapped for a longer-lived copy: the signature no longer matches.
    let g: Vec<&str> = good.split('.').collect();
    let longer =
        b64url(serde_json::json!({"rec": "rec", "scope": "upload", "exp": now() + 99_999}).to_string().as_bytes());
    let tampered = format!("{}.{longer}.{}", g[0], g[2]);

    let cases: Vec<(&str, Option<&str>)> = vec![
        ("no token", None),
        ("expired", Some(&expired)),
        ("forged (another secret)", Some(&forged)),
        ("alg none", Some(&alg_none)),
        ("HS512", Some(&hs512)),
        ("no exp", Some(&no_exp)),
        ("rec ../rec", Some(&bad_rec)),
        ("tampered claims", Some(&tampered)),
        ("garbage", Some("not-a-jwt")),
    ];
    for (case, t) in cases {
        let r = create(&s, &c, t, None, None);
        assert_eq!(r.status(), 401, "POST /files/ with {case}");
        for (what, r) in every_request(&s, &c, t, "rec", at) {
            assert_eq!(r.status(), 401, "{what} /files/rec with {case}");
            let body = r.text().unwrap_or_default();
            if let Some(t) = t {
                let sig = t.rsplit('.').next().unwrap();
                assert!(
                    sig.len() < 8 || !body.contains(sig),
                    "{what} with {case}: the answer echoes the token: {body}"
                );
            }
        }
    }
    // Nothing was written or deleted.
    assert_eq!(offset(&s, &c, Some(&good), "rec"), at);
}

#[test]
fn a_view_token_reads_but_cannot_write_or_delete() {
    let (s, _secret) = secured(&[]);
    let c = client();
    let (_, chunks) = media();
    let up = token("rec", "upload");
    let view = token("rec", "view");
    create_ok(&s, &c, Some(&up), None);
    assert_eq!(patch(&s, &c, Some(&up), "rec", 0, &chunks[0]).status(), 204);
    let at = chunks[0].len() as u64;

    assert_eq!(create(&s, &c, Some(&view), None, None).status(), 403, "POST with a view token");
    // A small body: a server may answer a refused PATCH before reading its body and close
    // the connection, which a large body would meet as a reset instead of the answer.
    assert_eq!(patch(&s, &c, Some(&view), "rec", at, &chunks[1][..64]).status(), 403, "PATCH with a view token");
    let r = tus(&c, Method::DELETE, &s.at("/files/rec"), Some(&view)).send().unwrap();
    assert_eq!(r.status(), 403, "DELETE with a view token");
    let r = tus(&c, Method::GET, &s.at("/files/rec/status"), Some(&view)).send().unwrap();
    assert_eq!(r.status(), 200, "GET status with a view token");
    assert_eq!(offset(&s, &c, Some(&up), "rec"), at, "a view token changed the upload");
}

#[test]
fn health_and_metrics_need_no_token() {
    let (s, _secret) = secured(&[]);
    let c = client();
    assert_eq!(c.get(s.at("/healthz")).send().unwrap().status(), 200);
    assert_eq!(c.get(s.at("/metrics")).send().unwrap().status(), 200);
}

/// Every path under `root` (files, dirs, links), recursively, not following links.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push(path.clone());
        if meta.is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn metadata_and_ids_never_name_a_path_outside_the_data_dir() {
    let s = Server::start(&[]);
    let c = client();
    let (whole, _) = media();
    let tmp = s.data_dir.parent().unwrap().to_path_buf();
    let outside = [PathBuf::from("/tmp/etc/x"), PathBuf::from("/etc/x"), tmp.join("etc/x")];
    let existed: Vec<bool> = outside.iter().map(|p| p.exists()).collect();

    // The filename of tus-js-client's metadata, hostile.
    let meta = format!("filename {},filetype {}", b64(b"../../etc/x"), b64(b"video/mp4"));
    let id = id_of(&create(&s, &c, None, Some(whole.len() as u64), Some(&meta)));
    assert!(!id.contains('/') && !id.contains(".."), "id {id:?}");
    assert_eq!(patch(&s, &c, None, &id, 0, &whole).status(), 204);
    // Other keys a server might be tempted to use as names; refusing them (400) is fine too.
    let hostile = ["../../etc/x", "/etc/x", "..\\..\\etc\\x", "a/../../../etc/x", "..", "x\0y"];
    let mut more = Vec::new();
    for v in hostile {
        let meta: Vec<String> = ["filename", "name", "rec", "id", "path", "output"]
            .iter()
            .map(|k| format!("{k} {}", b64(v.as_bytes())))
            .collect();
        let r = create(&s, &c, None, Some(whole.len() as u64), Some(&meta.join(",")));
        match r.status().as_u16() {
            201 => {
                let id = id_of(&r);
                assert!(!id.contains('/') && !id.contains(".."), "id {id:?} from metadata {v:?}");
                assert_eq!(patch(&s, &c, None, &id, 0, &whole).status(), 204);
                more.push(id);
            }
            400 => {}
            other => panic!("metadata {v:?}: POST answered {other}"),
        }
    }

    // Wait for the first to be finalized, then fetch its output.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st: serde_json::Value =
            tus(&c, Method::GET, &s.at(&format!("/files/{id}/status")), None).send().unwrap().json().unwrap();
        if st["state"] == "finished" {
            let output = st["output"].as_str().unwrap();
            assert!(!output.contains("..") && !output.starts_with('/'), "output {output:?}");
            break;
        }
        assert!(Instant::now() < deadline, "upload {id} not finished: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = tus(&c, Method::GET, &s.at(&format!("/files/{id}/output")), None).send().unwrap();
    assert_eq!(r.status(), 200);
    if let Some(cd) = r.headers().get("content-disposition") {
        let cd = String::from_utf8_lossy(cd.as_bytes());
        assert!(!cd.contains('/') && !cd.contains('\\'), "Content-Disposition names a path: {cd}");
    }
    assert!(!r.bytes().unwrap().is_empty());

    // Ids in the URL that try to climb out: never a 2xx, never a file from outside.
    for bad in ["..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..%2Fdata", "..%5C..%5Cetc", "%2Fetc%2Fpasswd", ".hidden", "a%00b"]
    {
        for path in [format!("/files/{bad}"), format!("/files/{bad}/status"), format!("/files/{bad}/output")] {
            let method = if path.ends_with(bad) { Method::HEAD } else { Method::GET };
            let r = tus(&c, method, &s.at(&path), None).send().unwrap();
            assert!(r.status().is_client_error(), "{path}: {}", r.status());
            assert!(!r.text().unwrap_or_default().contains("root:"), "{path} read /etc/passwd");
        }
    }

    let mut all = Vec::new();
    walk(&tmp, &mut all);
    for p in &all {
        assert!(p.starts_with(&s.data_dir), "a file outside the data dir: {}", p.display());
        let meta = std::fs::symlink_metadata(p).unwrap();
        assert!(!meta.file_type().is_symlink(), "a symbolic link in the data dir: {}", p.display());
    }
    for (p, before) in outside.iter().zip(existed) {
        assert!(before || !p.exists(), "{} was created", p.display());
    }
}

/// Runs `livemux ARGS` to its end (60 s at most): exit code and stderr.
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livemux"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("livemux {args:?} still runs after 60 s (it should have refused to start)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn anonymous_serve_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, err) = run_to_end(&["serve", "--listen", listen, "--data-dir", data.to_str().unwrap()]);
        assert_eq!(code, Some(2), "serve --listen {listen} without a secret: {err}");
        assert!(err.contains("loopback"), "the refusal should say why: {err}");
    }
}

#[test]
fn an_upload_past_the_size_limit_gets_413() {
    let s = Server::start(&["--max-upload-bytes", "100000"]);
    let c = client();
    let (whole, _) = media();
    assert!(whole.len() > 120_000);
    assert_eq!(create(&s, &c, None, Some(100_001), None).status(), 413, "Upload-Length over the limit");
    let huge = tus(&c, Method::POST, &s.at("/files/"), None).header("Upload-Length", "99999999999999999999999").send();
    let code = huge.unwrap().status().as_u16();
    assert!(code == 400 || code == 413, "an Upload-Length past u64: {code}");
    assert_eq!(create(&s, &c, None, Some(100_000), None).status(), 201, "Upload-Length at the limit");

    // A deferred upload whose bytes go past the limit.
    let id = create_ok(&s, &c, None, None);
    let r = patch(&s, &c, None, &id, 0, &whole[..120_000]);
    assert_eq!(r.status(), 413);
    // Its body is not read to the end: the connection is not used again (the next request
    // would fail on it).
    assert_eq!(r.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    let at = offset(&s, &c, None, &id);
    assert!(at <= 100_000, "offset {at} past the limit");
    // Declaring a length past the limit.
    let id = create_ok(&s, &c, None, None);
    let r = patch_final(&s, &c, None, &id, 0, &whole[..1000], Some(whole.len() as u64));
    assert_eq!(r.status(), 413, "a deferred length declared past the limit");
}

#[test]
fn too_many_open_uploads_get_503_with_retry_after() {
    let s = Server::start(&["--max-uploads", "2"]);
    let c = client();
    let (_, chunks) = media();
    let ids: Vec<String> = (0..2).map(|_| create_ok(&s, &c, None, None)).collect();
    for id in &ids {
        assert_eq!(patch(&s, &c, None, id, 0, &chunks[0]).status(), 204);
    }
    let r = create(&s, &c, None, None, None);
    assert_eq!(r.status(), 503, "a third upload with --max-uploads 2");
    let retry = r.headers().get("retry-after").expect("503 without Retry-After");
    let retry = retry.to_str().unwrap();
    assert!(retry.parse::<u64>().is_ok_and(|n| n >= 1) || retry.ends_with("GMT"), "Retry-After {retry:?}");
    // The open ones keep going.
    assert_eq!(patch(&s, &c, None, &ids[0], chunks[0].len() as u64, &chunks[1]).status(), 204);
    // Ending one frees its place.
    assert_eq!(tus(&c, Method::DELETE, &s.at(&format!("/files/{}", ids[1])), None).send().unwrap().status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = create(&s, &c, None, None, None);
        if r.status() == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "still {} after a DELETE freed a place", r.status());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn new_bytes_get_507_when_the_disk_is_below_min_free() {
    let s = Server::start(&["--min-free-bytes", &(1u64 << 62).to_string()]);
    let c = client();
    let (_, chunks) = media();
    let r = create(&s, &c, None, None, None);
    match r.status().as_u16() {
        507 => {}
        201 => {
            let id = id_of(&r);
            assert_eq!(patch(&s, &c, None, &id, 0, &chunks[0]).status(), 507, "PATCH below min_free");
            assert_eq!(offset(&s, &c, None, &id), 0);
        }
        other => panic!("POST below min_free: {other}"),
    }
    // Reading still works.
    assert_eq!(c.get(s.at("/healthz")).send().unwrap().status(), 200);
}

/// Sends `head` on a fresh connection and returns what came back (until close or 30 s).
fn raw_exchange(s: &Server, head: &[u8]) -> String {
    let addr = s.url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = sock.write_all(head);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !got.is_empty() => break,
            Err(e) => panic!("reading the answer: {e} (got {:?})", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_request_head_over_16_kib_gets_431() {
    let s = Server::start(&[]);
    let head = |filler: usize| {
        format!(
            "HEAD /files/nothing-here HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    let big = raw_exchange(&s, head(20 << 10).as_bytes());
    assert!(big.starts_with("HTTP/1.1 431"), "a 20 KiB head: {big:?}");
    // A 12 KiB head is within the limit (an unknown upload: 404).
    let ok = raw_exchange(&s, head(12 << 10).as_bytes());
    assert!(ok.starts_with("HTTP/1.1 404"), "a 12 KiB head: {ok:?}");
}

#[test]
fn a_slow_client_is_cut_after_the_read_timeout_and_others_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "[limits]\nread_timeout_secs = 2\n").unwrap();
    let s = Server::start(&["--config", config.to_str().unwrap()]);
    let c = client();
    let (whole, chunks) = media();
    let slow = create_ok(&s, &c, None, None);
    let fast = create_ok(&s, &c, None, None);

    // The slow client announces the whole recording, sends 1000 bytes and stops.
    let addr = s.url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH /files/{slow} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        whole.len()
    );
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&whole[..1000]).unwrap();
    let stalled = Instant::now();

    // Meanwhile another upload goes on.
    let mut at = 0u64;
    for chunk in &chunks {
        let t = Instant::now();
        assert_eq!(patch(&s, &c, None, &fast, at, chunk).status(), 204);
        assert!(t.elapsed() < Duration::from_secs(10), "a PATCH took {:?} while a client stalled", t.elapsed());
        at += chunk.len() as u64;
    }

    // The stalled request is ended by the server: an answer and/or a closed connection.
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 1024];
    let ended = loop {
        match sock.read(&mut buf) {
            Ok(0) => break stalled.elapsed(),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                break stalled.elapsed()
            }
            Err(e) => panic!("the stalled request was not cut after {:?}: {e}", stalled.elapsed()),
        }
    };
    assert!(ended >= Duration::from_millis(1500), "cut after {ended:?}, before the 2 s read timeout");
    assert!(ended < Duration::from_secs(20), "cut only after {ended:?}");

    // The slow upload is resumable from what arrived (at most the 1000 bytes sent).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let from = offset(&s, &c, None, &slow);
        assert!(from <= 1000, "offset {from} after 1000 bytes sent");
        let r = patch(&s, &c, None, &slow, from, &whole[from as usize..]);
        if r.status() == 204 {
            assert_eq!(offset(&s, &c, None, &slow), whole.len() as u64);
            break;
        }
        // The cut request may still hold the upload a moment (409 or 423).
        assert!(
            matches!(r.status().as_u16(), 409 | 423) && Instant::now() < deadline,
            "resuming after the cut: {}",
            r.status()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Raises the soft open-file limit to `want` (within the hard limit); returns the new one.
fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    lim.rlim_cur
}

/// The slowest of the requests of one upload sent in ten PATCHes (deferred length).
fn slowest_request(s: &Server, c: &Client, whole: &[u8]) -> Duration {
    let t = Instant::now();
    let id = create_ok(s, c, None, None);
    let mut slowest = t.elapsed();
    let piece = whole.len().div_ceil(10);
    let mut at = 0usize;
    while at < whole.len() {
        let end = (at + piece).min(whole.len());
        let last = (end == whole.len()).then_some(whole.len() as u64);
        let t = Instant::now();
        let r = patch_final(s, c, None, &id, at as u64, &whole[at..end], last);
        assert_eq!(r.status(), 204);
        slowest = slowest.max(t.elapsed());
        at = end;
    }
    slowest
}

#[test]
fn a_thousand_idle_connections_do_not_delay_an_upload() {
    const IDLE: usize = 1000;
    // This process holds the idle sockets, the server (which inherits the limit) accepts them.
    let limit = raise_nofile(4096);
    assert!(limit >= (IDLE + 200) as libc::rlim_t, "RLIMIT_NOFILE is {limit}: cannot hold {IDLE} connections");
    let s = Server::start(&[]);
    let c = client();
    let (whole, _) = media();
    let baseline = slowest_request(&s, &c, &whole);

    let addr = s.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut sock = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Half send nothing; half start a request head and never finish it.
        if i % 2 == 1 {
            sock.write_all(b"PATCH /files/x HTTP/1.1\r\nHost: x\r\n").unwrap();
        }
        idle.push(sock);
    }
    let loaded = slowest_request(&s, &c, &whole);
    let bound = Duration::from_secs(2).max(baseline * 3);
    assert!(loaded < bound, "with {IDLE} idle connections a request took {loaded:?} (without: {baseline:?})");
    assert_eq!(c.get(s.at("/healthz")).send().unwrap().status(), 200);
    drop(idle);
}

/// `GET /files/{id}/live.m3u8` and the files it names: started by the first viewer (the
/// journal so far replayed into it), readable with the upload's own tokens (upload or
/// view), 401/403 for others, 404 for any other name (the upload's journal and state are
/// not files to serve); rebuilt after a SIGKILL of the server; at the end an
/// EXT-X-ENDLIST playlist whose segments hold the packets of the output. `--live-hls off`
/// serves none; `--live-hls` (always) keeps it from the first byte, watched or not.
#[test]
fn live_hls_follows_the_upload_behind_its_tokens() {
    let c = client();
    let input = common::generated_file("h264_aac_fragmented.mp4");
    let data = std::fs::read(&input).unwrap();
    // The header and the first three 2 s GOPs.
    let moofs: Vec<usize> = common::top_level_boxes(&data).iter().filter(|b| &b.0 == b"moof").map(|b| b.1).collect();
    let cut = moofs[3];

    let (off, _secret) = secured(&["--live-hls", "off"]);
    let id = create_ok(&off, &c, Some(&token("off", "upload")), None);
    let r = c.get(off.at(&format!("/files/{id}/live.m3u8"))).bearer_auth(token("off", "view")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("live HLS is off"));

    let (always, _secret) = secured(&["--live-hls"]);
    let id = create_ok(&always, &c, Some(&token("always", "upload")), None);
    assert_eq!(patch(&always, &c, Some(&token("always", "upload")), &id, 0, &data[..cut]).status(), 204);
    assert!(always.data_dir.join(&id).join("live/stream.m3u8").is_file(), "kept before anyone asked");

    let (mut s, _secret) = secured(&[]);
    let (upload, view, other) = (token("live", "upload"), token("live", "view"), token("other", "view"));
    // Never watched: none, during or after.
    let alone = token("unwatched", "upload");
    let unwatched = create_ok(&s, &c, Some(&alone), None);
    assert_eq!(patch(&s, &c, Some(&alone), &unwatched, 0, &data[..cut]).status(), 204);
    assert!(!s.data_dir.join(&unwatched).join("live").exists());
    let r = patch_final(&s, &c, Some(&alone), &unwatched, cut as u64, &data[cut..], Some(data.len() as u64));
    assert_eq!(r.status(), 204);
    let r = c.get(s.at(&format!("/files/{unwatched}/live.m3u8"))).bearer_auth(&alone).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("nobody watched"));

    let id = create_ok(&s, &c, Some(&upload), None);
    assert_eq!(patch(&s, &c, Some(&upload), &id, 0, &data[..cut]).status(), 204);

    let get = |s: &Server, path: &str, token: Option<&str>| {
        let r = c.get(s.at(&format!("/files/{id}/{path}")));
        let r = match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        r.send().unwrap()
    };
    let live = |s: &Server| -> (String, Vec<String>) {
        let r = get(s, "live.m3u8", Some(&view));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
        assert!(r.text().unwrap().contains("\nstream.m3u8"));
        let text = get(s, "stream.m3u8", Some(&upload)).text().unwrap();
        let names = text.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect();
        (text, names)
    };
    let (text, names) = live(&s);
    assert!(!text.contains("#EXT-X-ENDLIST") && text.contains("#EXT-X-MAP:URI=\"init-0.mp4\""), "{text}");
    assert!(names.len() >= 2, "{text}");
    let mut first = Vec::new();
    for name in std::iter::once("init-0.mp4".to_string()).chain(names.clone()) {
        let r = get(&s, &name, Some(&view));
        assert_eq!(r.status(), 200, "{name}");
        first.push(r.bytes().unwrap().to_vec());
    }
    assert_eq!(get(&s, "live.m3u8", None).status(), 401);
    assert_eq!(get(&s, "live.m3u8", Some(&other)).status(), 403);
    assert_eq!(get(&s, &names[0], Some(&other)).status(), 403);
    for bad in ["upload.json", "input.journal", "seg-1.m4s.tmp", ".stream.m3u8.tmp", "index.m3u8", "..%2fupload.json"] {
        assert_eq!(get(&s, bad, Some(&upload)).status(), 404, "{bad}");
    }

    // Killed and restarted: the playlist is rebuilt from the journal, the same segments
    // under the same names.
    s.restart();
    let (_, again) = live(&s);
    assert_eq!(again, names);
    for (name, bytes) in std::iter::once("init-0.mp4".to_string()).chain(names.clone()).zip(&first) {
        assert_eq!(&get(&s, &name, Some(&view)).bytes().unwrap().to_vec(), bytes, "{name} after the restart");
    }

    let r = patch_final(&s, &c, Some(&upload), &id, cut as u64, &data[cut..], Some(data.len() as u64));
    assert_eq!(r.status(), 204);
    let (text, names) = live(&s);
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let mut whole = get(&s, "init-0.mp4", Some(&view)).bytes().unwrap().to_vec();
    for name in &names {
        whole.extend_from_slice(&get(&s, name, Some(&view)).bytes().unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let (hls, output) = (tmp.path().join("hls.mp4"), tmp.path().join("output.mp4"));
    std::fs::write(&hls, whole).unwrap();
    std::fs::write(&output, get(&s, "output", Some(&view)).bytes().unwrap()).unwrap();
    if common::tools(&["ffmpeg"]) {
        let strip = |p: Vec<common::FramePacket>| p.into_iter().map(|p| (p.stream, p.size, p.md5)).collect::<Vec<_>>();
        assert_eq!(strip(common::framemd5(&hls)), strip(common::framemd5(&output)));
    }
}
