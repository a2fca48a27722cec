//! What the command line shows: `--events` lines against `schemas/events.schema.json`,
//! `-q`, `-v`, `RUST_LOG`, `--log-format json`, and progress on a terminal (a pty from
//! `script`) but not on a pipe.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{jsonschema_ready, livemux, root, tools, validate_json};
use serde_json::Value;

fn sample() -> PathBuf {
    root().join("samples/chrome_mp4_avc1_opus.mp4")
}

fn reference() -> PathBuf {
    root().join("samples/chrome_mp4_avc1_opus_probe.mp4")
}

/// Runs livemux with `args`; asserts exit 0; returns (stdout, stderr).
fn ok(args: &[&std::ffi::OsStr]) -> (String, String) {
    let out = livemux().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "livemux {args:?}: {}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// The lines, validated against the schema, parsed; checks the frame every run has.
fn events(lines: &str, command: &str) -> Vec<Value> {
    validate_json("events.schema.json", lines, true);
    let events: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.first().unwrap()["event"], "started", "{lines}");
    assert_eq!(events[0]["command"], command);
    assert_eq!(events.last().unwrap()["event"], "finished", "{lines}");
    assert_eq!(events.iter().filter(|e| e["event"] == "started" || e["event"] == "finished").count(), 2);
    events
}

fn of<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn events_of_a_remux_count_every_fragment_of_the_file() {
    if !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for to in ["mp4", "fmp4", "webm", "hls"] {
        let out = dir.path().join(format!("out-{to}"));
        let log = dir.path().join(format!("{to}.jsonl"));
        ok(args![
            "remux",
            sample().as_os_str(),
            "-o",
            out.as_os_str(),
            "--to",
            if to == "webm" { "mkv" } else { to },
            "--events",
            log.as_os_str()
        ]);
        let events = events(&std::fs::read_to_string(&log).unwrap(), "remux");
        let tracks = of(&events, "tracks");
        assert_eq!(tracks.len(), 1, "{to}");
        let numbers: Vec<_> = tracks[0]["tracks"].as_array().unwrap().iter().map(|t| t["number"].clone()).collect();
        assert_eq!(numbers, [1, 2], "{to}: tracks are numbered from 1");
        let fragments = of(&events, "fragment");
        assert!(fragments.len() >= 2, "{to}: {fragments:?}");
        // Fragments tile the output in order: each starts where the one before ended.
        let mut end = 0;
        for f in &fragments {
            assert_eq!(f["offset"], end, "{to}: {f}");
            end = f["offset"].as_u64().unwrap() + f["size"].as_u64().unwrap();
        }
        let finished = events.last().unwrap();
        assert_eq!(finished["status"], "ok");
        assert_eq!(finished["exit_code"], 0);
        assert_eq!(finished["fragments"], fragments.iter().filter(|f| f["kind"] == "media").count());
        assert_eq!(finished["media_ms"], fragments.last().unwrap()["media_ms"]);
        let media_ms = finished["media_ms"].as_u64().unwrap();
        assert!((5_900..6_100).contains(&media_ms), "{to}: the sample's 6 s: {finished}");
        if to != "hls" {
            let len = std::fs::metadata(&out).unwrap().len();
            assert_eq!(finished["output_bytes"], len, "{to}: the summary counts the file");
            assert!(fragments.iter().all(|f| f["durability"] == "fsync"), "{to}");
        }
        if to == "mp4" {
            // The regular MP4 is finished in place, each step an event.
            let steps = of(&events, "finalize_step");
            assert!(!steps.is_empty());
            assert_eq!(finished["steps"], steps.len());
            assert_eq!(of(&events, "note").len(), finished["notes"].as_array().unwrap().len());
        }
    }
}

#[test]
fn a_stream_reports_no_in_place_steps() {
    if !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ev.jsonl");
    let out = livemux().arg("remux").arg(sample()).args(["--to", "mkv", "-o", "-", "--events"]).arg(&log).output();
    let out = out.unwrap();
    assert!(out.status.success());
    let ev = events(&std::fs::read_to_string(&log).unwrap(), "remux");
    assert!(of(&ev, "finalize_step").is_empty(), "stdout cannot be changed in place");
    assert!(of(&ev, "fragment").iter().all(|f| f["durability"] == "flush" && f["output"] == "-"));
    assert_eq!(ev.last().unwrap()["output_bytes"], out.stdout.len());
}

