//! The tus 1.0 protocol of `livemux serve`, request by request, with a plain HTTP client:
//! the OPTIONS capabilities, creation (with a length, deferred, with a body), HEAD, PATCH,
//! termination, expiration and checksum headers, and every status code the issue names
//! (400, 404, 409, 410, 412, 413, 415, 460), so that a client written from the tus
//! specification alone gets the answers the specification promises.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::Server;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

const TUS: &str = "1.0.0";
const OCTETS: &str = "application/offset+octet-stream";

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).build().unwrap()
}

/// A tus request: `Tus-Resumable: 1.0.0` set.
fn tus(c: &Client, method: Method, url: &str) -> RequestBuilder {
    c.request(method, url).header("Tus-Resumable", TUS)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().expect("header value is ASCII"))
}

/// Asserts the status and that the answer carries `Tus-Resumable: 1.0.0`; returns the
/// response.
#[track_caller]
fn expect(r: Response, status: u16, what: &str) -> Response {
    let got = r.status().as_u16();
    if got != status {
        let body = r.text().unwrap_or_default();
        panic!("{what}: status {got}, expected {status}; body: {body}");
    }
    assert_eq!(header(r.headers(), "Tus-Resumable"), Some(TUS), "{what}: Tus-Resumable on the answer");
    r
}

fn offset_of(r: &Response) -> u64 {
    header(r.headers(), "Upload-Offset").expect("Upload-Offset").parse().expect("Upload-Offset is a number")
}

/// The absolute URL of an upload from a 201's Location (absolute or relative).
fn location(s: &Server, r: &Response) -> String {
    let loc = header(r.headers(), "Location").expect("201 has a Location");
    let url = if loc.starts_with("http://") || loc.starts_with("https://") { loc.to_string() } else { s.at(loc) };
    assert!(url.starts_with(&s.at("/files/")), "Location {loc} is not under /files/");
    url
}

fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// POSTs a creation with `Upload-Length: len`; returns the upload URL.
fn create(s: &Server, c: &Client, len: u64) -> String {
    let r = tus(c, Method::POST, &s.at("/files/")).header("Upload-Length", len.to_string()).send().unwrap();
    let r = expect(r, 201, "POST Upload-Length");
    location(s, &r)
}

/// POSTs a creation with `Upload-Defer-Length: 1`; returns the upload URL.
fn create_deferred(s: &Server, c: &Client) -> String {
    let r = tus(c, Method::POST, &s.at("/files/")).header("Upload-Defer-Length", "1").send().unwrap();
    let r = expect(r, 201, "POST Upload-Defer-Length");
    location(s, &r)
}

fn patch(c: &Client, url: &str, offset: u64, body: &[u8]) -> RequestBuilder {
    tus(c, Method::PATCH, url)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", offset.to_string())
        .body(body.to_vec())
}

fn head(c: &Client, url: &str) -> Response {
    tus(c, Method::HEAD, url).send().unwrap()
}

