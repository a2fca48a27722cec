//! What the command line shows while it runs: log lines (`-v`/`-q`/`--log-level`,
//! `--log-format`, `RUST_LOG`), the progress bar (indicatif, on a terminal), and the
//! `--events` JSON lines. All three are fed by the run's [`RunEvent`]s.
//!
//! Every line for the user goes through [`line`] (the `say!` and `fail!` macros), so that
//! a progress bar is cleared before it and drawn again after, and `-q` silences all but
//! errors.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

use crate::events::{Observer, RunEvent, EVENTS_VERSION};

/// The options every command takes (`global`: before or after the command's name).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct UiArgs {
    /// More log lines on stderr: -v each fragment, the tracks and finalize steps; -vv the
    /// notes as they come and stage details; -vvv everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print nothing on success: no notes, no summary, no progress (errors still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log level instead of -v/-q: off, error, warn, info, debug or trace. RUST_LOG, when
    /// set, wins over both (e.g. RUST_LOG=livemux=debug,hyper=info).
    #[arg(long, global = true, value_name = "LEVEL", value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Write one JSON line per event (started, tracks, fragment, note, finalize_step,
    /// finished) to FILE (appended to), - (stdout) or fd:N (an open descriptor); schema:
    /// schemas/events.schema.json.
    #[arg(long, global = true, value_name = "FILE|-|fd:N")]
    events: Option<String>,
    /// Show progress even when stderr is not a terminal (a line a second).
    #[arg(long, global = true, conflicts_with = "no_progress")]
    progress: bool,
    /// Never show progress (default: shown when stderr is a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
}

static QUIET: AtomicBool = AtomicBool::new(false);
/// The progress bar, while one is drawn.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);
/// The run being reported, for the commands that report one.
static RUN: OnceLock<Arc<Run>> = OnceLock::new();
/// Where `--events` lines go, once opened.
static EVENTS: OnceLock<Mutex<File>> = OnceLock::new();
/// Whether `--events` writes to stdout (then no output may).
static EVENTS_ON_STDOUT: AtomicBool = AtomicBool::new(false);
/// Whether progress was asked for or refused.
static PROGRESS: OnceLock<Option<bool>> = OnceLock::new();

/// Whether `-q` was given.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Writes `text` and a newline on stderr, clearing the progress bar around it. A failed
/// write is ignored: after a hang-up stderr may be gone, and the run goes on.
pub(crate) fn line(text: &str) {
    let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let write = || {
        let _ = writeln!(io::stderr(), "{text}");
    };
    match bar {
        Some(b) => b.suspend(write),
        None => write(),
    }
}

/// Prints `error: <text>` and keeps the first one for the `finished` event.
pub(crate) fn error_line(text: String) {
    if let Some(run) = RUN.get() {
        run.stats.lock().unwrap_or_else(|p| p.into_inner()).error.get_or_insert_with(|| text.clone());
    }
    line(&format!("error: {text}"));
}

/// A line for the user, unless `-q`.
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::cli::ui::quiet() {
            $crate::cli::ui::line(&format!($($arg)*))
        }
    };
}

/// `error: ...`, always printed, kept for the `finished` event.
macro_rules! fail {
    ($($arg:tt)*) => {
        $crate::cli::ui::error_line(format!($($arg)*))
    };
}
pub(crate) use {fail, say};

/// Sets up logging and opens the `--events` destination. `serve` logs its events at info
/// by default; the other commands log warnings and errors. Fails (a usage error) when the
/// events destination cannot be opened.
pub(crate) fn init(args: &UiArgs, serve: bool, reports_events: bool) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    QUIET.store(args.quiet, Ordering::Relaxed);
    let _ = PROGRESS.set(if args.no_progress || args.quiet {
        Some(false)
    } else if args.progress {
        Some(true)
    } else {
        None
    });
    let level = match (&args.log_level, args.quiet, args.verbose) {
        (Some(l), _, _) => l.as_str(),
        (None, true, _) => "error",
        (None, false, 0) if serve => "info",
        (None, false, 0) => "warn",
        (None, false, 1) => "info",
        (None, false, 2) => "debug",
        (None, false, _) => "trace",
    };
    // Other crates stay at warn unless RUST_LOG says otherwise: their info lines are not
    // livemux's events.
    let directive = match level {
        "off" | "error" | "warn" => level.to_string(),
        l => format!("warn,livemux={l}"),
    };
    let filter = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()).unwrap_or(directive);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(|| LogWriter)
        .with_ansi(io::stderr().is_terminal());
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Some(dest) = &args.events {
        if !reports_events {
            return Err("--events is for remux, recover, run, finalize and append".into());
        }
        let file = open_events(dest)?;
        let _ = EVENTS.set(Mutex::new(file));
    }
    Ok(())
}

