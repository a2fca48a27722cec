//! `livemux completions` and `livemux man`: generated from the argument definitions, for
//! every shell clap_complete knows and for every command.

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
