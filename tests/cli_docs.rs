//! `livemux completions` and `livemux man`: generated from the argument definitions, for
//! every shell clap_complete knows and for every command; and the defaults and limits the
//! arguments take.

mod common;

use common::livemux;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = livemux().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

const COMMANDS: [&str; 11] =
    ["run", "validate", "remux", "recover", "finalize", "append", "serve", "token", "probe", "completions", "man"];

#[test]
fn completions_name_every_command_in_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no {command} in the script");
        }
        assert!(script.contains("--fragment-ms"), "{shell}: remux's flags are completed");
    }
    // bash reads its script without a syntax error.
    let (_, script, _) = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("livemux.bash");
    std::fs::write(&path, script).unwrap();
    let status = std::process::Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(status.success(), "bash -n on the completion script");
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

#[test]
fn man_pages_for_livemux_and_each_command() {
    let (code, page, err) = run(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH livemux 1"), "{}", &page[..page.len().min(300)]);
    for command in COMMANDS {
        assert!(page.contains(command), "the main page lists {command}");
        let (code, page, err) = run(&["man", command]);
        assert_eq!(code, 0, "{command}: {err}");
        assert!(page.contains(&format!(".TH livemux-{command} 1")), "{command}: {}", &page[..page.len().min(300)]);
        assert!(page.contains(".SH OPTIONS"), "{command}: its options");
    }
    let (code, _, err) = run(&["man", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("remux"), "the error lists the commands: {err}");
}

#[test]
fn fragment_lengths_refuse_0_and_the_longest_defaults_to_twice_the_shortest() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::root().join("samples/chrome_mp4_avc1_opus.mp4");
    for flag in ["--fragment-ms", "--max-fragment-ms"] {
        let out = dir.path().join("zero.mp4");
        let (code, _, err) = run(&["remux", input.to_str().unwrap(), "-o", out.to_str().unwrap(), flag, "0"]);
        assert_eq!(code, 2, "{flag} 0: {err}");
        assert!(err.contains("0"), "{err}");
        assert!(!out.exists());
    }
    // Fragments of 300 ms at least and 600 ms at most: every fragment of the fmp4 output
    // lasts at most 600 ms (the input has a keyframe every few seconds only).
    let out = dir.path().join("short.mp4");
    let (code, _, err) =
        run(&["remux", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--to", "fmp4", "--fragment-ms", "300"]);
    assert_eq!(code, 0, "{err}");
    let data = std::fs::read(&out).unwrap();
    let moofs = common::top_level_boxes(&data).iter().filter(|b| &b.0 == b"moof").count();
    if !common::tools(&["ffprobe"]) {
        return;
    }
    let (ok, text) = common::ffprobe(&input, "format=duration");
    assert!(ok, "{text}");
    let secs: f64 = text.trim().trim_start_matches("duration=").parse().unwrap();
    assert!(moofs as f64 >= secs / 0.6, "{moofs} fragments for {secs} s: some are longer than 600 ms");
}

/// The example lines of `livemux [COMMAND] --help`.
fn examples(command: Option<&str>) -> Vec<String> {
    let args: Vec<&str> = command.into_iter().chain(["--help"]).collect();
    let (code, help, _) = run(&args);
    assert_eq!(code, 0);
    help.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("livemux ") || l.starts_with("cat "))
        .map(|l| l.split(" # ").next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn help_examples_name_files_that_exist() {
    let root = common::root();
    let mut named = 0;
    for command in std::iter::once(None).chain(COMMANDS.iter().copied().map(Some)) {
        for line in examples(command) {
            for word in line.split_whitespace() {
                let word = word.trim_matches('\'');
                let word = word.split('[').next().unwrap();
                if ["samples/", "pipelines/", "schemas/"].iter().any(|d| word.starts_with(d)) {
                    assert!(root.join(word).exists(), "{command:?} --help names {word}, which does not exist");
                    named += 1;
                }
            }
        }
    }
    assert!(named >= 10, "{named}");
}

#[test]
fn the_main_help_examples_run_in_order() {
    // In a folder of its own that sees the repository's samples and pipelines.
    let dir = tempfile::tempdir().unwrap();
    for d in ["samples", "pipelines"] {
        std::os::unix::fs::symlink(common::root().join(d), dir.path().join(d)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_livemux");
    for line in examples(None).iter().filter(|l| !l.contains('~')) {
        let shell = line.replace("livemux ", &format!("{bin} "));
        let out = std::process::Command::new("sh").arg("-c").arg(&shell).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "`{line}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_output_format_follows_the_extension_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sample = common::root().join("samples/chrome_mp4_avc1_opus.mp4");
    let remux = |name: &str| {
        let out = livemux().arg("remux").arg(&sample).arg("-o").arg(dir.path().join(name)).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for name in ["a.avi", "a.txt", "noext", "a.MP4.part"] {
        let (code, err) = remux(name);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains("cannot tell the output format") && err.contains(".webm") && err.contains(".m3u8"),
            "{err}"
        );
        assert!(!dir.path().join(name).exists());
    }
    // Each extension and what it gives: (name, the file's first bytes' box or element).
    for (name, magic) in [
        ("a.mp4", &b"ftyp"[..]),
        ("a.M4A", b"ftyp"),
        ("a.m4v", b"ftyp"),
        ("a.mov", b"ftyp"),
        ("a.mkv", &[0x1A, 0x45, 0xDF, 0xA3]),
        ("a.mka", &[0x1A, 0x45, 0xDF, 0xA3]),
        ("a.m4s", b"ftyp"),
    ] {
        let (code, err) = remux(name);
        assert_eq!(code, Some(0), "{name}: {err}");
        let data = std::fs::read(dir.path().join(name)).unwrap();
        assert!(data[..8].windows(magic.len()).any(|w| w == magic), "{name}");
        if magic == b"ftyp" {
            // A regular MP4 at the end (a moov, no moof at the top level), but for .m4s.
            let boxes: Vec<[u8; 4]> = common::top_level_boxes(&data).into_iter().map(|b| b.0).collect();
            assert_eq!(boxes.contains(b"moof"), name.ends_with(".m4s"), "{name}: {boxes:?}");
        }
    }
    let (code, err) = remux("live.m3u8");
    assert_eq!(code, Some(0), "{err}");
    assert!(dir.path().join("live.m3u8").is_file());
    // --to names the format whatever the name.
    let out = livemux().arg("remux").arg(&sample).args(["--to", "fmp4", "-o"]).arg(dir.path().join("x.bin")).output();
    assert!(out.unwrap().status.success());
    // A stream is fragmented MP4 by default.
    let out = livemux().arg("remux").arg(&sample).args(["-o", "-"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(&out.stdout[4..8], b"ftyp");
}
