//! Never destroy or silently lose a user's data (issue 12): an output that is the input or
//! already exists, locked outputs, stop signals, a closed stdout, a followed file that is
//! truncated, and a full disk.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tools_file(name: &str) -> PathBuf {
    root().join("tests/fixtures/tools").join(name)
}

/// 10 s of H.264 + AAC, moov at the end (1 MB).
fn long_input() -> PathBuf {
    tools_file("h264_aac_moov_end.mp4")
}

/// 1 s of H.264 + AAC (108 KB).
fn short_input() -> PathBuf {
    tools_file("h264_aac_reference_1s.mp4")
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    livemux().args(args).stdin(Stdio::null()).output().unwrap()
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for `child` to exit, at most `limit`; kills it and fails the test otherwise.
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_output(out: &Path) {
    let start = Instant::now();
    while std::fs::metadata(out).map_or(0, |m| m.len()) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no output after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `livemux remux IN --to fmp4 -o DIR/NAME`: a fragmented MP4 to feed as a live stream.
fn fragmented(dir: &Path, name: &str, input: &Path) -> PathBuf {
    let out = dir.join(name);
    let o = run(&[os("remux"), input.as_os_str(), os("--to"), os("fmp4"), os("-o"), out.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// Starts `livemux remux - -o OUT ARGS` fed with `data` at about 1 MB/s; stdin stays open
/// until the process is stopped. SIGHUP is caught in it even when the tests run under
/// `nohup` (livemux leaves an ignored SIGHUP ignored, as `nohup` asks).
fn paced_remux(data: Vec<u8>, out: &Path, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    let mut command = livemux();
    command
        .args(["remux", "-", "--fragment-ms", "200", "--max-fragment-ms", "400", "-o"])
        .arg(out)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        for c in data.chunks(10_000) {
            if stdin.write_all(c).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    child
}

fn child_stderr(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

// ---------------------------------------------------------------- output protection

#[test]
fn an_output_that_is_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("same.mp4");
    std::fs::copy(short_input(), &input).unwrap();
    let original = std::fs::read(&input).unwrap();
    std::os::unix::fs::symlink(&input, d.join("link.mp4")).unwrap();
    std::fs::hard_link(&input, d.join("hard.mp4")).unwrap();
    for out in ["same.mp4", "link.mp4", "hard.mp4"] {
        let out = d.join(out);
        for extra in [&[][..], &["-y"][..]] {
            let mut args = vec![os("remux"), input.as_os_str(), os("-o"), out.as_os_str()];
            args.extend(extra.iter().map(os));
            let o = run(&args);
            assert_eq!(o.status.code(), Some(2), "remux {}: {}", out.display(), stderr(&o));
            assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
        }
    }
    // stdin redirected from the output file.
    let o = livemux()
        .args(["remux", "-", "-y", "-o"])
        .arg(d.join("hard.mp4"))
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // recover: onto the damaged input or onto the reference.
    let reference = d.join("ref.mp4");
    std::fs::copy(short_input(), &reference).unwrap();
    for out in [&input, &reference] {
        let o = run(&[
            os("recover"),
            input.as_os_str(),
            os("--reference"),
            reference.as_os_str(),
            os("-y"),
            os("-o"),
            out.as_os_str(),
        ]);
        assert_eq!(o.status.code(), Some(2), "recover onto {}: {}", out.display(), stderr(&o));
    }
    // A pipeline file whose sink writes its source.
    let pipeline = root().join("pipelines/remux-fmp4.toml");
    let o = run(&[
        os("run"),
        pipeline.as_os_str(),
        os("-y"),
        os("--set"),
        os(&format!("source.path={}", input.display())),
        os("--set"),
        os(&format!("sink.path={}", d.join("link.mp4").display())),
    ]);
    assert_eq!(o.status.code(), Some(2), "run: {}", stderr(&o));
    assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).unwrap(), original, "the input is untouched");
}

#[test]
fn an_existing_output_is_replaced_only_with_y() {
    if !tools(&["ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.mp4");
    std::fs::write(&out, b"precious").unwrap();
    let input = short_input();
    let remux = |extra: &[&str]| {
        let mut args = vec![os("remux"), input.as_os_str(), os("-o"), out.as_os_str()];
        args.extend(extra.iter().map(os));
        run(&args)
    };
    let o = remux(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&out.display().to_string()) && err.contains("-y"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = remux(&["-n"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("not overwritten"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    // A run that fails before its first fragment neither clobbers nor creates its output.
    let garbage = d.join("garbage.mp4");
    std::fs::write(&garbage, vec![7u8; 100_000]).unwrap();
    let o = run(&[os("remux"), garbage.as_os_str(), os("-y"), os("-o"), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious", "a failed run leaves the output alone");
    let fresh = d.join("fresh.mp4");
    let o = run(&[os("remux"), garbage.as_os_str(), os("-o"), fresh.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!fresh.exists(), "a failed run creates no output");

    let o = remux(&["-y"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (ok, text) = ffprobe(&out, "format=format_name");
    assert!(ok, "{text}");

    // recover and run follow the same rule.
    let o = run(&[os("recover"), input.as_os_str(), os("--reference"), input.as_os_str(), os("-o"), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let pipeline = root().join("pipelines/remux-fmp4.toml");
    let (set_source, set_sink) = (format!("source.path={}", input.display()), format!("sink.path={}", out.display()));
    let piped = |extra: &[&str]| {
        let mut args = vec![os("run"), pipeline.as_os_str(), os("--set"), os(&set_source), os("--set"), os(&set_sink)];
        args.extend(extra.iter().map(os));
        run(&args)
    };
    let before = std::fs::read(&out).unwrap();
    let o = piped(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let o = piped(&["-y"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Devices are streams, not files to protect.
    let o = run(&[os("remux"), input.as_os_str(), os("-o"), os("/dev/null")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_output_created_by_someone_else_during_the_run_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stream = std::fs::read(fragmented(d, "frag.mp4", &short_input())).unwrap();
    let out = d.join("out.mp4");
    // The output is opened at the first fragment; before that, another program makes it.
    let mut child = livemux()
        .args(["remux", "-", "--to", "fmp4", "-o"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&out, b"someone else's").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&stream);
    drop(stdin);
    let status = wait_at_most(&mut child, Duration::from_secs(20), "remux");
    let err = child_stderr(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("created by another program"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"someone else's");
}

#[test]
fn a_written_output_is_locked_against_finalize_append_and_other_writers() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stream = std::fs::read(fragmented(d, "frag.mp4", &long_input())).unwrap();
    let out = d.join("live.mp4");
    let mut writer = paced_remux(stream, &out, &[]);
    wait_for_output(&out);
    std::thread::sleep(Duration::from_millis(300));

    let o = run(&[os("finalize"), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is being written by another process (locked)"), "{}", stderr(&o));

    // append refuses at once instead of waiting for the recording to end.
    let mut append = livemux().arg("append").arg(&out).arg(short_input()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait_at_most(&mut append, Duration::from_secs(20), "append onto a file being written");
    let err = child_stderr(&mut append);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("is being written by another process (locked)"), "{err}");

    // A second writer fails without truncating the first one's file.
    let len = std::fs::metadata(&out).unwrap().len();
    let o = run(&[os("remux"), short_input().as_os_str(), os("-y"), os("-o"), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    assert!(std::fs::metadata(&out).unwrap().len() >= len, "the running writer's file was not cut");

    signal(writer.id(), "INT");
    let status = wait_at_most(&mut writer, Duration::from_secs(20), "writer after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", child_stderr(&mut writer));
    assert_eq!(decode_errors(&out), "");
    // Unlocked now.
    let o = run(&[os("finalize"), out.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn append_needs_sources_and_takes_mp4_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = d.join("t.mp4");
    std::fs::copy(short_input(), &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    let o = run(&[os("append"), target.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), before, "nothing written");

    let webm = browser_file("chrome_webm_vp8_opus", d);
    let o = run(&[os("append"), target.as_os_str(), webm.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("append takes MP4/MOV files only") && err.contains("WebM") && !err.contains("recover"),
        "{err}"
    );
    let o = run(&[os("append"), webm.as_os_str(), target.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("append takes MP4/MOV files only"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), before);
}

// ---------------------------------------------------------------- signals and pipes

#[test]
fn sigterm_and_sighup_finish_the_output_like_ctrl_c() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stream = std::fs::read(fragmented(d, "frag.mp4", &long_input())).unwrap();
    for sig in ["TERM", "HUP"] {
        let out = d.join(format!("{sig}.mp4"));
        let mut child = paced_remux(stream.clone(), &out, &[]);
        wait_for_output(&out);
        std::thread::sleep(Duration::from_millis(500));
        signal(child.id(), sig);
        let status = wait_at_most(&mut child, Duration::from_secs(20), sig);
        let err = child_stderr(&mut child);
        assert_eq!(status.code(), Some(0), "SIG{sig} is a clean stop: {err}");
        let bytes = std::fs::read(&out).unwrap();
        let boxes: Vec<_> = top_level_boxes(&bytes).iter().map(|b| b.0).collect();
        assert_eq!(boxes, [*b"ftyp", *b"moov", *b"mdat"], "SIG{sig}: a regular MP4, no moof");
        let (ok, text) = ffprobe(&out, "stream=nb_read_packets");
        assert!(ok, "{text}");
        assert_eq!(decode_errors(&out), "");
        assert!(!framemd5(&out).is_empty());
    }
}

#[test]
fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stream = std::fs::read(fragmented(d, "frag.mp4", &long_input())).unwrap();
    // stdout is a pipe nobody reads: after the first signal the drain blocks on it.
    let mut child = livemux()
        .args(["remux", "-", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&stream);
        std::thread::sleep(Duration::from_secs(60));
    });
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the first signal only starts a clean stop (still draining)");
    signal(child.id(), "TERM");
    let status = wait_at_most(&mut child, Duration::from_secs(10), "after a second SIGTERM");
    let err = child_stderr(&mut child);
    assert!(matches!(status.code(), Some(1) | Some(130)), "{status:?}: {err}");
    assert!(err.contains("again") && err.contains("stopped at once"), "{err}");
    drop(feeder);
}

#[test]
fn a_closed_stdout_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let _ = dir;
    // The reader stops after 1000 bytes (`| head -c 1000`).
    let mut child = livemux()
        .arg("remux")
        .arg(long_input())
        .args(["-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; 1000];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = wait_at_most(&mut child, Duration::from_secs(20), "remux into a closed pipe");
    let err = child_stderr(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("output closed"), "{err}");

    // stdin open and idle, stdout closed: noticed without any input arriving.
    let mut child = livemux()
        .args(["remux", "-", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let head = std::fs::read(short_input()).unwrap();
    stdin.write_all(&head[..4096]).unwrap();
    drop(child.stdout.take());
    let status = wait_at_most(&mut child, Duration::from_secs(10), "remux with an idle stdin and a closed stdout");
    let err = child_stderr(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("output closed"), "{err}");
    drop(stdin);
}

#[test]
fn follow_stops_when_the_followed_file_is_truncated() {
    if !tools(&["ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stream = std::fs::read(fragmented(d, "frag.mp4", &long_input())).unwrap();
    let growing = d.join("growing.mp4");
    // The writer keeps the file open (a close would end --follow after its grace time).
    let mut writer = std::fs::File::create(&growing).unwrap();
    writer.write_all(&stream[..stream.len() / 2]).unwrap();
    let out = d.join("out.mp4");
    let mut child = livemux()
        .arg("remux")
        .arg(&growing)
        .args(["--follow", "--idle-timeout-ms", "60000", "--to", "fmp4", "-o"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_output(&out);
    std::thread::sleep(Duration::from_millis(500));
    writer.set_len(1000).unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(15), "--follow of a truncated file");
    let err = child_stderr(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("truncated"), "{err}");
    let (ok, text) = ffprobe(&out, "format=format_name");
    assert!(ok, "what was read is kept: {text}");
}

// ---------------------------------------------------------------- a full disk

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (mount's syntax: 512k, 2m), or says why it cannot.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!("SKIPPED: cannot mount a tmpfs here: {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system to its last byte.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

fn assert_names_the_full_disk(err: &str, fs: &Path) {
    assert!(err.contains("no space left on device"), "{err}");
    assert!(err.contains(&fs.display().to_string()), "the message names the file system: {err}");
}

#[test]
fn a_full_disk_while_remuxing_keeps_every_complete_fragment() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    // stdout onto a full device.
    let o = livemux()
        .arg("remux")
        .arg(short_input())
        .args(["-o", "-"])
        .stdout(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no space left on device while writing"), "{}", stderr(&o));

    let Some(fs) = Tmpfs::mount("512k") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let whole = framemd5(&fragmented(work.path(), "whole.mp4", &long_input()));
    let out = fs.path().join("out.mp4");
    let o = run(&[os("remux"), long_input().as_os_str(), os("--fragment-ms"), os("300"), os("-o"), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_names_the_full_disk(&stderr(&o), fs.path());
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() > 100_000, "fragments were written before the disk filled ({} bytes)", bytes.len());
    assert_eq!(complete_fragments_prefix(&bytes).len(), bytes.len(), "the torn fragment was cut off");
    let (ok, text) = ffprobe(&out, "format=format_name");
    assert!(ok, "{text}");
    let got = framemd5(&out);
    assert!(!got.is_empty());
    assert_prefix(&whole, &got, "written before the disk filled");
}

#[test]
fn a_full_disk_while_finalizing_leaves_the_file_as_it_was() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let file = fragmented(fs.path(), "frag.mp4", &long_input());
    let before = std::fs::read(&file).unwrap();
    fs.fill();
    let o = run(&[os("finalize"), file.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_names_the_full_disk(&stderr(&o), fs.path());
    assert!(std::fs::read(&file).unwrap() == before, "the file still means what it meant");
    // With room again, finalize completes.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let o = run(&[os("finalize"), file.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn a_full_disk_while_appending_leaves_the_target_as_it_was() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let Some(fs) = Tmpfs::mount("512k") else {
        return;
    };
    let target = fs.path().join("t.mp4");
    std::fs::copy(short_input(), &target).unwrap();
    // A first append gives TARGET index slots, so that the next one runs in place.
    let o = run(&[os("append"), target.as_os_str(), short_input().as_os_str(), os("--future-frames"), os("3000")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(&target).unwrap();
    // In place (the index fits its slot): 1 MB of media does not fit the disk.
    let o = run(&[os("append"), target.as_os_str(), long_input().as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_names_the_full_disk(&stderr(&o), fs.path());
    assert!(std::fs::read(&target).unwrap() == before, "TARGET still means what it meant");
    // By a rewrite (more frames than the slots hold): the temporary file is removed.
    let o = run(&[os("append"), target.as_os_str(), long_input().as_os_str(), long_input().as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_names_the_full_disk(&stderr(&o), fs.path());
    assert!(std::fs::read(&target).unwrap() == before, "TARGET still means what it meant");
    assert!(!livemux::append::temp_path(&target).exists());
    assert_eq!(decode_errors(&target), "");
}