fn status_json(c: &Client, url: &str) -> Value {
    let r = c.get(format!("{url}/status")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET status of {url}");
    r.json().unwrap()
}

/// Polls GET status until its state is `state` (finalizing may trail the last PATCH).
fn wait_state(c: &Client, url: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = status_json(c, url);
        if v["state"] == state {
            return v;
        }
        assert!(Instant::now() < deadline, "{url} never reached state {state}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real recording (the server remuxes what it receives).
fn sample() -> Vec<u8> {
    std::fs::read(common::root().join("samples/chrome_mp4_avc1_opus.mp4")).unwrap()
}

/// `livemux remux` of `data` into a file of extension `ext`, as bytes.
fn remuxed(data: &[u8], ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(format!("in.{ext}"));
    let output = dir.path().join(format!("out.{ext}"));
    std::fs::write(&input, data).unwrap();
    // --reserve-ms: what serve reserves (a finished file's reserve is sized from its duration).
    let mut cmd = common::livemux();
    let out = cmd.arg("remux").arg(&input).arg("-o").arg(&output).args(["--reserve-ms", "60000"]).output().unwrap();
    assert!(out.status.success(), "livemux remux: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&output).unwrap()
}

#[test]
fn options_announces_version_extensions_size_and_checksums() {
    let s = Server::start(&["--max-upload-bytes", "10000000"]);
    let c = client();
    // OPTIONS needs no Tus-Resumable.
    let r = c.request(Method::OPTIONS, s.at("/files/")).send().unwrap();
    assert!(matches!(r.status().as_u16(), 200 | 204), "OPTIONS: {}", r.status());
    let h = r.headers();
    assert_eq!(header(h, "Tus-Resumable"), Some(TUS));
    let versions: Vec<&str> = header(h, "Tus-Version").expect("Tus-Version").split(',').map(str::trim).collect();
    assert!(versions.contains(&TUS), "Tus-Version {versions:?}");
    let ext: Vec<&str> = header(h, "Tus-Extension").expect("Tus-Extension").split(',').map(str::trim).collect();
    for e in ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"] {
        assert!(ext.contains(&e), "Tus-Extension {ext:?} lacks {e}");
    }
    assert_eq!(header(h, "Tus-Max-Size"), Some("10000000"), "Tus-Max-Size is --max-upload-bytes");
    let algos: Vec<&str> =
        header(h, "Tus-Checksum-Algorithm").expect("Tus-Checksum-Algorithm").split(',').map(str::trim).collect();
    for a in ["sha1", "sha256", "md5"] {
        assert!(algos.contains(&a), "Tus-Checksum-Algorithm {algos:?} lacks {a}");
    }
    // The operational routes answer without tus headers.
    let r = c.get(s.at("/healthz")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().unwrap().trim(), "ok");
}

#[test]
fn create_head_patch_to_the_end_then_gone() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let len = data.len() as u64;

    // Creation with a known length (metadata: a file name; and an empty header, which
    // tuspy sends when it has no metadata, is no error).
    let r = tus(&c, Method::POST, &s.at("/files/"))
        .header("Upload-Length", len.to_string())
        .header("Upload-Metadata", format!("filename {}", base64::engine::general_purpose::STANDARD.encode("talk.mp4")))
        .send()
        .unwrap();
    let r = expect(r, 201, "POST");
    let url = location(&s, &r);
    let r = tus(&c, Method::POST, &s.at("/files/"))
        .header("Upload-Length", "10")
        .header("Upload-Metadata", "")
        .send()
        .unwrap();
    expect(r, 201, "POST with an empty Upload-Metadata");

    // HEAD of a fresh upload.
    let r = expect(head(&c, &url), 200, "HEAD fresh");
    assert_eq!(offset_of(&r), 0);
    assert_eq!(header(r.headers(), "Upload-Length"), Some(len.to_string().as_str()));
    assert_eq!(header(r.headers(), "Upload-Defer-Length"), None);
    assert_eq!(header(r.headers(), "Cache-Control"), Some("no-store"));
    let expires = header(r.headers(), "Upload-Expires").expect("HEAD of an open upload has Upload-Expires");
    assert!(expires.ends_with(" GMT"), "Upload-Expires is an RFC 9110 date: {expires}");

    // PATCH in three pieces; each answer gives the new durable offset, as HEAD does.
    let cuts = [0, 1000, len as usize / 2, len as usize];
    for w in cuts.windows(2) {
        let r = patch(&c, &url, w[0] as u64, &data[w[0]..w[1]]).send().unwrap();
        let r = expect(r, 204, "PATCH");
        assert_eq!(offset_of(&r), w[1] as u64, "PATCH answer offset");
        if w[1] < len as usize {
            assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), w[1] as u64, "HEAD after PATCH");
            let v = status_json(&c, &url);
            assert_eq!(v["state"], "recording", "{v}");
            assert_eq!(v["offset"], w[1] as u64, "{v}");
        }
    }

    // The declared length is reached: finished, and the status says what it holds.
    let v = wait_state(&c, &url, "finished");
    let id = id_of(&url);
    assert_eq!(v["offset"], len, "{v}");
    assert_eq!(v["length"], len, "{v}");
    assert_eq!(v["output"], s.output_name(&format!("{id}/recording.mp4")), "{v}");
    assert!(v["duration_ms"].as_u64().is_some_and(|d| (5500..=6500).contains(&d)), "duration_ms: {v}");
    let tracks = v["tracks"].as_array().expect("tracks");
    let kinds: Vec<(&str, &str)> =
        tracks.iter().map(|t| (t["kind"].as_str().unwrap_or(""), t["codec"].as_str().unwrap_or(""))).collect();
    assert!(kinds.contains(&("video", "h264")) && kinds.contains(&("audio", "opus")), "tracks: {v}");
    assert!(tracks.iter().all(|t| t["number"].as_u64().is_some()), "track numbers: {v}");
    // With a store the data dir is only a cache: the object is the recording.
    assert!(s.stored() || s.data_dir.join(id).join("recording.mp4").is_file(), "DATA/<id>/recording.mp4");

    // HEAD still answers; another PATCH is refused: the upload has ended.
    let r = expect(head(&c, &url), 200, "HEAD finished");
    assert_eq!(offset_of(&r), len);
    let r = patch(&c, &url, len, b"more").send().unwrap();
    expect(r, 410, "PATCH after finish");
    let r = patch(&c, &url, len, b"").send().unwrap();
    expect(r, 410, "empty PATCH after finish");

    // The output is `livemux remux` of the same bytes.
    let out = c.get(format!("{url}/output")).send().unwrap();
    assert_eq!(out.status().as_u16(), 200);
    assert_eq!(header(out.headers(), "Content-Type"), Some("video/mp4"));
    let disposition = header(out.headers(), "Content-Disposition").unwrap_or("").to_string();
    assert!(disposition.contains("talk.mp4"), "Content-Disposition names the metadata filename: {disposition}");
    assert!(out.bytes().unwrap()[..] == remuxed(&data, "mp4")[..], "output is livemux remux of the input");
}

