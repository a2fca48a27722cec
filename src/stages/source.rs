//! `source`: reads input bytes from stdin, a file, or a file that is still being written.
//!
//! Reading happens on a blocking thread (plain `read` calls, no async file emulation); an
//! async loop forwards the chunks so that Ctrl-C can end the stream at once, even while a
//! read is blocked on a pipe.
//!
//! A complete MP4 file whose `moov` comes after the media is read `moov` first (one extra
//! seek), so that it is remuxed in one pass with no buffering.
//!
//! A followed file that shrinks below what was already read (truncated by its writer) is an
//! error: the output keeps what was read, and the run ends with exit 1.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::events::RunEvent;
use crate::formats::mp4::file::top_level;
use crate::model::Chunk;

/// Default read size.
pub const DEFAULT_CHUNK_SIZE: usize = 256 << 10;
/// How often a followed file is checked for growth.
pub const FOLLOW_POLL: Duration = Duration::from_millis(10);
/// After the writer closes a followed file, how long to wait for it to reopen and append
/// (upload handlers open and close the file once per chunk) before ending.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Where a pipeline's input comes from, and how it is read (the `source` stage).
///
/// ```
/// use std::time::Duration;
/// let growing = livemux::SourceConfig::default()
///     .with_path("recording.webm")
///     .with_follow(true)
///     .with_idle_timeout(Duration::from_secs(10));
/// assert!(!growing.is_stdin());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceConfig {
    /// A file, or `-` for stdin (the default). A pipeline fed from code
    /// ([`Pipeline::feed`](crate::Pipeline::feed)) does not read it.
    pub path: PathBuf,
    /// Keep reading as the file grows; end when its writer closes it (and does not reopen
    /// it within half a second) or after `idle_timeout` without growth. Default: off.
    pub follow: bool,
    /// With `follow`, how long the file may stop growing before the input is taken to have
    /// ended. Default: 5 s.
    pub idle_timeout: Duration,
    /// Bytes asked for per read. Default: 256 KiB.
    pub chunk_size: usize,
    /// Read a trailing MP4 `moov` first (complete files only), so that the file is remuxed
    /// in one pass without buffering its media. Default: on.
    pub moov_first: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            path: PathBuf::from("-"),
            follow: false,
            idle_timeout: Duration::from_secs(5),
            chunk_size: DEFAULT_CHUNK_SIZE,
            moov_first: true,
        }
    }
}

impl SourceConfig {
    /// Sets [`path`](Self::path): a file, or `-` for stdin.
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets [`follow`](Self::follow): keep reading as the file grows.
    pub fn with_follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets [`chunk_size`](Self::chunk_size) (at least 1 byte is read at a time).
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// Sets [`moov_first`](Self::moov_first).
    pub fn with_moov_first(mut self, moov_first: bool) -> Self {
        self.moov_first = moov_first;
        self
    }

    /// Whether an MP4 index may arrive after the media: a stream, a growing file, or a
    /// file not searched for a trailing index first.
    pub fn may_index_late(&self) -> bool {
        self.is_stdin() || self.follow || !self.moov_first
    }

    /// Whether the input is stdin (`path` is `-`).
    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }
}

/// The payload of a panic in the reader thread.
type PanicPayload = Box<dyn std::any::Any + Send>;

/// Runs `source`. Cancelling `stop` ends the stream as if the input had ended.
///
/// A panic in the reader thread does not end the input as if it were complete (which would
/// let the muxer finalize a cut recording): it is resumed in this stage, so that the
/// pipeline runtime reports it as the stage's panic, an [`ErrorKind::Internal`] error.
///
/// [`ErrorKind::Internal`]: crate::ErrorKind::Internal
pub async fn run(ctx: StageContext, config: SourceConfig, out: Outputs<Chunk>, stop: CancellationToken) -> StageResult {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Chunk>>(2);
    let reader_stop = stop.clone();
    // Filled before the reader's sender drops, so it is set when `recv` sees the end.
    let panicked: Arc<Mutex<Option<PanicPayload>>> = Arc::default();
    let reader_panicked = panicked.clone();
    std::thread::Builder::new()
        .name(format!("livemux-source-{}", ctx.name))
        .spawn(move || {
            let read =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_blocking(&config, &tx, &reader_stop)));
            if let Err(payload) = read {
                *reader_panicked.lock().unwrap_or_else(|p| p.into_inner()) = Some(payload);
            }
            drop(tx);
        })
        .map_err(|e| ctx.error(e))?;
    let mut read = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(StageReport::default()),
            item = rx.recv() => match item {
                None => {
                    if let Some(payload) = panicked.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        std::panic::resume_unwind(payload);
                    }
                    return Ok(StageReport::default());
                }
                Some(Err(e)) => return Err(ctx.error(Failure::Io(e))),
                Some(Ok(chunk)) => {
                    let end = chunk.offset.saturating_add(chunk.data.len() as u64);
                    if end > read {
                        read = end;
                        ctx.emit(RunEvent::Read { stage: ctx.name.clone(), bytes: read });
                    }
                    if out.send(chunk).await.is_err() {
                        return Ok(StageReport::default());
                    }
                }
            },
        }
    }
}

