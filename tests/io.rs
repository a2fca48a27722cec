//! The durable-write executor (`livemux::io`): plans applied to real files give the bytes the
//! in-memory applier gives; every step is durable before the next (seen with strace); a
//! write that fails past the end is cut back (a file-size limit in a child process, a full
//! tmpfs); `FragmentWriter` refuses to clobber or to write a locked file.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use livemux::io::{apply_in_memory, Apply, Barriers, Durability, FragmentWriter, WriteStep};
use livemux::{ErrorKind, Fragment, FragmentKind};
use proptest::prelude::*;

mod common;

/// Set in a child process that runs one test's body under a limit or a tracer.
const CHILD: &str = "LIVEMUX_IO_TEST_CHILD";

/// Runs the test `name` of this binary in a child process with `CHILD` set to `arg`,
/// optionally under `strace` writing to `trace`.
fn run_child(name: &str, arg: &str, trace: Option<&Path>) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match trace {
        Some(log) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-y", "-e", "trace=pwrite64,ftruncate,fdatasync,fsync,writev", "-o"]).arg(log).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let out = cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(CHILD, arg).output().unwrap();
    assert!(
        out.status.success(),
        "child {name} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn bytes(n: usize, seed: u8) -> Bytes {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

fn write(offset: u64, n: usize, seed: u8) -> WriteStep {
    WriteStep::Write { offset, data: bytes(n, seed) }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

// ------------------------------------------------------------- the executor and the applier

fn step_strategy(max: u64) -> impl Strategy<Value = WriteStep> {
    prop_oneof![
        4 => (0..max, 0..600usize, any::<u8>()).prop_map(|(o, n, s)| write(o, n, s)),
        1 => (0..max).prop_map(|len| WriteStep::Truncate { len }),
        3 => (0..2usize, 0..1000u64, 0..1000u64, 0..max)
            .prop_map(|(input, from, len, to)| WriteStep::Copy { input, from, len: len.min(1000 - from), to }),
        1 => Just(WriteStep::Sync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any plan (writes, truncations, copies, barriers) gives the same bytes and the same
    /// count on disk as in memory.
    #[test]
    fn the_in_memory_applier_equals_the_file_executor(
        initial in proptest::collection::vec(any::<u8>(), 0..3000),
        steps in proptest::collection::vec(step_strategy(4000), 0..24),
        barriers in prop_oneof![Just(Barriers::Never), Just(Barriers::AtSyncSteps), Just(Barriers::EachStep)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<Vec<u8>> = (0..2u8).map(|i| bytes(1000, i * 7).to_vec()).collect();
        let mut files = Vec::new();
        for (i, data) in inputs.iter().enumerate() {
            let p = dir.path().join(format!("in{i}"));
            std::fs::write(&p, data).unwrap();
            files.push(File::open(&p).unwrap());
        }
        let out_path = dir.path().join("out");
        std::fs::write(&out_path, &initial).unwrap();
        let out = open_rw(&out_path);
        let refs: Vec<&File> = files.iter().collect();
        let on_disk = Apply::new(barriers).inputs(&refs).run(&out, &steps).unwrap();

        let mut mem = initial.clone();
        let slices: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        let in_memory = apply_in_memory(&mut mem, &slices, &steps);
        prop_assert_eq!(on_disk, in_memory);
        prop_assert!(std::fs::read(&out_path).unwrap() == mem, "the file differs from the in-memory result");
    }
}

/// The system calls of a traced child, on the file named `name` only: `(call, fd path)`.
fn calls_on(trace: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains(name) && !l.contains("resumed"))
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|c| c.split('(').next()).map(str::to_string))
        .collect()
}

/// The calls on the file named `name` and on the directory `dir` itself (marked `(dir)`),
/// in order.
fn calls_on_file_and_dir(trace: &Path, name: &str, dir: &Path) -> Vec<String> {
    let dir_fd = format!("<{}>", std::fs::canonicalize(dir).unwrap().display());
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("resumed"))
        .filter_map(|l| {
            let call = l.split_whitespace().nth(1)?.split('(').next()?.to_string();
            if l.contains(name) {
                Some(call)
            } else if l.contains(&dir_fd) {
                Some(format!("{call}(dir)"))
            } else {
                None
            }
        })
        .collect()
}

/// Whether strace is installed and can trace here. Missing, or unable to trace (no
/// ptrace), fails the test under LIVEMUX_REQUIRE_TOOLS=1 and says SKIPPED otherwise.
fn strace_works() -> bool {
    if !common::tools(&["strace"]) {
        return false;
    }
    let ok = Command::new("strace").args(["-o", "/dev/null", "true"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(!common::tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but strace cannot trace here (ptrace denied?)");
        eprintln!("SKIPPED: strace cannot trace here (set LIVEMUX_REQUIRE_TOOLS=1 to make this an error)");
    }
    ok
}

#[test]
fn child_applies_plans_for_the_tracer() {
    let Ok(dir) = std::env::var(CHILD) else { return };
    let dir = PathBuf::from(dir);
    // A finalize plan: every step durable before the next.
    let each = open_rw(&dir.join("each.bin"));
    let plan = [WriteStep::Truncate { len: 500 }, write(10, 100, 1), write(500, 300, 2), write(0, 4, 3)];
    Apply::new(Barriers::EachStep).run(&each, &plan).unwrap();
    // An append plan: durable at its barriers only.
    let marked = open_rw(&dir.join("marked.bin"));
    let input = File::open(dir.join("input.bin")).unwrap();
    let plan = [
        WriteStep::Copy { input: 0, from: 0, len: 300, to: 1000 },
        WriteStep::Copy { input: 0, from: 300, len: 300, to: 1300 },
        write(20, 50, 4),
        WriteStep::Sync,
        write(8, 4, 5),
        WriteStep::Sync,
    ];
    Apply::new(Barriers::AtSyncSteps).inputs(&[&input]).run(&marked, &plan).unwrap();
    // Fragments with fsync: each one durable before the next is written.
    let mut w = FragmentWriter::create(dir.join("fragments.bin")).with_durability(Durability::Fsync);
    for f in fragments(&[300, 200, 100]) {
        w.write(&f).unwrap();
    }
    w.write(&Fragment::finalize(0, bytes(8, 9))).unwrap();
}

#[test]
fn every_step_is_durable_before_the_next() {
    if !strace_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("each.bin"), vec![7u8; 2000]).unwrap();
    std::fs::write(dir.path().join("marked.bin"), vec![7u8; 1000]).unwrap();
    std::fs::write(dir.path().join("input.bin"), bytes(600, 3)).unwrap();
    let trace = dir.path().join("trace");
    run_child("child_applies_plans_for_the_tracer", dir.path().to_str().unwrap(), Some(&trace));

    let each = calls_on(&trace, "each.bin");
    assert_eq!(
        each,
        ["ftruncate", "fdatasync", "pwrite64", "fdatasync", "pwrite64", "fdatasync", "pwrite64", "fdatasync"],
        "a finalize plan: one barrier after every step"
    );
    let marked = calls_on(&trace, "marked.bin");
    assert_eq!(
        marked,
        ["pwrite64", "pwrite64", "pwrite64", "fdatasync", "pwrite64", "fdatasync"],
        "an append plan: barriers where the plan puts them, none between"
    );
    let frags = calls_on_file_and_dir(&trace, "fragments.bin", dir.path());
    assert_eq!(
        frags,
        [
            "ftruncate",
            "writev",
            "fdatasync",
            "fsync(dir)",
            "writev",
            "fdatasync",
            "writev",
            "fdatasync",
            "pwrite64",
            "fdatasync"
        ],
        "fragments: the cut to 0 after the lock, then each fragment durable before the next, and the \
         directory entry of the new file durable after the first"
    );
    assert_eq!(std::fs::read(dir.path().join("marked.bin")).unwrap()[1000..], bytes(600, 3)[..]);
}

// ------------------------------------------------------------- a failed write is cut back

/// In a child: limits the size of files this process writes to `limit` bytes and makes
/// a write past it fail with EFBIG instead of killing the process.
fn limit_file_size(limit: u64) {
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit reads the struct; ignoring SIGXFSZ makes the write return EFBIG.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn is_efbig(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EFBIG)
}

#[test]
fn child_fails_writes_past_a_size_limit() {
    let Ok(dir) = std::env::var(CHILD) else { return };
    let dir = PathBuf::from(dir);
    limit_file_size(4096);
    // Each step durable: a write that straddles the limit is cut back to the length before it.
    let f = open_rw(&dir.join("each.bin"));
    let plan = [write(0, 10, 1), write(1000, 2000, 2), write(3000, 2000, 3)];
    let e = Apply::new(Barriers::EachStep).run(&f, &plan).unwrap_err();
    assert!(is_efbig(&e), "{e}");
    // Barriers at Sync steps: copies past the end are undone back to the last barrier.
    let f = open_rw(&dir.join("marked.bin"));
    let input = File::open(dir.join("input.bin")).unwrap();
    let plan = [
        WriteStep::Copy { input: 0, from: 0, len: 1500, to: 1000 },
        WriteStep::Copy { input: 0, from: 1000, len: 2000, to: 2500 },
        WriteStep::Sync,
    ];
    let e = Apply::new(Barriers::AtSyncSteps).inputs(&[&input]).run(&f, &plan).unwrap_err();
    assert!(is_efbig(&e), "{e}");
    // Fragments: the torn one is cut off, the complete ones stay.
    let mut w = FragmentWriter::create(dir.join("fragments.bin"));
    let frags = fragments(&[1500, 1500, 1500]);
    w.write(&frags[0]).unwrap();
    w.write(&frags[1]).unwrap();
    let e = w.write(&frags[2]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(e.path(), Some(dir.join("fragments.bin").as_path()));
    // The writer is failed: a later fragment, even one that fits (in place, under the limit),
    // is refused and the file is left as the cut-back made it (checked by the parent).
    assert!(w.has_failed());
    for later in [frags[2].clone(), Fragment::finalize(0, bytes(8, 9))] {
        let e = w.write(&later).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(
            e.to_string().contains("an earlier write failed; the file holds every fragment up to byte 3000"),
            "{e}"
        );
    }
    // A first fragment that fails: the file is removed and stays removed.
    let mut w = FragmentWriter::create(dir.join("first.bin"));
    w.write(&fragments(&[5000])[0]).unwrap_err();
    assert!(!dir.join("first.bin").exists());
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert!(e.to_string().contains("an earlier write failed; no fragment was kept"), "{e}");
    let e = w.write(&Fragment::finalize(0, bytes(4, 9))).unwrap_err();
    assert!(e.to_string().contains("an earlier write failed"), "{e}");
}

#[test]
fn a_write_that_fails_past_the_end_is_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("each.bin"), vec![7u8; 1000]).unwrap();
    std::fs::write(dir.path().join("marked.bin"), vec![7u8; 1000]).unwrap();
    std::fs::write(dir.path().join("input.bin"), bytes(3000, 5)).unwrap();
    run_child("child_fails_writes_past_a_size_limit", dir.path().to_str().unwrap(), None);

    let each = std::fs::read(dir.path().join("each.bin")).unwrap();
    assert_eq!(each.len(), 3000, "the steps before the failed one stay, the torn write is cut off");
    assert_eq!(each[..10], bytes(10, 1)[..]);
    assert_eq!(each[1000..], bytes(2000, 2)[..]);
    let marked = std::fs::read(dir.path().join("marked.bin")).unwrap();
    assert_eq!(marked, vec![7u8; 1000], "back to the length at the last barrier");
    let frags = std::fs::read(dir.path().join("fragments.bin")).unwrap();
    assert_eq!(frags.len(), 3000, "the two complete fragments, untouched by the refused writes after the failure");
    assert_eq!(frags[..1500], fragments(&[1500])[0].to_bytes()[..]);
    assert_eq!(frags[1500..], fragments(&[1500, 1500])[1].to_bytes()[..]);
    assert!(!dir.path().join("first.bin").exists(), "a failed first fragment leaves no file");
}

// ------------------------------------------------------------- FragmentWriter

/// Media fragments of these sizes, one after another, each with two parts.
fn fragments(sizes: &[usize]) -> Vec<Fragment> {
    let mut offset = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data = bytes(n, i as u8);
            let kind = if i == 0 { FragmentKind::Header } else { FragmentKind::Media };
            let f = Fragment {
                kind,
                offset,
                parts: vec![data.slice(..n / 2), data.slice(n / 2..)],
                packets: 1,
                start_ms: None,
                duration_ms: 0,
                index: Default::default(),
            };
            offset += n as u64;
            f
        })
        .collect()
}

