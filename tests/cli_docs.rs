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
