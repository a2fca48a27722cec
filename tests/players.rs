//! Outputs play in real players: GStreamer (playbin, every stream decoded) and Chromium
//! (a `<video>` element played to the end, headless; regular MP4s also seeked to the middle
//! first).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// Fragmented MP4 outputs (`--to fmp4`) of the fixtures and the Chromium recordings.
fn outputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut inputs: Vec<PathBuf> = ["h264_aac_moov_end.mp4", "hevc_aac_moov_end.mov", "h264_aac_fragmented.mp4"]
        .iter()
        .map(|n| generated_file(n))
        .collect();
    inputs.extend(browser_mp4_names().into_iter().map(|n| browser_file(n, dir)));
    let mut outputs: Vec<(String, PathBuf)> = inputs
        .into_iter()
        .map(|input| {
            let name = input.file_name().unwrap().to_string_lossy().into_owned();
            let out = dir.join(format!("{name}.out.mp4"));
            let res = livemux().arg("remux").arg(&input).args(["--to", "fmp4", "-o"]).arg(&out).output().unwrap();
            assert!(res.status.success(), "{name}: {}", String::from_utf8_lossy(&res.stderr));
            (name, out)
        })
        .collect();
    // An MP4 grown in place by `livemux append`: a fragmented TARGET (rewritten into the
    // two-slot layout with an mdat of size 0), then an append in place.
    let appended = dir.join("appended.mp4");
    std::fs::copy(generated_file("h264_aac_fragmented.mp4"), &appended).unwrap();
    for source in ["h264_aac_moov_end.mp4", "h264_aac_faststart.mp4[0:-1]"] {
        let res = livemux().arg("append").arg(&appended).arg(generated().join(source)).output().unwrap();
        assert!(res.status.success(), "append {source}: {}", String::from_utf8_lossy(&res.stderr));
    }
    outputs.push(("appended.mp4".into(), appended));
    outputs
}

#[test]
fn gstreamer_plays_every_output() {
    if !tools(&["gst-launch-1.0"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, out) in outputs(dir.path()) {
        let res = Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("playbin")
            .arg(format!("uri=file://{}", out.display()))
            .arg("video-sink=fakesink sync=false")
            .arg("audio-sink=fakesink sync=false")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&res.stdout), String::from_utf8_lossy(&res.stderr));
        assert!(res.status.success() && !text.contains("ERROR"), "{name}: GStreamer failed: {text}");
    }
}

/// Plays the media to the end at 8x; with `?seek`, first seeks to the middle and reports
/// where the seek landed.
const PAGE: &str = r#"<!doctype html><title>loading</title><video id=v muted playsinline></video><script>
const v = document.getElementById('v');
const seek = location.search.includes('seek');
let seeked = -1;
const report = r => fetch('/result?' + encodeURIComponent(r));
const play = () => { v.playbackRate = 8; v.play().catch(e => report('play-error ' + e)); };
v.onerror = () => report('error ' + (v.error && v.error.code));
v.onended = () => report('ended ' + v.currentTime + ' ' + v.duration + (seek ? ' seeked ' + seeked + ' ' + v.duration / 2 : ''));
v.onseeked = () => { if (seeked < 0) { seeked = v.currentTime; play(); } };
v.onloadedmetadata = () => { if (seek) { v.currentTime = v.duration / 2; } else { play(); } };
v.src = '/media.mp4';
setTimeout(() => report('timeout ' + v.currentTime + ' ' + v.duration), 20000);
</script>"#;

/// Serves the page and `media` on loopback until the page reports; returns the report.
fn play_in_chromium(media: &Path, seek: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = std::fs::read(media).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut range: Option<(usize, Option<usize>)> = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                    range = Some((a.parse().unwrap_or(0), b.parse().ok()));
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            if let Some(q) = path.strip_prefix("/result?") {
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                let _ = tx.send(q.replace("%20", " "));
                return;
            }
            let (status, body, ctype, extra) = if path == "/media.mp4" {
                match range {
                    Some((a, b)) if a < data.len() => {
                        let end = b.map_or(data.len() - 1, |b| b.min(data.len() - 1));
                        let extra = format!("Content-Range: bytes {a}-{end}/{}\r\n", data.len());
                        ("206 Partial Content", data[a..=end].to_vec(), "video/mp4", extra)
                    }
                    _ => ("200 OK", data.clone(), "video/mp4", String::new()),
                }
            } else {
                ("200 OK", PAGE.as_bytes().to_vec(), "text/html", String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
            let _ = stream.read(&mut [0u8; 1]);
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let mut chrome = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{port}/{}", if seek { "?seek" } else { "" }))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| "no report".into());
    let _ = chrome.kill();
    let _ = chrome.wait();
    result
}

#[test]
fn chromium_plays_every_output_to_the_end() {
    if !tools(&["chromium"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, out) in outputs(dir.path()) {
        if name.starts_with("hevc") {
            continue; // Chromium on Linux has no HEVC decoder.
        }
        let report = play_in_chromium(&out, false);
        eprintln!("{name}: chromium: {report}");
        let parts: Vec<&str> = report.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"ended"), "{name}: {report}");
        let (at, duration): (f64, f64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        assert!(duration > 5.0 && (at - duration).abs() < 0.1, "{name}: {report}");
    }
}

/// Regular MP4s (`--to mp4` with the index first and last, `livemux finalize` on Chromium
/// recordings): Chromium seeks to the middle, then plays to the end.
#[test]
fn chromium_seeks_and_plays_regular_mp4_outputs_to_the_end() {
    if !tools(&["chromium"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (input, args) in [
        (generated_file("h264_aac_moov_end.mp4"), &["--to", "mp4"][..]),
        (generated_file("h264_aac_fragmented.mp4"), &["--to", "mp4", "--reserve-ms", "0"][..]),
        (browser_file("chrome_mp4_av01_opus", dir.path()), &["--to", "mp4"][..]),
    ] {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(format!("{name}.{}.mp4", args.len()));
        let res = livemux().arg("remux").arg(&input).arg("-o").arg(&out).args(args).output().unwrap();
        assert!(res.status.success(), "{name}: {}", String::from_utf8_lossy(&res.stderr));
        files.push((format!("{name} {args:?}"), out));
    }
    for name in ["chrome_mp4_vp9_opus", "chrome_audio_mp4_opus"] {
        let copy = browser_file(name, dir.path());
        let res = livemux().arg("finalize").arg(&copy).output().unwrap();
        assert!(res.status.success(), "{name}: {}", String::from_utf8_lossy(&res.stderr));
        files.push((format!("{name} finalized"), copy));
    }
    for (name, file) in files {
        let report = play_in_chromium(&file, true);
        eprintln!("{name}: chromium: {report}");
        let parts: Vec<&str> = report.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"ended"), "{name}: {report}");
        let num = |i: usize| -> f64 { parts[i].parse().unwrap() };
        let (at, duration, seeked, middle) = (num(1), num(2), num(4), num(5));
        assert!(duration > 5.0 && (at - duration).abs() < 0.1, "{name}: {report}");
        assert!((seeked - middle).abs() < 0.5, "{name}: the seek landed at {seeked}, not near {middle}: {report}");
    }
}
