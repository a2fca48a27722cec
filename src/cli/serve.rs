//! `livemux serve` and `livemux token`: flags over the TOML configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::server::{auth, ServeConfig};

use super::{EXIT_RUNTIME, EXIT_USAGE};

/// `livemux serve` flags; each overrides the same key of `--config`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Where uploads and recordings are kept [default: ./livemux-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (flags override it; see README "livemux serve").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// File with the shared HS256 secret tokens are signed with. Without it uploads are
    /// anonymous, which is allowed only on a loopback address.
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Serve a demo recorder page at / that uploads here.
    #[arg(long)]
    demo: bool,
    /// Allow this origin by CORS (repeatable; * for any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Output format of every recording (mp4, fmp4, webm, mkv) instead of the input's family.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Fragment length of the recordings, ms.
    #[arg(long, value_name = "MS")]
    fragment_ms: Option<u32>,
    /// When to keep live HLS beside a recording (GET /files/{id}/live.m3u8): on-demand
    /// (default: from a recording's first viewer on), always (every recording; writes the
    /// media a second time), off. `--live-hls` alone: always.
    #[arg(long, value_name = "WHEN", num_args = 0..=1, default_missing_value = "always",
          value_parser = ["off", "on-demand", "always"])]
    live_hls: Option<String>,
    /// Largest upload, bytes (413 past it).
    #[arg(long, value_name = "BYTES")]
    max_upload_bytes: Option<u64>,
    /// Recordings open at once (503 + Retry-After past it).
    #[arg(long, value_name = "N")]
    max_uploads: Option<usize>,
    /// Finalize an upload that received nothing for this long, seconds.
    #[arg(long, value_name = "SECS")]
    idle_finalize_secs: Option<u64>,
    /// Free space to keep on the data dir's disk (507 for new bytes below it), bytes.
    #[arg(long, value_name = "BYTES")]
    min_free_bytes: Option<u64>,
    /// URL POSTed before each upload is created (may refuse it or name the recording).
    #[arg(long, value_name = "URL")]
    hook_pre_create: Option<String>,
    /// URL POSTed after each upload ends (finished, terminated, abandoned...).
    #[arg(long, value_name = "URL")]
    hook_post: Option<String>,
    /// Keep every upload in this S3-compatible object store (s3://BUCKET/PREFIX): acknowledged
    /// bytes survive the worker, any worker resumes any upload, the finished recording is
    /// the object PREFIX/ID/recording.EXT (ID: the recording's name, else the upload id).
    /// Endpoint, region and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Path-style store URLs (ENDPOINT/BUCKET/KEY) even without AWS_ENDPOINT_URL (with it,
    /// always).
    #[arg(long)]
    s3_path_style: bool,
    /// Seconds a store owner may be silent before another worker takes its uploads [default: 10].
    #[arg(long, value_name = "SECS")]
    store_lease_secs: Option<u64>,
    /// Seconds without a request after which a worker hands an upload back [default: 3].
    #[arg(long, value_name = "SECS")]
    store_release_secs: Option<u64>,
    /// Output bytes per stored segment and composed part [default: 8388608; S3's minimum
    /// is 5 MiB].
    #[arg(long, value_name = "BYTES")]
    store_part_bytes: Option<u64>,
}

impl ServeArgs {
    fn config(self) -> crate::Result<ServeConfig> {
        let mut c = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $($field:ident).+;)*) => {$(
                if let Some(v) = self.$flag { c.$($field).+ = v; }
            )*};
        }
        set! {
            listen => listen;
            data_dir => data_dir;
            max_upload_bytes => limits.max_upload_bytes;
            max_uploads => limits.max_uploads;
            idle_finalize_secs => limits.idle_finalize_secs;
            min_free_bytes => limits.min_free_bytes;
        }
        if self.jwt_secret_file.is_some() {
            c.jwt_secret_file = self.jwt_secret_file;
        }
        if self.format.is_some() {
            c.format = self.format;
        }
        if self.fragment_ms.is_some() {
            c.fragment_ms = self.fragment_ms;
        }
        if self.hook_pre_create.is_some() {
            c.hooks.pre_create = self.hook_pre_create;
        }
        if self.hook_post.is_some() {
            c.hooks.post = self.hook_post;
        }
        if let Some(url) = self.store {
            c.store.get_or_insert_with(Default::default).url = url;
        }
        if let Some(store) = &mut c.store {
            store.path_style |= self.s3_path_style;
            if let Some(v) = self.store_lease_secs {
                store.lease_secs = v;
            }
            if let Some(v) = self.store_release_secs {
                store.release_secs = v;
            }
            if let Some(v) = self.store_part_bytes {
                store.part_bytes = v;
            }
        } else if self.s3_path_style
            || self.store_lease_secs.is_some()
            || self.store_release_secs.is_some()
            || self.store_part_bytes.is_some()
        {
            return Err(crate::Error::msg(
                crate::ErrorKind::Config,
                "the --store-* and --s3-path-style flags need --store",
            ));
        }
        c.cors_origins.extend(self.cors_origins);
        c.demo |= self.demo;
        if let Some(when) = self.live_hls {
            c.live_hls = when.parse().map_err(|e: String| crate::Error::msg(crate::ErrorKind::Config, e))?;
        }
        c.check()?;
        Ok(c)
    }
}

/// `livemux serve`.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livemux serve: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if config.jwt_secret_file.is_none() {
        eprintln!(
            "livemux serve: no --jwt-secret-file: anonymous uploads are accepted (on {} only, a loopback address)",
            config.listen
        );
    }
    let server = match crate::server::Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("livemux serve: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    eprintln!("livemux serve: listening on http://{}", server.local_addr());
    match server.run(super::stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livemux serve: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `livemux token` flags.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// File with the shared HS256 secret (the one given to `serve --jwt-secret-file`).
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: PathBuf,
    /// The recording the token is for (one upload per name).
    #[arg(long, value_name = "NAME")]
    rec: String,
    /// What it allows: upload (create, write, read, delete) or view (read).
    #[arg(long, value_parser = ["upload", "view"], default_value = "upload")]
    scope: String,
    /// How long it is valid, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    ttl: u64,
}

/// `livemux token`: prints a token.
pub fn token(args: TokenArgs) -> ExitCode {
    let minted = std::fs::read(&args.jwt_secret_file)
        .map_err(|e| crate::Error::from(e).on_path(&args.jwt_secret_file))
        .and_then(|secret| auth::mint(trim_secret(&secret), &args.rec, &args.scope, args.ttl));
    match minted {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livemux token: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// A secret file's bytes without a trailing newline (as `echo ... > secret` leaves one).
pub fn trim_secret(secret: &[u8]) -> &[u8] {
    secret.strip_suffix(b"\n").map(|s| s.strip_suffix(b"\r").unwrap_or(s)).unwrap_or(secret)
}
