//! Argument parsing, output and exit codes.

mod docs;
mod probe;
mod serve;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::hls::DEFAULT_SEGMENT_MS;
use crate::formats::mp4::append::AppendOptions;
use crate::formats::mp4::regular::DEFAULT_RESERVE_MS;
use crate::pipeline::{Override, Pipeline, PipelineFileError, StageConfig};
use crate::stages::codecpar::{CodecparConfig, ParamPolicy};
use crate::stages::mux::{MuxConfig, MuxFormat};
use crate::stages::sink::{Durability, SinkConfig};
use crate::stages::source::SourceConfig;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use ui::{fail, say, Input};

/// Exit code for runtime failures.
const EXIT_RUNTIME: u8 = 1;
/// Exit code for usage and pipeline-file errors.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "livemux",
    version,
    about = "Turn live recorder output into crash-safe media files, in real time",
    after_help = "Examples:
  (in the repository's folder: samples/ and pipelines/ ship with it)
  livemux remux samples/chrome_mp4_avc1_opus.mp4 -o safe.mp4   # regular MP4 at the end, crash-safe meanwhile
  cat samples/chrome_mp4_avc1_opus.mp4 | livemux remux - -o live.mp4 --fragment-ms 500
  livemux remux samples/chrome_mp4_avc1_opus.mp4 -o frag.mp4 --to fmp4 && livemux finalize frag.mp4
  livemux probe samples/chrome_mp4_avc1_opus.mp4 --json
  livemux recover frag.mp4 --reference samples/chrome_mp4_avc1_opus_probe.mp4 -o recovered.mkv
  livemux run pipelines/remux-fmp4.toml --set sink.path=out.mp4
  livemux validate pipelines/follow-fanout.toml
  livemux append safe.mp4 samples/chrome_mp4_avc1_opus.mp4
  livemux -v remux samples/chrome_mp4_avc1_opus.mp4 -o v.mkv --events events.jsonl
  livemux completions bash > ~/.local/share/bash-completion/completions/livemux
  livemux man > livemux.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    ui: ui::UiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file.
    #[command(
        after_help = "Example:\n  livemux run pipelines/remux-fmp4.toml --set source.path=in.mp4 --set sink.path=out.mp4"
    )]
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Override a stage setting: STAGE.KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
        set: Vec<Override>,
        #[command(flatten)]
        overwrite: OverwriteArgs,
    },
    /// Check a pipeline file and report every error in it.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Override a stage setting: STAGE.KEY=VALUE (repeatable), checked like the file.
        #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
        set: Vec<Override>,
    },
    /// Remux a recording (file, growing file or stdin) into a crash-safe file.
    #[command(after_help = "Examples:
  livemux remux samples/chrome_mp4_avc1_opus.mp4 -o out.mp4
  cat samples/chrome_mp4_avc1_opus.mp4 | livemux remux - -o - > out.mp4
  livemux remux samples/chrome_mp4_avc1_opus.mp4 --follow -o safe.mkv --fragment-ms 500
  cat samples/chrome_mp4_avc1_opus.mp4 | livemux remux - --to hls -o live/   # live/index.m3u8 as it records

