//! `livemux serve`: a resumable ingest server (tus 1.0) that turns each upload into a
//! crash-safe [`Recording`](crate::Recording) as its bytes arrive.
//!
//! ```text
//!  client ── PATCH bytes ──▶ tus.rs ──▶ upload.rs ──┬─▶ journal.rs   DATA/<id>/input.journal (CRC-framed records)
//!                                                   └─▶ Recording    DATA/<id>/recording.<ext>
//!                          ◀── 204 Upload-Offset ◀── commit.rs (group commit: one flush round
//!                                                     for every upload waiting on it)
//! ```
//!
//! A PATCH is answered only once its bytes are on stable storage in the upload's journal:
//! [`commit`] batches the fsyncs of every upload waiting at the same moment. The output
//! is not fsynced while it records (the journal rebuilds it), only when it is finalized. After a crash the journal is
//! replayed, on the upload's first touch, into a fresh recording: the output is then the
//! one an uninterrupted run would have written, byte for byte.
//!
//! The parts: [`config`] (flags and TOML), `tus` (the protocol: routes, headers, status
//! codes), `upload` (one upload's state and its recording), [`journal`], [`commit`],
//! [`auth`] (HS256 JWT bearer tokens), [`hooks`] (pre-create and post-finish HTTP POSTs),
//! [`events`] (one JSON line per state change), [`metrics`] (Prometheus text).

pub mod auth;
pub mod commit;
pub mod config;
pub mod events;
pub mod hooks;
pub mod journal;
pub mod metrics;
mod stored;
mod tus;
mod upload;

pub use config::{LiveHls, ServeConfig, StoreConfig};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::error::{Error, ErrorKind, Result};

/// How long in-flight requests may take to finish after a stop signal, before the
/// PATCHes still reading are told to stop.
const DRAIN: Duration = Duration::from_secs(20);

/// How long the PATCHes told to stop may take to commit and answer.
const CUT: Duration = Duration::from_secs(5);

/// A bound server, not yet serving: [`Server::local_addr`] tells the port of `:0`.
pub struct Server {
    listener: TcpListener,
    app: tus::App,
}

impl Server {
    /// Checks the configuration, opens the data dir (reading each upload's state, replaying
    /// nothing) and binds the address.
    pub async fn bind(config: ServeConfig) -> Result<Server> {
        config.check()?;
        let secret = match &config.jwt_secret_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| Error::from(e).on_path(path))?;
                let secret = trim_newline(&bytes).to_vec();
                if secret.len() < 16 {
                    return Err(Error::msg(
                        ErrorKind::Config,
                        format!("{}: a secret of {} bytes is too short (16 at least)", path.display(), secret.len()),
                    ));
                }
                Some(secret)
            }
            None => None,
        };
        raise_open_files_limit();
        let config = Arc::new(config);
        let metrics = Arc::new(metrics::Metrics::new());
        let registry = Arc::new(upload::Registry::open(config.clone(), metrics, hooks::Hooks::new(&config.hooks))?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::msg(ErrorKind::Config, format!("cannot listen on {}: {e}", config.listen)))?;
        let disk = Arc::new(DiskWatch::new(config.data_dir.clone()));
        Ok(Server { listener, app: tus::App { registry, auth: auth::Auth::new(secret), disk } })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves: then stops accepting, lets the requests in
    /// flight finish (for 20 s; then a PATCH still reading stops, makes what it took
    /// durable and answers), and returns. Recordings not finished stay resumable.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server { listener, app } = self;
        let registry = app.registry.clone();
        let config = registry.config.clone();
        let sweeper = {
            let registry = registry.clone();
            let mut every = Duration::from_secs(config.limits.idle_finalize_secs.div_ceil(4).clamp(1, 5));
            if config.store.is_some() {
                every = Duration::from_secs(1); // hands idle uploads back within a second
            }
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    registry.release_idle(None).await;
                    registry.sweep_idle().await;
                }
            })
        };
        // With a store, the uploads of workers that died while their clients had gone too.
        let store_sweeper = config.store.as_ref().map(|_| {
            let registry = registry.clone();
            let every = Duration::from_secs(config.limits.idle_finalize_secs.div_ceil(4).clamp(1, 60));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    registry.sweep_store().await;
                }
            })
        });
        let mut router = tus::router(app);
        if !config.cors_origins.is_empty() {
            router = router.layer(cors(&config.cors_origins));
        }
        let service = hyper_util::service::TowerToHyperService::new(router);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(config.limits.header_timeout_secs))
            .max_buf_size(config.limits.max_header_bytes.max(8192));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let connections close.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        sweeper.abort();
        if let Some(s) = store_sweeper {
            s.abort();
        }
        tracing::info!("stopping: finishing the requests in flight");
        let mut drained = std::pin::pin!(graceful.shutdown());
        if tokio::time::timeout(DRAIN, &mut drained).await.is_err() {
            // Long PATCHes (a live recording streamed in one request): stop reading them;
            // each makes what it took durable and answers.
            tracing::warn!("requests still in flight after {} s: ending them", DRAIN.as_secs());
            registry.shutdown.cancel();
            if tokio::time::timeout(CUT, drained).await.is_err() {
                tracing::warn!("requests still open: stopped anyway (their uploads resume)");
            }
        }
        registry.shutdown.cancel();
        // With a store: hand every upload back, so that another worker need not wait out
        // this one's lease.
        registry.release_idle(0).await;
        Ok(())
    }
}

/// Whether `name` is an output format a recording can be written in (one file: not `hls`).
fn is_file_format(name: &str) -> bool {
    name.parse::<crate::MuxFormat>().is_ok_and(|f| f != crate::MuxFormat::Hls)
}

/// Binds and runs the server until `shutdown` resolves ([`Server::bind`], [`Server::run`]).
pub async fn serve(config: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    Server::bind(config).await?.run(shutdown).await
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(tus::CORS_METHODS)
        .allow_headers(tus::CORS_HEADERS.map(HeaderName::from_static))
        .expose_headers(tus::CORS_EXPOSE.map(HeaderName::from_static))
        .max_age(Duration::from_secs(86400))
}

/// A secret file's bytes without the newline an editor or `echo` leaves.
pub fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Many idle clients each hold a socket: take the hard limit of open files.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Free space of the data dir's disk, read at most every half second.
pub struct DiskWatch {
    dir: std::path::PathBuf,
    started: Instant,
    /// (ms since start of the reading + 1, 0 = never) and the bytes free.
    read_at: AtomicU64,
    free: AtomicU64,
}

impl DiskWatch {
    fn new(dir: std::path::PathBuf) -> DiskWatch {
        DiskWatch { dir, started: Instant::now(), read_at: AtomicU64::new(0), free: AtomicU64::new(u64::MAX) }
    }

    /// Bytes free for unprivileged writers (`None`: cannot tell).
    pub fn free(&self) -> Option<u64> {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let at = self.read_at.load(Ordering::Acquire);
        if at == 0 || now.saturating_sub(at) > 500 {
            let free = statvfs_free(&self.dir)?;
            self.free.store(free, Ordering::Release);
            self.read_at.store(now, Ordering::Release);
        }
        Some(self.free.load(Ordering::Acquire))
    }
}

fn statvfs_free(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a pointer to a zeroed local struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return None;
        }
        Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
    }
}
