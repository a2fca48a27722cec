//! The uploads: each one's state file, journal and recording, and the registry that
//! finds them by id.
//!
//! ```text
//!  DATA/<id>/upload.json      what the upload is (length, metadata, state...), replaced atomically
//!  DATA/<id>/input.journal    every byte received, CRC-framed (journal.rs)
//!  DATA/<id>/recording.<ext>  the Recording fed with those bytes
//!  DATA/<id>/live/            live HLS beside it (live.m3u8, stream.m3u8, init-0.mp4,
//!                             seg-NNNNNN.m4s), from the first viewer on (`LiveHls`)
//! ```
//!
//! Write order of one PATCH: the body's bytes are appended to the journal and pushed into
//! the recording (its fragments written, not synced), then the journal is fsynced in the
//! next group-commit round, and only then is the new offset published and answered. The
//! output file is not fsynced while recording: after a crash it is rebuilt from the
//! journal (the replay writes it again from the start, byte for byte as before). At the
//! end: the recording is finished (last fragment, index), fsynced, then `upload.json`
//! says `finished`, then the journal is removed. A crash between any two of these
//! leaves either a `recording` state with its journal (replayed on first touch) or a
//! `finished` state with its output (a journal left over is removed at start).
//!
//! An upload is resumed lazily: at start the registry only reads each `upload.json`; the
//! journal is replayed when a request first touches the upload (HEAD, PATCH, status) or
//! the idle sweep finalizes it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::commit::Committer;
use super::config::{LiveHls, ServeConfig};
use super::events::{self, Event, EventKind, TrackInfo};
use super::hooks::Hooks;
use super::journal::Journal;
use super::metrics::Metrics;
use super::stored::{self, Lease, Shared, TakeError, Taken};
use crate::error::{Error, ErrorKind, Result};
use crate::formats::{sniff, ContainerKind};
use crate::io::{rename_durably, Durability};
use crate::{MuxFormat, Recording, RecordingOptions, RecordingReport, RemuxOptions};

/// Bytes of input looked at to choose the output format (an EBML header is far shorter).
const HEAD_LEN: usize = 4096;
/// With a store: input bytes of a long PATCH stored as one object of the input log.
const STORE_COMMIT: usize = 8 << 20;
/// The state file of an upload.
const INFO: &str = "upload.json";
/// Its journal.
const JOURNAL: &str = "input.journal";

/// Where an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Taking bytes.
    Recording,
    /// The declared length arrived; the output is finalized.
    Finished,
    /// Idle too long (or the disk ran low): finalized with what arrived.
    Abandoned,
    /// Deleted by the client.
    Terminated,
    /// The remux failed; the journal is kept.
    Failed,
}

/// What the upload's state file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// Format version of this file.
    pub v: u32,
    /// The upload id (`/files/{id}`, the directory name).
    pub id: String,
    /// The recording name the token or the pre-create hook gave.
    pub rec: Option<String>,
    /// Declared length (`None`: deferred, not given yet).
    pub length: Option<u64>,
    /// The decoded `Upload-Metadata`.
    pub metadata: BTreeMap<String, String>,
    /// The output format forced by the configuration, the hook or the metadata.
    pub format: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The output, relative to the data dir, once the input said what it is.
    pub output: Option<String>,
    /// What the finished recording holds.
    pub report: Option<Report>,
    /// Why it failed or was abandoned.
    pub error: Option<String>,
    /// Input bytes taken, written when the upload ends (while it records, the journal
    /// holds them).
    #[serde(default)]
    pub received: u64,
}

/// The end of a recording, as the status and the events show it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Its tracks.
    pub tracks: Vec<TrackInfo>,
    /// Media written, ms.
    pub duration_ms: u64,
    /// Output length.
    pub output_bytes: u64,
    /// The remux's notes.
    pub notes: Vec<String>,
}

/// What a request can go wrong with, mapped to a status by `tus.rs`.
#[derive(Debug)]
pub enum Refusal {
    /// 410: the upload ended (finished, abandoned, terminated, failed).
    Gone(State),
    /// 409: `Upload-Offset` is not the durable offset.
    Conflict { offset: u64 },
    /// 413.
    TooLarge(String),
    /// 400.
    Bad(String),
    /// 422: the bytes are not a recording livemux can take (the upload failed).
    Unprocessable(String),
    /// 404.
    NotFound(String),
    /// 500.
    Internal(String),
    /// 423 Locked with `Retry-After` (seconds): another worker owns the upload, or this one
    /// lost it.
    Busy { retry_after: u64, why: String },
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Internal(e.to_string())
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Internal(e.to_string())
    }
}

/// What only the request holding the upload's lock touches.
struct Work {
    /// Whether the journal was opened (and replayed) in this process.
    loaded: bool,
    journal: Option<Journal>,
    recording: Option<Recording>,
    /// The input's first bytes, until they say which output format to use.
    head: BytesMut,
    /// The recording failed: the bytes still go to the journal, not to it.
    failed: Option<String>,
    /// With a store: this worker's ownership of the upload.
    lease: Option<Lease>,
    /// With a store: bytes taken that the input log does not have yet.
    unsent: Vec<Bytes>,
}

/// One upload.
pub struct Upload {
    /// The id.
    pub id: String,
    dir: PathBuf,
    work: tokio::sync::Mutex<Option<Work>>,
    /// Bytes durable (HEAD answers it without waiting for a PATCH in flight).
    offset: AtomicU64,
    info: Mutex<Info>,
    /// Milliseconds since the registry started at the last byte or request.
    touched: AtomicU64,
    /// Cancels the PATCH in flight, so that a client's retry takes over at once.
    current_patch: Mutex<Option<CancellationToken>>,
}

impl Upload {
    /// A copy of its state.
    pub fn info(&self) -> Info {
        self.info.lock().unwrap().clone()
    }

    /// Its live HLS directory.
    pub fn live_dir(&self) -> PathBuf {
        self.dir.join(LIVE_DIR)
    }

    /// Durable bytes.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }
}

/// Every upload of the data dir.
pub struct Registry {
    pub config: Arc<ServeConfig>,
    pub metrics: Arc<Metrics>,
    pub hooks: Hooks,
    committer: Committer,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
    started: Instant,
    /// Cancelled at shutdown: PATCHes in flight stop reading, commit and answer.
    pub shutdown: CancellationToken,
    /// The object store that holds every upload (`--store`); the data dir is then a cache.
    pub shared: Option<Shared>,
    /// With a store: the data dir's lock.
    _lock: Option<File>,
}

/// What a new upload is.
pub struct NewUpload {
    pub id: String,
    pub rec: Option<String>,
    pub length: Option<u64>,
    pub metadata: BTreeMap<String, String>,
    pub format: Option<String>,
}