type Tx = mpsc::Sender<std::io::Result<Chunk>>;

fn read_blocking(config: &SourceConfig, tx: &Tx, stop: &CancellationToken) {
    let result = if config.is_stdin() {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        copy(&mut lock, 0, u64::MAX, config.chunk_size, tx, stop).map(drop)
    } else {
        read_file(config, tx, stop)
    };
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Sends `limit` bytes (or up to EOF) from `r`, which is at `offset`. Returns the new offset,
/// or `u64::MAX` if the receiver went away.
fn copy(
    r: &mut impl Read,
    mut offset: u64,
    limit: u64,
    chunk: usize,
    tx: &Tx,
    stop: &CancellationToken,
) -> std::io::Result<u64> {
    let end = offset.saturating_add(limit);
    let pool = BufferPool::new(chunk);
    while offset < end && !stop.is_cancelled() {
        let want = ((end - offset).min(chunk as u64)) as usize;
        let mut buf = pool.take();
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = Bytes::from_owner(PooledBuffer { buf, len: n, pool: pool.clone() });
        if tx.blocking_send(Ok(Chunk { offset, data })).is_err() {
            return Ok(u64::MAX);
        }
        offset += n as u64;
    }
    Ok(offset)
}

/// Read buffers kept for reuse. Packets are slices of the buffer they were read into, so a
/// buffer is free again once the last packet cut from it has been written; reusing it then
/// saves zeroing fresh memory and faulting it in, and keeps the memory in use flat.
struct BufferPool {
    size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

/// Most idle buffers a pool keeps; more are freed.
const POOL_KEEP: usize = 16;

impl BufferPool {
    fn new(size: usize) -> Arc<Self> {
        Arc::new(BufferPool { size, free: Mutex::new(Vec::new()) })
    }

    fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().map(|mut f| f.pop()).unwrap_or(None);
        reused.unwrap_or_else(|| vec![0; self.size])
    }
}

/// The owner of a chunk's bytes: gives its buffer back to the pool when dropped.
struct PooledBuffer {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock() {
            if free.len() < POOL_KEEP {
                free.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

fn read_file(config: &SourceConfig, tx: &Tx, stop: &CancellationToken) -> std::io::Result<()> {
    let mut file = File::open(&config.path)?;
    let meta = file.metadata()?;
    if config.follow {
        return follow(&mut file, &config.path, config, tx, stop);
    }
    let chunk = config.chunk_size;
    if config.moov_first && meta.is_file() {
        if let Some((moov_offset, moov_size)) = trailing_moov(&mut file, meta.len())? {
            file.seek(SeekFrom::Start(moov_offset))?;
            let mut moov = vec![0u8; moov_size as usize];
            file.read_exact(&mut moov)?;
            if tx.blocking_send(Ok(Chunk::new(moov_offset, moov))).is_err() {
                return Ok(());
            }
            file.seek(SeekFrom::Start(0))?;
            let at = copy(&mut file, 0, moov_offset, chunk, tx, stop)?;
            if at != moov_offset {
                return Ok(());
            }
            let after = moov_offset + moov_size;
            file.seek(SeekFrom::Start(after))?;
            copy(&mut file, after, u64::MAX, chunk, tx, stop)?;
            return Ok(());
        }
        file.seek(SeekFrom::Start(0))?;
    }
    copy(&mut file, 0, u64::MAX, chunk, tx, stop)?;
    Ok(())
}

/// Largest trailing `moov` read ahead.
const MAX_PREFETCH_MOOV: u64 = crate::formats::mp4::boxes::MAX_META_BOX;

/// Finds a top-level `moov` that comes after an `mdat`, by reading box headers only.
/// Any doubt (not MP4, damaged headers) means "no": the file is then read in order.
fn trailing_moov(file: &mut File, len: u64) -> std::io::Result<Option<(u64, u64)>> {
    let Ok(boxes) = top_level(file, len) else {
        return Ok(None);
    };
    let mut seen_mdat = false;
    for (offset, h) in boxes {
        let size = h.size.unwrap_or(len - offset);
        match &h.fourcc.0 {
            b"moov" if seen_mdat && size <= MAX_PREFETCH_MOOV && offset + size <= len => {
                return Ok(Some((offset, size)));
            }
            b"moov" | b"moof" => return Ok(None),
            b"mdat" => seen_mdat = true,
            _ => {}
        }
    }
    Ok(None)
}

/// Reads a file that another process is still writing.
fn follow(
    file: &mut File,
    path: &Path,
    config: &SourceConfig,
    tx: &Tx,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let mut watcher = CloseWatch::new(path);
    let mut offset = 0u64;
    let mut last_growth = Instant::now();
    let mut closed_at: Option<Instant> = None;
    loop {
        let at = copy(file, offset, u64::MAX, config.chunk_size, tx, stop)?;
        if at == u64::MAX || stop.is_cancelled() {
            return Ok(());
        }
        if at > offset {
            offset = at;
            last_growth = Instant::now();
            closed_at = None;
            continue;
        }
        // Cut below what was read: the bytes already sent are gone from the file, and what
        // the writer adds next would land at offsets that no longer line up with them.
        let len = file.metadata()?.len();
        if len < offset {
            return Err(std::io::Error::other(format!(
                "{} was truncated while being followed: it is now {len} bytes, {offset} bytes were already read \
                 (the writer restarted or replaced it); stopped, the output keeps what was read",
                path.display()
            )));
        }
        if watcher.closed() {
            closed_at = Some(Instant::now());
        }
        let writer_gone = closed_at.is_some_and(|t| t.elapsed() >= CLOSE_GRACE);
        if writer_gone || last_growth.elapsed() >= config.idle_timeout {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Tells when a writer closes a followed file (inotify `CLOSE_WRITE`), so that following
/// ends [`CLOSE_GRACE`] after it instead of after the idle timeout. Without inotify (the
/// `cli` feature off, or no watch possible) it never tells, and following ends when the file
/// stops growing for `idle_timeout`.
struct CloseWatch {
    #[cfg(feature = "cli")]
    inotify: Option<inotify::Inotify>,
}

impl CloseWatch {
    #[cfg(feature = "cli")]
    fn new(path: &Path) -> Self {
        let mut inotify = inotify::Inotify::init().ok();
        if let Some(w) = &mut inotify {
            if w.watches().add(path, inotify::WatchMask::CLOSE_WRITE).is_err() {
                inotify = None;
            }
        }
        CloseWatch { inotify }
    }

    #[cfg(not(feature = "cli"))]
    fn new(_path: &Path) -> Self {
        CloseWatch {}
    }

    /// Whether the file was closed by a writer since the last call (never blocks).
    #[cfg(feature = "cli")]
    fn closed(&mut self) -> bool {
        let mut events = [0u8; 1024];
        self.inotify.as_mut().and_then(|w| w.read_events(&mut events).ok()).is_some_and(|mut evs| evs.next().is_some())
    }

    #[cfg(not(feature = "cli"))]
    fn closed(&mut self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A followed file is read as it grows, in order, and the input ends once the file stops
    /// growing: after its writer closes it (inotify, with the `cli` feature) or after the idle
    /// timeout (polling, without it: `cargo test --no-default-features --lib`).
    #[test]
    fn a_followed_file_is_read_as_it_grows_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.bin");
        let mut writer = File::create(&path).unwrap();
        writer.write_all(b"first ").unwrap();
        let config = SourceConfig::default()
            .with_path(&path)
            .with_follow(true)
            .with_idle_timeout(Duration::from_millis(300))
            .with_chunk_size(4);
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let reader = std::thread::spawn(move || read_blocking(&config, &tx, &stop));
        std::thread::sleep(Duration::from_millis(100));
        writer.write_all(b"second").unwrap();
        drop(writer);
        let started = Instant::now();
        let mut got = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            let chunk = chunk.unwrap();
            assert_eq!(chunk.offset, got.len() as u64, "chunks in order, none missing");
            got.extend_from_slice(&chunk.data);
        }
        reader.join().unwrap();
        assert_eq!(got, b"first second");
        assert!(started.elapsed() < Duration::from_secs(5), "following ended: {:?}", started.elapsed());
    }
}
