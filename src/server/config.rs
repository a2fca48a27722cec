//! How `livemux serve` is set up: a TOML file (`--config`), then flags over it.
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! data_dir = "/var/lib/livemux"
//! jwt_secret_file = "/etc/livemux/secret"
//! cors_origins = ["https://app.example.com"]
//! fragment_ms = 1000
//! live_hls = "on-demand"           # GET /files/{id}/live.m3u8: "on-demand" (default), "always", "off"
//!
//! [limits]
//! max_upload_bytes = 17179869184   # 413 past this
//! max_patch_bytes = 268435456      # one PATCH body; 413 past this
//! max_uploads = 1000               # recordings open at once; 503 + Retry-After past this
//! idle_finalize_secs = 300         # an upload idle this long is finalized with what arrived
//! read_timeout_secs = 30           # a request body that sends nothing this long is cut
//! header_timeout_secs = 10         # a connection that sends no complete head this long is closed
//! min_free_bytes = 1073741824      # below this on the data dir's disk: 507 for new bytes
//!
//! [store]                          # recordings durable in S3-compatible object storage (server/stored.rs)
//! url = "s3://bucket/prefix"       # endpoint, region, keys: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID...
//! path_style = false               # ENDPOINT/BUCKET/KEY URLs (always so when AWS_ENDPOINT_URL is set)
//! lease_secs = 10                  # an owner silent this long (by the store's clock) may be taken over
//! release_secs = 3                 # an owner with no request this long hands the upload back
//! part_bytes = 8388608             # output segments and composed parts (S3: 5 MiB at least)
//!
//! [hooks]
//! pre_create = "http://127.0.0.1:9000/pre-create"
//! post = "http://127.0.0.1:9000/events"
//! timeout_secs = 5
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// Everything `livemux serve` is told.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where uploads, journals and recordings live (`DATA/<id>/...`).
    pub data_dir: PathBuf,
    /// File holding the HS256 secret tokens are signed with; without it, anonymous
    /// uploads are accepted, and only on a loopback address.
    pub jwt_secret_file: Option<PathBuf>,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Serve the demo page at `/` (a recorder that uploads here).
    pub demo: bool,
    /// Output format for every upload ("mp4", "fmp4", "webm", "mkv"), instead of the one
    /// the input's container picks (MP4 family: "mp4", WebM: "webm", Matroska: "mkv").
    pub format: Option<String>,
    /// Fragment length of the recordings, ms.
    pub fragment_ms: Option<u32>,
    /// When live HLS is kept beside a recording (`DATA/<id>/live/`: `GET /files/{id}/live.m3u8`
    /// and the segments it names).
    pub live_hls: LiveHls,
    /// Keep an upload's journal after its recording is finalized (for audits; costs the
    /// input's size again).
    pub keep_journal: bool,
    /// Limits.
    pub limits: Limits,
    /// Hooks.
    pub hooks: HooksConfig,
    /// The object store that holds every upload's state, input and output (`None`: the
    /// data dir alone).
    pub store: Option<StoreConfig>,
}

/// Where uploads live when they must survive the worker (`--store s3://BUCKET/PREFIX`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) even without `AWS_ENDPOINT_URL`.
    pub path_style: bool,
    /// How long an owner may be silent (by the store's clock) before another worker may
    /// take its uploads over.
    pub lease_secs: u64,
    /// An owner that had no request for an upload this long hands it back (so that the
    /// worker the load balancer now sends it to takes it at once).
    pub release_secs: u64,
    /// Output bytes per stored segment and per composed part (S3 refuses parts below
    /// 5 MiB but the last; test servers may allow less).
    pub part_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: String::new(), path_style: false, lease_secs: 10, release_secs: 3, part_bytes: 8 << 20 }
    }
}

/// When `livemux serve` keeps live HLS beside a recording.
///
/// Live HLS writes the media a second time: on `bench/serve.sh`, keeping it for every one of
/// 500 paced uploads took the p99 PATCH latency from 36 ms to 1.7 s. So by default it starts
/// only for a recording someone watches.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LiveHls {
    /// Never: `live.m3u8` is 404.
    Off,
    /// From the first `GET /files/{id}/live.m3u8` of a recording in progress: the journal so
    /// far is replayed into it once (the upload's next PATCH waits for that), then it
    /// follows the upload. A recording nobody watched while it was made has none.
    #[default]
    OnDemand,
    /// For every recording, from its first byte.
    Always,
}

