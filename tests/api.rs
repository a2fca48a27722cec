//! The library without its command line: an embedding program that turns the default `cli`
//! feature off gets none of the command line's crates. (`scripts/check-api.sh` also builds
//! and documents the library that way, warning-free; CI runs it after the tests.)

use std::process::Command;

#[test]
fn the_library_alone_has_no_command_line_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = |features: &[&str]| {
        let out = Command::new(&cargo)
            .args(["tree", "-e", "normal", "--prefix", "none", "--offline"])
            .args(features)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo tree");
        assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(' ').next().map(String::from))
            .collect::<Vec<_>>()
    };
    let cli_only = ["clap", "miette", "tracing-subscriber", "inotify"];
    let alone = tree(&["--no-default-features"]);
    for c in cli_only {
        assert!(!alone.iter().any(|d| d == c), "{c} is a dependency of the library without the cli feature");
    }
    // The guard: with the default features they are there, so the check above can fail.
    let full = tree(&[]);
    for c in cli_only {
        assert!(full.iter().any(|d| d == c), "{c} should come with the cli feature");
    }
    assert!(alone.iter().any(|d| d == "bytes") && alone.iter().any(|d| d == "tokio"), "the library's own crates");
}
