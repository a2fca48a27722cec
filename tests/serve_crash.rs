//! `livemux serve` under crashes: SIGKILL at random moments during uploads, SIGTERM during
//! an upload, and the time a recording takes to resume after a restart. After each
//! restart the durable offset (HEAD) is at least every offset acknowledged before, the
//! upload goes on from it, and the finished output is byte-identical to `livemux remux`
//! of the same bytes. Plus the journal alone under SIGKILL (a child process appending).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::Lcg;

const TUS: &str = "1.0.0";

/// A minimal tus 1.0 client (creation with deferred length, HEAD, PATCH), as the protocol
/// says and no more.
struct Tus {
    http: reqwest::blocking::Client,
}

/// What a HEAD says.
#[derive(Debug)]
struct Head {
    offset: u64,
    /// `Upload-Length`, once the server knows it.
    length: Option<u64>,
}

/// A body that trickles (so that a kill lands in the middle of a request).
struct Slow {
    data: Vec<u8>,
    at: usize,
    step: usize,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.data.len() {
            return Ok(0);
        }
        if self.at > 0 {
            std::thread::sleep(self.pause);
        }
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Tus {
    fn new() -> Tus {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Tus { http }
    }

    /// POST /files/ with `Upload-Defer-Length: 1`; returns the upload's id.
    fn create(&self, server: &Server, filename: &str) -> String {
        let meta = format!("filename {}", base64(filename.as_bytes()));
        let res = self
            .http
            .post(server.at("/files/"))
            .header("Tus-Resumable", TUS)
            .header("Upload-Defer-Length", "1")
            .header("Upload-Metadata", meta)
            .send()
            .expect("POST /files/");
        assert_eq!(res.status().as_u16(), 201, "POST /files/: {:?}", res.text());
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let id = location.trim_end_matches('/').rsplit('/').next().unwrap().to_string();
        assert!(!id.is_empty(), "Location {location}");
        id
    }

    fn head(&self, server: &Server, id: &str) -> reqwest::Result<Head> {
        let res = self.http.head(server.at(&format!("/files/{id}"))).header("Tus-Resumable", TUS).send()?;
        assert_eq!(res.status().as_u16(), 200, "HEAD /files/{id}");
        let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let offset = header("upload-offset").expect("HEAD without Upload-Offset");
        Ok(Head { offset, length: header("upload-length") })
    }

    /// PATCH `data` at `offset` (with `Upload-Length` when given); `Ok(new offset)` on 204,
    /// `Err` when the server went away (a transport error).
    fn patch(
        &self,
        server: &Server,
        id: &str,
        offset: u64,
        data: &[u8],
        length: Option<u64>,
        slow: bool,
    ) -> Result<u64, reqwest::Error> {
        let body = if slow && data.len() > 4096 {
            let slow = Slow { data: data.to_vec(), at: 0, step: 4096, pause: Duration::from_millis(2) };
            reqwest::blocking::Body::sized(slow, data.len() as u64)
        } else {
            reqwest::blocking::Body::from(data.to_vec())
        };
        let mut req = self
            .http
            .patch(server.at(&format!("/files/{id}")))
            .header("Tus-Resumable", TUS)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(body);
        if let Some(length) = length {
            req = req.header("Upload-Length", length.to_string());
        }
        let res = req.send()?;
        let status = res.status().as_u16();
        let new: Option<u64> =
            res.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        assert_eq!(status, 204, "PATCH /files/{id} at {offset} (+{}): {:?}", data.len(), res.text());
        let new = new.expect("204 without Upload-Offset");
        assert_eq!(new, offset + data.len() as u64, "PATCH at {offset} acknowledged a different offset");
        Ok(new)
    }

    fn status(&self, server: &Server, id: &str) -> reqwest::Result<serde_json::Value> {
        let res = self.http.get(server.at(&format!("/files/{id}/status"))).header("Tus-Resumable", TUS).send()?;
        assert_eq!(res.status().as_u16(), 200, "GET /files/{id}/status");
        res.json()
    }

    /// Waits for the upload to be finished (finalized) and returns its output.
    fn finished_output(&self, server: &mut Server, id: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.status(server, id).expect("GET status");
            match status["state"].as_str() {
                Some("finished") => break,
                Some("recording") => {}
                other => panic!("upload {id} ended {other:?}: {status}"),
            }
            assert!(Instant::now() < deadline, "upload {id} not finished after 120 s: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let res = self.http.get(server.at(&format!("/files/{id}/output"))).send().expect("GET output");
        assert_eq!(res.status().as_u16(), 200, "GET /files/{id}/output");
        res.bytes().unwrap().to_vec()
    }
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `livemux remux input -o <temp dir>/expected.<ext>`, read back.
fn remux(input: &Path, ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("expected.{ext}"));
    // --reserve-ms: what serve reserves (a finished file's reserve is sized from its duration).
    let res = common::livemux().arg("remux").arg(input).arg("-o").arg(&out).args(["--reserve-ms", "60000"]).output();
    let res = res.unwrap();
    assert!(res.status.success(), "livemux remux {}: {}", input.display(), String::from_utf8_lossy(&res.stderr));
    std::fs::read(&out).unwrap()
}

fn assert_identical(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: the output ({} bytes) differs from livemux remux of the same bytes ({} bytes) from byte {first}",
            got.len(),
            want.len()
        );
    }
}

