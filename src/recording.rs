//! [`Recording`]: a recording written to a file as its bytes arrive (see the type's doc).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::hls::DEFAULT_SEGMENT_MS;
use crate::formats::output::{MuxConfig, MuxFormat};
use crate::formats::pace::LivePace;
use crate::formats::remux::{RemuxOptions, Remuxer};
use crate::io::hls::HlsWriter;
use crate::io::{Durability, FragmentWriter};
use crate::model::{Fragment, FragmentKind, TrackSet};

/// How a [`Recording`] is made: `RecordingOptions::default()` and the setters below.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecordingOptions {
    /// The remux: fragment length, codec parameters... (its format is replaced by
    /// [`RecordingOptions::format`] or the one the file name asks for).
    pub remux: RemuxOptions,
    /// The output container; `None`: from the file name, as `livemux remux -o` picks it
    /// (`.mp4`/`.m4a`/`.mov`: `mp4`, `.webm`: `webm`, `.mkv`/`.mka`: `mkv`, else `fmp4`).
    pub format: Option<MuxFormat>,
    /// What happens after each fragment; `None`: fsync.
    pub durability: Option<Durability>,
    /// Replace a file that exists at the path (otherwise [`Recording::create`] refuses it).
    pub overwrite: bool,
    /// Never release packets held for a late MP4 index because the input comes at live
    /// pace (see [`Recording`]): the output then depends only on the bytes, not on when
    /// they came, as a replay of the same bytes needs (`livemux serve` after a restart).
    pub ignore_pace: bool,
    /// Also write live HLS (a directory, or `DIR/NAME.m3u8`) from the same packets, in
    /// segments of 2 s (as `--to hls`): players watch the
    /// recording while it is made. With [`RecordingOptions::overwrite`], an earlier run's
    /// HLS files there are replaced; otherwise the playlist is continued.
    pub live_hls: Option<PathBuf>,
}

impl RecordingOptions {
    /// Sets the remux options.
    pub fn remux(mut self, remux: RemuxOptions) -> Self {
        self.remux = remux;
        self
    }

    /// Sets the output container (instead of the one the file name asks for).
    pub fn format(mut self, format: MuxFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets what happens after each fragment is written.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// Sets whether a file at the path may be replaced.
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Sets whether the output may depend on the input's pace ([`RecordingOptions::ignore_pace`]).
    pub fn ignore_pace(mut self, ignore: bool) -> Self {
        self.ignore_pace = ignore;
        self
    }

    /// Sets where live HLS is written beside the file ([`RecordingOptions::live_hls`]).
    pub fn live_hls(mut self, path: impl Into<PathBuf>) -> Self {
        self.live_hls = Some(path.into());
        self
    }
}

/// The output container a file name asks for, as `livemux remux -o NAME` picks it:
/// `.mp4`/`.m4a`/`.mov` a regular MP4 (fragmented while recording), `.webm` WebM,
/// `.mkv`/`.mka` Matroska, anything else fragmented MP4.
pub fn format_for_path(path: &Path) -> MuxFormat {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("mp4" | "m4a" | "mov") => MuxFormat::Mp4,
        _ => MuxFormat::from_extension(path).unwrap_or_default(),
    }
}

/// What a finished [`Recording`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordingReport {
    /// The file written.
    pub path: PathBuf,
    /// Its container.
    pub format: MuxFormat,
    /// The tracks of the input, as its codec parameters were decided (before
    /// `skip_unsupported` drops any; `None` when the input ended before any).
    pub tracks: Option<TrackSet>,
    /// Input bytes taken.
    pub input_len: u64,
    /// Length of the finished file.
    pub output_len: u64,
    /// Fragments written (header and media).
    pub fragments: u64,
    /// In-place writes of the finalize (0 for fragmented MP4, which needs none).
    pub finalize_writes: u64,
    /// Media duration written, in ms.
    pub duration_ms: u64,
    /// What the remux has to say (damage skipped, tracks dropped, where the index went).
    pub notes: Vec<String>,
}

