//! The one place where livemux changes files durably.
//!
//! - [`Apply`] carries out a plan ([`WriteStep`]s, the vocabulary of
//!   [`crate::formats::plan`]) on an open file: writes at offsets, truncations, copies from
//!   input files, and barriers, with the durability the caller chose (every step durable
//!   before the next for a finalize, at the plan's [`WriteStep::Sync`] barriers for an
//!   append). A write that fails past the end of the file (a full disk) is cut back here.
//! - [`sync_dir`], [`sync_parent`] and [`rename_durably`] make directory entries durable.
//! - [`FragmentWriter`] writes a muxer's [`crate::model::Fragment`]s to a file or stdout:
//!   what the `sink` stage and a library user writing a recording share.
//! - [`hls::HlsWriter`] writes the files and playlists of an HLS directory in a crash-safe
//!   order.
//! - [`lock_or_refuse`] and [`describe_write_error`]: the output lock every writer takes, and
//!   the "which file system is full" wording of a failed write.
//! - [`apply_in_memory`] applies the same plans to bytes in memory, for tests, simulations
//!   and crash replay.
//!
//! Written on `std::fs` and a few `libc` calls rather than a crate: what matters here (one
//! `write` per fragment, `flock` without waiting, `sync_data` exactly at barriers, cutting a
//! torn write back) is a few lines each, and no crate offers that exact set.

mod fragments;
mod fs;
pub mod hls;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

pub use crate::formats::plan::WriteStep;
#[cfg(any(test, feature = "internals"))]
pub use crate::formats::plan::{apply_in_memory, try_apply_in_memory, OutOfRange};
pub use fragments::{output_closed, Durability, FragmentWriter};
pub use fs::{describe_write_error, lock_or_refuse};

/// Bytes copied per read/write by a [`WriteStep::Copy`].
pub const COPY_BUFFER: usize = 1 << 20;

/// When the steps of a plan reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barriers {
    /// After every step, before the next begins (a finalize plan, whose every prefix is a
    /// valid file).
    EachStep,
    /// At the plan's [`WriteStep::Sync`] steps only (an append plan).
    AtSyncSteps,
    /// Never: the OS writes when it likes; [`WriteStep::Sync`] steps are skipped.
    Never,
}

/// How to carry out a plan on a file: the durability, the files that
/// [`WriteStep::Copy`] reads, and an optional pause after every step.
///
/// A write or copy that fails (a full disk) after the file grew past the length it had at
/// the last barrier is undone by cutting the file back to that length: the plans only ever
/// write past the durable end where nothing points yet, so the file keeps meaning what it
/// meant.
/// What [`Apply::on_step`] calls: the index of the step applied, and the step.
pub type OnStep<'a> = dyn Fn(usize, &WriteStep) + Sync + 'a;

#[derive(Clone)]
pub struct Apply<'a> {
    barriers: Barriers,
    inputs: &'a [&'a File],
    pause: Option<Duration>,
    on_step: Option<&'a OnStep<'a>>,
}

impl<'a> Apply<'a> {
    /// A plan applied with `barriers`, without inputs or pauses.
    pub fn new(barriers: Barriers) -> Self {
        Apply { barriers, inputs: &[], pause: None, on_step: None }
    }

    /// Calls `f` with each step's index once it is applied (and, with barriers after every
    /// step, durable): the `finalize_step` events.
    pub fn on_step(mut self, f: &'a OnStep<'a>) -> Self {
        self.on_step = Some(f);
        self
    }

    /// The files [`WriteStep::Copy`] reads, by index.
    pub fn inputs(mut self, inputs: &'a [&'a File]) -> Self {
        self.inputs = inputs;
        self
    }

    /// Sleep after every step (a test hook: crash tests kill the process between steps).
    pub(crate) fn pause(mut self, pause: Option<Duration>) -> Self {
        self.pause = pause;
        self
    }

    /// Applies `steps` to `out` in order. Returns the bytes written.
    pub fn run(&self, out: &File, steps: &[WriteStep]) -> io::Result<u64> {
        let mut buf = Vec::new();
        let mut written = 0;
        // The length of the file at the last barrier: what a failed write is cut back to.
        let mut durable_len = out.metadata()?.len();
        for (i, step) in steps.iter().enumerate() {
            if self.barriers != Barriers::AtSyncSteps {
                durable_len = out.metadata()?.len();
            }
            if let Err(e) = self.step(out, step, &mut buf) {
                cut_back(out, step, durable_len);
                return Err(e);
            }
            match step {
                WriteStep::Sync if self.barriers == Barriers::AtSyncSteps => durable_len = out.metadata()?.len(),
                WriteStep::Truncate { len } => durable_len = durable_len.min(*len),
                _ => {}
            }
            written += step.len();
            if let Some(f) = self.on_step {
                f(i, step);
            }
            if let Some(p) = self.pause {
                std::thread::sleep(p);
            }
        }
        Ok(written)
    }

    fn step(&self, out: &File, step: &WriteStep, buf: &mut Vec<u8>) -> io::Result<()> {
        match step {
            WriteStep::Write { offset, data } => out.write_all_at(data, *offset)?,
            WriteStep::Truncate { len } => out.set_len(*len)?,
            WriteStep::Copy { input, from, len, to } => {
                let source = self.inputs.get(*input).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("the plan copies from input {input}, not given"),
                    )
                })?;
                copy_range(source, *from, out, *to, *len, buf)?;
            }
            WriteStep::Sync => {
                if self.barriers == Barriers::AtSyncSteps {
                    out.sync_data()?;
                }
                return Ok(());
            }
        }
        if self.barriers == Barriers::EachStep {
            out.sync_data()?;
        }
        Ok(())
    }
}

/// After `step` failed: if it wrote past `durable_len` and the file grew, cut it back.
fn cut_back(out: &File, step: &WriteStep, durable_len: u64) {
    let Some(start) = step.write_start() else { return };
    let past_end = start.saturating_add(step.len()) > durable_len;
    if past_end && out.metadata().is_ok_and(|m| m.len() > durable_len) && out.set_len(durable_len).is_ok() {
        let _ = out.sync_data();
    }
}

/// Copies `len` bytes at `from` in `source` to `to` in `out`, through `buf` (grown to at
/// most [`COPY_BUFFER`]): media is never held whole in memory.
fn copy_range(source: &File, from: u64, out: &File, to: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.len() < COPY_BUFFER {
        buf.resize(COPY_BUFFER.min(len.try_into().unwrap_or(usize::MAX)).max(buf.len()), 0);
    }
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        source.read_exact_at(&mut buf[..n], from + done)?;
        out.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Makes the entries of directory `dir` durable (a file created or renamed in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the directory entry of `path` durable, so a power cut cannot lose the file itself.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(parent_dir(path))
}

/// Renames `from` over `to` and makes the rename durable (an fsync of `to`'s directory):
/// after a crash, `to` names the old file or the new one. `from` should be durable
/// already (`sync_all`) and in the same directory.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_parent(to)
}
