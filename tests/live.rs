//! Live input: output must follow the input within 50 ms, and a growing file is followed
//! until its writer is done.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Writes Chromium's blobs with pauses and records when output bytes come out. All output
/// caused by a blob must arrive within 50 ms of it; nothing may trickle in later.
#[test]
fn output_follows_each_input_blob_within_50_ms() {
    const PAUSE: Duration = Duration::from_millis(250);
    const BOUND: Duration = Duration::from_millis(50);
    for name in ["chrome_mp4_avc1_opus", "chrome_mp4_vp9_opus"] {
        let chunks = browser_chunks(name);
        let mut child =
            livemux().args(["remux", "-", "-o", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let arrivals: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
        let log = arrivals.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut all = Vec::new();
            loop {
                let n = stdout.read(&mut buf).unwrap();
                if n == 0 {
                    return all;
                }
                log.lock().unwrap().push((Instant::now(), n));
                all.extend_from_slice(&buf[..n]);
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let mut writes = Vec::new();
        for c in &chunks {
            writes.push(Instant::now());
            stdin.write_all(c).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(PAUSE);
        }
        let before_eof: usize = arrivals.lock().unwrap().iter().map(|a| a.1).sum();
        drop(stdin);
        let all = reader.join().unwrap();
        assert!(child.wait().unwrap().success());
        for (t, n) in arrivals.lock().unwrap().iter().filter(|a| a.0 < *writes.last().unwrap() + PAUSE) {
            let since = writes.iter().rev().find(|w| *w <= t).unwrap();
            assert!(
                t.duration_since(*since) <= BOUND,
                "{name}: {n} bytes came {:?} after the blob that caused them",
                t.duration_since(*since)
            );
        }
        // Only the fragment that the end of input closes may wait for the end.
        let moofs = top_level_boxes(&all).iter().filter(|b| &b.0 == b"moof").count();
        let early = top_level_boxes(&all[..before_eof]).iter().filter(|b| &b.0 == b"moof").count();
        assert!(early + 1 >= moofs, "{name}: only {early} of {moofs} fragments left before the input ended");
    }
}

#[test]
fn follows_a_growing_file_until_its_writer_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let name = "chrome_mp4_avc1_opus";
    let reference = dir.path().join("reference.mp4");
    let whole = browser_file(name, dir.path());
    // --reserve-ms: what a live input gets (a finished file's reserve is sized from its duration).
    let remux = livemux().arg("remux").arg(&whole).arg("-o").arg(&reference).args(["--reserve-ms", "60000"]).status();
    assert!(remux.unwrap().success());

    let growing = dir.path().join("growing.mp4");
    std::fs::write(&growing, b"").unwrap();
    let out = dir.path().join("followed.mp4");
    let mut child = livemux()
        .arg("remux")
        .arg(&growing)
        .args(["--follow", "--idle-timeout-ms", "10000", "-o"])
        .arg(&out)
        .spawn()
        .unwrap();
    // An upload handler: open, append one blob, close; with pauses.
    for c in browser_chunks(name) {
        let mut f = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
        f.write_all(&c).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(60));
    }
    let done = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(done.elapsed() < Duration::from_secs(3), "ended {:?} after the writer closed", done.elapsed());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&reference).unwrap());
}