impl Registry {
    /// Opens the data dir (creating it): reads every upload's state file; replays nothing.
    pub fn open(config: Arc<ServeConfig>, metrics: Arc<Metrics>, hooks: Hooks) -> Result<Registry> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::from(e).on_path(dir))?;
        // With a store the data dir is a cache, locked while this worker runs (its id names it).
        let (lock, shared) = match &config.store {
            Some(store) => {
                let (lock, worker) = clear_cache(dir)?;
                (Some(lock), Some(Shared::new(store.clone(), worker)?))
            }
            None => (None, None),
        };
        let registry = Registry {
            shared,
            _lock: lock,
            committer: Committer::start(metrics.clone()),
            metrics,
            hooks,
            uploads: Mutex::new(HashMap::new()),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            config: config.clone(),
        };
        if registry.shared.is_some() {
            return Ok(registry);
        }
        let mut found = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::from(e).on_path(dir))? {
            let entry = entry.map_err(|e| Error::from(e).on_path(dir))?;
            let path = entry.path().join(INFO);
            let Ok(text) = std::fs::read(&path) else { continue };
            let info: Info = match serde_json::from_slice(&text) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("{}: not an upload state file ({e}); left alone", path.display());
                    continue;
                }
            };
            if info.state != State::Recording && info.state != State::Failed {
                // A crash after `finished` was recorded, before the journal went.
                let journal = entry.path().join(JOURNAL);
                if journal.exists() && !config.keep_journal {
                    let _ = std::fs::remove_file(journal);
                }
            }
            let upload = registry.entry(info);
            if upload.info().state == State::Recording {
                registry.metrics.uploads(1);
            }
            found.insert(upload.id.clone(), upload);
        }
        *registry.uploads.lock().unwrap() = found;
        Ok(registry)
    }

    fn entry(&self, info: Info) -> Arc<Upload> {
        Arc::new(Upload {
            id: info.id.clone(),
            dir: self.config.data_dir.join(&info.id),
            work: tokio::sync::Mutex::new(None),
            offset: AtomicU64::new(info.received),
            info: Mutex::new(info),
            touched: AtomicU64::new(self.now_ms()),
            current_patch: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The upload `id`, if known.
    pub fn get(&self, id: &str) -> Option<Arc<Upload>> {
        self.uploads.lock().unwrap().get(id).cloned()
    }

    /// Recordings taking bytes.
    ///
    /// With a store, those this worker holds (a request in progress counts): the others
    /// are other workers' load, known here only from a status or a create.
    pub fn open_count(&self) -> usize {
        let held = |u: &Upload| match u.work.try_lock() {
            Ok(w) => w.as_ref().and_then(|w| w.lease.as_ref()).is_some_and(|l| l.held),
            Err(_) => true,
        };
        self.uploads
            .lock()
            .unwrap()
            .values()
            .filter(|u| u.info.lock().unwrap().state == State::Recording)
            .filter(|u| self.shared.is_none() || held(u))
            .count()
    }

    /// Creates an upload: its directory, journal and state file, durably.
    pub async fn create(&self, new: NewUpload) -> std::result::Result<Arc<Upload>, Refusal> {
        let info = Info {
            v: 1,
            id: new.id.clone(),
            rec: new.rec,
            length: new.length,
            metadata: new.metadata,
            format: new.format.or_else(|| self.config.format.clone()),
            state: State::Recording,
            created: unix_now(),
            output: None,
            report: None,
            error: None,
            received: 0,
        };
        {
            let mut map = self.uploads.lock().unwrap();
            if map.contains_key(&new.id) {
                return Err(Refusal::Conflict { offset: 0 });
            }
            // Reserve the id while the directory is made.
            map.insert(new.id.clone(), self.entry(info.clone()));
        }
        let dir = self.config.data_dir.join(&new.id);
        let made = {
            let (dir, info) = (dir.clone(), info.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<Journal> {
                std::fs::create_dir(&dir)?;
                crate::io::sync_parent(&dir)?;
                let journal = Journal::create(&dir.join(JOURNAL))?;
                write_info(&dir, &info)?;
                Ok(journal)
            })
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?
        };
        let upload = self.get(&new.id).expect("reserved above");
        let made = match (made, &self.shared) {
            (Ok(journal), Some(shared)) => match shared.create(&info).await {
                Ok(()) => Ok(journal),
                Err(crate::store::StoreError::Precondition(_)) => {
                    self.uploads.lock().unwrap().remove(&new.id);
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(Refusal::Conflict { offset: 0 });
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
            (made, _) => made,
        };
        match made {
            Ok(journal) => {
                *upload.work.lock().await = Some(Work::new(Some(journal)));
                self.metrics.uploads(1);
                self.event(&upload, EventKind::Created, None);
                Ok(upload)
            }
            Err(e) => {
                self.uploads.lock().unwrap().remove(&new.id);
                let _ = std::fs::remove_dir_all(&dir);
                Err(Refusal::Internal(format!("cannot create the upload: {e}")))
            }
        }
    }

    /// Replays the journal of an upload this process has not loaded yet (first touch after
    /// a restart), so that its offset is known and it takes bytes again.
    pub async fn touch(&self, upload: &Arc<Upload>) -> std::result::Result<(), Refusal> {
        upload.touched.store(self.now_ms(), Ordering::Release);
        let mut guard = upload.work.lock().await;
        self.load(upload, &mut guard).await
    }

    async fn load(&self, upload: &Arc<Upload>, work: &mut Option<Work>) -> std::result::Result<(), Refusal> {
        if let Some(shared) = &self.shared {
            return self.load_shared(shared, upload, work).await;
        }
        if work.as_ref().is_some_and(|w| w.loaded) {
            return Ok(());
        }
        if upload.info().state != State::Recording {
            return Ok(());
        }
        let len = self.replay(upload, work, None).await?;
        tracing::info!("{}: resumed at {len} bytes", upload.id);
        self.event(upload, EventKind::Resumed, None);
        Ok(())
    }

    /// [`Registry::load`] with a store: makes sure this worker owns the upload (renewing
    /// its lease, or taking it and rebuilding the local cache from the input log).
    async fn load_shared(
        &self,
        shared: &Shared,
        upload: &Arc<Upload>,
        work: &mut Option<Work>,
    ) -> std::result::Result<(), Refusal> {
        if upload.info().state != State::Recording {
            return Ok(());
        }
        if let Some(lease) = work.as_mut().filter(|w| w.loaded).and_then(|w| w.lease.as_mut()).filter(|l| l.held) {
            if !shared.due(lease) {
                return Ok(());
            }
            match shared.write_state(&upload.id, lease).await {
                Ok(()) => return Ok(()),
                Err(crate::store::StoreError::Precondition(_) | crate::store::StoreError::NotFound(_)) => {
                    self.lost(upload, work);
                }
                Err(e) => return Err(Refusal::Internal(e.to_string())),
            }
        }
        let mine = work.as_ref().filter(|w| w.loaded).and_then(|w| w.lease.as_ref()).map(|l| (l.state.gen, l.next_seq));
        let taken = shared.take(&upload.id, mine).await.map_err(|e| match e {
            TakeError::Busy(left) => Refusal::Busy {
                retry_after: left.as_secs().max(1),
                why: "another worker is writing this upload".into(),
            },
            TakeError::NotFound => Refusal::NotFound("no such upload".into()),
            TakeError::Store(e) => Refusal::Internal(e.to_string()),
        })?;
        let (lease, replay) = match taken {
            Taken::Ended(state) => {
                upload.offset.store(state.info.received, Ordering::Release);
                *upload.info.lock().unwrap() = state.info;
                *work = None;
                return Ok(());
            }
            Taken::Owned { lease, reused: true, .. } => {
                if let Some(w) = work.as_mut() {
                    w.lease = Some(lease);
                }
                return Ok(());
            }
            Taken::Owned { lease, replay, .. } => (lease, replay),
        };
        // Rebuild the local cache: the journal from the input log, the recording from it.
        *work = None;
        *upload.info.lock().unwrap() = lease.state.info.clone();
        let started = Instant::now();
        let dir = upload.dir.clone();
        let info = lease.state.info.clone();
        let journal = tokio::task::spawn_blocking(move || -> std::io::Result<Journal> {
            // Watched (live HLS on demand): still so after the rebuild.
            let watched = dir.join(LIVE_DIR).exists();
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir(&dir)?;
            if watched {
                std::fs::create_dir(dir.join(LIVE_DIR))?;
            }
            write_info(&dir, &info)?;
            Journal::create(&dir.join(JOURNAL))
        })
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))??;
        let mut journal = journal;
        for (key, _) in &replay {
            let bytes = shared.download(key).await.map_err(|e| Refusal::Internal(e.to_string()))?;
            journal.append(&bytes)?;
        }
        drop(journal);
        let len = self.replay(upload, work, Some(lease)).await?;
        tracing::info!(
            "{}: taken from the store at {len} bytes ({} objects) in {:.3} s",
            upload.id,
            replay.len(),
            started.elapsed().as_secs_f64()
        );
        if !replay.is_empty() {
            self.event(upload, EventKind::Resumed, None);
        }
        // Every byte arrived but the finish did not end (the owner died in it, or the store
        // failed): it is done now.
        let info = upload.info();
        if info.state == State::Recording && info.length == Some(len) {
            self.finish(upload, work, State::Finished, None).await;
        }
        Ok(())
    }

    /// This worker lost `upload` to another (a conditional write failed): it forgets it.
    fn lost(&self, upload: &Upload, work: &mut Option<Work>) {
        tracing::error!("{}: another worker took this upload over; this one stops writing it", upload.id);
        *work = None;
    }

    /// A read-only look (status, output): with a store, an upload this worker does not own
    /// is read from the store (its state and input log), not taken.
    pub async fn view(&self, upload: &Arc<Upload>) -> std::result::Result<(), Refusal> {
        let Some(shared) = &self.shared else { return self.touch(upload).await };
        let mut guard = upload.work.lock().await;
        if guard.as_ref().is_some_and(|w| w.loaded && w.lease.as_ref().is_some_and(|l| l.held && !shared.due(l))) {
            return Ok(());
        }
        let internal = |e: crate::store::StoreError| Refusal::Internal(e.to_string());
        let state = shared
            .read(&upload.id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Refusal::NotFound("no such upload".into()))?;
        let offset = match state.info.state {
            State::Recording => shared.input_len(&upload.id).await.map_err(internal)?,
            _ => state.info.received,
        };
        if state.info.state != State::Recording {
            *guard = None;
        }
        upload.offset.store(offset, Ordering::Release);
        let ended = state.info.state;
        *upload.info.lock().unwrap() = state.info;
        if ended == State::Terminated {
            // Deleted through another worker.
            return Err(Refusal::Gone(ended));
        }
        Ok(())
    }

    /// The upload `id`: known here, or (with a store) found there.
    pub async fn lookup(&self, id: &str) -> std::result::Result<Option<Arc<Upload>>, Refusal> {
        if let Some(u) = self.get(id) {
            return Ok(Some(u));
        }
        let Some(shared) = &self.shared else { return Ok(None) };
        let Some(state) = shared.read(id).await.map_err(|e| Refusal::Internal(e.to_string()))? else {
            return Ok(None);
        };
        Ok(Some(self.known(state.info)))
    }

    /// The upload of `info` (read from the store), known here from now on.
    fn known(&self, info: Info) -> Arc<Upload> {
        let mut map = self.uploads.lock().unwrap();
        map.entry(info.id.clone()).or_insert_with(|| self.entry(info)).clone()
    }

    /// Starts live HLS for `upload` if the server keeps it on demand and it has none yet
    /// (its journal is replayed once, into a recording that keeps it); otherwise loads it
    /// like [`Registry::touch`].
    pub async fn watch(&self, upload: &Arc<Upload>) -> std::result::Result<(), Refusal> {
        upload.touched.store(self.now_ms(), Ordering::Release);
        let mut guard = upload.work.lock().await;
        let live = upload.live_dir();
        match self.config.live_hls {
            LiveHls::Off => {
                return Err(Refusal::NotFound("live HLS is off on this server (--live-hls off)".into()));
            }
            LiveHls::OnDemand if !live.exists() => {}
            LiveHls::OnDemand | LiveHls::Always => return self.load(upload, &mut guard).await,
        }
        if upload.info().state != State::Recording {
            let why = "this recording has no live HLS: nobody watched it while it was made (its file: GET /files/{id}/output)";
            return Err(Refusal::NotFound(why.into()));
        }
        // The directory says "live HLS on" to this replay and every later one (after a
        // restart too). One replay, whether or not the upload was loaded.
        std::fs::create_dir_all(&live)?;
        if self.shared.is_some() {
            self.load(upload, &mut guard).await?;
        }
        let lease = guard.take().and_then(|w| w.lease);
        let started = Instant::now();
        let len = self.replay(upload, &mut guard, lease).await?;
        tracing::info!(
            "{}: live HLS from {len} bytes of journal in {:.3} s",
            upload.id,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Feeds an upload's whole journal to a new recording (on the blocking pool) and
    /// publishes its offset. The journal's length.
    async fn replay(
        &self,
        upload: &Arc<Upload>,
        work: &mut Option<Work>,
        lease: Option<Lease>,
    ) -> std::result::Result<u64, Refusal> {
        let info = upload.info();
        let dir = upload.dir.clone();
        let options = self.recording_options(&dir);
        let replayed = tokio::task::spawn_blocking(move || -> Result<Work> {
            let mut w = Work::new(None);
            let mut feed_error = None;
            let journal = Journal::open(&dir.join(JOURNAL), |bytes| {
                if feed_error.is_none() {
                    if let Err(e) = w.feed(&dir, &info, &options, bytes) {
                        feed_error = Some(e.to_string());
                    }
                }
                Ok(())
            })?;
            w.failed = feed_error;
            w.journal = Some(journal);
            Ok(w)
        })
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?;
        let w = replayed.map_err(|e| Refusal::Internal(format!("cannot replay the journal of {}: {e}", upload.id)))?;
        let len = w.journal.as_ref().map_or(0, Journal::len);
        let output = w.output_name(&upload.id);
        let failed = w.failed.clone();
        *work = Some(Work { lease, ..w });
        upload.offset.store(len, Ordering::Release);
        if let Some(output) = output {
            upload.info.lock().unwrap().output = Some(output);
        }
        if let Some(e) = failed {
            self.fail(upload, work, e).await;
        }
        Ok(len)
    }

    /// How the bytes of the upload in `dir` become its recording.
    fn recording_options(&self, dir: &Path) -> FeedOptions {
        let mut remux = RemuxOptions::default();
        if let Some(ms) = self.config.fragment_ms {
            remux.fragment.min_ms = u64::from(ms);
            remux.fragment.max_ms = u64::from(ms) * 2;
        }
        let live_hls = match self.config.live_hls {
            LiveHls::Off => false,
            LiveHls::OnDemand => dir.join(LIVE_DIR).exists(),
            LiveHls::Always => true,
        };
        FeedOptions { remux, live_hls }
    }

    /// Cancels the PATCH in flight on `upload` (a new one takes over) and returns the
    /// token the new one listens to.
    pub fn take_over(&self, upload: &Upload) -> CancellationToken {
        let token = self.shutdown.child_token();
        if let Some(old) = upload.current_patch.lock().unwrap().replace(token.clone()) {
            old.cancel();
        }
        token
    }

    /// Writes one request's body: `body` yields its pieces; `Ok(offset)` once every byte
    /// taken is durable. `declared`: an `Upload-Length` the request gives a deferred upload;
    /// `body_len`: its `Content-Length`, when given (a body known to go too far is refused
    /// before any of it is written).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch<S>(
        &self,
        upload: &Arc<Upload>,
        offset: u64,
        declared: Option<u64>,
        body_len: Option<u64>,
        max_body: u64,
        mut body: S,
        cancel: CancellationToken,
    ) -> std::result::Result<u64, Refusal>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, String>> + Unpin,
    {
        use futures::StreamExt;
        let mut guard = upload.work.lock().await;
        self.load(upload, &mut guard).await?;
        let info = upload.info();
        if info.state != State::Recording {
            return Err(Refusal::Gone(info.state));
        }
        let durable = upload.offset();
        if offset != durable {
            return Err(Refusal::Conflict { offset: durable });
        }
        if let Some(len) = declared {
            self.set_length(upload, &mut guard, &info, len, durable).await?;
        }
        let length = upload.info.lock().unwrap().length;
        let limit = length.unwrap_or(self.config.limits.max_upload_bytes).min(durable.saturating_add(max_body));
        let too_large = || {
            Refusal::TooLarge(match length {
                Some(l) if l == limit => format!("the body goes past the upload's length ({l} bytes)"),
                _ => format!(
                    "the body goes past the server's limit (PATCH {max_body}, upload {} bytes)",
                    self.config.limits.max_upload_bytes
                ),
            })
        };
        if body_len.is_some_and(|n| durable.saturating_add(n) > limit) {
            return Err(too_large());
        }
        let read_timeout = Duration::from_secs(self.config.limits.read_timeout_secs);
        let mut taken = durable;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut outcome = Ok(());
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                n = tokio::time::timeout(read_timeout, body.next()) => n,
            };
            let piece = match next {
                Err(_) => break, // the client went quiet: keep what came
                Ok(None) => break,
                Ok(Some(Err(_))) => break, // the connection broke: keep what came
                Ok(Some(Ok(piece))) => piece,
            };
            let end = taken.saturating_add(piece.len() as u64);
            if end > limit {
                outcome = Err(too_large());
                break;
            }
            taken = end;
            pending_len += piece.len();
            pending.push(piece);
            if pending_len >= 1 << 20 {
                self.write(upload, &mut guard, std::mem::take(&mut pending)).await?;
                pending_len = 0;
                // A long body goes to the store in pieces, and keeps the lease while it streams.
                let due = |w: &Work| {
                    w.unsent.iter().map(Bytes::len).sum::<usize>() >= STORE_COMMIT
                        || self.shared.as_ref().zip(w.lease.as_ref()).is_some_and(|(s, l)| s.due(l))
                };
                if guard.as_ref().is_some_and(due) {
                    self.commit(upload, &mut guard).await?;
                }
            }
        }
        self.write(upload, &mut guard, pending).await?;
        self.commit(upload, &mut guard).await?;
        upload.touched.store(self.now_ms(), Ordering::Release);
        let offset = upload.offset();
        if let Some(e) = guard.as_ref().and_then(|w| w.failed.clone()) {
            if upload.info().state == State::Recording {
                self.fail(upload, &mut guard, e.clone()).await;
            }
            return Err(Refusal::Unprocessable(e));
        }
        outcome?;
        if upload.info().length == Some(offset) {
            self.finish(upload, &mut guard, State::Finished, None).await;
        }
        Ok(offset)
    }

    async fn set_length(
        &self,
        upload: &Upload,
        guard: &mut Option<Work>,
        info: &Info,
        len: u64,
        durable: u64,
    ) -> std::result::Result<(), Refusal> {
        match info.length {
            Some(l) if l == len => return Ok(()),
            Some(_) => return Err(Refusal::Bad("Upload-Length was set already".into())),
            None => {}
        }
        if len > self.config.limits.max_upload_bytes {
            return Err(Refusal::TooLarge(format!(
                "Upload-Length {len} is past the server's limit of {} bytes",
                self.config.limits.max_upload_bytes
            )));
        }
        if len < durable {
            return Err(Refusal::Bad(format!("Upload-Length {len} is below the {durable} bytes received")));
        }
        let mut new = info.clone();
        new.length = Some(len);
        let dir = upload.dir.clone();
        let saved = new.clone();
        tokio::task::spawn_blocking(move || write_info(&dir, &saved))
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))??;
        if let Some(shared) = &self.shared {
            let lease = guard.as_mut().and_then(|w| w.lease.as_mut()).filter(|l| l.held);
            let Some(lease) = lease else { return Err(Refusal::Internal("the upload's lease was lost".into())) };
            lease.state.info.length = Some(len);
            if let Err(e) = shared.write_state(&upload.id, lease).await {
                lease.state.info.length = None;
                return Err(match e {
                    crate::store::StoreError::Precondition(_) => {
                        self.lost(upload, guard);
                        Refusal::Busy { retry_after: 1, why: "another worker took this upload over".into() }
                    }
                    e => Refusal::Internal(e.to_string()),
                });
            }
        }
        upload.info.lock().unwrap().length = Some(len);
        Ok(())
    }

    /// Appends `pieces` to the journal and feeds them to the recording (on the blocking pool).
    async fn write(
        &self,
        upload: &Upload,
        guard: &mut Option<Work>,
        pieces: Vec<Bytes>,
    ) -> std::result::Result<(), Refusal> {
        if pieces.is_empty() {
            return Ok(());
        }
        let mut w = guard.take().ok_or_else(|| Refusal::Internal("the upload's writer was lost".into()))?;
        let (dir, info, options) = (upload.dir.clone(), upload.info(), self.recording_options(&upload.dir));
        let (w, result) = tokio::task::spawn_blocking(move || {
            let r = w.take(&dir, &info, &options, pieces);
            (w, r)
        })
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?;
        if let Some(output) = w.output_name(&upload.id) {
            let mut info = upload.info.lock().unwrap();
            if info.output.is_none() {
                info.output = Some(output);
            }
        }
        if result.is_err() && self.shared.is_some() {
            // The cache holds bytes the store does not: rebuilt from the store next time.
            *guard = None;
        } else {
            *guard = Some(w);
        }
        result.map_err(|e| Refusal::Internal(format!("cannot write the journal: {e}")))
    }

    /// Makes the journal durable (group commit) and publishes the offset.
    async fn commit(&self, upload: &Upload, guard: &mut Option<Work>) -> std::result::Result<(), Refusal> {
        if let Some(shared) = &self.shared {
            return self.commit_shared(shared, upload, guard).await;
        }
        let Some(journal) = guard.as_ref().and_then(|w| w.journal.as_ref()) else { return Ok(()) };
        let len = journal.len();
        let before = upload.offset();
        if len == before {
            return Ok(());
        }
        self.committer
            .sync(vec![journal.file().clone()])
            .await
            .map_err(|e| Refusal::Internal(format!("cannot make the upload durable: {e}")))?;
        upload.offset.store(len, Ordering::Release);
        self.metrics.bytes_in(len - before);
        Ok(())
    }

    /// [`Registry::commit`] with a store: the bytes taken go to the input log (the PATCH is
    /// answered once it has them), then, past `part_bytes` of new output, a segment.
    async fn commit_shared(
        &self,
        shared: &Shared,
        upload: &Upload,
        guard: &mut Option<Work>,
    ) -> std::result::Result<(), Refusal> {
        let Some(w) = guard.as_mut() else { return Ok(()) };
        if w.unsent.is_empty() {
            return Ok(());
        }
        let len = w.journal.as_ref().map_or(0, Journal::len);
        let mut body = BytesMut::with_capacity(w.unsent.iter().map(Bytes::len).sum());
        for piece in w.unsent.drain(..) {
            body.extend_from_slice(&piece);
        }
        let Some(lease) = w.lease.as_mut().filter(|l| l.held) else {
            *guard = None;
            return Err(Refusal::Internal("the upload's lease was lost while writing".into()));
        };
        let mut stored = Ok(());
        if shared.due(lease) {
            stored = shared.write_state(&upload.id, lease).await;
        }
        if stored.is_ok() {
            // The store's PUT is this upload's flush (the histogram of durable writes).
            let started = Instant::now();
            stored = shared.append(&upload.id, lease, body.freeze()).await;
            self.metrics.flush(started.elapsed(), 1);
        }
        match stored {
            Ok(()) => {}
            Err(crate::store::StoreError::Precondition(_) | crate::store::StoreError::NotFound(_)) => {
                self.lost(upload, guard);
                return Err(Refusal::Busy {
                    retry_after: 1,
                    why: "another worker took this upload over: these bytes were not taken".into(),
                });
            }
            Err(e) => {
                // The local cache is ahead of the store: rebuilt on the next request.
                *guard = None;
                return Err(Refusal::Internal(format!("cannot store the upload's bytes: {e}")));
            }
        }
        let before = upload.offset();
        upload.offset.store(len, Ordering::Release);
        self.metrics.bytes_in(len.saturating_sub(before));
        if let Err(e) = self.store_output(shared, upload, guard).await {
            tracing::warn!("{}: output segment not stored ({e}); the input log has its bytes", upload.id);
        }
        Ok(())
    }

    /// Stores the recording's new output as segments of `part_bytes`, as many as there are.
    async fn store_output(
        &self,
        shared: &Shared,
        upload: &Upload,
        guard: &mut Option<Work>,
    ) -> std::result::Result<(), crate::store::StoreError> {
        let part = shared.config.part_bytes;
        loop {
            let Some(w) = guard.as_mut() else { return Ok(()) };
            let (Some(rec), Some(lease)) = (w.recording.as_ref(), w.lease.as_mut()) else { return Ok(()) };
            let path = rec.path().to_path_buf();
            let file_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let from = Shared::stored_end(lease);
            if file_len.saturating_sub(from) < part {
                return Ok(());
            }
            let data = stored::read_range(&path, from..from + part).await?;
            match shared.store_segment(&upload.id, lease, data).await {
                Ok(()) => {}
                Err(e @ (crate::store::StoreError::Precondition(_) | crate::store::StoreError::NotFound(_))) => {
                    self.lost(upload, guard);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends a recording: finishes its output (last fragment, index), fsyncs it, records
    /// the state, removes the journal.
    async fn finish(&self, upload: &Arc<Upload>, guard: &mut Option<Work>, state: State, why: Option<String>) {
        if let Some(shared) = &self.shared {
            return self.finish_shared(shared, upload, guard, state, why).await;
        }
        let w = guard.take();
        let dir = upload.dir.clone();
        let keep = self.config.keep_journal;
        let mut info = upload.info();
        info.received = upload.offset();
        let finished = tokio::task::spawn_blocking(move || -> Result<Info> {
            let report = match w.and_then(|w| w.recording) {
                Some(rec) => Some(rec.finish()?),
                None => None,
            };
            if let Some(r) = &report {
                File::open(&r.path).and_then(|f| f.sync_all()).map_err(|e| Error::from(e).on_path(&r.path))?;
                info.report = Some(report_of(r));
            }
            info.state = state;
            info.error = why;
            write_info(&dir, &info).map_err(|e| Error::from(e).on_path(dir.join(INFO)))?;
            if !keep {
                let _ = std::fs::remove_file(dir.join(JOURNAL));
            }
            Ok(info)
        })
        .await;
        match finished {
            Ok(Ok(info)) => {
                *upload.info.lock().unwrap() = info;
                self.metrics.uploads(-1);
                self.metrics.ended(state_name(state));
                let kind = if state == State::Finished { EventKind::Finished } else { EventKind::Abandoned };
                self.event(upload, kind, None);
            }
            Ok(Err(e)) => self.fail(upload, guard, e.to_string()).await,
            Err(e) => self.fail(upload, guard, e.to_string()).await,
        }
        *guard = Some(Work { loaded: true, ..Work::new(None) });
    }

    /// [`Registry::finish`] with a store: the recording is finished in the cache, composed
    /// in the store from its segments, then the state says so and the input log goes.
    async fn finish_shared(
        &self,
        shared: &Shared,
        upload: &Arc<Upload>,
        guard: &mut Option<Work>,
        state: State,
        why: Option<String>,
    ) {
        let Some(mut w) = guard.take() else { return };
        let Some(mut lease) = w.lease.take().filter(|l| l.held) else { return self.lost(upload, guard) };
        // Still the owner? (A stale owner stops here.)
        if let Err(e) = shared.write_state(&upload.id, &mut lease).await {
            tracing::error!("{}: cannot finish: {e}", upload.id);
            return self.lost(upload, guard);
        }
        let mut info = upload.info();
        info.received = upload.offset();
        let recording = w.recording.take();
        let finished = tokio::task::spawn_blocking(move || recording.map(Recording::finish).transpose()).await;
        let report = match finished {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return self.fail_owned(upload, guard, lease, e.to_string()).await,
            Err(e) => return self.fail_owned(upload, guard, lease, e.to_string()).await,
        };
        if let Some(r) = &report {
            let ext = r.path.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
            let name = stored::final_name(&info, ext);
            let started = Instant::now();
            if let Err(e) = shared.compose(&upload.id, &lease, &r.path, &name).await {
                // The input log has every byte: the next owner (a retry, the sweep) finishes
                // it again. Handed back so that any worker may.
                tracing::error!("{}: cannot compose the recording in the store ({e}); left to finish again", upload.id);
                let _ = shared.release(&upload.id, &mut lease).await;
                *guard = None;
                return;
            }
            tracing::info!(
                "{}: {} composed in {:.3} s",
                upload.id,
                shared.store.key(&name),
                started.elapsed().as_secs_f64()
            );
            info.output = Some(shared.store.key(&name));
            info.report = Some(report_of(r));
        }
        info.state = state;
        info.error = why;
        lease.state.info = info.clone();
        lease.state.owner = None;
        if let Err(e) = shared.write_state(&upload.id, &mut lease).await {
            // The object is there; the next owner composes it again and finds it.
            tracing::error!("{}: finished, but the state could not say so: {e}", upload.id);
            return self.lost(upload, guard);
        }
        shared.clean(&upload.id);
        // The cache goes, but for the live HLS a viewer may still be reading (this worker
        // serves it until it restarts).
        let dir = upload.dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if dir.join(LIVE_DIR).exists() {
                let _ = std::fs::remove_file(dir.join(JOURNAL));
                report.map(|r| std::fs::remove_file(r.path))
            } else {
                Some(std::fs::remove_dir_all(dir))
            }
        })
        .await;
        *upload.info.lock().unwrap() = info;
        self.metrics.uploads(-1);
        self.metrics.ended(state_name(state));
        let kind = if state == State::Finished { EventKind::Finished } else { EventKind::Abandoned };
        self.event(upload, kind, None);
        *guard = Some(Work { loaded: true, ..Work::new(None) });
    }

    /// [`Registry::fail`] of an upload whose lease was taken out of its work.
    async fn fail_owned(&self, upload: &Arc<Upload>, guard: &mut Option<Work>, lease: Lease, error: String) {
        *guard = Some(Work { lease: Some(lease), ..Work::new(None) });
        self.fail(upload, guard, error).await
    }

    async fn fail(&self, upload: &Arc<Upload>, guard: &mut Option<Work>, error: String) {
        let mut info = upload.info();
        let was_open = info.state == State::Recording;
        info.state = State::Failed;
        info.error = Some(error.clone());
        info.received = upload.offset();
        let dir = upload.dir.clone();
        let saved = info.clone();
        let _ = tokio::task::spawn_blocking(move || write_info(&dir, &saved)).await;
        if let (Some(shared), Some(lease)) =
            (&self.shared, guard.as_mut().and_then(|w| w.lease.as_mut()).filter(|l| l.held))
        {
            lease.state.info = info.clone();
            lease.state.owner = None;
            match shared.write_state(&upload.id, lease).await {
                Ok(()) => shared.closed(&upload.id),
                Err(e) => tracing::error!("{}: the store could not be told the upload failed: {e}", upload.id),
            }
            lease.held = false;
        }
        *upload.info.lock().unwrap() = info;
        if let Some(w) = guard.as_mut() {
            w.recording = None;
        }
        if was_open {
            self.metrics.uploads(-1);
        }
        self.metrics.ended("failed");
        self.event(upload, EventKind::Failed, Some(error));
    }

    /// DELETE: stops the PATCH in flight and removes the upload's directory.
    pub async fn terminate(&self, upload: &Arc<Upload>) -> std::result::Result<(), Refusal> {
        if let Some(p) = upload.current_patch.lock().unwrap().take() {
            p.cancel();
        }
        let mut guard = upload.work.lock().await;
        let was_open = upload.info().state == State::Recording;
        if let Some(shared) = &self.shared {
            // Only the owner may end it: the others would find their next write fenced.
            self.load(upload, &mut guard).await?;
            let lease = guard.as_mut().and_then(|w| w.lease.as_mut()).filter(|l| l.held);
            if let Some(lease) = lease {
                lease.state.info.state = State::Terminated;
                lease.state.owner = None;
                shared.write_state(&upload.id, lease).await.map_err(|e| Refusal::Internal(e.to_string()))?;
            } else if upload.info().state == State::Recording {
                return Err(Refusal::Internal("the upload's lease was lost".into()));
            } else {
                let mut state = shared
                    .read(&upload.id)
                    .await
                    .map_err(|e| Refusal::Internal(e.to_string()))?
                    .ok_or_else(|| Refusal::NotFound("no such upload".into()))?;
                // An ended upload: its recording goes too, as from the data dir.
                if let Some(key) = state.info.output.take() {
                    let name = key.strip_prefix(&shared.store.key("")).unwrap_or(&key).to_string();
                    shared.store.delete(&name).await.map_err(|e| Refusal::Internal(e.to_string()))?;
                }
                state.info.state = State::Terminated;
                shared.overwrite(&upload.id, &state).await.map_err(|e| Refusal::Internal(e.to_string()))?;
            }
            shared.clean(&upload.id);
        }
        *guard = None;
        let dir = upload.dir.clone();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.and_then(|_| crate::io::sync_parent(&dir)),
        })
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))??;
        upload.info.lock().unwrap().state = State::Terminated;
        if was_open {
            self.metrics.uploads(-1);
        }
        self.metrics.ended("terminated");
        self.event(upload, EventKind::Terminated, None);
        Ok(())
    }

    /// With a store: hands back every upload this worker owns that had no request for
    /// `quiet_ms` (default: `release_secs`), owner `null` in its state.
    pub async fn release_idle(&self, quiet_ms: impl Into<Option<u64>>) {
        let Some(shared) = &self.shared else { return };
        let quiet_ms = quiet_ms.into().unwrap_or(shared.config.release_secs.saturating_mul(1000));
        let now = self.now_ms();
        let quiet: Vec<Arc<Upload>> = self
            .uploads
            .lock()
            .unwrap()
            .values()
            .filter(|u| now.saturating_sub(u.touched.load(Ordering::Acquire)) >= quiet_ms)
            .cloned()
            .collect();
        for upload in quiet {
            let Ok(mut guard) = upload.work.try_lock() else { continue };
            let Some(lease) = guard.as_mut().and_then(|w| w.lease.as_mut()).filter(|l| l.held) else { continue };
            if let Err(e) = shared.release(&upload.id, lease).await {
                tracing::warn!("{}: not handed back ({e})", upload.id);
                *guard = None;
            }
        }
    }

    /// Finalizes every recording idle past the limit (with what arrived).
    pub async fn sweep_idle(&self) {
        let idle_ms = self.config.limits.idle_finalize_secs.saturating_mul(1000);
        let now = self.now_ms();
        let idle: Vec<Arc<Upload>> = self
            .uploads
            .lock()
            .unwrap()
            .values()
            .filter(|u| {
                u.info.lock().unwrap().state == State::Recording
                    && now.saturating_sub(u.touched.load(Ordering::Acquire)) > idle_ms
            })
            .cloned()
            .collect();
        for upload in idle {
            let Ok(mut guard) = upload.work.try_lock() else { continue }; // a request holds it
            if let Some(shared) = &self.shared {
                // Only an upload this worker holds, or handed back and nobody wrote since (by
                // the store's clock): another worker's is its own to sweep.
                match guard.as_ref().and_then(|w| w.lease.as_ref()) {
                    Some(lease) if lease.held => {}
                    Some(_) => match shared.read_aged(&upload.id).await {
                        Ok(Some((_, age))) if age.as_millis() > u128::from(idle_ms) => {}
                        _ => continue,
                    },
                    None => continue,
                }
            }
            self.finalize_idle(&upload, &mut guard).await;
        }
    }

    /// With a store: finalizes the uploads nobody wrote for `idle_finalize_secs`, whichever
    /// worker they were on (one that died while its clients had gone too): the sweep of
    /// `stored.rs`'s module doc.
    pub async fn sweep_store(&self) {
        let Some(shared) = &self.shared else { return };
        let idle = Duration::from_secs(self.config.limits.idle_finalize_secs);
        let ids = match shared.open_ids().await {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!("the store's open uploads not listed: {e}"),
        };
        let held = |w: &Option<Work>| w.as_ref().and_then(|w| w.lease.as_ref()).is_some_and(|l| l.held);
        for id in ids {
            // This worker's own (held, or in a request) are `sweep_idle`'s.
            if self.get(&id).is_some_and(|u| u.work.try_lock().map_or(true, |w| held(&w))) {
                continue;
            }
            let info = match shared.read_aged(&id).await {
                Ok(Some((state, age))) if state.info.state == State::Recording => {
                    if age <= idle {
                        continue;
                    }
                    state.info
                }
                // Ended (a crash between the state and the marker's removal), or gone.
                Ok(_) => {
                    shared.closed(&id);
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{id}: not swept: {e}");
                    continue;
                }
            };
            let upload = self.known(info);
            let Ok(mut guard) = upload.work.try_lock() else { continue };
            tracing::info!("{id}: nobody wrote it for {} s: finalizing it", idle.as_secs());
            self.finalize_idle(&upload, &mut guard).await;
        }
    }

    /// Finalizes an idle upload (taking it first, with a store): `abandoned` with the bytes
    /// that arrived, or `finished` if all did (a finish that did not end).
    async fn finalize_idle(&self, upload: &Arc<Upload>, guard: &mut Option<Work>) {
        if self.load(upload, guard).await.is_err() || upload.info().state != State::Recording {
            return;
        }
        if upload.info().length == Some(upload.offset()) {
            return self.finish(upload, guard, State::Finished, None).await;
        }
        let idle = self.config.limits.idle_finalize_secs;
        let why = format!("idle for more than {idle} s: finalized with the bytes that arrived");
        self.finish(upload, guard, State::Abandoned, Some(why)).await;
    }

    /// When an idle upload will be finalized (`Upload-Expires`).
    pub fn expires(&self, upload: &Upload) -> SystemTime {
        let idle = Duration::from_secs(self.config.limits.idle_finalize_secs);
        let since = Duration::from_millis(self.now_ms().saturating_sub(upload.touched.load(Ordering::Acquire)));
        SystemTime::now() + idle.saturating_sub(since)
    }

    /// Logs the event and tells the post hook (for ends).
    fn event(&self, upload: &Upload, kind: EventKind, error: Option<String>) {
        let info = upload.info();
        let report = info.report.clone().unwrap_or_default();
        let event = Event {
            v: 1,
            event: kind,
            id: info.id.clone(),
            rec: info.rec.clone(),
            offset: upload.offset(),
            length: info.length,
            output: info.output.clone(),
            output_bytes: report.output_bytes,
            duration_ms: report.duration_ms,
            tracks: report.tracks,
            notes: report.notes,
            error: error.or(info.error),
            time: events::now_rfc3339(),
        };
        events::emit(&event);
        if !matches!(kind, EventKind::Created | EventKind::Resumed) {
            self.hooks.notify(&event);
        }
    }
}