/// Opens `FILE` (created or appended to), `-` (stdout) or `fd:N`.
fn open_events(dest: &str) -> Result<File, String> {
    use std::os::fd::{AsFd, FromRawFd};
    if dest == "-" {
        EVENTS_ON_STDOUT.store(true, Ordering::Relaxed);
        return io::stdout().as_fd().try_clone_to_owned().map(File::from).map_err(|e| format!("--events -: {e}"));
    }
    if let Some(n) = dest.strip_prefix("fd:") {
        let fd: i32 = n.parse().ok().filter(|&fd| fd >= 0).ok_or_else(|| format!("--events {dest}: not fd:N"))?;
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(format!("--events {dest}: descriptor {fd} is not open"));
        }
        if fd == 1 {
            EVENTS_ON_STDOUT.store(true, Ordering::Relaxed);
        }
        // SAFETY: the descriptor is open (checked above) and given to us by the caller for
        // this purpose; the File owns it from here on.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    std::fs::OpenOptions::new().create(true).append(true).open(dest).map_err(|e| format!("--events {dest}: {e}"))
}

/// Whether `--events` writes to stdout, which an output `-` would share.
pub(crate) fn events_on_stdout() -> bool {
    EVENTS_ON_STDOUT.load(Ordering::Relaxed)
}

/// Writes one `--events` line: `{"v":1,"event":...,"time":...,<fields>}`.
fn write_event(name: &str, fields: Value) {
    let Some(out) = EVENTS.get() else { return };
    let mut line = Map::new();
    line.insert("v".into(), EVENTS_VERSION.into());
    line.insert("event".into(), name.into());
    line.insert("time".into(), crate::server::events::now_rfc3339().into());
    if let Value::Object(fields) = fields {
        line.extend(fields.into_iter().filter(|(k, _)| k != "event"));
    }
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    // One write per line, so lines never interleave; a reader that went away is ignored.
    let _ = out.lock().unwrap_or_else(|p| p.into_inner()).write_all(text.as_bytes());
}

/// What a run has done so far, for the progress bar and the `finished` event.
#[derive(Default)]
struct Stats {
    read: u64,
    fragments: u64,
    packets: u64,
    media_ms: u64,
    output_bytes: u64,
    bytes_written: u64,
    steps: u64,
    last_write_ms: f64,
    notes: Vec<String>,
    error: Option<String>,
    stopped_by: Option<&'static str>,
}

/// How a run's input comes: a file of known length, or live (stdin, a followed file).
pub(crate) enum Input {
    File(u64),
    Live,
    /// Nothing to show progress of (finalize, append).
    None,
}

/// A command's run: its events, its progress bar, its summary.
pub(crate) struct Run {
    started: Instant,
    stats: Mutex<Stats>,
    bar: Option<ProgressBar>,
    live: bool,
    /// The first sink's output: the one whose fragments the summary counts.
    sink: Mutex<Option<String>>,
}

/// Starts reporting the run of `command`: writes `started`, shows progress if asked.
pub(crate) fn start(command: &str, inputs: &[PathBuf], outputs: &[PathBuf], input: Input) -> Arc<Run> {
    let show = PROGRESS.get().copied().flatten();
    let bar = match (&input, show) {
        (Input::None, _) | (_, Some(false)) => None,
        (_, None) if !io::stderr().is_terminal() => None,
        (_, forced) => Some(progress_bar(&input, forced == Some(true) && !io::stderr().is_terminal())),
    };
    if let Some(b) = &bar {
        *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(b.clone());
    }
    let run = Arc::new(Run {
        started: Instant::now(),
        stats: Mutex::default(),
        bar,
        live: matches!(input, Input::Live),
        sink: Mutex::default(),
    });
    let _ = RUN.set(run.clone());
    let names = |p: &[PathBuf]| p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
    write_event(
        "started",
        json!({
            "command": command,
            "version": env!("CARGO_PKG_VERSION"),
            "inputs": names(inputs),
            "outputs": names(outputs),
            "pid": std::process::id(),
        }),
    );
    run
}

fn progress_bar(input: &Input, plain: bool) -> ProgressBar {
    let target = if plain { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr_with_hz(10) };
    let bar = match input {
        Input::File(len) => {
            let style = ProgressStyle::with_template("{bytes}/{total_bytes} ({percent}%) [{bar:24}] {msg}")
                .expect("a valid template")
                .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(*len), target).with_style(style)
        }
        _ => {
            let style = ProgressStyle::with_template("{spinner} recording: {msg}").expect("a valid template");
            ProgressBar::with_draw_target(None, target).with_style(style)
        }
    };
    if plain {
        print_lines(bar.clone());
    } else {
        bar.enable_steady_tick(Duration::from_millis(250));
    }
    bar
}

impl Run {
    /// The observer that feeds the bar, the summary and `--events`.
    pub(crate) fn observer(self: &Arc<Self>) -> Observer {
        let run = self.clone();
        Arc::new(move |e: &RunEvent| run.observe(e))
    }

