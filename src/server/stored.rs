//! Uploads kept in an S3-compatible object store (`livemux serve --store s3://BUCKET/PREFIX`):
//! what a worker acknowledged survives the worker, and any worker resumes any upload.
//!
//! The store holds everything an upload is; a worker's data dir is only a cache of it (the
//! local journal and recording are rebuilt from the store when a worker takes an upload).
//!
//! ```text
//!  PREFIX/<id>/state.json           Info + {owner, gen, segs}: created with If-None-Match: *,
//!                                   replaced only with If-Match: <its ETag> (the fence)
//!  PREFIX/<id>/in/<seq:010>         the input log: the bytes of one commit (a PATCH, or 8 MiB
//!                                   of a longer one), created with If-None-Match: *; an empty
//!                                   object is a takeover marker
//!  PREFIX/<id>/out/g<gen>-<off>-<len>  output bytes [off, off+len) of the recording as its
//!                                   owner of generation <gen> wrote them (part_bytes or more)
//!  PREFIX/<rec or id>/recording.<ext>  the finished recording: one multipart upload, its
//!                                   parts copied from out/ by the store (UploadPartCopy), the
//!                                   head and the tail uploaded; completed with If-None-Match: *
//!  PREFIX/_open/<id>                empty: the upload takes bytes (written after its state,
//!                                   removed after the state says it ended); what the sweep lists
//! ```
//!
//! **A PATCH is acknowledged once `in/<seq>` is stored** (answered 200). The offset is the
//! sum of the input log's sizes. Sequence numbers make the log linear: a write to a `seq`
//! that exists fails.
//!
//! **Ownership.** `state.json` names the owner (a worker id: host and data dir) and a
//! generation. A worker takes an upload when its state names no owner, or when the state
//! was last written more than `lease_secs` ago (the store's `Date` minus its `Last-Modified`:
//! only the store's clock is used), or when it names this worker (restarted on its data dir,
//! which a running worker locks): it replaces the state with itself and `gen + 1` (If-Match),
//! lists `in/`, and writes an empty marker at the first free `seq` (If-None-Match; if a write
//! of the old owner took that `seq` first, it counts and the marker goes one further). From
//! then on the old owner's next input write hits the marker and fails: **a stale owner
//! cannot write**; it drops the upload and answers 423 Locked. The new owner downloads `in/` and
//! replays it into a fresh recording (the output is a function of the input bytes, so it is
//! the one an uninterrupted run writes). An owner rewrites the state (If-Match) at least
//! every third of the lease while it serves requests, and hands the upload back (owner
//! `null`) after `release_secs` without one, so that when the load balancer sends the
//! upload elsewhere the other worker takes it within seconds. A challenger that finds a
//! live owner answers 423 Locked with `Retry-After` (tus clients retry a 423 on the same
//! upload; on a HEAD, they take any other error as "start a new upload").
//!
//! **Output while recording.** Once the local recording has `part_bytes` past the last
//! stored segment, that range goes up as `out/g<gen>-<off>-<len>` and is listed in the
//! state (with its CRC-32C). Names carry the generation and the range, so a stale owner's
//! segment never replaces one the state lists. The first segment holds the head, which
//! changes until the end (the running index); later ones only media.
//!
//! **The finished recording** is composed by the store: every listed segment whose bytes
//! the final local file still has (same CRC) becomes an `UploadPartCopy` part, the others
//! (the head, with the index) and the tail are uploaded. Nothing is downloaded. The state
//! then says `finished` with the object's key, and `in/` and `out/` are deleted. A
//! recording shorter than a part is one PUT.
//!
//! **The sweep.** An upload whose owner died while its client had gone too gets no request
//! that would make a worker take it. So every worker lists `_open/` now and then (every
//! quarter of `idle_finalize_secs`, at most a minute) and takes any upload whose state nobody
//! wrote for `idle_finalize_secs` (by the store's clock: an owner rewrites it at least every
//! third of its lease while requests come, and once more when it hands the upload back),
//! then finalizes it as an idle upload is: `abandoned` with the bytes that arrived, or
//! `finished` if they all did. Two workers sweeping at once race on the state's If-Match
//! like any two takers; one wins. A marker whose upload has ended (a crash between the two
//! writes) is removed.
//!
//! What it costs: every input byte is uploaded once to the input log (it must be stored
//! before its PATCH is answered, when it is usually inside a fragment not written yet),
//! and the output once more as segments, the head and tail again at the end: about twice
//! the input (bench/store.sh measures it). Taking an upload over downloads its input.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::config::StoreConfig;
use super::upload::{Info, State};
use crate::store::{Condition, S3Store, StoreError};

