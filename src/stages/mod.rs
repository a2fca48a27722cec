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

use crate::events::{Observer, RunEvent};

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

/// Why a stage failed: the core's [`Failure`](crate::formats::Failure), which the stages share.
pub use crate::formats::Failure;

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

/// Identity of a running stage, for error context, and where its events go.
#[derive(Clone)]
pub struct StageContext {
    pub name: String,
    pub kind: &'static str,
    pub file: Option<PathBuf>,
    /// The run's observer, if a program or the command line gave one.
    pub observer: Option<Observer>,
}

impl fmt::Debug for StageContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageContext")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("file", &self.file)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl StageContext {
    pub fn new(name: impl Into<String>, kind: &'static str) -> Self {
        StageContext { name: name.into(), kind, file: None, observer: None }
    }

    /// Logs `event` and gives it to the run's observer.
    pub fn emit(&self, event: RunEvent) {
        crate::events::emit(self.observer.as_ref(), event);
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
