//! Group commit: uploads that wait for their bytes to be durable at the same moment share
//! one flush round, so throughput is bounded by the disk, not by one fsync per request.
//!
//! ```text
//!  PATCH a ─ sync([a]) ─┐                  round 1: fdatasync a, b (concurrently) ── answers a, b
//!  PATCH b ─ sync([b]) ─┤─▶ channel ─▶ flusher task
//!  PATCH c ─ sync([c]) ─┘   (queues while      round 2: fdatasync c, a (what queued during round 1)
//!  PATCH a ─ sync([a]) ─┘    a round runs)
//! ```
//!
//! One flusher task takes a request, then every request already queued, and makes their
//! files durable in one round: each distinct file (deduplicated by device and inode) is
//! `fdatasync`ed once, the files concurrently on the blocking pool, and every waiter is
//! answered when its files are done. Requests that arrive while a round runs wait for the
//! next one: that is the group commit. Under load a round holds many uploads; when idle a
//! request is flushed at once (no timer, no added latency).
//!
//! **Why it pays.** On ext4 and XFS an `fdatasync` of an appended file must commit the
//! file system journal (the file's size changed). Concurrent `fdatasync`s of many files
//! join the same journal transaction and are committed by one journal write and one
//! device cache flush, so a round of N files costs about what one fsync costs. Rounds, not
//! requests, hit the disk: one flush per moment instead of one per PATCH.
//!
//! **Why not `syncfs`.** It would flush every dirty page of the whole file system (the
//! recordings' outputs, logs, other programs' files), so its latency is unbounded and
//! unrelated to what the waiters wrote; and its error is the file system's, not a file's
//! (before Linux 5.8 it reported no writeback error at all), so a failed write could not
//! be told to the upload it belongs to. `fdatasync` per file flushes exactly the journals
//! waited on and reports each one's error to its own waiters.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;

/// Most `fdatasync`s a round runs at once (each holds a blocking-pool thread).
const PARALLEL: usize = 64;

/// One waiter: the files it needs durable, and where its answer goes.
type Request = (Vec<Arc<File>>, oneshot::Sender<io::Result<()>>);

/// Hands files to the flusher task; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::UnboundedSender<Request>,
    rounds: Arc<AtomicU64>,
}

impl Committer {
    /// Starts the flusher task on the current tokio runtime.
    pub fn start(metrics: Arc<Metrics>) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        let rounds = Arc::new(AtomicU64::new(0));
        tokio::spawn(flusher(rx, metrics, rounds.clone()));
        Committer { tx, rounds }
    }

    /// Flush rounds run so far (each answered every request queued when it started).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Returns once everything written to `files` before the call is on stable storage
    /// (fdatasync), sharing the flush with every other caller waiting at the same time.
    pub async fn sync(&self, files: Vec<Arc<File>>) -> io::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.tx.send((files, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the flusher task stopped (the server is shutting down)")
}

/// Identifies a file across descriptors: device and inode (the descriptor if `fstat`
/// fails, which then fails the `fdatasync` too).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Inode(u64, u64),
    Fd(i32),
}

fn key(file: &File) -> Key {
    match file.metadata() {
        Ok(m) => Key::Inode(m.dev(), m.ino()),
        Err(_) => Key::Fd(file.as_raw_fd()),
    }
}

/// The flusher task: one round per batch of queued requests, until every [`Committer`]
/// is dropped.
async fn flusher(mut rx: mpsc::UnboundedReceiver<Request>, metrics: Arc<Metrics>, rounds: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let started = Instant::now();
        // Each waiter's files as keys; each distinct file once.
        let mut unique: HashMap<Key, Arc<File>> = HashMap::new();
        let waiters: Vec<(Vec<Key>, oneshot::Sender<io::Result<()>>)> = batch
            .into_iter()
            .map(|(files, reply)| {
                let keys = files
                    .into_iter()
                    .map(|f| {
                        let k = key(&f);
                        unique.entry(k).or_insert(f);
                        k
                    })
                    .collect();
                (keys, reply)
            })
            .collect();
        let count = unique.len();
        let results: HashMap<Key, io::Result<()>> = futures::stream::iter(unique)
            .map(|(k, file)| async move {
                let result = match tokio::task::spawn_blocking(move || file.sync_data()).await {
                    Ok(r) => r,
                    Err(e) => Err(io::Error::other(format!("fdatasync task failed: {e}"))),
                };
                (k, result)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        metrics.flush(started.elapsed(), count);
        rounds.fetch_add(1, Ordering::Relaxed);
        for (keys, reply) in waiters {
            let failed = keys.iter().find_map(|k| results.get(k).and_then(|r| r.as_ref().err()));
            if let Some(e) = failed {
                tracing::error!(error = %e, "fdatasync of an upload's journal failed");
            }
            // A waiter that went away (its request was cancelled) needs no answer.
            let _ = reply.send(match failed {
                None => Ok(()),
                Some(e) => Err(copy_error(e)),
            });
        }
    }
}

/// An `io::Error` for each waiter of a failed file (`io::Error` is not `Clone`).
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_share_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Committer::start(Arc::new(Metrics::new()));
        let files: Vec<Arc<File>> =
            (0..16).map(|i| Arc::new(File::create(dir.path().join(format!("f{i}"))).unwrap())).collect();
        let calls = 16 * 8;
        let tasks: Vec<_> = (0..calls)
            .map(|i| {
                let committer = committer.clone();
                let file = files[i % files.len()].clone();
                tokio::spawn(async move {
                    (&*file).write_all(&[i as u8; 1000]).unwrap();
                    // The same file twice in one request, and in many requests: synced once a round.
                    committer.sync(vec![file.clone(), file]).await
                })
            })
            .collect();
        for r in futures::future::join_all(tasks).await {
            r.unwrap().unwrap();
        }
        let rounds = committer.rounds();
        eprintln!("{calls} concurrent syncs in {rounds} rounds");
        assert!(rounds >= 1 && rounds < calls as u64 / 2, "{calls} syncs took {rounds} rounds");
        // Every byte written before the syncs is in the files.
        for f in &files {
            assert_eq!(f.metadata().unwrap().len(), 8 * 1000);
        }
        // A lone sync is answered at once, in a round of its own.
        let t = Instant::now();
        committer.sync(vec![files[0].clone()]).await.unwrap();
        assert_eq!(committer.rounds(), rounds + 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_reaches_its_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Committer::start(Arc::new(Metrics::new()));
        let good = Arc::new(File::create(dir.path().join("good")).unwrap());
        // fdatasync of a pipe fails with EINVAL.
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let bad = Arc::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) });
        let _write_end = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
        let (a, b, c) = tokio::join!(
            committer.sync(vec![good.clone()]),
            committer.sync(vec![good.clone(), bad.clone()]),
            committer.sync(vec![bad]),
        );
        a.unwrap();
        assert_eq!(b.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        assert_eq!(c.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        committer.sync(vec![good]).await.unwrap();
        committer.sync(Vec::new()).await.unwrap();
    }
}