/// A segment of the output stored while recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seg {
    /// Where it starts in the recording.
    pub off: u64,
    /// Its length.
    pub len: u64,
    /// Generation of the owner that stored it (part of its name).
    pub gen: u64,
    /// CRC-32C of its bytes.
    pub crc: u32,
}

/// What `state.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredState {
    /// The upload, as the data dir's `upload.json` has it.
    #[serde(flatten)]
    pub info: Info,
    /// The worker that writes it now (`None`: whoever gets a request takes it).
    pub owner: Option<String>,
    /// Raised at each change of owner.
    pub gen: u64,
    /// The output segments stored, in order from offset 0, contiguous.
    #[serde(default)]
    pub segs: Vec<Seg>,
}

/// What a worker holds of an upload it owns.
#[derive(Debug)]
pub struct Lease {
    /// The state as last written by this worker.
    pub state: StoredState,
    /// Its ETag (the next write's If-Match).
    pub etag: String,
    /// The next input log object.
    pub next_seq: u64,
    /// When the last write of the state was sent (the lease runs from then).
    pub renewed: Instant,
    /// `false` once handed back (the recording stays loaded: if nobody took the upload
    /// meanwhile, it is taken again without a replay).
    pub held: bool,
}

/// Why an upload could not be taken.
#[derive(Debug)]
pub enum TakeError {
    /// Another worker owns it and its lease runs for about this long still.
    Busy(Duration),
    /// No such upload in the store.
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for TakeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => TakeError::NotFound,
            StoreError::Precondition(_) => TakeError::Busy(Duration::from_secs(1)),
            e => TakeError::Store(e),
        }
    }
}

/// An upload taken.
pub enum Taken {
    /// Taken: the input log to replay (the objects before the marker), unless the worker's
    /// own loaded recording is still current (`replay` empty and `reused`).
    Owned { lease: Lease, replay: Vec<(String, u64)>, reused: bool },
    /// It takes no more bytes: nobody needs to own it.
    Ended(StoredState),
}

/// Bytes moved to and from the store (the `bench/store.sh` figures and `/metrics`).
#[derive(Default)]
pub struct Moved {
    /// Input log bytes uploaded.
    pub input_up: AtomicU64,
    /// Output bytes uploaded (segments, parts).
    pub output_up: AtomicU64,
    /// Output bytes the store copied itself (UploadPartCopy).
    pub copied: AtomicU64,
    /// Bytes downloaded (input logs replayed at takeover; never output).
    pub down: AtomicU64,
}

impl Moved {
    /// The counters as Prometheus text (`livemux_store_bytes_total{dir=...}`).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP livemux_store_bytes_total Bytes moved to and from the object store: input log and output \
             uploaded, output copied by the store itself, downloaded.\n# TYPE livemux_store_bytes_total counter\n",
        );
        for (what, n) in [
            ("input_uploaded", &self.input_up),
            ("output_uploaded", &self.output_up),
            ("copied", &self.copied),
            ("downloaded", &self.down),
        ] {
            out.push_str(&format!("livemux_store_bytes_total{{what=\"{what}\"}} {}\n", n.load(Ordering::Relaxed)));
        }
        out
    }
}

/// The store as `livemux serve` uses it.
pub struct Shared {
    pub store: S3Store,
    pub config: StoreConfig,
    /// This worker's id in `owner` (host and data dir).
    pub worker: String,
    pub moved: Moved,
}

fn state_name(id: &str) -> String {
    format!("{id}/state.json")
}

/// Where the markers of the uploads still taking bytes are (ids never start with `_`).
const OPEN: &str = "_open/";

fn open_name(id: &str) -> String {
    format!("{OPEN}{id}")
}

fn input_name(id: &str, seq: u64) -> String {
    format!("{id}/in/{seq:010}")
}

fn seg_name(id: &str, seg: &Seg) -> String {
    format!("{id}/out/g{}-{}-{}-{:08x}", seg.gen, seg.off, seg.len, seg.crc)
}

/// The object a finished recording becomes: `<id>/recording.<ext>` (the id is the recording's
/// name when a token or the pre-create hook named it, a random one otherwise; a `rec` of
/// the token alone is not unique, ids are).
pub fn final_name(info: &Info, ext: &str) -> String {
    format!("{}/recording.{ext}", info.id)
}