#[test]
fn creation_with_upload_and_deferred_length() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let len = data.len() as u64;

    // creation-with-upload: the POST body is the first bytes; 201 says how many were kept.
    let r = tus(&c, Method::POST, &s.at("/files/"))
        .header("Upload-Length", len.to_string())
        .header("Content-Type", OCTETS)
        .body(data[..5000].to_vec())
        .send()
        .unwrap();
    let r = expect(r, 201, "POST with a body");
    assert_eq!(offset_of(&r), 5000, "creation-with-upload answers Upload-Offset");
    let url = location(&s, &r);
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 5000);
    let r = patch(&c, &url, 5000, &data[5000..]).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH rest")), len);
    wait_state(&c, &url, "finished");

    // Upload-Defer-Length: 1, as a live recording uploads: pieces, then the length with the
    // last one.
    let url = create_deferred(&s, &c);
    let r = expect(head(&c, &url), 200, "HEAD deferred");
    assert_eq!(header(r.headers(), "Upload-Defer-Length"), Some("1"));
    assert_eq!(header(r.headers(), "Upload-Length"), None);
    assert_eq!(header(r.headers(), "Cache-Control"), Some("no-store"));
    assert!(header(r.headers(), "Upload-Expires").is_some(), "Upload-Expires on a deferred upload");
    let v = status_json(&c, &url);
    assert!(v["length"].is_null(), "length of a deferred upload is null: {v}");
    let piece = 40_000;
    let mut at = 0;
    while at + piece < data.len() {
        let r = patch(&c, &url, at as u64, &data[at..at + piece]).send().unwrap();
        assert_eq!(offset_of(&expect(r, 204, "PATCH piece")), (at + piece) as u64);
        at += piece;
        let r = expect(head(&c, &url), 200, "HEAD deferred");
        assert_eq!(header(r.headers(), "Upload-Defer-Length"), Some("1"), "still deferred");
    }
    let r = patch(&c, &url, at as u64, &data[at..]).header("Upload-Length", len.to_string()).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "last PATCH with Upload-Length")), len);
    let r = expect(head(&c, &url), 200, "HEAD after the length");
    assert_eq!(header(r.headers(), "Upload-Length"), Some(len.to_string().as_str()));
    assert_eq!(header(r.headers(), "Upload-Defer-Length"), None);
    let v = wait_state(&c, &url, "finished");
    assert_eq!(v["length"], len, "{v}");
    let out = c.get(format!("{url}/output")).send().unwrap().bytes().unwrap();
    assert!(out[..] == remuxed(&data, "mp4")[..], "deferred output is livemux remux of the input");

    // The length may also come in a PATCH of its own before the last bytes, and only once.
    let url = create_deferred(&s, &c);
    let r = patch(&c, &url, 0, &data[..1000]).header("Upload-Length", len.to_string()).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH setting the length early")), 1000);
    let r = expect(head(&c, &url), 200, "HEAD");
    assert_eq!(header(r.headers(), "Upload-Length"), Some(len.to_string().as_str()));
    let r = patch(&c, &url, 1000, &data[1000..2000]).header("Upload-Length", (len + 1).to_string()).send().unwrap();
    expect(r, 400, "a second, different Upload-Length");
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 1000, "the refused PATCH wrote nothing");
    let r = patch(&c, &url, 1000, &data[1000..]).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH rest")), len);
    wait_state(&c, &url, "finished");

    // A length below what already arrived is refused.
    let url = create_deferred(&s, &c);
    expect(patch(&c, &url, 0, &data[..1000]).send().unwrap(), 204, "PATCH");
    let r = patch(&c, &url, 1000, &data[1000..2000]).header("Upload-Length", "1500").send().unwrap();
    let got = r.status().as_u16();
    assert!(matches!(got, 400 | 409 | 413), "Upload-Length below the data: {got}");
}

