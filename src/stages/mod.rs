//! The stage kinds. Each file holds one kind: its settings and a small async run loop
//! over a sans-IO type from [`crate::formats`].
//!
//! | kind               | takes              | gives              |
//! |--------------------|--------------------|--------------------|
//! | `source`           | —                  | [`Chunk`](crate::model::Chunk)          |
//! | `probe`            | [`Chunk`](crate::model::Chunk)          | [`ContainerEvent`](crate::formats::ContainerEvent) |
//! | `codecpar-extract` | [`ContainerEvent`](crate::formats::ContainerEvent) | [`ContainerEvent`](crate::formats::ContainerEvent) (adds `Tracks`) |
//! | `packet-split`     | [`ContainerEvent`](crate::formats::ContainerEvent) | [`PacketEvent`](crate::formats::PacketEvent)    |
//! | `mux`              | [`PacketEvent`](crate::formats::PacketEvent)    | [`Fragment`](crate::model::Fragment)       |
//! | `sink`             | [`Fragment`](crate::model::Fragment)       | —                  |
//!
//! Stages talk over bounded channels (capacities below), so a slow sink slows the source
//! instead of growing memory. A stream ends when its channel closes; a stage that fails
//! returns its error and drops its channels, which stops the stages around it.

pub mod codecpar;
pub mod mux;
pub mod packet_split;
pub mod probe;
pub mod sink;
pub mod source;

use std::fmt;
use std::path::PathBuf;

use tokio::sync::mpsc;

// Capacities are small on purpose: a media chunk is up to a source read (1 MiB) and a
// fragment up to a few MiB, so every slot is memory; two slots keep each stage busy.
/// Capacity of a channel carrying input chunks.
pub const CHUNK_CHANNEL: usize = 2;
/// Capacity of a channel carrying container events.
pub const EVENT_CHANNEL: usize = 2;
/// Capacity of a channel carrying packet batches.
pub const PACKET_CHANNEL: usize = 2;
/// Capacity of a channel carrying output fragments.
pub const FRAGMENT_CHANNEL: usize = 1;

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Mp4(#[from] crate::formats::mp4::Mp4Error),
    #[error("{0}")]
    Split(#[from] crate::formats::mp4::demux::SplitError),
    #[error("{0}")]
    Matroska(#[from] crate::formats::matroska::MkvError),
    #[error("{0}")]
    Mux(#[from] crate::formats::MuxError),
    #[error("not a known media container (first bytes: {head})")]
    NotMedia { head: String },
    #[error("empty input: no bytes arrived")]
    Empty,
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "no 'moov' box: the input holds {media_bytes} bytes of media but no index with codec \
         parameters (the recorder stopped before writing it). Recover it with a reference \
         recording made with the same settings: livemux recover INPUT --reference REF -o OUTPUT"
    )]
    MissingMoov { media_bytes: u64 },
    #[error("reference recording {}: {reason}", path.display())]
    Reference { path: PathBuf, reason: String },
    #[error("the reference recording {} does not match the stream: {detail}", reference.display())]
    Mismatch { reference: PathBuf, detail: String },
    #[error("track {track} ({codec}): codec parameters unusable: {reason}")]
    Codec { track: usize, codec: &'static str, reason: String },
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The input offset the failure points at, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Failure::Mp4(e) => Some(e.offset()),
            Failure::Split(crate::formats::mp4::demux::SplitError::Mp4(e)) => Some(e.offset()),
            _ => None,
        }
    }
}

/// A stage failure with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub struct StageError {
    pub stage: String,
    pub kind: &'static str,
    /// The file the stage reads or writes, if any.
    pub file: Option<PathBuf>,
    #[source]
    pub failure: Box<Failure>,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage '{}' ({})", self.stage, self.kind)?;
        if let Some(file) = &self.file {
            write!(f, " on {}", file.display())?;
        }
        write!(f, ": {}", self.failure)
    }
}

/// Identity of a running stage, for error context.
#[derive(Clone, Debug)]
pub struct StageContext {
    pub name: String,
    pub kind: &'static str,
    pub file: Option<PathBuf>,
}

impl StageContext {
    pub fn new(name: impl Into<String>, kind: &'static str) -> Self {
        StageContext { name: name.into(), kind, file: None }
    }

    pub fn error(&self, failure: impl Into<Failure>) -> StageError {
        StageError {
            stage: self.name.clone(),
            kind: self.kind,
            file: self.file.clone(),
            failure: Box::new(failure.into()),
        }
    }
}

/// The downstream side of a stage: one or more consumers (fan-out clones each item; the
/// payloads inside are `Bytes`, so a clone copies no media).
pub struct Outputs<T> {
    senders: Vec<mpsc::Sender<T>>,
}

/// Every consumer of a stage has gone away: nothing is left to do.
#[derive(Debug)]
pub struct Closed;

impl<T: Clone> Outputs<T> {
    pub fn new(senders: Vec<mpsc::Sender<T>>) -> Self {
        Outputs { senders }
    }

    /// Sends to every consumer, waiting while any of them is full.
    pub async fn send(&self, item: T) -> Result<(), Closed> {
        let Some((last, rest)) = self.senders.split_last() else {
            return Ok(());
        };
        for s in rest {
            s.send(item.clone()).await.map_err(|_| Closed)?;
        }
        last.send(item).await.map_err(|_| Closed)
    }
}

/// What a stage reports when it ends normally.
#[derive(Clone, Debug, Default)]
pub struct StageReport {
    pub notes: Vec<String>,
}

pub type StageResult = Result<StageReport, StageError>;