An output file that exists is replaced only with -y (never when it is the input).
SIGINT, SIGTERM and SIGHUP finish the output (exit 0); a second one stops at once.")]
    Remux {
        /// Input file, or - for stdin.
        input: PathBuf,
        /// Output file, or - for stdout.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        overwrite: OverwriteArgs,
        /// Output format: fmp4; mp4 (fragmented while recording, a regular MP4 at a clean
        /// stop); mkv; webm (VP8, VP9, AV1 and Opus only); matroska (webm when the codecs
        /// allow, mkv otherwise); or hls (-o is a directory or DIR/index.m3u8: an EVENT
        /// playlist of CMAF segments, ENDLIST at a clean stop). Default: from the output's
        /// extension (.mp4 .m4a .m4v .mov: mp4; .m4s .cmfv .cmfa: fmp4; .mkv .mka: mkv;
        /// .webm; .m3u8: hls; any other is refused), fmp4 for - and other streams (a FIFO,
        /// a device).
        #[arg(long, value_parser = ["fmp4", "mp4", "mkv", "webm", "matroska", "hls"])]
        to: Option<String>,
        /// With --to hls: segments end at the first video keyframe after this many
        /// milliseconds, or at twice that [default: 2000] (instead of --fragment-ms).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..3_600_000))]
        segment_ms: Option<u64>,
        /// With --to mp4: the expected duration; room for the index of that much is kept
        /// before the media so that the index can go first (0: the index goes at the end)
        /// [default: the input's duration for a finished file, read first; 60000 for a
        /// live input (stdin, --follow)].
        #[arg(long, value_name = "MS")]
        reserve_ms: Option<u64>,
        /// Fragments end at the first video keyframe after this many milliseconds.
        #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..3_600_000))]
        fragment_ms: u64,
        /// ...or here, keyframe or not (the most a crash can lose) [default: twice --fragment-ms].
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..3_600_000))]
        max_fragment_ms: Option<u64>,
        /// After each fragment: none, flush, or fsync (default: fsync for files, flush for stdout).
        #[arg(long, value_parser = ["none", "flush", "fsync"])]
        durability: Option<String>,
        /// Follow a file that is still being written.
        #[arg(long)]
        follow: bool,
        /// With --follow: end after this many milliseconds without growth.
        #[arg(long, default_value_t = 5000)]
        idle_timeout_ms: u64,
        /// Drop the tracks the output format cannot carry (each named in a note) instead
        /// of refusing the input.
        #[arg(long)]
        skip_unsupported: bool,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Recover a recording a crash left behind, with codec parameters from a reference.
    #[command(after_help = "Example:
  livemux recover crashed.mp4 --reference samples/chrome_mp4_avc1_opus_probe.mp4 -o recovered.mp4

The reference is a short complete recording made with the same recorder and settings.")]
    Recover {
        /// The damaged recording, or - for stdin.
        input: PathBuf,
        /// A complete recording of the same source with the same settings.
        #[arg(long, required = true)]
        reference: PathBuf,
        /// Output file, or - for stdout.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        overwrite: OverwriteArgs,
        /// Output format: fmp4, mp4, mkv, webm, matroska or hls (default: from the output's name).
        #[arg(long, value_parser = ["fmp4", "mp4", "mkv", "webm", "matroska", "hls"])]
        to: Option<String>,
        /// Drop the tracks the output format cannot carry (each named in a note) instead
        /// of refusing the input.
        #[arg(long)]
        skip_unsupported: bool,
    },
    /// Make a recording left by a crash or a browser seekable and indexed, in place.
    #[command(after_help = "Examples:
  livemux finalize crashed.mp4     # fragmented MP4 -> regular MP4, no media rewritten
  livemux finalize browser.webm    # adds Duration, Cues and SeekHead
  livemux remux samples/chrome_mp4_avc1_opus.mp4 -o frag.mp4 --to fmp4 && livemux finalize frag.mp4

Every intermediate state of the file is valid: a crash during finalize leaves a file
that plays, and running finalize again completes it. A file that another program is
writing (a running livemux remux holds its lock) is refused.")]
    Finalize {
        /// The file to change in place.
        file: PathBuf,
    },
    /// Append recordings to an MP4 in place: TARGET becomes TARGET + each SOURCE.
    #[command(
        after_help = "A chunk is what slices count: in a progressive MP4, one chunk of a track's sample-to-chunk
table (stsc/stco), all tracks together in file order; in a fragmented MP4, one fragment (a moof
and its media). Slices use Python syntax: [start:stop], negative bounds count from the end,
omitted bounds mean the start or the end, [i] is chunk i alone. A slice of TARGET may only drop
chunks from its end, so that TARGET's media never moves.

Examples:
  livemux remux samples/chrome_mp4_avc1_opus.mp4 -o a.mp4
  livemux append a.mp4 samples/chrome_mp4_avc1_opus.mp4 --future-frames 100000
  livemux append 'a.mp4[0:-1]' 'samples/chrome_mp4_avc1_opus.mp4[0:1]'

