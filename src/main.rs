//! The `livemux` command line. The work is in the library; `livemux::cli` only parses
//! arguments, prints, and maps errors to exit codes (0 ok, 1 runtime failure, 2 usage or
//! pipeline file).

fn main() -> std::process::ExitCode {
    livemux::cli::main()
}
