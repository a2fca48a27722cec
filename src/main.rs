//! The `livemux` command line. The work is in [`livemux`]; this only parses arguments,
//! prints, and maps errors to exit codes (0 ok, 1 runtime failure, 2 usage or pipeline file).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