Sources must match TARGET track for track: same codecs, resolutions and audio formats, and the
same codec parameters (others are refused unless --new-sample-entries); other timescales are
converted exactly. TARGET is changed in place when its reserved index space allows: the media,
the new index and a 4-byte switch are written. Otherwise it is rewritten once, through a
temporary file beside it, with room for --future-frames more frames and never less than twice
the index, so a file that keeps growing is rewritten log(n) times. Every state of TARGET during
an append, a crash included, is the old file or the new one. Two appends to one TARGET wait
for each other; a TARGET that another program is writing (a running livemux remux holds its
lock) is refused. Sources are MP4/MOV files (remux others to MP4 first)."
    )]
    Append {
        /// The MP4 to change in place, with an optional slice ('a.mp4[0:-1]').
        target: String,
        /// Recordings to append, in order, each with an optional slice ('b.mp4[2:]'). At least
        /// one, unless TARGET has a slice (which only cuts its end).
        sources: Vec<String>,
        /// When TARGET is rewritten, reserve index room for this many more frames.
        #[arg(long, default_value_t = 0, value_name = "N")]
        future_frames: u64,
        /// Give a source with other H.264/HEVC/AAC parameters (same resolution or audio
        /// format) a sample entry of its own instead of refusing it. FFmpeg and GStreamer
        /// play the result; Chromium does not.
        #[arg(long)]
        new_sample_entries: bool,
    },
    /// Run the resumable ingest server (tus 1.0): each upload becomes a crash-safe recording.
    #[command(after_help = "Examples:
  livemux serve --data-dir rec/                      # anonymous, on 127.0.0.1:8080 only
  livemux serve --data-dir rec/ --demo               # and a recorder page at http://127.0.0.1:8080/
  livemux serve --listen 0.0.0.0:8080 --data-dir /var/lib/livemux --jwt-secret-file secret
  livemux serve --config serve.toml --log-format json

Uploads: POST /files/ (tus creation), HEAD/PATCH/DELETE /files/{id}, GET /files/{id}/status,
GET /files/{id}/output, GET /metrics, GET /healthz. SIGINT/SIGTERM: stop accepting, finish the
requests in flight, leave every recording resumable, exit 0.")]
    Serve(serve::ServeArgs),
    /// Mint a bearer token for `livemux serve` (HS256 JWT with rec, scope, exp).
    #[command(
        after_help = "Example:\n  livemux token --jwt-secret-file secret --rec talk-42 --scope upload --ttl 3600"
    )]
    Token(serve::TokenArgs),
    /// Describe a recording: container, layout, tracks and codec parameters.
    #[command(after_help = "Examples:
  livemux probe samples/chrome_mp4_avc1_opus.mp4
  livemux probe samples/chrome_mp4_avc1_opus.mp4 --json     # schema: schemas/probe.schema.json")]
    Probe {
        /// Input file, or - for stdin.
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Print a shell completion script on stdout.
    #[command(after_help = "Examples:
  livemux completions bash > ~/.local/share/bash-completion/completions/livemux
  livemux completions zsh > ~/.zfunc/_livemux        # with fpath+=~/.zfunc before compinit
  livemux completions fish > ~/.config/fish/completions/livemux.fish")]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of livemux, or of one of its commands.
    #[command(after_help = "Examples:
  livemux man > livemux.1 && man -l livemux.1
  livemux man remux > livemux-remux.1")]
    Man {
        /// A command (remux, serve...): its own page, livemux-COMMAND(1).
        command: Option<String>,
    },
}

/// What to do with an output file that already exists.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct OverwriteArgs {
    /// Replace output files that already exist (never the input itself).
    #[arg(short = 'y', long = "overwrite", conflicts_with = "no_overwrite")]
    overwrite: bool,
    /// Leave output files that already exist alone: do nothing and exit 0.
    #[arg(short = 'n', long = "no-overwrite")]
    no_overwrite: bool,
}

/// Where codec parameters come from.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ParamArgs {
    /// A complete recording of the same source with the same settings, whose codec
    /// parameters replace the stream's where these are missing or unusable.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// stream, reference, or auto (the stream's unless unusable). Default: auto with
    /// --reference, stream without.
    #[arg(long, value_parser = ["stream", "reference", "auto"])]
    params: Option<String>,
}

