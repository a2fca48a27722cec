//! Finalizing a file in place: `livemux finalize`, and the end of a clean recording.
//!
//! The container code in [`crate::formats`] reads a file and returns a
//! [`FinalizePlan`]: the writes that turn it into a seekable, indexed file, in an order in
//! which every prefix leaves a valid file. This module applies such a plan, making each
//! step durable before the next, which is what makes that order hold on disk.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::formats::mp4::finalize as mp4;
use crate::formats::{sniff, ContainerKind, FinalizePlan, SNIFF_LEN};
use crate::events::{emit, step_event, Observer};
use crate::io::{describe_write_error, lock_or_refuse, Apply, Barriers, WriteStep};

/// Why a file could not be finalized.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// Reading or writing the file failed (a full disk names its file system; a file
    /// another process holds locked is refused with `WouldBlock`).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is neither MP4 nor Matroska.
    #[error("not an MP4 or Matroska file")]
    UnknownContainer,
    /// The file cannot be finalized as it is (not fragmented, no fragment at all...).
    #[error("{0}")]
    Unusable(String),
    /// The container is known but cannot be finalized in place yet.
    #[error("finalizing {0} files is not supported yet")]
    Unsupported(ContainerKind),
}

/// What [`finalize_file`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalizeReport {
    /// The container of the file.
    pub container: ContainerKind,
    /// File length before.
    pub len_before: u64,
    /// File length after.
    pub len_after: u64,
    /// Bytes written (including bytes appended).
    pub bytes_written: u64,
    /// Steps of the plan carried out (writes and truncations).
    pub writes: usize,
    /// One line each, for the user: where the index went, what was dropped...
    pub notes: Vec<String>,
}

/// Makes the file at `path` (a fragmented MP4, or a Matroska/WebM file as a crash or a
/// browser leaves it) seekable and indexed, in place.
///
/// A file that another process holds locked (a running `livemux remux` writing it, an
/// `append`) is refused: its state is about to change under us. The lock is taken without
/// waiting and held until the end, so no writer starts meanwhile.
pub fn finalize_file(path: &Path) -> crate::Result<FinalizeReport> {
    finalize_file_observed(path, None)
}

/// [`finalize_file`], giving `observer` a [`RunEvent::FinalizeStep`](crate::events::RunEvent::FinalizeStep)
/// after each durable step.
pub fn finalize_file_observed(path: &Path, observer: Option<&Observer>) -> crate::Result<FinalizeReport> {
    finalize_path(path, observer).map_err(|e| crate::Error::from(e).on_path(path))
}

fn finalize_path(path: &Path, observer: Option<&Observer>) -> Result<FinalizeReport, FinalizeError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    lock_or_refuse(&file, path)?;
    let len_before = file.metadata()?.len();
    let mut head = [0u8; SNIFF_LEN];
    let n = file.read(&mut head)?;
    let container = sniff(&head[..n]).ok_or(FinalizeError::UnknownContainer)?;
    file.seek(SeekFrom::Start(0))?;
    let plan = plan(container, &mut file, len_before)?;
    let steps = plan.steps.len();
    let on_step = |i: usize, step: &WriteStep| emit(observer, step_event(path, i, steps, step));
    let bytes_written = Apply::new(Barriers::EachStep)
        .on_step(&on_step)
        .run(&file, &plan.steps)
        .map_err(|e| describe_write_error(path, e))?;
    Ok(FinalizeReport {
        container,
        len_before,
        len_after: file.metadata()?.len(),
        bytes_written,
        writes: plan.steps.len(),
        notes: plan.notes,
    })
}

fn plan(container: ContainerKind, file: &mut File, len: u64) -> Result<FinalizePlan, FinalizeError> {
    match container {
        ContainerKind::Matroska => plan_matroska(file, len),
        ContainerKind::Mp4 => mp4::plan(file, len).map_err(|e| match e {
            mp4::FinalizeMp4Error::Io(e) => FinalizeError::Io(e),
            mp4::FinalizeMp4Error::Unusable(m) => FinalizeError::Unusable(m),
            e @ mp4::FinalizeMp4Error::Mp4(_) => FinalizeError::Unusable(e.to_string()),
        }),
    }
}

/// Bytes read at a time while scanning a file.
const READ_BLOCK: usize = 1 << 20;

fn plan_matroska(file: &mut File, len: u64) -> Result<FinalizePlan, FinalizeError> {
    use crate::formats::matroska::finalize::{plan_in_place, Scanned, Scanner};
    let mut scanner = Scanner::new();
    let mut read = 0u64;
    while read < len {
        let mut buf = vec![0u8; READ_BLOCK.min((len - read) as usize)];
        file.read_exact(&mut buf)?;
        read += buf.len() as u64;
        scanner.push(buf.into()).map_err(|e| FinalizeError::Unusable(e.to_string()))?;
    }
    let (front, index, input_len) = match scanner.finish().map_err(FinalizeError::Unusable)? {
        Scanned::AlreadyFinal => {
            return Ok(FinalizePlan { steps: vec![], notes: vec!["already has Duration, Cues and SeekHead".into()] })
        }
        Scanned::Found { front, index, input_len } => (front, index, input_len),
    };
    let mut plan = plan_in_place(&front, &index, input_len)
        .map_err(|e| FinalizeError::Unusable(e.to_string()))?
        .map_err(|e| FinalizeError::Unusable(format!("{e}; rewrite it with livemux remux instead")))?;
    if input_len > index.end {
        plan.notes.insert(0, format!("incomplete data after byte {} cut off", index.end));
    }
    Ok(plan)
}