#[test]
fn errors_412_415_409_404() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let url = create(&s, &c, data.len() as u64);

    // 412: Tus-Resumable missing or of a version the server does not speak.
    for (name, value) in [("missing", None), ("wrong", Some("0.2.2"))] {
        let with = |b: RequestBuilder| match value {
            Some(v) => b.header("Tus-Resumable", v),
            None => b,
        };
        let r = with(c.post(s.at("/files/")).header("Upload-Length", "10")).send().unwrap();
        assert_eq!(r.status().as_u16(), 412, "POST, Tus-Resumable {name}");
        let versions = header(r.headers(), "Tus-Version").unwrap_or("");
        assert!(versions.contains(TUS), "412 lists Tus-Version: {versions:?}");
        let r = with(c.head(&url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 412, "HEAD, Tus-Resumable {name}");
        let r =
            with(c.patch(&url).header("Content-Type", OCTETS).header("Upload-Offset", "0").body(data[..100].to_vec()))
                .send()
                .unwrap();
        assert_eq!(r.status().as_u16(), 412, "PATCH, Tus-Resumable {name}");
        let r = with(c.delete(&url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 412, "DELETE, Tus-Resumable {name}");
    }
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 0, "nothing was written by the refused PATCHes");

    // 415: a PATCH body that is not application/offset+octet-stream.
    let r = tus(&c, Method::PATCH, &url)
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", "0")
        .body(data[..100].to_vec())
        .send()
        .unwrap();
    expect(r, 415, "PATCH with another Content-Type");
    let r = tus(&c, Method::PATCH, &url).header("Upload-Offset", "0").body(data[..100].to_vec()).send().unwrap();
    expect(r, 415, "PATCH without Content-Type");
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 0);

    // 409: an Upload-Offset that is not the upload's offset, before or after it.
    expect(patch(&c, &url, 0, &data[..1000]).send().unwrap(), 204, "PATCH");
    expect(patch(&c, &url, 0, &data[..1000]).send().unwrap(), 409, "PATCH repeated (offset behind)");
    expect(patch(&c, &url, 2000, &data[2000..3000]).send().unwrap(), 409, "PATCH ahead of the offset");
    expect(patch(&c, &url, 999, &data[999..2000]).send().unwrap(), 409, "PATCH one byte behind");
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 1000, "a 409 writes nothing");
    let r = patch(&c, &url, 1000, &data[1000..2000]).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH at the right offset")), 2000);

    // 404: an id that was never created.
    let unknown = s.at("/files/0123456789abcdef0123456789abcdef");
    expect(head(&c, &unknown), 404, "HEAD unknown");
    expect(patch(&c, &unknown, 0, &data[..10]).send().unwrap(), 404, "PATCH unknown");
    expect(tus(&c, Method::DELETE, &unknown).send().unwrap(), 404, "DELETE unknown");
    assert_eq!(c.get(format!("{unknown}/status")).send().unwrap().status().as_u16(), 404, "status unknown");
    assert_eq!(c.get(format!("{unknown}/output")).send().unwrap().status().as_u16(), 404, "output unknown");
    // Ids that could name a path are simply unknown (or refused), never a file outside.
    for bad in ["/files/.hidden", "/files/a%2Fb", "/files/a%00b"] {
        let got = head(&c, &s.at(bad)).status().as_u16();
        assert!(matches!(got, 400 | 404), "HEAD {bad}: {got}");
    }
}