/// Runs the upload of `data` to its end, from wherever the server's durable offset is,
/// in pieces of `min..max` bytes. With `kills`, SIGKILLs the server at random moments
/// (before a piece, with probability 1/2, after a random delay of up to 40 ms: often in
/// the middle of the request, sometimes in the fsync or between requests) and restarts
/// it, until that many kills happened. Checks after each restart that the durable offset
/// did not go back. Returns the number of kills.
#[allow(clippy::too_many_arguments)]
fn upload(
    tus: &Tus,
    server: &mut Server,
    id: &str,
    data: &[u8],
    (min, max): (usize, usize),
    rng: &mut Lcg,
    kills: usize,
    acked: &mut u64,
) -> usize {
    let total = data.len() as u64;
    let mut killed = 0;
    let mut restarts_without_progress = 0;
    loop {
        let head = tus.head(server, id).unwrap_or_else(|e| panic!("HEAD after a restart: {e}"));
        assert!(head.offset >= *acked, "durable offset {} is below the acknowledged {}", head.offset, acked);
        assert!(head.offset <= total, "durable offset {} past the {total} bytes sent", head.offset);
        let offset = head.offset;
        if offset == total && head.length == Some(total) {
            break;
        }
        let n = (min as u64 + rng.next((max - min) as u64 + 1)).min(total - offset) as usize;
        let piece = &data[offset as usize..offset as usize + n];
        let last = offset + n as u64 == total;
        let length = (last && head.length.is_none()).then_some(total);
        let killer = (killed < kills && rng.next(2) == 0).then(|| {
            let (pid, delay) = (server.pid(), rng.next(40));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                common::signal(pid, "KILL");
            })
        });
        let result = tus.patch(server, id, offset, piece, length, true);
        if let Ok(new) = result {
            *acked = new;
        }
        if let Some(killer) = killer {
            killer.join().unwrap();
            server.kill9();
            server.restart();
            killed += 1;
            restarts_without_progress += 1;
            assert!(restarts_without_progress < 50, "no progress over 50 restarts");
        } else {
            result.unwrap_or_else(|e| panic!("PATCH at {offset} without a kill: {e}"));
            restarts_without_progress = 0;
        }
    }
    killed
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = [
        (common::root().join("samples/chrome_mp4_avc1_opus.mp4"), "mp4"),
        (common::browser_file("chrome_webm_vp9_opus", dir.path()), "webm"),
    ];
    let tus = Tus::new();
    let mut server = Server::start(&[]);
    let mut rng = Lcg(0x5eed);
    let mut total_kills = 0;
    for (input, ext) in &fixtures {
        let data = std::fs::read(input).unwrap();
        let id = tus.create(&server, &format!("in.{ext}"));
        let mut acked = 0;
        // Pieces of 4-24 KB: a 200-300 KB recording in ~20 PATCHes.
        let kills = upload(&tus, &mut server, &id, &data, (4 << 10, 24 << 10), &mut rng, 6, &mut acked);
        // The upload ended with every byte durable (HEAD said so); the last PATCH's answer may
        // have been lost to a kill after its bytes were durable, so `acked` may be behind.
        assert!(acked <= data.len() as u64);
        // Once more right after the last acknowledgement: the finalization must resume too.
        let pid = server.pid();
        std::thread::sleep(Duration::from_millis(rng.next(20)));
        common::signal(pid, "KILL");
        server.kill9();
        server.restart();
        let head = tus.head(&server, &id).unwrap();
        assert_eq!((head.offset, head.length), (data.len() as u64, Some(data.len() as u64)));
        let got = tus.finished_output(&mut server, &id);
        let want = remux(input, ext);
        assert_identical(&got, &want, &format!("{} after {} kills", input.display(), kills + 1));
        eprintln!("{}: {} bytes through {} SIGKILLs, output identical", input.display(), data.len(), kills + 1);
        total_kills += kills + 1;
    }
    assert!(total_kills >= 10, "only {total_kills} kills");
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::browser_file("chrome_mp4_avc1_opus", dir.path());
    let data = std::fs::read(&input).unwrap();
    let tus = Tus::new();
    let mut server = Server::start(&[]);
    let id = tus.create(&server, "in.mp4");
    let first = 50_000.min(data.len() / 3);
    let mut acked = tus.patch(&server, &id, 0, &data[..first], None, false).unwrap();
    // A PATCH that takes ~0.5 s to send, and SIGTERM 100 ms into it.
    let second = (first + 100_000).min(data.len() - 1);
    let (url, id2, piece) = (server.url.clone(), id.clone(), data[first..second].to_vec());
    let in_flight = std::thread::spawn(move || {
        let slow = Slow { data: piece.clone(), at: 0, step: 4096, pause: Duration::from_millis(20) };
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .patch(format!("{url}/files/{id2}"))
            .header("Tus-Resumable", TUS)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", first.to_string())
            .body(reqwest::blocking::Body::sized(slow, piece.len() as u64))
            .send()
            .map(|r| (r.status().as_u16(), r.headers().get("upload-offset").map(|v| v.to_str().unwrap().to_string())))
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let status = server.terminate();
    eprintln!("SIGTERM: exited {status} after {:?}", t.elapsed());
    assert!(status.success(), "livemux serve exited {status} on SIGTERM");
    let answer = in_flight.join().unwrap();
    assert_eq!(
        answer.as_ref().ok(),
        Some(&(204, Some(second.to_string()))),
        "the request in flight at SIGTERM was not finished: {answer:?}"
    );
    acked = acked.max(second as u64);
    server.restart();
    let head = tus.head(&server, &id).unwrap();
    assert_eq!(head.offset, acked, "after SIGTERM and restart");
    let mut rng = Lcg(7);
    upload(&tus, &mut server, &id, &data, (10_000, 40_000), &mut rng, 0, &mut acked);
    let got = tus.finished_output(&mut server, &id);
    assert_identical(&got, &remux(&input, "mp4"), "after SIGTERM");
    // A clean stop once more, with nothing in flight.
    assert!(server.terminate().success());
}

#[test]
fn a_recording_resumes_within_a_second_after_a_restart() {
    if !common::tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.mp4");
    // A few MB of fragmented MP4 (one fragment per second), as a recorder streams it.
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "8"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg failed");
    let data = std::fs::read(&input).unwrap();
    assert!(data.len() > 2 << 20, "only {} bytes", data.len());
    let tus = Tus::new();
    let mut server = Server::start(&[]);
    let id = tus.create(&server, "big.mp4");
    // All but the last ~10 %, in 256 KB pieces.
    let mut acked = 0u64;
    let stop = data.len() as u64 * 9 / 10;
    while acked < stop {
        let n = (256 << 10).min(stop - acked) as usize;
        acked = tus.patch(&server, &id, acked, &data[acked as usize..acked as usize + n], None, false).unwrap();
    }
    server.kill9();
    server.restart();
    let t = Instant::now();
    let head = tus.head(&server, &id).unwrap();
    let after_head = t.elapsed();
    assert_eq!(head.offset, acked);
    let n = (64 << 10).min(data.len() - acked as usize);
    acked = tus.patch(&server, &id, acked, &data[acked as usize..acked as usize + n], None, false).unwrap();
    let resumed = t.elapsed();
    eprintln!(
        "resume of a {:.1} MB recording after kill -9: first HEAD {:?}, first PATCH answered after {:?}",
        stop as f64 / 1e6,
        after_head,
        resumed
    );
    // The goal is < 1 s; the bound holds on a loaded 2-core machine.
    assert!(resumed < Duration::from_secs(5), "resume took {resumed:?}");
    let mut rng = Lcg(3);
    upload(&tus, &mut server, &id, &data, (256 << 10, 512 << 10), &mut rng, 0, &mut acked);
    let got = tus.finished_output(&mut server, &id);
    assert_identical(&got, &remux(&input, "mp4"), "resumed recording");
}

/// The payload of the `i`-th append of the journal child: 1-40 KB, recognizable bytes.
fn journal_piece(i: usize) -> Vec<u8> {
    let n = 1 + (i * 7919) % 40_000;
    (0..n).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i as u32 * 17) as u8).collect()
}

