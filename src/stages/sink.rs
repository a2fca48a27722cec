//! `sink`: writes fragments to a file or stdout, each with one write, made durable as
//! configured. [`FragmentKind::Finalize`] fragments are written in place, in order, each
//! durable before the next, when the output is a file; a stream skips them.
//!
//! Writes happen on a blocking thread with plain `write` calls: async file emulation would
//! split a fragment into several writes, and a crash between them would leave a torn
//! fragment in the middle of the file rather than at its end.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::{Failure, StageContext, StageReport, StageResult};
use crate::formats::WriteStep;
use crate::model::{Fragment, FragmentKind};

/// What happens after each fragment is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Leave it to the OS.
    None,
    /// Hand it to the OS at once (what a pipe reader needs to see it).
    Flush,
    /// Wait until it is on stable storage (survives a power cut).
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Durability::None),
            "flush" => Ok(Durability::Flush),
            "fsync" => Ok(Durability::Fsync),
            _ => Err(format!("unknown durability '{s}' (expected none, flush or fsync)")),
        }
    }
}

/// Settings of `sink`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// A file, or `-` for stdout.
    pub path: PathBuf,
    /// Default: fsync for files, flush for stdout.
    pub durability: Option<Durability>,
}

impl SinkConfig {
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    pub fn durability(&self) -> Durability {
        self.durability.unwrap_or(if self.is_stdout() { Durability::Flush } else { Durability::Fsync })
    }
}

/// Runs `sink`.
pub async fn run(ctx: StageContext, config: SinkConfig, input: mpsc::Receiver<Fragment>) -> StageResult {
    let ctx2 = ctx.clone();
    tokio::task::spawn_blocking(move || write_all(&config, input).map_err(|e| ctx2.error(Failure::Io(e))))
        .await
        .map_err(|e| ctx.error(Failure::Other(format!("sink thread failed: {e}"))))?
}

fn open_output(config: &SinkConfig) -> std::io::Result<File> {
    if config.is_stdout() {
        use std::os::fd::AsFd;
        // A raw handle on fd 1: no line buffering, so a fragment is one write.
        return Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned()?));
    }
    OpenOptions::new().write(true).create(true).truncate(true).open(&config.path)
}

/// Makes the file's directory entry durable too, once, so a power cut cannot lose the
/// file itself.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Writes all parts with as few `writev` calls as the kernel allows: one for a fragment of
/// up to [`IOV_MAX`] parts that the kernel takes whole, which is the usual case.
fn write_parts(f: &mut File, parts: &[bytes::Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(IOV_MAX);
        match f.write_vectored(&rest[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all(config: &SinkConfig, mut input: mpsc::Receiver<Fragment>) -> std::io::Result<StageReport> {
    let mut file: Option<File> = None;
    let durability = config.durability();
    let regular = !config.is_stdout();
    let mut first = true;
    while let Some(fragment) = input.blocking_recv() {
        if fragment.kind == FragmentKind::Finalize {
            // In-place changes need a file that can seek; a stream is complete without them.
            if let (Some(f), true) = (&file, regular) {
                let step = WriteStep::Write { offset: fragment.offset, data: fragment.to_bytes() };
                crate::finalize::apply(f, &[step], durability == Durability::Fsync)?;
            }
            continue;
        }
        if fragment.is_empty() {
            continue;
        }
        if file.is_none() {
            file = Some(open_output(config)?);
        }
        let f = file.as_mut().unwrap();
        match write_parts(f, &fragment.parts) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(StageReport::default()),
            r => r?,
        }
        match durability {
            Durability::Fsync if regular => {
                f.sync_data()?;
                if first {
                    sync_parent(&config.path)?;
                }
            }
            Durability::Fsync | Durability::Flush => f.flush()?,
            Durability::None => {}
        }
        first = false;
    }
    Ok(StageReport::default())
}