/// A recording written to a file as its bytes arrive, in pieces of any size,
/// crash-safe at every moment; what an upload handler calls.
///
/// It is the sans-IO [`Remuxer`] and the file writer of `livemux remux` joined: each piece goes into the
/// remux, and every output fragment it completes is written at its offset and made
/// durable (fsync by default) before [`Recording::push`] returns. So when `push` returns
/// `Ok`, every fragment the bytes so far completed is on stable storage, and a crash
/// loses at most the fragment still open. [`Recording::finish`] writes the last fragment
/// and the finalize writes (a regular MP4's index, Matroska's Cues and Duration) in the
/// order that keeps the file valid after each of them.
///
/// The file is the one `livemux remux` makes of the same bytes, byte for byte, whatever
/// the pieces (`tests/recording.rs` checks it for every output format).
///
/// [`AsyncRecording`] is the same for async code: each call runs on tokio's blocking pool,
/// so a slow disk never stalls the runtime.
///
/// ```
/// # fn main() -> livemux::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/chrome_mp4_avc1_opus.mp4")).unwrap();
/// # let upload = input.chunks(64 * 1024).map(bytes::Bytes::copy_from_slice);
/// # let path = dir.path().join("talk.mp4");
/// use livemux::{Recording, RecordingOptions};
/// // `.mp4`: fragmented MP4 while recording, a regular MP4 at `finish`.
/// let mut rec = Recording::create(&path, RecordingOptions::default())?;
/// for piece in upload {
///     rec.push(piece)?; // when this returns, what the piece completed is durable
/// }
/// let report = rec.finish()?;
/// assert!(report.fragments > 1 && report.output_len > 100_000);
/// # Ok(()) }
/// ```
pub struct Recording {
    path: PathBuf,
    format: MuxFormat,
    remuxer: Remuxer,
    writer: FragmentWriter,
    fragments: u64,
    finalize_writes: u64,
    duration_ms: u64,
    /// Releases packets held for a late index once the upload comes at live pace
    /// (`None`: [`RecordingOptions::ignore_pace`]).
    pace: Option<LivePace>,
    /// Set by the first error: the file keeps what was written before it, and the
    /// recording takes nothing more.
    failed: bool,
    /// Live HLS beside the file ([`RecordingOptions::live_hls`]).
    hls: Option<LiveHls>,
}

/// The HLS directory a recording keeps current; opened at its first segment. An error
/// of its own ends it (with a note), never the recording.
struct LiveHls {
    path: PathBuf,
    fresh: bool,
    durability: Durability,
    writer: Option<HlsWriter>,
    /// Why it stopped, for the report's notes.
    stopped: Option<String>,
}

impl LiveHls {
    fn write(&mut self, f: &Fragment) -> std::io::Result<()> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(HlsWriter::open_with(&self.path, self.durability, self.fresh)?),
        };
        writer.write_io(f)
    }

    fn stop(&mut self, e: std::io::Error) {
        self.stopped = Some(format!("live HLS stopped: {e}"));
    }
}