#[test]
fn fragments_land_at_their_offsets_and_finalize_writes_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let mut all = fragments(&[100, 50, 70]);
    all.push(Fragment::finalize(4, Bytes::from_static(b"done")));
    all.push(Fragment::finalize(220, Bytes::from_static(b"tail")));
    let mut w = FragmentWriter::create(&path);
    assert!(!path.exists(), "nothing is opened before the first fragment");
    for f in &all {
        w.write(f).unwrap();
    }
    assert_eq!(w.complete_len(), 224);
    let steps: Vec<WriteStep> = all.iter().map(WriteStep::from_fragment).collect();
    let mut want = Vec::new();
    apply_in_memory(&mut want, &[], &steps);
    assert_eq!(std::fs::read(&path).unwrap(), want);
    assert_eq!(&want[4..8], b"done");
}

#[test]
fn a_writer_that_writes_nothing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let mut w = FragmentWriter::create(&path);
    w.write(&Fragment::finalize(0, Bytes::from_static(b"x"))).unwrap();
    drop(w);
    assert!(!path.exists());
}

#[test]
fn a_file_that_appeared_meanwhile_is_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let mut w = FragmentWriter::create(&path);
    std::fs::write(&path, b"someone else's").unwrap();
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutputRefused);
    assert!(e.to_string().contains("was created by another program during this run"), "{e}");
    assert_eq!(e.path(), Some(path.as_path()));
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");

    // Even told to overwrite: that covers a file the caller saw, not one made meanwhile.
    let mut w = FragmentWriter::create(dir.path().join("other.bin")).with_overwrite(true);
    std::fs::write(dir.path().join("other.bin"), b"old contents, longer").unwrap();
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutputRefused);
    assert!(e.to_string().contains("was created by another program during this run"), "{e}");
    assert_eq!(std::fs::read(dir.path().join("other.bin")).unwrap(), b"old contents, longer");
}