/// How an upload's bytes become its recording.
#[derive(Clone)]
struct FeedOptions {
    remux: RemuxOptions,
    live_hls: bool,
}

/// The live HLS directory of an upload, in its directory.
const LIVE_DIR: &str = "live";
/// The playlist of it a player opens (`GET /files/{id}/live.m3u8`).
pub const LIVE_PLAYLIST: &str = "live.m3u8";

impl Work {
    fn new(journal: Option<Journal>) -> Work {
        Work {
            loaded: true,
            journal,
            recording: None,
            head: BytesMut::new(),
            failed: None,
            lease: None,
            unsent: Vec::new(),
        }
    }

    /// The output's name relative to the data dir, once chosen.
    fn output_name(&self, id: &str) -> Option<String> {
        let rec = self.recording.as_ref()?;
        Some(format!("{id}/{}", rec.path().file_name()?.to_string_lossy()))
    }

    /// Journals and feeds one request's pieces.
    fn take(&mut self, dir: &Path, info: &Info, options: &FeedOptions, pieces: Vec<Bytes>) -> std::io::Result<()> {
        for piece in pieces {
            let journal = self.journal.as_mut().ok_or_else(|| std::io::Error::other("the upload has no journal"))?;
            journal.append(&piece)?;
            if self.lease.is_some() {
                self.unsent.push(piece.clone());
            }
            if self.failed.is_none() {
                if let Err(e) = self.feed(dir, info, options, piece) {
                    self.failed = Some(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Feeds bytes to the recording, creating it once the input's first bytes say which
    /// container it is.
    fn feed(&mut self, dir: &Path, info: &Info, options: &FeedOptions, bytes: Bytes) -> Result<()> {
        if let Some(rec) = &mut self.recording {
            return rec.push(bytes);
        }
        self.head.extend_from_slice(&bytes);
        let Some(format) = choose_format(&self.head, info.format.as_deref())? else { return Ok(()) };
        let path = dir.join(format!("recording.{}", extension(format)));
        let mut recording = RecordingOptions::default()
            .remux(options.remux.clone())
            .format(format)
            .durability(Durability::None)
            .overwrite(true)
            .ignore_pace(true);
        if options.live_hls {
            // Replayed from the journal after a restart like the file: the same segments
            // under the same names.
            recording = recording.live_hls(dir.join(LIVE_DIR).join(LIVE_PLAYLIST));
        }
        let mut rec = Recording::create(path, recording)?;
        let head = std::mem::take(&mut self.head).freeze();
        let pushed = rec.push(head);
        self.recording = Some(rec);
        pushed
    }
}

/// The output format for an input starting with `head`: forced, or by its container
/// (MP4 family: a regular MP4; WebM: WebM; other Matroska: Matroska). `None`: more
/// bytes are needed to tell.
fn choose_format(head: &[u8], forced: Option<&str>) -> Result<Option<MuxFormat>> {
    if let Some(f) = forced {
        return f.parse().map(Some).map_err(|e| Error::msg(ErrorKind::Config, e));
    }
    match sniff(head) {
        Some(ContainerKind::Mp4) => Ok(Some(MuxFormat::Mp4)),
        Some(ContainerKind::Matroska) => {
            Ok(matroska_doc_type(head).map(|webm| if webm { MuxFormat::Webm } else { MuxFormat::Mkv }))
        }
        None if head.len() >= HEAD_LEN => {
            Err(Error::msg(ErrorKind::NotMedia, "the upload starts with neither an MP4 box nor a Matroska/WebM header"))
        }
        None => Ok(None),
    }
}

/// Whether an EBML header says `webm` (`Some(true)`) or another DocType; `None` until the
/// whole header is there (or, for a header past [`HEAD_LEN`], Matroska).
fn matroska_doc_type(head: &[u8]) -> Option<bool> {
    // EBML header: ID 1A45DFA3, size (vint), children; DocType is ID 4282.
    let (size, size_len) = vint(head.get(4..)?)?;
    let end = 4usize.checked_add(size_len)?.checked_add(usize::try_from(size).ok()?)?;
    let Some(body) = head.get(4 + size_len..end) else {
        return (head.len() >= HEAD_LEN).then_some(false);
    };
    let mut at = 0;
    while at + 2 < body.len() {
        let id_len = match body[at] {
            b if b & 0x80 != 0 => 1,
            b if b & 0x40 != 0 => 2,
            b if b & 0x20 != 0 => 3,
            b if b & 0x10 != 0 => 4,
            _ => return Some(false),
        };
        let id = body.get(at..at + id_len)?;
        let (len, len_len) = vint(body.get(at + id_len..)?)?;
        let start = at + id_len + len_len;
        let stop = start.checked_add(usize::try_from(len).ok()?)?;
        if id == [0x42, 0x82] {
            return Some(body.get(start..stop)? == b"webm");
        }
        at = stop;
    }
    Some(false)
}

/// An EBML variable-length size: (value, length in bytes).
fn vint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(..len)?;
    let mut v = u64::from(first) & (0xFF >> len);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, len))
}

/// The file extension of an output format.
pub fn extension(format: MuxFormat) -> &'static str {
    match format {
        MuxFormat::Mp4 | MuxFormat::Fmp4 => "mp4",
        MuxFormat::Webm => "webm",
        MuxFormat::Mkv | MuxFormat::Matroska => "mkv",
        MuxFormat::Hls => "m3u8",
    }
}

fn report_of(r: &RecordingReport) -> Report {
    Report {
        tracks: r.tracks.as_ref().map(TrackInfo::list).unwrap_or_default(),
        duration_ms: r.duration_ms,
        output_bytes: r.output_len,
        notes: r.notes.clone(),
    }
}

/// The state's name in metrics and status.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Recording => "recording",
        State::Finished => "finished",
        State::Abandoned => "abandoned",
        State::Terminated => "terminated",
        State::Failed => "failed",
    }
}