impl std::str::FromStr for LiveHls {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(LiveHls::Off),
            "on-demand" => Ok(LiveHls::OnDemand),
            "always" => Ok(LiveHls::Always),
            _ => Err(format!("live HLS is off, on-demand or always, not {s:?}")),
        }
    }
}

/// The server's limits; each has a status code when reached.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest upload (declared or reached): 413.
    pub max_upload_bytes: u64,
    /// Largest PATCH (or creation-with-upload) body: 413.
    pub max_patch_bytes: u64,
    /// Uploads open at once: 503 with `Retry-After` past it.
    pub max_uploads: usize,
    /// An upload that receives nothing this long is finalized with what arrived
    /// (state `abandoned`).
    pub idle_finalize_secs: u64,
    /// A request body that sends nothing for this long is cut (the bytes before are kept).
    pub read_timeout_secs: u64,
    /// A connection must send a complete request head within this.
    pub header_timeout_secs: u64,
    /// Largest request head, bytes (431 past it).
    pub max_header_bytes: usize,
    /// Free space the data dir's disk must keep: new bytes get 507 below it; recordings
    /// open still finish.
    pub min_free_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 16 << 30,
            max_patch_bytes: 256 << 20,
            max_uploads: 1000,
            idle_finalize_secs: 300,
            read_timeout_secs: 30,
            header_timeout_secs: 10,
            max_header_bytes: 16 << 10,
            min_free_bytes: 1 << 30,
        }
    }
}

/// Where the hooks post.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Asked before each upload is created: a 2xx allows it (its JSON body may name the
    /// recording: `{"rec": "..."}`), anything else refuses it.
    pub pre_create: Option<String>,
    /// Told after each upload ends (finished, terminated, abandoned, expired, failed).
    pub post: Option<String>,
    /// How long a hook may take.
    pub timeout_secs: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig { pre_create: None, post: None, timeout_secs: 5 }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("livemux-data"),
            jwt_secret_file: None,
            cors_origins: Vec::new(),
            demo: false,
            format: None,
            fragment_ms: None,
            live_hls: LiveHls::default(),
            keep_journal: false,
            limits: Limits::default(),
            hooks: HooksConfig::default(),
            store: None,
        }
    }
}

impl ServeConfig {
    /// Reads a TOML configuration file (missing keys take their defaults).
    pub fn from_file(path: &Path) -> Result<ServeConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::from(e).on_path(path))?;
        toml::from_str(&text).map_err(|e| Error::msg(ErrorKind::Config, format!("{}: {}", path.display(), e.message())))
    }

    /// Checks what can be checked before binding: anonymous access only on loopback,
    /// limits above zero, a known format.
    pub fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.jwt_secret_file.is_none() && !self.listen.ip().is_loopback() {
            problems.push(format!(
                "without --jwt-secret-file uploads are anonymous, which is allowed only on a loopback address, \
                 not on {}",
                self.listen
            ));
        }
        if let Some(f) = &self.format {
            if !super::is_file_format(f) {
                problems.push(format!("format {f:?} is none of mp4, fmp4, webm, mkv"));
            }
        }
        let l = &self.limits;
        for (name, v) in [
            ("max_upload_bytes", l.max_upload_bytes),
            ("max_patch_bytes", l.max_patch_bytes),
            ("max_uploads", l.max_uploads as u64),
            ("idle_finalize_secs", l.idle_finalize_secs),
            ("read_timeout_secs", l.read_timeout_secs),
            ("header_timeout_secs", l.header_timeout_secs),
        ] {
            if v == 0 {
                problems.push(format!("limits.{name} must be above 0"));
            }
        }
        if let Some(store) = &self.store {
            if !store.url.starts_with("s3://") || store.url.len() <= "s3://".len() {
                problems.push(format!("store {:?} is not s3://BUCKET/PREFIX", store.url));
            }
            if store.lease_secs < 2 {
                problems.push("store.lease_secs must be 2 or more".into());
            }
            if store.release_secs == 0 || store.release_secs >= store.lease_secs {
                problems.push("store.release_secs must be above 0 and below store.lease_secs".into());
            }
            if store.part_bytes < 4096 {
                problems.push("store.part_bytes must be 4096 or more (S3 wants 5 MiB)".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(ErrorKind::Config, problems.join("; ")))
        }
    }
}