/// The sink's overwrite rule, as `SinkConfig` documents it: `Some(true)` replaces a file
/// that existed when the writer was made, never one that appeared during the run.
#[test]
fn a_sink_told_to_overwrite_never_replaces_a_file_made_during_the_run() {
    use livemux::SinkConfig;
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen.bin");
    std::fs::write(&seen, b"the caller's old output").unwrap();
    let mut w = SinkConfig::new(&seen).with_overwrite(true).writer();
    w.write(&fragments(&[10])[0]).unwrap();
    assert_eq!(std::fs::read(&seen).unwrap(), bytes(10, 0), "existed when the run began: replaced");

    let late = dir.path().join("late.bin");
    let mut w = SinkConfig::new(&late).with_overwrite(true).writer();
    std::fs::write(&late, b"someone else's").unwrap();
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutputRefused, "{e}");
    assert_eq!(std::fs::read(&late).unwrap(), b"someone else's", "appeared during the run: left as it is");
}

#[test]
fn an_existing_file_is_replaced_unless_overwrite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    std::fs::write(&path, b"keep me").unwrap();
    let mut w = FragmentWriter::create(&path).with_overwrite(false);
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutputRefused);
    assert!(e.to_string().contains("exists and overwriting it was not allowed"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

    // By default, a file there when the writer was made is the caller's to replace.
    let mut w = FragmentWriter::create(&path);
    w.write(&fragments(&[3])[0]).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes(3, 0));
}