impl Recording {
    /// Starts a recording into `path`. Nothing is created until the first fragment is
    /// ready, and a file that exists is refused unless [`RecordingOptions::overwrite`].
    pub fn create(path: impl AsRef<Path>, options: RecordingOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str() == "-" {
            return Err(Error::msg(ErrorKind::Config, "a recording is written to a file, not to stdout (-)"));
        }
        if !options.overwrite && std::fs::symlink_metadata(&path).is_ok() {
            let e = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and overwriting it was not allowed", path.display()),
            );
            return Err(Error::from_repr(ErrorKind::OutputRefused, e).on_path(path));
        }
        let format = options.format.unwrap_or_else(|| format_for_path(&path));
        if format == MuxFormat::Hls {
            let why =
                "a recording is one file; HLS is a directory (RecordingOptions::live_hls writes it beside the file)";
            return Err(Error::msg(ErrorKind::Config, why).on_path(path));
        }
        let durability = options.durability.unwrap_or(Durability::Fsync);
        let mut remux = options.remux.format(format);
        if options.live_hls.is_some() {
            let segment = FragmentPolicy { min_ms: DEFAULT_SEGMENT_MS, max_ms: 2 * DEFAULT_SEGMENT_MS };
            remux = remux.side_output(MuxConfig { format: MuxFormat::Hls, fragment: segment, ..MuxConfig::default() });
        }
        let remuxer = Remuxer::new(remux)?;
        let writer = FragmentWriter::create(&path).with_durability(durability).with_overwrite(options.overwrite);
        let hls = options.live_hls.map(|path| LiveHls {
            path,
            fresh: options.overwrite,
            durability,
            writer: None,
            stopped: None,
        });
        Ok(Recording {
            path,
            format,
            remuxer,
            writer,
            fragments: 0,
            finalize_writes: 0,
            duration_ms: 0,
            pace: (!options.ignore_pace).then(LivePace::default),
            failed: false,
            hls,
        })
    }

    /// Takes the next piece of the recording (any size, down to one byte). When it returns
    /// `Ok`, every fragment the input so far completed is written and durable.
    ///
    /// After an error the recording takes no more input; the file holds every fragment
    /// completed before it.
    pub fn push(&mut self, piece: Bytes) -> Result<()> {
        self.usable()?;
        let pushed = self.remuxer.push(piece);
        let held = self.remuxer.held_media_secs();
        let released = match self.pace.as_mut().and_then(|p| p.check(held, Instant::now())) {
            Some(note) if pushed.is_ok() => self.remuxer.release_held(Some(note)),
            _ => Ok(()),
        };
        // What the input completed before a remux error is written all the same.
        let written = self.write_ready();
        let result = pushed.and(released).and(written);
        self.failed = result.is_err();
        result
    }

    fn usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::msg(
                ErrorKind::Config,
                format!(
                    "the recording failed earlier and takes no more input; {} holds the {} bytes written before",
                    self.path.display(),
                    self.writer.complete_len()
                ),
            )
            .on_path(&self.path));
        }
        Ok(())
    }

    fn write_ready(&mut self) -> Result<()> {
        while let Some(f) = self.remuxer.next_fragment() {
            self.write(&f)?;
        }
        self.write_hls();
        Ok(())
    }

    /// Writes the live HLS segments ready (after the file's fragments: the file first).
    fn write_hls(&mut self) {
        let Some(hls) = &mut self.hls else { return };
        while let Some(f) = self.remuxer.next_side_fragment() {
            if hls.stopped.is_none() {
                if let Err(e) = hls.write(&f) {
                    hls.stop(e);
                }
            }
        }
    }

    /// The input ended: writes the last fragment and finishes the file (a regular MP4's
    /// index, Matroska's Cues and Duration), each write durable before the next.
    pub fn finish(mut self) -> Result<RecordingReport> {
        self.usable()?;
        let last = self.remuxer.finish();
        self.write_ready()?;
        for f in last? {
            self.write(&f)?;
        }
        self.write_hls();
        let mut notes = self.remuxer.notes().to_vec();
        if let Some(mut hls) = self.hls.take() {
            if hls.stopped.is_none() {
                if let Some(Err(e)) = hls.writer.as_mut().map(HlsWriter::finish) {
                    hls.stop(e);
                }
            }
            notes.extend(hls.stopped);
        }
        Ok(RecordingReport {
            path: self.path,
            format: self.format,
            tracks: self.remuxer.tracks().cloned(),
            input_len: self.remuxer.input_len(),
            output_len: self.writer.complete_len(),
            fragments: self.fragments,
            finalize_writes: self.finalize_writes,
            duration_ms: self.duration_ms,
            notes,
        })
    }

    fn write(&mut self, f: &Fragment) -> Result<()> {
        self.writer.write(f).map_err(|e| e.on_path(&self.path))?;
        match f.kind {
            FragmentKind::Finalize => self.finalize_writes += 1,
            _ => {
                self.fragments += 1;
                self.duration_ms = self.duration_ms.saturating_add(f.duration_ms);
            }
        }
        Ok(())
    }

    /// Input bytes taken so far.
    pub fn input_len(&self) -> u64 {
        self.remuxer.input_len()
    }

    /// Bytes of complete fragments written so far: on stable storage with the default
    /// durability (fsync), handed to the OS with `Flush` or `None`.
    pub fn durable_len(&self) -> u64 {
        self.writer.complete_len()
    }

    /// The tracks, once the input has described them.
    pub fn tracks(&self) -> Option<&TrackSet> {
        self.remuxer.tracks()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// [`Recording`] for async code: each call runs on tokio's blocking pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> livemux::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/chrome_mp4_avc1_opus.mp4")).unwrap();
/// use livemux::{AsyncRecording, RecordingOptions};
/// let mut rec = AsyncRecording::create(dir.path().join("talk.mkv"), RecordingOptions::default()).await?;
/// for piece in input.chunks(100_000) {
///     rec.push(bytes::Bytes::copy_from_slice(piece)).await?;
/// }
/// let report = rec.finish().await?;
/// assert_eq!(report.format, livemux::MuxFormat::Mkv);
/// # Ok(()) }
/// ```
pub struct AsyncRecording {
    /// `None` only while a call runs (or after one was cancelled mid-way).
    inner: Option<Recording>,
}

impl AsyncRecording {
    /// [`Recording::create`].
    pub async fn create(path: impl AsRef<Path>, options: RecordingOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let rec = blocking(move || Recording::create(path, options)).await?;
        Ok(AsyncRecording { inner: Some(rec) })
    }

    /// [`Recording::push`].
    pub async fn push(&mut self, piece: Bytes) -> Result<()> {
        let mut rec = self.take()?;
        let (rec, result) = blocking(move || {
            let r = rec.push(piece);
            Ok((rec, r))
        })
        .await?;
        self.inner = Some(rec);
        result
    }

    /// [`Recording::finish`].
    pub async fn finish(mut self) -> Result<RecordingReport> {
        let rec = self.take()?;
        blocking(move || rec.finish()).await
    }

    /// Input bytes taken so far.
    pub fn input_len(&self) -> u64 {
        self.inner.as_ref().map_or(0, Recording::input_len)
    }

    /// [`Recording::durable_len`].
    pub fn durable_len(&self) -> u64 {
        self.inner.as_ref().map_or(0, Recording::durable_len)
    }

    fn take(&mut self) -> Result<Recording> {
        self.inner.take().ok_or_else(|| {
            Error::msg(ErrorKind::Config, "the recording was dropped by a cancelled call: it takes no more input")
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("the recording's writer thread failed: {e}")))?
}