#[test]
fn events_of_finalize_recover_and_append_validate() {
    if !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);

    // finalize: a fragmented MP4 made regular in place, one event per step.
    ok(args!["remux", sample().as_os_str(), "-o", d("f.mp4").as_os_str(), "--to", "fmp4"]);
    let (stdout, _) = ok(args!["finalize", d("f.mp4").as_os_str(), "--events", "-"]);
    let ev = events(&stdout, "finalize");
    let steps = of(&ev, "finalize_step");
    assert!(!steps.is_empty(), "{stdout}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i + 1);
        assert_eq!(s["steps"], steps.len());
    }
    assert_eq!(ev.last().unwrap()["steps"], steps.len());
    // Again: nothing to do, said in a note.
    let (stdout, _) = ok(args!["finalize", d("f.mp4").as_os_str(), "--events", "-"]);
    let ev = events(&stdout, "finalize");
    assert!(of(&ev, "finalize_step").is_empty());
    assert_eq!(of(&ev, "note").len(), 1, "{stdout}");

    // recover: a cut recording with the parameters of its reference.
    let data = std::fs::read(sample()).unwrap();
    std::fs::write(d("cut.mp4"), &data[..data.len() * 2 / 3]).unwrap();
    let (stdout, _) = ok(args![
        "recover",
        d("cut.mp4").as_os_str(),
        "--reference",
        reference().as_os_str(),
        "-o",
        d("rec.mp4").as_os_str(),
        "--events",
        "fd:1"
    ]);
    let ev = events(&stdout, "recover");
    assert!(!of(&ev, "fragment").is_empty(), "{stdout}");

    // append: the file to itself, in place or rewritten, each step an event.
    ok(args!["remux", sample().as_os_str(), "-o", d("t.mp4").as_os_str()]);
    std::fs::copy(d("t.mp4"), d("s.mp4")).unwrap();
    let (stdout, _) = ok(args!["append", d("t.mp4").as_os_str(), d("s.mp4").as_os_str(), "--events", "-"]);
    let ev = events(&stdout, "append");
    let steps = of(&ev, "finalize_step");
    assert!(steps.len() >= 2, "{stdout}");
    let written: u64 = steps.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(ev.last().unwrap()["bytes_written"], written);
}