#[test]
fn a_locked_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    std::fs::write(&path, b"being written").unwrap();
    let holder = File::open(&path).unwrap();
    // SAFETY: flock on a descriptor `holder` keeps open.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut w = FragmentWriter::create(&path).with_overwrite(true);
    let e = w.write(&fragments(&[10])[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutputRefused);
    assert_eq!(e.to_string(), format!("{} is being written by another process (locked)", path.display()));
    assert_eq!(std::fs::read(&path).unwrap(), b"being written", "not cut to 0: the lock comes first");
    drop(holder);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            _ => {
                // CI runs as root, where the mount works: there a failure is an error.
                assert!(
                    !common::tools_required(),
                    "LIVEMUX_REQUIRE_TOOLS=1 but a tmpfs cannot be mounted here (not root?): {o:?}"
                );
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here (needs root; set LIVEMUX_REQUIRE_TOOLS=1 to make this an error)"
                );
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_keeps_every_complete_fragment_and_names_the_file_system() {
    let Some(fs) = Tmpfs::mount("64k") else { return };
    let path = fs.0.path().join("out.bin");
    let mut w = FragmentWriter::create(&path);
    let frags = fragments(&[20_000; 8]);
    let mut complete = 0;
    let e = loop {
        match w.write(&frags[complete]) {
            Ok(()) => complete += 1,
            Err(e) => break e,
        }
    };
    assert!(complete >= 1 && complete < frags.len(), "{complete}");
    assert_eq!(e.kind(), ErrorKind::Io);
    let text = e.to_string();
    assert!(text.contains("no space left on device while writing"), "{text}");
    assert!(text.contains(&format!("mounted at {}", fs.0.path().display())), "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), complete as u64 * 20_000, "the torn fragment is cut off");
    // The cut freed room, but the writer is failed: neither the next fragment nor an in-place
    // change is written, so nothing lands after a run of zeros or over a complete fragment.
    let before = std::fs::read(&path).unwrap();
    let want = format!("an earlier write failed; the file holds every fragment up to byte {}", complete * 20_000);
    for later in [frags[complete].clone(), Fragment::finalize(0, bytes(8, 9))] {
        let e = w.write(&later).unwrap_err();
        assert!(e.to_string().contains(&want), "{e}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the refused writes left the file as it was");
    drop(w);
}
