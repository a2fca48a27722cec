//! Fuzzing in `cargo test`: every input the fuzzers found (`tests/fuzz_regressions/TARGET/`)
//! runs through the same entry as its fuzz target (`livemux::fuzzing`), and a short smoke
//! run mutates the committed seeds (`fuzz/seeds/TARGET/`) a few thousand times. The release
//! profile keeps overflow checks on (Cargo.toml), so an input whose arithmetic wraps
//! panics here as it does under the fuzzer.
//!
//! Also: `livemux validate` of a pipeline file with 10,000 errors stays small and quick.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livemux::fuzzing::{entry, TARGETS};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs one input; the panic message if it panicked.
fn run(f: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| f(data))).map_err(|e| panic_message(e.as_ref()))
}

/// Runs every file under `dir/TARGET/`; one line per input that panicked.
fn run_saved(dir: &Path) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for sub in std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_else(|_| Vec::<PathBuf>::new())
    {
        if !sub.is_dir() {
            continue;
        }
        let name = sub.file_name().unwrap().to_string_lossy().to_string();
        let f = entry(&name).unwrap_or_else(|| panic!("{}: no fuzz target is named '{name}'", sub.display()));
        for file in files(&sub) {
            count += 1;
            let data = std::fs::read(&file).unwrap();
            if let Err(m) = run(f, &data) {
                failures.push(format!("{}: {m}", file.display()));
            }
        }
    }
    (count, failures)
}

#[test]
fn fuzz_findings_do_not_panic() {
    let (count, failures) = run_saved(&root().join("tests/fuzz_regressions"));
    eprintln!("{count} saved fuzz inputs");
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that tend to find size and offset bugs.
const INTERESTING_U32: [u32; 9] = [0, 1, 7, 8, 16, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF];
const INTERESTING_U64: [u64; 5] = [0, 1, 1 << 63, u64::MAX - 7, u64::MAX];

/// One to four random edits of the kinds libFuzzer makes.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = [0u8, 1, 0x7F, 0x80, 0xFF][rng.below(5)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                d[i..i + 4].copy_from_slice(&INTERESTING_U32[rng.below(INTERESTING_U32.len())].to_be_bytes());
            }
            3 if len >= 8 => {
                let i = rng.below(len - 7);
                d[i..i + 8].copy_from_slice(&INTERESTING_U64[rng.below(INTERESTING_U64.len())].to_be_bytes());
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(64).min(len - i);
                d.drain(i..i + n);
            }
            5 if len > 0 => {
                // Duplicate a stretch (repeated boxes, elements, NAL units).
                let i = rng.below(len);
                let n = (1 + rng.below(256)).min(len - i);
                let copy = d[i..i + n].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, copy);
            }
            6 if len > 0 => d.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, bytes);
            }
        }
    }
    d
}

/// Mutated inputs run per target: a few thousand in all, a few seconds in release.
const SMOKE_MUTATIONS: usize = 400;

#[test]
fn fuzz_smoke_on_mutated_seeds() {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (i, &(name, f)) in TARGETS.iter().enumerate() {
        let target_started = Instant::now();
        let mut seeds: Vec<Vec<u8>> = files(&root().join("fuzz/seeds").join(name))
            .into_iter()
            .chain(files(&root().join("tests/fuzz_regressions").join(name)))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(!seeds.is_empty(), "fuzz/seeds/{name} has no seed");
        seeds.push(Vec::new());
        for s in &seeds {
            runs += 1;
            if let Err(m) = run(f, s) {
                failures.push(format!("{name}: a seed of {} bytes: {m}", s.len()));
            }
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        for k in 0..SMOKE_MUTATIONS {
            let seed = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, seed);
            runs += 1;
            if let Err(m) = run(f, &input) {
                let path = std::env::temp_dir().join(format!("livemux-smoke-{name}-{k}"));
                std::fs::write(&path, &input).unwrap();
                failures.push(format!("{name}: mutation {k} (saved as {}): {m}", path.display()));
            }
        }
        eprintln!("{name}: {} inputs in {:?}", seeds.len() + SMOKE_MUTATIONS, target_started.elapsed());
    }
    eprintln!("{runs} inputs in {:?}", started.elapsed());
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
}

