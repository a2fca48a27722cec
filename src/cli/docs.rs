//! `livemux completions SHELL` and `livemux man [COMMAND]`: shell completions (clap_complete)
//! and man pages (clap_mangen), generated from the same argument definitions as `--help`, so
//! they cannot drift from it.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_RUNTIME, EXIT_USAGE};

/// Prints the completion script for `shell` on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "livemux", &mut out);
    write_stdout(&out)
}

/// Prints the man page of `livemux` (roff), or of one subcommand (`livemux-remux(1)`...).
pub(super) fn man(command: Option<&str>) -> ExitCode {
    let cli = Cli::command();
    let cmd = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => sub.clone().display_name(format!("livemux-{name}")).version(env!("CARGO_PKG_VERSION")),
            None => {
                let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
                eprintln!("livemux man: no command {name:?} (commands: {})", names.join(", "));
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
        eprintln!("livemux man: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livemux: stdout: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and every argument a user can see says what it is: `--help`, the man
    /// pages and the completions all show these descriptions.
    #[test]
    fn every_command_and_argument_has_a_description() {
        fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
                missing.push(format!("{path}: the command"));
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "livemux", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }
}