#[test]
fn journal_survives_sigkill_during_appends() {
    use livemux::server::journal::Journal;
    // The child: appends forever, fdatasyncs every few appends and says how far it is durable.
    if let Ok(path) = std::env::var("LIVEMUX_JOURNAL_CHILD") {
        let mut journal = Journal::create(Path::new(&path)).unwrap();
        let mut out = std::io::stdout();
        // Bounded, should the parent die before it kills the child.
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0.. {
            if journal.len() > 64 << 20 || Instant::now() > deadline {
                break;
            }
            journal.append(&journal_piece(i)).unwrap();
            if i % 3 == 2 {
                journal.file().sync_data().unwrap();
                writeln!(out, "acked {} {}", i + 1, journal.len()).unwrap();
                out.flush().unwrap();
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(42);
    for round in 0..6 {
        let path = dir.path().join(format!("j{round}"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["journal_survives_sigkill_during_appends", "--exact", "--nocapture", "--test-threads", "1"])
            .env("LIVEMUX_JOURNAL_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wait_for = 1 + rng.next(30);
        let (mut acked_records, mut acked_len) = (0usize, 0u64);
        for line in lines.by_ref() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("acked ") else { continue };
            let mut f = rest.split(' ').map(|v| v.parse::<u64>().unwrap());
            (acked_records, acked_len) = (f.next().unwrap() as usize, f.next().unwrap());
            if acked_records as u64 / 3 >= wait_for {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next(3000)));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut replayed = Vec::new();
        let journal = Journal::open(&path, |b| {
            replayed.push(b);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(
            replayed.len() >= acked_records,
            "round {round}: {} records, {acked_records} acknowledged",
            replayed.len()
        );
        assert!(journal.len() >= acked_len);
        for (i, payload) in replayed.iter().enumerate() {
            assert_eq!(&payload[..], &journal_piece(i)[..], "round {round}: record {i}");
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), journal.file_len());
        eprintln!("round {round}: {} records replayed, {acked_records} acknowledged", replayed.len());
    }
}