/// A pipeline file of `stages` stages with four errors each (and a source and a sink, so
/// that the graph checks run too): about 38 bytes per error.
fn many_errors(stages: usize) -> String {
    let mut text = String::from("[[stage]]\nkind = \"source\"\npath = \"-\"\n\n");
    for i in 0..stages {
        text.push_str(&format!(
            "[[stage]]\nkind = \"mux\"\nname = \"m{i}\"\nformat = \"avi\"\nfragment_ms = \"x\"\ncolour{i} = 1\n\n"
        ));
    }
    text.push_str("[[stage]]\nkind = \"sink\"\npath = \"-\"\n");
    text
}

/// Peak RSS (KiB) and exit code of a command, with its stderr in `stderr`.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its peak RSS
fn run_measured(cmd: &mut std::process::Command, stderr: &Path) -> (u64, i32) {
    let child = cmd.stderr(std::fs::File::create(stderr).unwrap()).stdout(std::process::Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned (std's Child
    // is not waited on elsewhere).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(libc::WIFEXITED(status), "killed by a signal: {status}");
    (usage.ru_maxrss as u64, libc::WEXITSTATUS(status))
}

#[test]
fn validate_of_a_file_with_10000_errors_is_small_and_quick() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.toml");
    let text = many_errors(2_600);
    std::fs::write(&path, &text).unwrap();
    let stderr = dir.path().join("stderr");
    let started = Instant::now();
    let (peak_kib, code) =
        run_measured(std::process::Command::new(env!("CARGO_BIN_EXE_livemux")).arg("validate").arg(&path), &stderr);
    let took = started.elapsed();
    let err = std::fs::read_to_string(&stderr).unwrap();
    let first = err.lines().next().unwrap_or("");
    eprintln!("{} bytes: {first}; peak RSS {peak_kib} KiB in {took:?}; {} bytes of messages", text.len(), err.len());
    assert_eq!(code, 2, "{first}");
    let errors: usize = first
        .strip_prefix("error: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("first line: {first}"));
    assert!(errors >= 10_000, "{first}");
    assert!(peak_kib < 200 << 10, "peak RSS {peak_kib} KiB");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // The first errors are shown with their lines, the rest counted.
    assert!(err.contains("errors.toml:8:10: "), "{}", &err[..err.len().min(2000)]);
    assert!(err.contains("unknown setting 'colour0' for a mux stage"), "{}", &err[..err.len().min(2000)]);
    let more = livemux::pipeline::MAX_RENDERED_ERRORS;
    assert!(err.contains(&format!("... and {} more errors (only the first {more} are shown)", errors - more)));
    assert!(err.len() < 200_000, "{} bytes of messages", err.len());
}

/// The same errors with the whole file on one line: each error is located by line and
/// column, without a copy of the line.
#[test]
fn validate_of_a_one_line_file_does_not_print_the_line_per_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-line.toml");
    let stages: Vec<String> =
        (0..3_000).map(|i| format!("{{ kind = \"mux\", name = \"m{i}\", format = \"avi\" }}")).collect();
    let text = format!(
        "stage = [ {{ kind = \"source\", path = \"-\" }}, {}, {{ kind = \"sink\", path = \"-\" }} ]\n",
        stages.join(", ")
    );
    std::fs::write(&path, &text).unwrap();
    let stderr = dir.path().join("stderr");
    let (peak_kib, code) =
        run_measured(std::process::Command::new(env!("CARGO_BIN_EXE_livemux")).arg("validate").arg(&path), &stderr);
    let err = std::fs::read_to_string(&stderr).unwrap();
    eprintln!("{} bytes on one line: {}; peak RSS {peak_kib} KiB", text.len(), err.lines().next().unwrap_or(""));
    assert_eq!(code, 2);
    assert!(err.contains("one-line.toml:1:"), "{}", &err[..err.len().min(2000)]);
    assert!(err.len() < 100_000, "{} bytes of messages", err.len());
    assert!(peak_kib < 200 << 10, "peak RSS {peak_kib} KiB");
}