#[test]
fn errors_400_bad_header_values() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let post = || tus(&c, Method::POST, &s.at("/files/"));

    // Creation: exactly one of Upload-Length (a non-negative integer) and
    // Upload-Defer-Length: 1.
    let cases: [(&str, Vec<(&str, &str)>); 7] = [
        ("neither length header", vec![]),
        ("both length headers", vec![("Upload-Length", "100"), ("Upload-Defer-Length", "1")]),
        ("negative Upload-Length", vec![("Upload-Length", "-1")]),
        ("non-numeric Upload-Length", vec![("Upload-Length", "ten")]),
        ("Upload-Length past u64", vec![("Upload-Length", "99999999999999999999999")]),
        ("Upload-Defer-Length other than 1", vec![("Upload-Defer-Length", "2")]),
        ("Upload-Metadata not base64", vec![("Upload-Length", "100"), ("Upload-Metadata", "filename !!not base64!!")]),
    ];
    for (what, headers) in cases {
        let mut b = post();
        for (k, v) in headers {
            b = b.header(k, v);
        }
        expect(b.send().unwrap(), 400, what);
    }

    // PATCH: Upload-Offset must be a non-negative integer; a checksum of an unknown
    // algorithm is a bad request (not a mismatch).
    let url = create(&s, &c, data.len() as u64);
    for bad in ["-1", "abc", "", "1.5", "0x10", "99999999999999999999999"] {
        let r = tus(&c, Method::PATCH, &url)
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", bad)
            .body(data[..100].to_vec())
            .send()
            .unwrap();
        expect(r, 400, &format!("PATCH Upload-Offset {bad:?}"));
    }
    let r = tus(&c, Method::PATCH, &url).header("Content-Type", OCTETS).body(data[..100].to_vec()).send().unwrap();
    expect(r, 400, "PATCH without Upload-Offset");
    let r = patch(&c, &url, 0, &data[..100]).header("Upload-Checksum", "crc99 AAAA").send().unwrap();
    expect(r, 400, "PATCH with an unknown checksum algorithm");
    let r = patch(&c, &url, 0, &data[..100]).header("Upload-Checksum", "sha1").send().unwrap();
    expect(r, 400, "PATCH with a checksum without a value");
    // Upload-Length in a PATCH of an upload whose length is already known.
    let r = patch(&c, &url, 0, &data[..100]).header("Upload-Length", (data.len() + 5).to_string()).send().unwrap();
    expect(r, 400, "PATCH changing a declared Upload-Length");
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 0, "a 400 writes nothing");
}