/// The most parts S3 takes in one multipart upload.
const MAX_PARTS: usize = 10_000;

impl Shared {
    /// Connects (no request yet) with the AWS variables' configuration. `worker`: this
    /// worker's id, kept in its (locked) data dir: a worker restarted on it takes its own
    /// uploads back at once (no lease to wait out), and two live processes never share one.
    pub fn new(config: StoreConfig, worker: String) -> crate::Result<Shared> {
        let store = S3Store::from_env(&config.url, config.path_style)
            .map_err(|e| crate::Error::msg(crate::ErrorKind::Config, e.to_string()))?;
        if config.part_bytes < 5 << 20 {
            tracing::warn!("--store-part-bytes {} is below S3's 5 MiB: test servers only", config.part_bytes);
        }
        Ok(Shared { store, config, worker, moved: Moved::default() })
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_secs)
    }

    /// Whether an owner should rewrite its state now to keep its lease.
    pub fn due(&self, lease: &Lease) -> bool {
        !lease.held || lease.renewed.elapsed() > self.lease() / 3
    }

    /// Creates a new upload's state (owner `null`: the first request takes it), then its
    /// `_open/` marker. Fails with `Precondition` if the id exists.
    pub async fn create(&self, info: &Info) -> Result<(), StoreError> {
        let state = StoredState { info: info.clone(), owner: None, gen: 0, segs: Vec::new() };
        self.store.put(&state_name(&info.id), to_json(&state), &Condition::IfAbsent).await?;
        self.store.put(&open_name(&info.id), Bytes::new(), &Condition::None).await.map(drop)
    }

    /// The upload's state as stored, if any.
    pub async fn read(&self, id: &str) -> Result<Option<StoredState>, StoreError> {
        Ok(self.read_aged(id).await?.map(|(state, _)| state))
    }

    /// [`Shared::read`], with how old the state is by the store's clock (how long nobody
    /// wrote it).
    pub async fn read_aged(&self, id: &str) -> Result<Option<(StoredState, Duration)>, StoreError> {
        match self.store.get_aged(&state_name(id)).await {
            Ok((body, _, age)) => Ok(Some((parse(&body, id)?, age))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The uploads that take bytes (their `_open/` markers), any worker's.
    pub async fn open_ids(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.store.key(OPEN);
        let listed = self.store.list(OPEN).await?;
        Ok(listed.into_iter().filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_string)).collect())
    }

    /// Removes the `_open/` marker of an upload that ended, in the background.
    pub fn closed(&self, id: &str) {
        let (store, name) = (self.store.clone(), open_name(id));
        tokio::spawn(async move {
            if let Err(e) = store.delete(&name).await {
                tracing::warn!("{name}: not removed: {e}");
            }
        });
    }

    /// Bytes in the input log (the upload's durable offset).
    pub async fn input_len(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self.store.list(&format!("{id}/in/")).await?.iter().map(|o| o.size).sum())
    }

    /// Takes the upload `id` (module doc). `mine`: the generation and next `seq` of the
    /// recording this worker still has loaded from an earlier lease it handed back.
    pub async fn take(&self, id: &str, mine: Option<(u64, u64)>) -> Result<Taken, TakeError> {
        let name = state_name(id);
        let (body, etag, age) = self.store.get_aged(&name).await?;
        let mut state = parse(&body, id)?;
        if state.info.state != State::Recording {
            return Ok(Taken::Ended(state));
        }
        if state.owner.as_ref().is_some_and(|o| *o != self.worker) && age < self.lease() {
            return Err(TakeError::Busy(self.lease() - age));
        }
        let before = state.gen;
        state.owner = Some(self.worker.clone());
        state.gen = before.checked_add(1).ok_or_else(|| TakeError::Store(bad(id, "generation overflow")))?;
        let sent = Instant::now();
        let etag = self.store.put(&name, to_json(&state), &Condition::IfMatch(etag)).await?;
        let mut lease = Lease { state, etag, next_seq: 0, renewed: sent, held: true };
        let prefix = format!("{id}/in/");
        for _ in 0..16 {
            let log = self.store.list(&prefix).await?;
            let next = u64::try_from(log.len()).map_err(|_| bad(id, "input log too long"))?;
            // The log must be 0, 1, 2...: anything else is not ours to guess at.
            for (seq, o) in log.iter().enumerate() {
                if o.key != self.store.key(&input_name(id, seq as u64)) {
                    return Err(TakeError::Store(bad(id, &format!("input log has a gap at {}", o.key))));
                }
            }
            if let Some((gen, seq)) = mine {
                if gen == before && seq == next {
                    // Nobody took it since this worker handed it back: its recording is current.
                    lease.next_seq = next;
                    return Ok(Taken::Owned { lease, replay: Vec::new(), reused: true });
                }
            }
            match self.store.put(&input_name(id, next), Bytes::new(), &Condition::IfAbsent).await {
                Ok(_) => {
                    lease.next_seq = next + 1;
                    let replay = log.into_iter().filter(|o| o.size > 0).map(|o| (o.key, o.size)).collect();
                    return Ok(Taken::Owned { lease, replay, reused: false });
                }
                // A write of the old owner took it first: it counts; one further.
                Err(StoreError::Precondition(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TakeError::Busy(Duration::from_secs(1)))
    }

    /// Downloads one object of the input log (a full key, as [`Taken::Owned`] lists them).
    pub async fn download(&self, key: &str) -> Result<Bytes, StoreError> {
        let name = key.strip_prefix(&self.store.key("")).unwrap_or(key);
        let (body, _) = self.store.get(name).await?;
        self.moved.down.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }

    /// Rewrites the state as `lease` has it (If-Match): keeps the lease, or, with
    /// `Precondition`, finds it lost.
    pub async fn write_state(&self, id: &str, lease: &mut Lease) -> Result<(), StoreError> {
        let sent = Instant::now();
        let etag = lease.etag.clone();
        lease.etag = self.store.put(&state_name(id), to_json(&lease.state), &Condition::IfMatch(etag)).await?;
        lease.renewed = sent;
        Ok(())
    }

    /// Replaces the state whatever it is (a DELETE of an upload that nobody owns).
    pub async fn overwrite(&self, id: &str, state: &StoredState) -> Result<(), StoreError> {
        self.store.put(&state_name(id), to_json(state), &Condition::None).await.map(drop)
    }

    /// Hands the upload back (owner `null`).
    pub async fn release(&self, id: &str, lease: &mut Lease) -> Result<(), StoreError> {
        lease.state.owner = None;
        let r = self.write_state(id, lease).await;
        lease.held = false;
        r
    }

    /// Stores the next object of the input log: once this returns, those bytes survive.
    pub async fn append(&self, id: &str, lease: &mut Lease, body: Bytes) -> Result<(), StoreError> {
        let len = body.len() as u64;
        self.store.put(&input_name(id, lease.next_seq), body, &Condition::IfAbsent).await?;
        lease.next_seq += 1;
        self.moved.input_up.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Where the next output segment starts.
    pub fn stored_end(lease: &Lease) -> u64 {
        lease.state.segs.last().map_or(0, |s| s.off + s.len)
    }

    /// Stores bytes `data` of the recording from [`Shared::stored_end`] as a segment, and
    /// lists it in the state.
    pub async fn store_segment(&self, id: &str, lease: &mut Lease, data: Bytes) -> Result<(), StoreError> {
        let seg = Seg {
            off: Self::stored_end(lease),
            len: data.len() as u64,
            gen: lease.state.gen,
            crc: crc32c::crc32c(&data),
        };
        match self.store.put(&seg_name(id, &seg), data, &Condition::IfAbsent).await {
            // Its name says what it holds: one there already is this one.
            Ok(_) | Err(StoreError::Precondition(_)) => {}
            Err(e) => return Err(e),
        }
        self.moved.output_up.fetch_add(seg.len, Ordering::Relaxed);
        lease.state.segs.push(seg);
        if let Err(e) = self.write_state(id, lease).await {
            lease.state.segs.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Composes the finished recording `local` as the object `name` (module doc). Returns
    /// its length.
    pub async fn compose(&self, id: &str, lease: &Lease, local: &Path, name: &str) -> Result<u64, StoreError> {
        let len = std::fs::metadata(local).map_err(|e| io_error(local, e))?.len();
        let part = self.config.part_bytes;
        if len < part {
            let body = read_range(local, 0..len).await?;
            self.moved.output_up.fetch_add(len, Ordering::Relaxed);
            return match self.store.put(name, body, &Condition::IfAbsent).await {
                Ok(_) => Ok(len),
                Err(e) => self.exists(e, name, len).await,
            };
        }
        // Parts: the stored segments the file still has, then the rest in parts of
        // part_bytes (all ≥ part_bytes but the last).
        let mut plan: Vec<(Range<u64>, Option<Seg>)> = Vec::new();
        for seg in &lease.state.segs {
            if seg.off + seg.len > len {
                break;
            }
            plan.push((seg.off..seg.off + seg.len, Some(*seg)));
        }
        let mut done = plan.last().map_or(0, |(r, _)| r.end);
        while done < len {
            let end = if len - done < 2 * part { len } else { done + part };
            plan.push((done..end, None));
            done = end;
        }
        if plan.len() > MAX_PARTS {
            return Err(bad(
                id,
                &format!("{} parts: more than S3's {MAX_PARTS} (raise --store-part-bytes)", plan.len()),
            ));
        }
        let upload = self.store.create_multipart(name).await?;
        let result = async {
            let mut etags = Vec::with_capacity(plan.len());
            for (i, (range, seg)) in plan.into_iter().enumerate() {
                let number = u16::try_from(i + 1).map_err(|_| bad(id, "too many parts"))?;
                let body = read_range(local, range.clone()).await?;
                let size = range.end - range.start;
                let tag = match seg {
                    Some(s) if crc32c::crc32c(&body) == s.crc => {
                        let tag =
                            self.store.upload_part_copy(name, &upload, number, &seg_name(id, &s), 0..s.len).await?;
                        self.moved.copied.fetch_add(size, Ordering::Relaxed);
                        tag
                    }
                    _ => {
                        let tag = self.store.upload_part(name, &upload, number, body).await?;
                        self.moved.output_up.fetch_add(size, Ordering::Relaxed);
                        tag
                    }
                };
                etags.push(tag);
            }
            self.store.complete_multipart(name, &upload, &etags, &Condition::IfAbsent).await
        }
        .await;
        match result {
            Ok(_) => Ok(len),
            Err(e) => {
                let _ = self.store.abort_multipart(name, &upload).await;
                self.exists(e, name, len).await
            }
        }
    }

    /// A final object that a conditional write found there already: an earlier finish of
    /// the same input (an owner that completed it and died before saying so) if it has
    /// the recording's length; anything else stays the error.
    async fn exists(&self, e: StoreError, name: &str, len: u64) -> Result<u64, StoreError> {
        if !matches!(e, StoreError::Precondition(_)) {
            return Err(e);
        }
        let key = self.store.key(name);
        let there = self.store.list(name).await?;
        match there.iter().find(|o| o.key == key) {
            Some(o) if o.size == len => Ok(len),
            _ => Err(e),
        }
    }

    /// Removes what only a recording in progress needs (the input log, the segments, the
    /// `_open/` marker), in the background: the answer does not wait for it. What a crash
    /// leaves behind is only garbage (the state says the recording ended).
    pub fn clean(&self, id: &str) {
        let (store, id) = (self.store.clone(), id.to_string());
        tokio::spawn(async move {
            let mut keys = vec![store.key(&open_name(&id))];
            for dir in ["in/", "out/"] {
                match store.list(&format!("{id}/{dir}")).await {
                    Ok(objects) => keys.extend(objects.into_iter().map(|o| o.key)),
                    Err(e) => tracing::warn!("{id}: {dir} not listed for removal: {e}"),
                }
            }
            if let Err(e) = store.delete_keys(&keys).await {
                tracing::warn!("{id}: {} objects of a finished upload not removed: {e}", keys.len());
            }
        });
    }
}

fn to_json(state: &StoredState) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(state).expect("serializable"))
}

/// A state as stored, checked: its segments contiguous from 0, their ends in range.
fn parse(body: &[u8], id: &str) -> Result<StoredState, StoreError> {
    let state: StoredState = serde_json::from_slice(body).map_err(|e| bad(id, &format!("state.json: {e}")))?;
    let mut end = 0u64;
    for seg in &state.segs {
        if seg.off != end || seg.len == 0 {
            return Err(bad(id, &format!("state.json: segment at {} does not follow {end}", seg.off)));
        }
        end = seg.off.checked_add(seg.len).ok_or_else(|| bad(id, "state.json: segment past 2^64"))?;
    }
    Ok(state)
}

fn bad(id: &str, what: &str) -> StoreError {
    StoreError::Config(format!("upload {id}: {what}"))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Config(format!("{}: {e}", path.display()))
}

/// Bytes `range` of the local file `path`.
pub async fn read_range(path: &Path, range: Range<u64>) -> Result<Bytes, StoreError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&p)?;
        let len = usize::try_from(range.end - range.start).map_err(std::io::Error::other)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, range.start)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| io_error(path, std::io::Error::other(e)))?
    .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    //! The fence of the input log against a real S3-compatible server (moto_server beside
    //! `LIVEMUX_PYTHON`, from tests/py/requirements.txt; a missing one fails the test under
    //! `LIVEMUX_REQUIRE_TOOLS=1` and skips it otherwise). The servers' own tests are in
    //! tests/serve_store.rs.
    use super::*;
    use crate::store::S3Config;

    fn moto() -> Option<(std::process::Child, String)> {
        let python = std::env::var("LIVEMUX_PYTHON").unwrap_or_else(|_| "python3".into());
        let bin = std::path::PathBuf::from(python).with_file_name("moto_server");
        if !bin.is_file() {
            let required = std::env::var("LIVEMUX_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
            assert!(!required, "LIVEMUX_REQUIRE_TOOLS=1 but there is no moto_server beside LIVEMUX_PYTHON");
            eprintln!("SKIPPED: no moto_server beside LIVEMUX_PYTHON");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some((child, format!("http://127.0.0.1:{port}")))
    }

    fn worker(endpoint: &str, name: &str) -> Shared {
        let s3 = S3Config {
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            access_key: "testing".into(),
            secret_key: "testing".into(),
            ..S3Config::default()
        };
        let config = StoreConfig { url: "s3://fence/p".into(), lease_secs: 2, release_secs: 1, ..Default::default() };
        let store = S3Store::new(&config.url, &s3).unwrap();
        Shared { store, config, worker: name.into(), moved: Moved::default() }
    }

    fn owned(taken: Result<Taken, TakeError>) -> (Lease, Vec<(String, u64)>) {
        match taken {
            Ok(Taken::Owned { lease, replay, .. }) => (lease, replay),
            Ok(Taken::Ended(_)) => panic!("ended"),
            Err(e) => panic!("not taken: {e:?}"),
        }
    }

    #[test]
    fn a_stale_owner_cannot_write_past_the_takeover_marker() {
        let Some((mut child, endpoint)) = moto() else { return };
        let (a, b) = (worker(&endpoint, "a"), worker(&endpoint, "b"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            a.store.create_bucket().await.unwrap();
            let info: Info = serde_json::from_value(serde_json::json!({
                "v": 1, "id": "u", "rec": null, "length": null, "metadata": {}, "format": null,
                "state": "recording", "created": 0, "output": null, "report": null, "error": null
            }))
            .unwrap();
            a.create(&info).await.unwrap();
            assert!(matches!(a.create(&info).await, Err(StoreError::Precondition(_))), "created twice");
            let (mut la, replay) = owned(a.take("u", None).await);
            assert!(replay.is_empty());
            a.append("u", &mut la, Bytes::from_static(b"one")).await.unwrap();
            // A live owner is not taken over.
            assert!(matches!(b.take("u", None).await, Err(TakeError::Busy(_))));
            // Past A's lease (2 s, whole seconds of the store's clock), B takes it: what A
            // stored is B's to replay.
            tokio::time::sleep(Duration::from_millis(3200)).await;
            let (mut lb, replay) = owned(b.take("u", None).await);
            assert_eq!(replay.iter().map(|r| r.1).collect::<Vec<_>>(), [3]);
            assert_eq!(lb.state.gen, la.state.gen + 1);
            // A comes back believing its lease fresh: its next input write hits B's marker,
            // and its state write the new ETag.
            let e = a.append("u", &mut la, Bytes::from_static(b"two")).await.unwrap_err();
            assert!(matches!(e, StoreError::Precondition(_)), "{e:?}");
            let e = a.write_state("u", &mut la).await.unwrap_err();
            assert!(matches!(e, StoreError::Precondition(_)), "{e:?}");
            // B goes on; the log holds "one" then B's bytes, nothing of A's stale write.
            b.append("u", &mut lb, Bytes::from_static(b"three")).await.unwrap();
            b.write_state("u", &mut lb).await.unwrap();
            assert_eq!(b.input_len("u").await.unwrap(), 8);
        });
        let _ = child.kill();
        let _ = child.wait();
    }
}