impl ParamArgs {
    fn config(self) -> CodecparConfig {
        let default = if self.reference.is_some() { ParamPolicy::Auto } else { ParamPolicy::Stream };
        CodecparConfig {
            params: self.params.map_or(default, |p| p.parse().expect("clap checked the value")),
            reference: self.reference,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let reports = matches!(
        cli.command,
        Command::Run { .. }
            | Command::Remux { .. }
            | Command::Recover { .. }
            | Command::Finalize { .. }
            | Command::Append { .. }
    );
    if let Err(e) = ui::init(&cli.ui, matches!(cli.command, Command::Serve(_)), reports) {
        fail!("{e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = runtime.block_on(run_command(cli.command));
    ui::finish(code);
    ExitCode::from(code)
}

/// Runs one subcommand; returns its exit code.
async fn run_command(command: Command) -> u8 {
    let code = match command {
        Command::Run { pipeline, set, overwrite } => run_file(&pipeline, &set, overwrite).await,
        Command::Validate { pipeline, set } => validate(&pipeline, &set),
        Command::Remux {
            input,
            output,
            overwrite,
            to,
            segment_ms,
            reserve_ms,
            fragment_ms,
            max_fragment_ms,
            durability,
            follow,
            idle_timeout_ms,
            skip_unsupported,
            params,
        } => {
            let options = RemuxOptions {
                to,
                segment_ms,
                reserve_ms,
                fragment: FragmentPolicy { min_ms: fragment_ms, max_ms: max_fragment_ms.unwrap_or(2 * fragment_ms) },
                durability,
                follow,
                idle_timeout_ms,
                skip_unsupported,
            };
            remux(input, output, overwrite, options, params).await
        }
        Command::Recover { input, reference, output, overwrite, to, skip_unsupported } => {
            recover(input, reference, output, overwrite, to.as_deref(), skip_unsupported).await
        }
        Command::Finalize { file } => finalize(&file),
        Command::Append { target, sources, future_frames, new_sample_entries } => {
            append(&target, &sources, AppendOptions { future_frames, new_sample_entries })
        }
        Command::Probe { input, json, params } => probe::run(input, json, params.config()).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Token(args) => serve::token(args),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { command } => docs::man(command.as_deref()),
    };
    // Every command returns one of these.
    [0, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED]
        .into_iter()
        .find(|&c| ExitCode::from(c) == code)
        .unwrap_or(EXIT_RUNTIME)
}

/// `livemux run`: loads the pipeline file, checks its outputs, runs it.
async fn run_file(pipeline: &std::path::Path, set: &[Override], overwrite: OverwriteArgs) -> ExitCode {
    let p = match Pipeline::load(pipeline, set) {
        Ok(p) => p,
        Err(e) => return report_file_error(&e),
    };
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for stage in &p.graph().stages {
        match &stage.config {
            StageConfig::Source(c) => inputs.push(c.path.clone()),
            StageConfig::Codecpar(c) => inputs.extend(c.reference.clone()),
            StageConfig::Sink(c) => outputs.push(c.path.clone()),
            _ => {}
        }
    }
    match check_outputs(&inputs, &outputs, overwrite) {
        Ok(true) => {
            ui::start("run", &inputs, &outputs, pipeline_input(&p));
            run_pipeline(p).await
        }
        Ok(false) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// What progress a run can show of `input`: a file's share read, or a live input's time.
fn input_of(input: &std::path::Path, live: bool) -> Input {
    match std::fs::metadata(input) {
        Ok(m) if !live && m.is_file() => Input::File(m.len()),
        _ => Input::Live,
    }
}

/// [`input_of`] the pipeline's only source (a file job only with one source, not followed).
fn pipeline_input(p: &Pipeline) -> Input {
    let mut sources = p.graph().stages.iter().filter_map(|s| match &s.config {
        StageConfig::Source(c) => Some(c),
        _ => None,
    });
    match (sources.next(), sources.next()) {
        (Some(c), None) => input_of(&c.path, c.follow || c.is_stdin()),
        _ => Input::Live,
    }
}

/// `livemux validate`: loads the pipeline file and reports.
fn validate(pipeline: &std::path::Path, set: &[Override]) -> ExitCode {
    match Pipeline::load(pipeline, set) {
        Ok(p) => {
            say!("{}: ok ({} stages)", pipeline.display(), p.graph().stages.len());
            ExitCode::SUCCESS
        }
        Err(e) => report_file_error(&e),
    }
}

/// The options of `livemux remux` besides its input, output and codec parameters.
struct RemuxOptions {
    to: Option<String>,
    segment_ms: Option<u64>,
    reserve_ms: Option<u64>,
    fragment: FragmentPolicy,
    durability: Option<String>,
    follow: bool,
    idle_timeout_ms: u64,
    skip_unsupported: bool,
}

/// `livemux remux`: checks the options and outputs, builds the pipeline, runs it.
async fn remux(
    input: PathBuf,
    output: PathBuf,
    overwrite: OverwriteArgs,
    options: RemuxOptions,
    params: ParamArgs,
) -> ExitCode {
    let RemuxOptions {
        to,
        segment_ms,
        reserve_ms,
        mut fragment,
        durability,
        follow,
        idle_timeout_ms,
        skip_unsupported,
    } = options;
    if fragment.max_ms < fragment.min_ms {
        fail!("--max-fragment-ms ({}) is less than --fragment-ms ({})", fragment.max_ms, fragment.min_ms);
        return ExitCode::from(EXIT_USAGE);
    }
    let format = match output_format(to.as_deref(), &output) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let hls = format == MuxFormat::Hls;
    if hls {
        let ms = segment_ms.unwrap_or(DEFAULT_SEGMENT_MS);
        fragment = FragmentPolicy { min_ms: ms, max_ms: ms.saturating_mul(2) };
    } else if segment_ms.is_some() {
        fail!("--segment-ms is for --to hls (use --fragment-ms)");
        return ExitCode::from(EXIT_USAGE);
    }
    // An HLS directory is continued, never replaced: only the input is checked against it.
    let is_playlist = output.extension().is_some_and(|e| e.eq_ignore_ascii_case("m3u8"));
    let checked = if hls && is_playlist { crate::io::parent_dir(&output).to_path_buf() } else { output.clone() };
    let inputs: Vec<PathBuf> = std::iter::once(input.clone()).chain(params.reference.clone()).collect();
    match check_outputs(&inputs, std::slice::from_ref(&checked), overwrite) {
        Ok(true) => {}
        Ok(false) => return ExitCode::SUCCESS,
        Err(code) => return code,
    }
    let live = follow || input.as_os_str() == "-";
    ui::start("remux", &inputs, std::slice::from_ref(&output), input_of(&input, live));
    // A finished file's duration sizes what a regular MP4 reserves (read once first: a
    // header cannot grow after it is written). A live input's duration is not known yet.
    // A duration is believed up to one millisecond per byte of input (8 kbit/s, less than
    // any recording with video): a file that claims more (a lying header, a timestamp
    // jump) does not get a huge reserve; its index goes at the end instead.
    let finished = std::fs::metadata(&input).ok().filter(|m| !live && m.is_file()).map(|m| m.len());
    let known_duration_ms = match (format, reserve_ms, finished) {
        (MuxFormat::Mp4, None, Some(len)) => probe::duration_ms(input.clone()).await.map(|ms| ms.min(len)),
        _ => None,
    };
    let source = SourceConfig {
        path: input,
        follow,
        idle_timeout: std::time::Duration::from_millis(idle_timeout_ms),
        ..SourceConfig::default()
    };
    let mut sink = SinkConfig::new(output).with_hls(hls);
    sink.durability = durability.map(|d| d.parse::<Durability>().expect("clap checked the value"));
    let reserve_ms = reserve_ms.unwrap_or(DEFAULT_RESERVE_MS);
    let mux = MuxConfig { format, fragment, reserve_ms, skip_unsupported, known_duration_ms };
    match Pipeline::remux(source, params.config(), mux, sink) {
        Ok(p) => run_pipeline(p).await,
        Err(e) => usage_error(&e),
    }
}

/// `livemux recover`: remuxes `input` with codec parameters from `reference` where its
/// own are missing or unusable.
async fn recover(
    input: PathBuf,
    reference: PathBuf,
    output: PathBuf,
    overwrite: OverwriteArgs,
    to: Option<&str>,
    skip_unsupported: bool,
) -> ExitCode {
    match check_outputs(&[input.clone(), reference.clone()], std::slice::from_ref(&output), overwrite) {
        Ok(true) => {}
        Ok(false) => return ExitCode::SUCCESS,
        Err(code) => return code,
    }
    let live = input.as_os_str() == "-";
    ui::start("recover", &[input.clone(), reference.clone()], std::slice::from_ref(&output), input_of(&input, live));
    let source = SourceConfig { path: input, ..SourceConfig::default() };
    let params = CodecparConfig { params: ParamPolicy::Auto, reference: Some(reference) };
    let format = match output_format(to, &output) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mux = MuxConfig { format, skip_unsupported, ..MuxConfig::default() };
    let sink = SinkConfig::new(output).with_hls(format == MuxFormat::Hls);
    match Pipeline::remux(source, params, mux, sink) {
        Ok(p) => run_pipeline(p).await,
        Err(e) => usage_error(&e),
    }
}

/// The `--to` format: as given, else `fmp4` for a stream (stdout, a FIFO, a device), and
/// what [`EXTENSIONS`] says for a file.
/// A regular MP4 is finished in place, so `--to mp4` to stdout is a usage error.
fn output_format(to: Option<&str>, output: &std::path::Path) -> Result<MuxFormat, ExitCode> {
    let stream = output.as_os_str() == "-";
    let format = output_format_of(to, output, stream)?;
    if format == MuxFormat::Hls {
        if stream {
            fail!("--to hls writes a directory: give -o DIR or -o DIR/index.m3u8");
            return Err(ExitCode::from(EXIT_USAGE));
        }
        if output.file_name().is_some_and(|n| n == crate::formats::hls::MEDIA_PLAYLIST) {
            fail!("stream.m3u8 is the media playlist's name: give -o DIR or DIR/OTHER.m3u8");
            return Err(ExitCode::from(EXIT_USAGE));
        }
    }
    Ok(format)
}

fn output_format_of(to: Option<&str>, output: &std::path::Path, stream: bool) -> Result<MuxFormat, ExitCode> {
    match to {
        Some("mp4") if stream => {
            fail!("--to mp4 is finished in place at the end and needs a file output; use --to fmp4 for -");
            Err(ExitCode::from(EXIT_USAGE))
        }
        Some(t) => Ok(t.parse().expect("clap checked the value")),
        // stdout, a FIFO, a device (/dev/null): a stream, whatever its name.
        None if stream || std::fs::metadata(output).is_ok_and(|m| !m.is_file() && !m.is_dir()) => Ok(MuxFormat::Fmp4),
        None => match format_of_extension(output) {
            Some(f) => Ok(f),
            None => {
                let name =
                    output.file_name().map_or_else(|| output.display().to_string(), |n| n.to_string_lossy().into());
                fail!("cannot tell the output format from the name {name}: give --to, or a name ending in one of");
                for (exts, _, what) in EXTENSIONS {
                    ui::line(&format!("  {:<22}{what}", exts.join(" ")));
                }
                Err(ExitCode::from(EXIT_USAGE))
            }
        },
    }
}

/// The output format each file extension picks when `--to` is not given (README "Output
/// formats"); any other name is a usage error that lists these.
const EXTENSIONS: &[(&[&str], MuxFormat, &str)] = &[
    (&[".mp4", ".m4a", ".m4v", ".mov"], MuxFormat::Mp4, "MP4: fragmented while recording, regular at a clean stop"),
    (&[".m4s", ".cmfv", ".cmfa"], MuxFormat::Fmp4, "fragmented MP4 (CMAF), left fragmented"),
    (&[".mkv", ".mka"], MuxFormat::Mkv, "Matroska, seekable at a clean stop"),
    (&[".webm"], MuxFormat::Webm, "WebM (VP8, VP9, AV1, Opus), seekable at a clean stop"),
    (&[".m3u8"], MuxFormat::Hls, "HLS: the playlist, segments beside it"),
];

/// The format [`EXTENSIONS`] gives `path`'s extension.
fn format_of_extension(path: &std::path::Path) -> Option<MuxFormat> {
    let ext = format!(".{}", path.extension()?.to_str()?.to_ascii_lowercase());
    EXTENSIONS.iter().find(|(exts, _, _)| exts.contains(&ext.as_str())).map(|&(_, f, _)| f)
}

fn finalize(path: &std::path::Path) -> ExitCode {
    let run = ui::start("finalize", &[path.to_path_buf()], &[path.to_path_buf()], Input::None);
    match crate::finalize::finalize_file_observed(path, Some(&run.observer())) {
        Ok(r) if r.writes == 0 => {
            for note in &r.notes {
                run.note("finalize", note);
            }
            say!("{}: nothing to do ({} bytes unchanged)", path.display(), r.len_after);
            ExitCode::SUCCESS
        }
        Ok(r) => {
            for note in &r.notes {
                run.note("finalize", note);
            }
            let share = r.bytes_written as f64 * 100.0 / r.len_after.max(1) as f64;
            say!(
                "{}: finalized ({}): {} bytes written in {} steps ({share:.3}% of {} bytes)",
                path.display(),
                r.container,
                r.bytes_written,
                r.writes,
                r.len_after
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail!("cannot finalize {}", path.display());
            ui::line(&format!("  caused by: {e}"));
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn append(target: &str, sources: &[String], options: AppendOptions) -> ExitCode {
    use crate::append::AppendRequest;
    use crate::formats::mp4::append::{parse_input_arg, ChunkSlice, Mode};
    let exists = |p: &str| std::path::Path::new(p).exists();
    let mut parsed = Vec::with_capacity(sources.len() + 1);
    for arg in std::iter::once(target).chain(sources.iter().map(String::as_str)) {
        match parse_input_arg(arg, exists) {
            Ok((path, slice)) => parsed.push((PathBuf::from(path), slice)),
            Err(e) => {
                fail!("{e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let (target_path, target_slice) = parsed.remove(0);
    if parsed.is_empty() && target_slice == ChunkSlice::All {
        fail!("nothing to append to {}: give at least one SOURCE", target_path.display());
        ui::line("  usage: livemux append TARGET SOURCE... (or 'TARGET[0:-1]' alone to cut TARGET's last chunk)");
        return ExitCode::from(EXIT_USAGE);
    }
    let request = AppendRequest {
        target: target_path.clone(),
        target_slice,
        sources: parsed,
        options,
        // For crash tests: a pause after every write step.
        step_pause: std::env::var("LIVEMUX_APPEND_STEP_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis),
    };
    let inputs: Vec<PathBuf> =
        std::iter::once(&request.target).chain(request.sources.iter().map(|(p, _)| p)).cloned().collect();
    let run = ui::start("append", &inputs, std::slice::from_ref(&request.target), Input::None);
    match crate::append::append_file(&request, Some(&run.observer())) {
        Ok(report) => {
            let r = &report.plan;
            for note in &r.notes {
                run.note("append", note);
            }
            let how = match &r.mode {
                Mode::InPlace => "in place".to_string(),
                Mode::Rewrite(reason) => format!("by a rewrite ({reason})"),
            };
            say!(
                "{}: {} chunks appended ({} bytes of media) {how}: {} bytes written, index {} bytes with room for {}, \
                 file {} bytes",
                target_path.display(),
                r.source_chunks,
                r.media_bytes,
                report.bytes_written,
                r.index_bytes,
                r.area,
                r.len_after
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail!("cannot append to {}", target_path.display());
            ui::line(&format!("  caused by: {e}"));
            if e.target_unchanged() {
                ui::line(&format!("  {} is unchanged", target_path.display()));
            }
            ExitCode::from(if e.is_usage() { EXIT_USAGE } else { EXIT_RUNTIME })
        }
    }
}

/// Runs until the input ends. SIGINT (Ctrl-C), SIGTERM (`kill`, `systemctl stop`) and SIGHUP
/// (a closed terminal) end the input early and still finish the output (exit 0); a second
/// one of them stops at once, leaving the crash-safe state: every complete fragment.
async fn run_pipeline(mut p: Pipeline) -> ExitCode {
    if let Some(run) = ui::current() {
        p.observe(run.observer());
    }
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    match StopSignals::new() {
        Ok(mut signals) => {
            tokio::spawn(async move {
                let first = signals.next().await;
                // Stop first: after a hang-up, stderr may be gone (writes fail with EIO),
                // so nothing here may panic on a failed write (`ui::line` ignores them).
                on_signal.cancel();
                if let Some(run) = ui::current() {
                    run.stopped_by(first);
                }
                say!("note: {first}: finishing the output (send it again to stop at once)");
                let second = signals.next().await;
                fail!(
                    "{second} again: stopped at once; the output keeps every complete fragment \
                     but was not finished (livemux finalize can finish a file)"
                );
                ui::finish(EXIT_INTERRUPTED);
                std::process::exit(EXIT_INTERRUPTED.into());
            });
        }
        Err(e) => ui::line(&format!("warning: cannot catch signals: {e}")),
    }
    match p.run(stop).await {
        Ok(report) => {
            for (stage, note) in report.notes {
                say!("note: {stage}: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&e);
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Resolves at the first SIGINT, SIGTERM or SIGHUP (never, when they cannot be caught).
fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let signals = StopSignals::new();
    async move {
        match signals {
            Ok(mut s) => {
                let first = s.next().await;
                say!("note: {first}: stopping");
            }
            Err(e) => {
                ui::line(&format!("warning: cannot catch signals: {e}"));
                std::future::pending::<()>().await
            }
        }
    }
}

/// Exit code after a second stop signal (as shells report a Ctrl-C).
const EXIT_INTERRUPTED: u8 = 130;

/// SIGINT, SIGTERM and SIGHUP, as one stream.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// None when SIGHUP was ignored at start (`nohup`): it stays ignored.
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: if ignored(libc::SIGHUP) { None } else { Some(signal(SignalKind::hangup())?) },
        })
    }

    async fn next(&mut self) -> &'static str {
        let hup = async {
            match &mut self.hup {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => "interrupted (SIGINT)",
            _ = self.term.recv() => "terminated (SIGTERM)",
            _ = hup => "hung up (SIGHUP)",
        }
    }
}

/// Whether `signal` is ignored (as `nohup` leaves SIGHUP).
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Checks the outputs of a run before it starts: none may be one of the inputs (through
/// symlinks and hard links too: same device and inode) or stdin's file, and one that exists
/// is replaced only with `-y`. Returns whether to run (`-n` and an existing output: no).
fn check_outputs(inputs: &[PathBuf], outputs: &[PathBuf], policy: OverwriteArgs) -> Result<bool, ExitCode> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let stdin_id = inputs.iter().any(|i| i.as_os_str() == "-").then(stdin_file_id).flatten();
    if ui::events_on_stdout() && outputs.iter().any(|o| o.as_os_str() == "-") {
        fail!("--events and the output both go to stdout: give --events a FILE or fd:N");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut run = true;
    for out in outputs.iter().filter(|o| o.as_os_str() != "-") {
        // Two sinks onto one file would interleave their fragments.
        let name = normalized(out);
        if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
            fail!("{} and {} are the same output file", other.display(), out.display());
            return Err(ExitCode::from(EXIT_USAGE));
        }
        seen.push((out.clone(), name));
        let Ok(meta) = std::fs::metadata(out) else {
            continue;
        };
        for input in inputs {
            let same = if input.as_os_str() == "-" {
                stdin_id == Some(id(&meta))
            } else {
                std::fs::metadata(input).is_ok_and(|m| id(&m) == id(&meta))
            };
            if same {
                let what =
                    if input.as_os_str() == "-" { "stdin's file".to_string() } else { input.display().to_string() };
                fail!(
                    "the output {} is the input {what} (the same file): writing it would destroy the input",
                    out.display()
                );
                ui::line("  choose another output name");
                return Err(ExitCode::from(EXIT_USAGE));
            }
        }
        if !meta.is_file() {
            // A device or a FIFO (/dev/null, a named pipe) is written as a stream.
            continue;
        }
        if policy.no_overwrite {
            say!("note: {} already exists; not overwritten (-n): nothing done", out.display());
            run = false;
        } else if !policy.overwrite {
            fail!("{} already exists", out.display());
            ui::line("  pass -y (--overwrite) to replace it, or -n (--no-overwrite) to leave it");
            return Err(ExitCode::from(EXIT_USAGE));
        } else if let Ok(f) = std::fs::File::open(out) {
            // Fail now, before reading any input, rather than at the first fragment.
            if let Err(e) = crate::io::lock_or_refuse(&f, out) {
                fail!("cannot write {}", out.display());
                ui::line(&format!("  caused by: {e}"));
                return Err(ExitCode::from(EXIT_RUNTIME));
            }
        }
    }
    Ok(run)
}

/// (device, inode) of the regular file stdin reads, if it reads one (`< file`). Asked of
/// fd 0 itself: opening /dev/stdin could block on a FIFO.
fn stdin_file_id() -> Option<(u64, u64)> {
    // SAFETY: fstat fills the struct it is given; fd 0 may be closed, which is an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(0, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// `path` with its directory resolved (the file itself may not exist yet).
fn normalized(path: &std::path::Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => path.to_path_buf(),
    }
}

/// One line for the error, then its causes.
pub(crate) fn print_error(e: &dyn std::error::Error) {
    fail!("{e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !e.to_string().contains(&text) {
            ui::line(&format!("  caused by: {text}"));
        }
        cause = c.source();
    }
}

/// A pipeline built from the arguments does not fit together (a bug: the arguments are checked first).
fn usage_error(e: &crate::Error) -> ExitCode {
    print_error(e);
    ExitCode::from(EXIT_USAGE)
}

fn report_file_error(e: &PipelineFileError) -> ExitCode {
    fail!("{e}");
    eprint!("{}", e.render(crate::pipeline::MAX_RENDERED_ERRORS));
    ExitCode::from(EXIT_USAGE)
}