#[test]
fn errors_413_too_large() {
    let s = Server::start(&["--max-upload-bytes", "100000"]);
    let c = client();
    let data = sample();

    // A declared length past --max-upload-bytes.
    let r = tus(&c, Method::POST, &s.at("/files/")).header("Upload-Length", "100001").send().unwrap();
    expect(r, 413, "POST Upload-Length past the limit");
    let url = create(&s, &c, 100_000);

    // A body past the declared length (PATCH and creation-with-upload).
    let small = create(&s, &c, 1000);
    expect(patch(&c, &small, 0, &data[..1001]).send().unwrap(), 413, "PATCH past the declared length");
    let r = tus(&c, Method::POST, &s.at("/files/"))
        .header("Upload-Length", "1000")
        .header("Content-Type", OCTETS)
        .body(data[..1001].to_vec())
        .send()
        .unwrap();
    expect(r, 413, "POST body past its Upload-Length");
    assert_eq!(offset_of(&expect(head(&c, &small), 200, "HEAD")), 0, "a 413 writes nothing");

    // A deferred upload growing past the limit, and a length set past it. The refused
    // bodies are small: the server answers before reading a refused body and closes the
    // connection, which a client still sending a large one sees as a reset, not a 413.
    let deferred = create_deferred(&s, &c);
    expect(patch(&c, &deferred, 0, &data[..99_000]).send().unwrap(), 204, "PATCH");
    expect(patch(&c, &deferred, 99_000, &data[99_000..100_001]).send().unwrap(), 413, "deferred upload past the limit");
    let r = patch(&c, &deferred, 99_000, &data[99_000..99_100]).header("Upload-Length", "100001").send().unwrap();
    expect(r, 413, "Upload-Length past the limit in a PATCH");
    assert_eq!(offset_of(&expect(head(&c, &deferred), 200, "HEAD")), 99_000, "a 413 writes nothing");

    // Up to the limit is fine.
    expect(patch(&c, &url, 0, &data[..100_000]).send().unwrap(), 204, "PATCH up to the limit");
}

#[test]
fn checksum_460_and_accepted() {
    use sha1::Digest as _;
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let url = create(&s, &c, data.len() as u64);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);

    let piece = &data[..4096];
    let good = format!("sha1 {}", b64(&sha1::Sha1::digest(piece)));
    let bad = format!("sha1 {}", b64(&sha1::Sha1::digest(&data[1..4097])));
    let r = patch(&c, &url, 0, piece).header("Upload-Checksum", bad).send().unwrap();
    expect(r, 460, "PATCH with a wrong sha1");
    assert_eq!(offset_of(&expect(head(&c, &url), 200, "HEAD")), 0, "a 460 keeps none of the bytes");
    let r = patch(&c, &url, 0, piece).header("Upload-Checksum", good).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH with the right sha1")), 4096);

    let next = &data[4096..9000];
    let sha256 = format!("sha256 {}", b64(&sha2::Sha256::digest(next)));
    let r = patch(&c, &url, 4096, next).header("Upload-Checksum", sha256).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH with the right sha256")), 9000);
    let next = &data[9000..12000];
    let md5 = format!("md5 {}", b64(&md5::Md5::digest(next)));
    let r = patch(&c, &url, 9000, next).header("Upload-Checksum", md5).send().unwrap();
    assert_eq!(offset_of(&expect(r, 204, "PATCH with the right md5")), 12000);

    // The rest without a checksum; the output is whole.
    let r = patch(&c, &url, 12000, &data[12000..]).send().unwrap();
    expect(r, 204, "PATCH rest");
    wait_state(&c, &url, "finished");
    let out = c.get(format!("{url}/output")).send().unwrap().bytes().unwrap();
    assert!(out[..] == remuxed(&data, "mp4")[..], "output after checksummed PATCHes");
}