/// The file that says a data dir is the cache of a store.
const STORE_MARK: &str = ".livemux-store";

/// With a store the data dir is a cache of it: what an earlier run left there is removed at
/// start. A data dir that holds uploads of a server without a store is refused, never
/// emptied; one that another server uses (locked) too. Returns the lock and the worker's
/// id, kept in the lock file (made once: the host name and a random number).
fn clear_cache(dir: &Path) -> Result<(File, String)> {
    let err = |e: std::io::Error| Error::from(e).on_path(dir);
    let mut uploads = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.join(INFO).exists() {
            uploads.push(path);
        }
    }
    let mark = dir.join(STORE_MARK);
    if !uploads.is_empty() && !mark.exists() {
        return Err(Error::msg(
            ErrorKind::Config,
            format!("{} holds uploads of a server without --store: give --store another --data-dir", dir.display()),
        ));
    }
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&mark).map_err(err)?;
    if crate::io::lock_or_refuse(&lock, &mark).is_err() {
        let why = format!("{}: another livemux serve uses this data dir", dir.display());
        return Err(Error::msg(ErrorKind::Config, why));
    }
    for path in uploads {
        std::fs::remove_dir_all(&path).map_err(|e| Error::from(e).on_path(&path))?;
    }
    let kept = std::fs::read_to_string(&mark).unwrap_or_default();
    let worker = match kept.lines().next().and_then(|l| l.strip_prefix("worker ")) {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).map_err(|e| Error::msg(ErrorKind::Io, e.to_string()))?;
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), random.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    };
    let text =
        format!("worker {worker}\n# The cache of an object store (livemux serve --store): emptied at each start.\n");
    std::fs::write(&mark, text).map_err(err)?;
    Ok((lock, worker))
}

/// Replaces `dir/upload.json` atomically and durably (temp file, fsync, rename, dir fsync).
fn write_info(dir: &Path, info: &Info) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(".upload.json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(info).expect("serializable"))?;
    f.sync_all()?;
    rename_durably(&tmp, &dir.join(INFO))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_the_first_bytes() {
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02";
        assert_eq!(choose_format(webm, None).unwrap(), Some(MuxFormat::Webm));
        let mut mkv = webm.to_vec();
        mkv[24..28].copy_from_slice(b"mkv_");
        assert_eq!(choose_format(&mkv, None).unwrap(), Some(MuxFormat::Mkv));
        assert_eq!(choose_format(&webm[..20], None).unwrap(), None, "the header is not all there");
        assert_eq!(choose_format(b"\0\0\0\x20ftypisom", None).unwrap(), Some(MuxFormat::Mp4));
        assert_eq!(choose_format(b"\0\0", None).unwrap(), None);
        assert!(choose_format(&[b'x'; HEAD_LEN], None).is_err());
        assert_eq!(choose_format(b"", Some("mkv")).unwrap(), Some(MuxFormat::Mkv));
    }
}