    fn observe(&self, event: &RunEvent) {
        {
            let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            match event {
                RunEvent::Read { bytes, .. } => s.read = s.read.max(*bytes),
                RunEvent::Fragment(f) => {
                    let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
                    if sink.get_or_insert_with(|| f.output.clone()) == &f.output {
                        s.fragments = f.fragments;
                        s.media_ms = f.media_ms;
                        s.packets += u64::from(f.packets);
                        s.output_bytes = s.output_bytes.max(f.offset.saturating_add(f.size));
                        s.last_write_ms = f.write_ms;
                    }
                    s.bytes_written += f.size;
                }
                RunEvent::FinalizeStep(step) => {
                    s.steps += 1;
                    s.bytes_written += step.bytes;
                    // A clean stop may write past the last fragment (Matroska's Cues).
                    if self.sink.lock().unwrap_or_else(|p| p.into_inner()).as_ref() == Some(&step.file) {
                        s.output_bytes = s.output_bytes.max(step.offset.saturating_add(step.bytes));
                    }
                }
                RunEvent::Note { stage, text } => s.notes.push(format!("{stage}: {text}")),
                _ => {}
            }
            if let Some(bar) = &self.bar {
                self.draw(bar, &s);
            }
        }
        if !matches!(event, RunEvent::Read { .. }) {
            write_event(event.name(), serde_json::to_value(event).unwrap_or(Value::Null));
        }
    }

    fn draw(&self, bar: &ProgressBar, s: &Stats) {
        let media = clock(s.media_ms);
        if self.live {
            bar.set_message(format!(
                "{media} of media, {} fragments durable, the last in {:.1} ms",
                s.fragments, s.last_write_ms
            ));
        } else {
            bar.set_position(s.read);
            let secs = self.started.elapsed().as_secs_f64();
            let speed = if secs > 0.0 { s.media_ms as f64 / 1000.0 / secs } else { 0.0 };
            bar.set_message(format!("{} packets, {media} of media, {speed:.1}x", s.packets));
        }
    }

    /// A note of the command itself (finalize, append): an event, and a line unless `-q`.
    pub(crate) fn note(&self, stage: &str, text: &str) {
        self.observe(&RunEvent::Note { stage: stage.into(), text: text.into() });
        say!("note: {text}");
    }

    /// Records the signal that ended the input early.
    pub(crate) fn stopped_by(&self, signal: &'static str) {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).stopped_by.get_or_insert(signal);
    }
}

/// Ends the report of the run, if one was started: clears the bar, writes `finished`.
pub(crate) fn finish(code: u8) {
    let Some(run) = RUN.get() else { return };
    *BAR.lock().unwrap_or_else(|p| p.into_inner()) = None;
    if let Some(bar) = &run.bar {
        bar.finish_and_clear();
    }
    let s = run.stats.lock().unwrap_or_else(|p| p.into_inner());
    let status = match code {
        0 => "ok",
        130 => "interrupted",
        _ => "failed",
    };
    write_event(
        "finished",
        json!({
            "status": status,
            "exit_code": code,
            "error": s.error,
            "stopped_by": s.stopped_by,
            "elapsed_ms": run.started.elapsed().as_millis() as u64,
            "bytes_read": s.read,
            "fragments": s.fragments,
            "packets": s.packets,
            "media_ms": s.media_ms,
            "output_bytes": s.output_bytes,
            "bytes_written": s.bytes_written,
            "steps": s.steps,
            "notes": s.notes,
        }),
    );
}

/// The run being reported, if any.
pub(crate) fn current() -> Option<&'static Arc<Run>> {
    RUN.get()
}

/// `h:mm:ss.s` of `ms`.
fn clock(ms: u64) -> String {
    let tenths = ms / 100;
    format!("{}:{:02}:{:02}.{}", tenths / 36_000, tenths / 600 % 60, tenths / 10 % 60, tenths % 10)
}

/// Log lines on stderr, under the progress bar.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let write = || io::stderr().write_all(buf);
        match bar {
            Some(b) => b.suspend(write)?,
            None => write()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Progress on a stderr that is not a terminal (`--progress`): the bar is hidden, and a
/// thread prints its state as a line once a second until the bar is finished.
fn print_lines(bar: ProgressBar) {
    let spawned = std::thread::Builder::new().name("livemux-progress".into()).spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if bar.is_finished() {
            return;
        }
        let share = match (bar.position(), bar.length()) {
            (read, Some(len)) if len > 0 => format!("{read} of {len} bytes ({}%), ", read.saturating_mul(100) / len),
            _ => String::new(),
        };
        line(&format!("progress: {share}{}", bar.message()));
    });
    if let Err(e) = spawned {
        line(&format!("warning: no progress lines: {e}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_reads_as_hours_minutes_seconds() {
        assert_eq!(super::clock(0), "0:00:00.0");
        assert_eq!(super::clock(61_250), "0:01:01.2");
        assert_eq!(super::clock(3_600_000 * 25 + 5), "25:00:00.0");
    }
}