#[test]
fn a_follow_run_stopped_by_sigint_reports_why_and_every_fragment() {
    if !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (growing, out, log) = (dir.path().join("rec.mp4"), dir.path().join("live.mp4"), dir.path().join("ev.jsonl"));
    // A recording still being written: its bytes so far; the writer keeps it open.
    let data = std::fs::read(sample()).unwrap();
    let mut writer = std::fs::File::create(&growing).unwrap();
    writer.write_all(&data).unwrap();
    let child = livemux()
        .arg("remux")
        .arg(&growing)
        .args(["--follow", "--idle-timeout-ms", "60000", "--to", "fmp4", "--progress", "-o"])
        .arg(&out)
        .arg("--events")
        .arg(&log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let fragments = || std::fs::read_to_string(&log).unwrap_or_default().matches(r#""event":"fragment""#).count();
    while fragments() < 3 {
        assert!(Instant::now() < deadline, "no fragments reported");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Long enough for a progress line (one a second).
    std::thread::sleep(Duration::from_millis(1500));
    common::signal(child.id(), "INT");
    let result = child.wait_with_output().unwrap();
    drop(writer);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("progress: ") && stderr.contains("fragments durable"), "--progress on a pipe: {stderr}");
    let ev = events(&std::fs::read_to_string(&log).unwrap(), "remux");
    let finished = ev.last().unwrap();
    assert_eq!(finished["status"], "ok");
    assert!(finished["stopped_by"].as_str().unwrap().contains("SIGINT"), "{finished}");
    // Every fragment the events count is in the file, and the file holds no more.
    let len = std::fs::metadata(&out).unwrap().len();
    assert_eq!(finished["output_bytes"], len);
    assert_eq!(finished["bytes_read"], data.len());
}

#[test]
fn quiet_prints_nothing_and_verbose_shows_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let (stdout, stderr) = ok(args!["remux", "-q", sample().as_os_str(), "-o", d("q.mp4").as_os_str()]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""), "-q: nothing on success");
    let (_, stderr) = ok(args!["-q", "finalize", d("q.mp4").as_os_str()]);
    assert_eq!(stderr, "", "-q before the command too");
    // Without -q: the notes and the summary.
    let (_, stderr) = ok(args!["finalize", d("q.mp4").as_os_str()]);
    assert!(stderr.contains("nothing to do"), "{stderr}");
    // An error still prints under -q.
    let out = livemux().args(["remux", "-q", "missing.mp4", "-o"]).arg(d("m.mp4")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));

    let (_, stderr) = ok(args!["remux", "-v", sample().as_os_str(), "-o", d("v.mp4").as_os_str()]);
    let fragment_lines = stderr.lines().filter(|l| l.contains("INFO livemux::run: sink: media fragment")).count();
    assert!(fragment_lines >= 3, "-v shows each fragment: {stderr}");
    assert!(stderr.contains("mux: tracks 1:video h264 2:audio opus"), "{stderr}");
    assert!(!stderr.contains("DEBUG"), "-v is info: {stderr}");
    let (_, stderr) = ok(args!["remux", "-vv", sample().as_os_str(), "-o", d("vv.mp4").as_os_str()]);
    assert!(stderr.contains("DEBUG livemux::run: mux: note: regular MP4"), "-vv shows notes as they come: {stderr}");

    // RUST_LOG wins over the default, and JSON log lines parse.
    let out = livemux()
        .env("RUST_LOG", "livemux=info")
        .args(["--log-format", "json", "remux"])
        .arg(sample())
        .arg("-o")
        .arg(d("r.mp4"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let logs: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(logs.iter().filter(|l| l["target"] == "livemux::run").count() >= 3, "{logs:?}");
    assert!(logs.iter().all(|l| l["level"].is_string() && l["fields"]["message"].is_string()));
}

#[test]
fn events_and_logs_refuse_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| livemux().current_dir(dir.path()).args(args).output().unwrap();
    let sample = sample();
    let s = sample.to_str().unwrap();
    for (args, why) in [
        (vec!["remux", s, "-o", "-", "--events", "-"], "both go to stdout"),
        (vec!["remux", s, "-o", "x.mp4", "--events", "fd:97"], "not open"),
        (vec!["remux", s, "-o", "x.mp4", "--events", "fd:x"], "not fd:N"),
        (vec!["probe", s, "--events", "-"], "--events is for"),
        (vec!["remux", s, "-o", "x.mp4", "-q", "-v"], "cannot be used with"),
        (vec!["remux", s, "-o", "x.mp4", "--progress", "--no-progress"], "cannot be used with"),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(!dir.path().join("x.mp4").exists(), "{args:?}");
    }
}

/// Runs `livemux <args>` under a pseudo-terminal (util-linux `script`); returns what the
/// terminal showed.
fn on_a_terminal(args: &str, dir: &Path) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_livemux"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_shows_on_a_terminal_and_not_on_a_pipe() {
    if !tools(&["script"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = sample();
    let s = s.to_str().unwrap();
    // A file job: bytes and percent, packets, media time and speed.
    let shown = on_a_terminal(&format!("remux {s} -o a.mp4"), dir.path());
    assert!(shown.contains("KiB (") && shown.contains(" packets, ") && shown.contains(" of media, "), "{shown}");
    assert!(shown.contains("note: mux: regular MP4"), "{shown}");
    let shown = on_a_terminal(&format!("remux {s} -o b.mp4 --no-progress"), dir.path());
    assert!(!shown.contains("packets"), "--no-progress: {shown}");
    let shown = on_a_terminal(&format!("remux {s} -o c.mp4 -q"), dir.path());
    assert_eq!(shown, "", "-q: nothing, progress neither");
    // On a pipe: the notes, no bar.
    let (_, stderr) = ok(args!["remux", s, "-o", dir.path().join("d.mp4").as_os_str()]);
    assert!(!stderr.contains("packets") && !stderr.contains('\u{1b}'), "{stderr}");
}
