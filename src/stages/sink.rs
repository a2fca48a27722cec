//! `sink`: writes fragments to a file or stdout through a [`FragmentWriter`] (see
//! [`crate::io`] for what it protects: no clobbering, the lock, the cut-back of a failed
//! write), or an HLS directory through an [`HlsWriter`], on a blocking thread.
//!
//! A closed stdout (the reader of the pipe went away) is an error ("output closed"), both
//! when a write fails with `EPIPE` and, while no fragment is due, when polling the pipe shows
//! that its reader is gone.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Failure, StageContext, StageReport, StageResult};
// Re-exported from `crate::io`, where they live now.
pub use crate::io::Durability;
use crate::io::hls::HlsWriter;
use crate::io::{output_closed, FragmentWriter};
use crate::events::{FragmentEvent, RunEvent, StepEvent};
use crate::model::{Fragment, FragmentKind};

/// Settings of `sink`.
///
/// ```
/// use livemux::stages::sink::{Durability, SinkConfig};
/// let config = SinkConfig::new("out.mp4").with_durability(Durability::Flush).with_overwrite(true);
/// assert_eq!(config.durability(), Durability::Flush);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkConfig {
    /// A file, or `-` for stdout.
    pub path: PathBuf,
    /// Default: fsync for files, flush for stdout.
    pub durability: Option<Durability>,
    /// Whether a file that exists when the run begins may be replaced: `Some(true)` replaces
    /// it, `Some(false)` refuses it, the default (`None`) replaces it (the caller chose to:
    /// `livemux -y`). A file that did not exist when the run began but appears during it is
    /// someone else's and is never replaced, whatever this says.
    pub overwrite: Option<bool>,
    /// Write an HLS directory (`path`: the directory, or `DIR/index.m3u8`) from the
    /// fragmented-MP4 fragments it gets, instead of one file (README "Live HLS").
    pub hls: bool,
}

impl SinkConfig {
    /// Writes `path` (`-`: stdout) with the default durability and overwrite rule.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let hls = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("m3u8"));
        SinkConfig { path, durability: None, overwrite: None, hls }
    }

    /// Sets what happens after each fragment is written.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// Sets whether a file that exists when the run begins may be replaced (one that
    /// appears during the run never is).
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = Some(overwrite);
        self
    }

    /// Sets whether it writes an HLS directory (on by itself for a `.m3u8` path).
    pub fn with_hls(mut self, hls: bool) -> Self {
        self.hls = hls;
        self
    }

    /// Whether the output is stdout.
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// The durability in effect: the one set, else fsync for files and flush for stdout.
    pub fn durability(&self) -> Durability {
        self.durability.unwrap_or(if self.is_stdout() { Durability::Flush } else { Durability::Fsync })
    }

    /// The writer of this output, made now: without an explicit overwrite, a file that
    /// exists at this moment may be replaced.
    pub fn writer(&self) -> FragmentWriter {
        let w = FragmentWriter::create(&self.path).with_durability(self.durability());
        match self.overwrite {
            Some(o) => w.with_overwrite(o),
            None => w,
        }
    }
}

/// How often a pipe on stdout is checked for a reader that went away while no fragment is
/// being written.
pub const CLOSED_OUTPUT_POLL: Duration = Duration::from_millis(200);

/// Runs `sink`.
///
/// A panic in the blocking writer thread is resumed in this stage, so that the pipeline
/// runtime reports it as the stage's panic (an [`ErrorKind::Internal`] error), never as a
/// clean end.
///
/// [`ErrorKind::Internal`]: crate::ErrorKind::Internal
pub async fn run(ctx: StageContext, config: SinkConfig, input: mpsc::Receiver<Fragment>) -> StageResult {
    let ctx2 = ctx.clone();
    if config.hls {
        let handle = tokio::runtime::Handle::current();
        let write = move || {
            let mut events = Written::new(&ctx2, config.path.display().to_string(), config.durability());
            write_hls(&config, input, &handle, &mut events).map_err(|e| ctx2.error(Failure::Io(e)))
        };
        return match tokio::task::spawn_blocking(write).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ctx.error(Failure::Other(format!("sink thread failed: {e}")))),
        };
    }
    // Made before any input is read: if the output exists now, the caller chose to replace
    // it (`livemux -y`); if not, whatever appears there meanwhile is someone else's.
    let writer = config.writer();
    let handle = tokio::runtime::Handle::current();
    let name = config.path.display().to_string();
    // A stream is flushed, never fsynced: the events say what was done.
    let durability = match config.durability() {
        Durability::Fsync if config.is_stdout() => Durability::Flush,
        d => d,
    };
    let write = move || {
        let mut events = Written::new(&ctx2, name, durability);
        write_all(writer, input, &handle, &mut events).map_err(|e| ctx2.error(Failure::Io(e)))
    };
    match tokio::task::spawn_blocking(write).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ctx.error(Failure::Other(format!("sink thread failed: {e}")))),
    }
}