#[test]
fn delete_terminates_and_removes() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let url = create(&s, &c, data.len() as u64);
    let id = id_of(&url).to_string();
    expect(patch(&c, &url, 0, &data[..50_000]).send().unwrap(), 204, "PATCH");
    assert!(s.data_dir.join(&id).is_dir(), "DATA/<id> exists while recording");

    expect(tus(&c, Method::DELETE, &url).send().unwrap(), 204, "DELETE");
    assert!(!s.data_dir.join(&id).exists(), "DELETE removes DATA/<id>");
    // Gone: 404 if forgotten, 410 if remembered as terminated (both allowed by tus).
    for (what, r) in [
        ("HEAD after DELETE", head(&c, &url)),
        ("PATCH after DELETE", patch(&c, &url, 50_000, &data[50_000..60_000]).send().unwrap()),
        ("DELETE after DELETE", tus(&c, Method::DELETE, &url).send().unwrap()),
    ] {
        let got = r.status().as_u16();
        assert!(matches!(got, 404 | 410), "{what}: {got}");
    }
    let r = c.get(format!("{url}/status")).send().unwrap();
    match r.status().as_u16() {
        404 | 410 => {}
        200 => assert_eq!(r.json::<Value>().unwrap()["state"], "terminated"),
        got => panic!("status after DELETE: {got}"),
    }
    let got = c.get(format!("{url}/output")).send().unwrap().status().as_u16();
    assert!(matches!(got, 404 | 410), "output after DELETE: {got}");
    assert!(!s.data_dir.join(&id).exists(), "nothing was recreated");

    // A finished upload may be deleted too (the backend took its file).
    let url = create(&s, &c, data.len() as u64);
    expect(patch(&c, &url, 0, &data).send().unwrap(), 204, "PATCH all");
    wait_state(&c, &url, "finished");
    expect(tus(&c, Method::DELETE, &url).send().unwrap(), 204, "DELETE finished");
    assert!(!s.data_dir.join(id_of(&url)).exists(), "DELETE removes a finished upload");
}

#[test]
fn output_range_requests() {
    let s = Server::start(&[]);
    let c = client();
    let data = sample();
    let url = create(&s, &c, data.len() as u64);
    expect(patch(&c, &url, 0, &data).send().unwrap(), 204, "PATCH all");
    wait_state(&c, &url, "finished");
    let whole = remuxed(&data, "mp4");
    let n = whole.len();

    let r = c.get(format!("{url}/output")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(r.headers(), "Accept-Ranges"), Some("bytes"));
    assert_eq!(header(r.headers(), "Content-Length"), Some(n.to_string().as_str()));
    for (range, from, to) in [
        ("bytes=0-99".to_string(), 0, 99),
        (format!("bytes={}-", n - 1000), n - 1000, n - 1),
        ("bytes=-500".to_string(), n - 500, n - 1),
        (format!("bytes=1000-{}", n + 5000), 1000, n - 1),
    ] {
        let r = c.get(format!("{url}/output")).header("Range", &range).send().unwrap();
        assert_eq!(r.status().as_u16(), 206, "{range}");
        assert_eq!(header(r.headers(), "Content-Range"), Some(format!("bytes {from}-{to}/{n}").as_str()), "{range}");
        assert!(r.bytes().unwrap()[..] == whole[from..=to], "{range}: body");
    }
    let r = c.get(format!("{url}/output")).header("Range", format!("bytes={}-", n + 10)).send().unwrap();
    assert_eq!(r.status().as_u16(), 416, "a range past the end");
    // HEAD of the output: the length, no body.
    let r = c.head(format!("{url}/output")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(r.headers(), "Content-Length"), Some(n.to_string().as_str()));
}