/// The events of a sink: one per fragment written, with what it has written so far.
struct Written<'a> {
    ctx: &'a StageContext,
    output: String,
    durability: Durability,
    /// Earliest start and latest end of the media written, ms.
    span: Option<(i64, i64)>,
    media_ms: u64,
    fragments: u64,
    steps: u64,
}

impl<'a> Written<'a> {
    fn new(ctx: &'a StageContext, output: String, durability: Durability) -> Self {
        Written { ctx, output, durability, span: None, media_ms: 0, fragments: 0, steps: 0 }
    }

    /// Writes `fragment` with `write` and tells of it.
    fn write(&mut self, fragment: &Fragment, write: impl FnOnce(&Fragment) -> io::Result<()>) -> io::Result<()> {
        let started = Instant::now();
        write(fragment)?;
        // Microseconds are plenty.
        let write_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
        let size = fragment.len();
        let event = match fragment.kind {
            // A stream skips in-place changes: nothing was written.
            FragmentKind::Finalize if self.output == "-" => return Ok(()),
            FragmentKind::Finalize => {
                self.steps += 1;
                RunEvent::FinalizeStep(StepEvent {
                    file: self.output.clone(),
                    step: self.steps,
                    steps: None,
                    kind: "write",
                    offset: fragment.offset,
                    bytes: size,
                })
            }
            _ if size == 0 => return Ok(()),
            kind => {
                if kind == FragmentKind::Media {
                    self.fragments += 1;
                    // From the earliest start to the latest end: fragments may overlap
                    // (a Matroska cluster starts with a late packet of another track).
                    if let Some(start) = fragment.start_ms {
                        let end = start.saturating_add(i64::try_from(fragment.duration_ms).unwrap_or(i64::MAX));
                        let span = self.span.map_or((start, end), |(lo, hi)| (lo.min(start), hi.max(end)));
                        self.span = Some(span);
                        self.media_ms = u64::try_from(span.1.saturating_sub(span.0)).unwrap_or(0);
                    }
                }
                RunEvent::Fragment(FragmentEvent {
                    stage: self.ctx.name.clone(),
                    output: self.output.clone(),
                    kind: match kind {
                        FragmentKind::Header => "header",
                        FragmentKind::Trailer => "trailer",
                        _ => "media",
                    },
                    offset: fragment.offset,
                    size,
                    packets: fragment.packets,
                    start_ms: fragment.start_ms,
                    duration_ms: fragment.duration_ms,
                    media_ms: self.media_ms,
                    fragments: self.fragments,
                    durability: self.durability.name(),
                    write_ms,
                })
            }
        };
        self.ctx.emit(event);
        Ok(())
    }
}

fn write_all(
    mut writer: FragmentWriter,
    mut input: mpsc::Receiver<Fragment>,
    handle: &tokio::runtime::Handle,
    events: &mut Written<'_>,
) -> io::Result<StageReport> {
    let watch_stdout = writer.is_stdout() && fd_is_pipe_or_socket(1);
    while let Some(fragment) = next_fragment(handle, &mut input, watch_stdout)? {
        events.write(&fragment, |f| writer.write_io(f))?;
    }
    Ok(StageReport::default())
}

/// Writes an HLS directory, made at the first fragment; `EXT-X-ENDLIST` at the end of the
/// input.
fn write_hls(
    config: &SinkConfig,
    mut input: mpsc::Receiver<Fragment>,
    handle: &tokio::runtime::Handle,
    events: &mut Written<'_>,
) -> io::Result<StageReport> {
    let mut writer: Option<HlsWriter> = None;
    while let Some(fragment) = next_fragment(handle, &mut input, false)? {
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(HlsWriter::open(&config.path, config.durability())?),
        };
        events.write(&fragment, |f| w.write_io(f))?;
    }
    if let Some(w) = &mut writer {
        w.finish()?;
    }
    Ok(StageReport::default())
}

/// Whether `fd` is a pipe or a socket (whose reader can go away).
fn fd_is_pipe_or_socket(fd: i32) -> bool {
    // SAFETY: fstat fills the struct it is given; an invalid fd only returns an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    kind == libc::S_IFIFO || kind == libc::S_IFSOCK
}

/// Whether the reader of the pipe or socket `fd` has gone away (POLLERR/POLLHUP).
fn reader_gone(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// Waits for the next fragment. While waiting, a pipe on stdout whose reader went away
/// ends the run with [`output_closed`].
fn next_fragment(
    handle: &tokio::runtime::Handle,
    input: &mut mpsc::Receiver<Fragment>,
    watch_stdout: bool,
) -> io::Result<Option<Fragment>> {
    if !watch_stdout {
        return Ok(input.blocking_recv());
    }
    loop {
        match handle.block_on(async { tokio::time::timeout(CLOSED_OUTPUT_POLL, input.recv()).await }) {
            Ok(next) => return Ok(next),
            Err(_) if reader_gone(1) => return Err(output_closed()),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_whose_reader_closed_is_noticed() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe fills two descriptors, closed below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(fd_is_pipe_or_socket(fds[1]));
        assert!(!reader_gone(fds[1]));
        unsafe { libc::close(fds[0]) };
        assert!(reader_gone(fds[1]));
        unsafe { libc::close(fds[1]) };
    }
}
