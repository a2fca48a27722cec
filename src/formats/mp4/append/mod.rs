//! In-place MP4 append (`livemux append`): planning, sans IO.
//!
//! TARGET becomes TARGET + each SOURCE, at chunk granularity: a progressive file's chunks
//! are the chunks of its sample-to-chunk tables (all tracks, in file order), a fragmented
//! file's are its fragments. Each input takes a Python-style slice over its chunks
//! ([`slice`]); TARGET's may only drop chunks from its end, so its kept media never moves.
//!
//! # Layout
//!
//! After its first append TARGET is laid out as
//!
//! ```text
//! ftyp | free (switch) | area 0 | area 1 | mdat (size 0: to the end of the file) | media...
//! ```
//!
//! where the two areas of `L` bytes each hold the index: one holds the live `moov` followed
//! by a `free` box that hides everything up to the `mdat`, the other is hidden (see
//! [`layout`]). The 4-byte size of the leading `free` box selects the live area: 8 for area
//! 0, 8 + L for area 1. The `mdat` has size 0, so media appended past the end of the file
//! is inside it without touching its header.
//!
//! # Write protocol (crash safety)
//!
//! An append that fits the reserved space is planned as:
//!
//! 1. copy the sources' media to the end of what the live `moov` references (past any
//!    bytes a crashed append left there), and write the new `moov` and its padding header
//!    into the inactive area; **fsync**. Nothing the live `moov` points at, and no box a
//!    reader walks, has changed: the file is the old file.
//! 2. write the 4 bytes of the switch (one aligned write inside one sector): the file now
//!    shows the new `moov`, whose tables point only at bytes made durable in step 1;
//!    **fsync**.
//! 3. if the file is longer than what the new `moov` references (chunks TARGET's slice
//!    dropped, or bytes of a crashed append), truncate it; **fsync**. Cutting unreferenced
//!    bytes off the end of a size-0 `mdat` leaves the same file.
//!
//! Every prefix of these steps, and any subset of the writes within step 1 (the disk may
//! persist them in any order, or partly), leaves either the old file or the new one. The
//! replay tests apply every such state and check it.
//!
//! When TARGET is not in this layout (a `moov` after the `mdat`, a fragmented file, no
//! reserved space) or the new `moov` does not fit an area, TARGET is rewritten into a
//! temporary file in its directory (media streamed range by range), fsynced and renamed over
//! TARGET, and the directory fsynced: TARGET's name points at the old file or the new one.
//! The new areas hold `--future-frames` more frames of index, and never less than twice the
//! new `moov`, so a file appended to forever is rewritten O(log n) times.
//!
//! The planner here reads nothing and writes nothing: it takes each input's layout and
//! metadata boxes ([`index::InputData`]) and returns the [`Step`]s; `crate::append` runs
//! them (with a lock, so two appends cannot interleave).
//!
//! Written by hand: no MP4 crate edits a `moov` while keeping foreign boxes byte for byte,
//! and the crash-safe layout is livemux's own.

pub mod index;
pub mod layout;
pub mod merge;
pub mod slice;
#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

pub use index::{InputData, InputIndex};
pub use layout::Slots;
pub use merge::{Clip, Merge, OutPiece};
#[cfg(feature = "cli")]
pub use slice::parse_input_arg;
pub use slice::{ChunkSlice, SliceError};

use super::boxes::Mp4Error;
use super::init::write_ftyp;

/// Why an append cannot be done. Nothing has been written when the planner returns one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AppendError {
    #[error("{input}: {source}")]
    Mp4 {
        input: String,
        #[source]
        source: Mp4Error,
    },
    /// The input cannot be used as it is.
    #[error("{input}: {reason}")]
    Unusable { input: String, reason: String },
    /// A source does not fit TARGET.
    #[error("{input} cannot be appended to {target}: {reason}")]
    Incompatible { target: String, input: String, reason: String },
    /// A bad slice or a slice of TARGET that does not only drop chunks from its end.
    #[error(transparent)]
    Slice(#[from] SliceError),
    #[error("{0}")]
    Usage(String),
}

impl AppendError {
    /// A mistake in the command line rather than in the files.
    pub fn is_usage(&self) -> bool {
        matches!(self, AppendError::Slice(_) | AppendError::Usage(_))
    }
}

/// Settings of an append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// When TARGET is rewritten, reserve index room for this many more frames (of the first
    /// video track, or the first track) beyond twice the new index.
    pub future_frames: u64,
    /// Give a source whose H.264/HEVC/AAC parameters differ from TARGET's (same resolution
    /// or audio format) a sample entry of its own instead of refusing it. FFmpeg and
    /// GStreamer play such files; Chromium does not.
    pub new_sample_entries: bool,
}

/// One step of an append plan: the crate's one plan vocabulary
/// ([`crate::formats::plan::WriteStep`]), with [`Step::Copy`] for media and [`Step::Sync`]
/// for the barriers of the write protocol.
pub use crate::formats::plan::WriteStep as Step;

/// How TARGET is changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The steps apply to TARGET itself.
    InPlace,
    /// The steps build a new file that replaces TARGET; the reason says why.
    Rewrite(String),
}

/// What an append will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub steps: Vec<Step>,
    /// Length of TARGET afterwards.
    pub len_after: u64,
    /// Bytes of media taken from the sources.
    pub media_bytes: u64,
    /// Size of the new `moov`.
    pub index_bytes: u64,
    /// Capacity of each index area afterwards.
    pub area: u64,
    /// Chunks kept from TARGET and taken from the sources.
    pub target_chunks: usize,
    pub source_chunks: usize,
    pub notes: Vec<String>,
}

impl Plan {
    /// Bytes the plan writes.
    pub fn bytes_written(&self) -> u64 {
        self.steps.iter().map(Step::len).sum()
    }
}

/// A source as the planner sees it.
#[derive(Clone, Copy, Debug)]
pub struct SourceInput<'a> {
    pub data: &'a InputData,
    pub name: &'a str,
    pub slice: ChunkSlice,
}

fn select(index: &InputIndex, slice: ChunkSlice) -> Result<std::ops::Range<usize>, SliceError> {
    if slice == ChunkSlice::All {
        return Ok(0..index.chunks.len());
    }
    slice.resolve(index.chunks.len(), &index.name)
}

/// Plans appending `sources` to `target`.
pub fn plan(
    target: &InputData,
    target_name: &str,
    target_slice: ChunkSlice,
    sources: &[SourceInput<'_>],
    options: &AppendOptions,
) -> Result<Plan, AppendError> {
    let ti = InputIndex::build(target, target_name)?;
    let kept = select(&ti, target_slice)?;
    if kept.start != 0 {
        return Err(AppendError::Usage(format!(
            "{target_name}{target_slice}: a slice of TARGET may only drop chunks from its end (it starts at chunk {} \
             of {}), so that TARGET's media never moves",
            kept.start,
            ti.chunks.len()
        )));
    }
    let indexes =
        sources.iter().map(|s| InputIndex::build(s.data, s.name)).collect::<Result<Vec<InputIndex>, AppendError>>()?;
    let mut clips = vec![Clip { input: &ti, input_no: 0, chunks: kept }];
    for (i, (s, index)) in sources.iter().zip(&indexes).enumerate() {
        clips.push(Clip { input: index, input_no: i + 1, chunks: select(index, s.slice)? });
    }
    let merge = Merge::new(clips, options.new_sample_entries)?;
    let mut notes: Vec<String> = ti.notes.clone();
    indexes.iter().for_each(|i| notes.extend(i.notes.iter().cloned()));
    notes.extend(merge.notes.iter().cloned());

    let slots = if ti.fragmented { None } else { Slots::detect(&target.top, target.len) };
    let reason = match slots {
        Some(slots) => match in_place(&merge, slots, target.len)? {
            Some(mut plan) => {
                plan.notes = notes;
                return Ok(plan);
            }
            None => "the index outgrew its reserved space".to_string(),
        },
        None if ti.fragmented => "TARGET is fragmented".into(),
        None => match (
            target.top.iter().position(|(_, h)| h.fourcc.0 == *b"moov"),
            target.top.iter().position(|(_, h)| h.fourcc.0 == *b"mdat"),
        ) {
            (Some(m), Some(d)) if m > d => "TARGET's index is after its media".into(),
            _ => "TARGET has no reserved space for its index".into(),
        },
    };
    let mut plan = rewrite(&merge, reason, options)?;
    plan.notes = notes;
    Ok(plan)
}

/// Appends a copy step, extending the previous one when both ranges continue it.
fn push_copy(steps: &mut Vec<Step>, input: usize, from: u64, len: u64, to: u64) {
    if let Some(Step::Copy { input: i, from: f, len: l, to: t }) = steps.last_mut() {
        if *i == input && *f + *l == from && *t + *l == to {
            *l += len;
            return;
        }
    }
    steps.push(Step::Copy { input, from, len, to });
}

/// Places the pieces of clips `clips` one after the other from `start`. Returns the end.
fn lay_out(
    merge: &Merge<'_>,
    clips: std::ops::Range<usize>,
    start: u64,
    out: &mut Vec<OutPiece>,
    steps: &mut Vec<Step>,
) -> u64 {
    let mut pos = start;
    for k in clips {
        let clip = &merge.clips[k];
        for c in clip.chunks.clone() {
            for p in clip.input.chunks[c].clone() {
                let piece = &clip.input.pieces[p];
                out.push(OutPiece { clip: k, piece: p, offset: pos });
                push_copy(steps, clip.input_no, piece.offset, piece.len, pos);
                pos += piece.len;
            }
        }
    }
    pos
}

fn chunk_counts(merge: &Merge<'_>) -> (usize, usize) {
    (merge.clips[0].chunks.len(), merge.clips[1..].iter().map(|c| c.chunks.len()).sum())
}

/// The in-place plan, or `None` when the new index does not fit the inactive area.
fn in_place(merge: &Merge<'_>, slots: Slots, file_len: u64) -> Result<Option<Plan>, AppendError> {
    let target = &merge.clips[0];
    let mut out = Vec::new();
    let mut kept_end = slots.media_start();
    for c in target.chunks.clone() {
        for p in target.input.chunks[c].clone() {
            let piece = &target.input.pieces[p];
            out.push(OutPiece { clip: 0, piece: p, offset: piece.offset });
            kept_end = kept_end.max(piece.end());
        }
    }
    // Past everything the live index references, so that nothing it points at is touched.
    let start = target.input.referenced_end.max(slots.media_start());
    let mut steps = Vec::new();
    let end = lay_out(merge, 1..merge.clips.len(), start, &mut out, &mut steps);
    let media_bytes = end - start;
    let (moov, _) = merge.build_moov(&out)?;
    if !slots.fits(moov.len() as u64) {
        return Ok(None);
    }
    let k = slots.inactive();
    steps.push(Step::Write { offset: slots.area_offset(k), data: slots.area_contents(k, &moov) });
    steps.push(Step::Sync);
    steps.push(Step::Write { offset: slots.switch, data: slots.switch_bytes(k) });
    steps.push(Step::Sync);
    let new_end = if media_bytes > 0 { end } else { kept_end };
    let len_after = if file_len.max(end) > new_end {
        steps.push(Step::Truncate { len: new_end });
        steps.push(Step::Sync);
        new_end
    } else {
        file_len.max(end)
    };
    let (target_chunks, source_chunks) = chunk_counts(merge);
    Ok(Some(Plan {
        mode: Mode::InPlace,
        steps,
        len_after,
        media_bytes,
        index_bytes: moov.len() as u64,
        area: slots.area,
        target_chunks,
        source_chunks,
        notes: Vec::new(),
    }))
}

/// The room each area gets for a `moov` of `moov_len` bytes whose sample tables take
/// `tables_len` bytes for `frames` frames.
pub fn reserve(moov_len: u64, tables_len: u64, frames: u64, options: &AppendOptions) -> u64 {
    let per_frame = tables_len.div_ceil(frames.max(1)).max(1);
    let want = (2 * moov_len).max(moov_len.saturating_add(options.future_frames.saturating_mul(per_frame)));
    (want + layout::HEADER).div_ceil(layout::AREA_ALIGN).max(1) * layout::AREA_ALIGN
}

/// The plan that writes a new file in the reserved-space layout.
fn rewrite(merge: &Merge<'_>, reason: String, options: &AppendOptions) -> Result<Plan, AppendError> {
    let target = merge.clips[0].input;
    let mut head = BytesMut::new();
    if target.fragmented {
        // A fragmented file's brands (iso5, dash, cmfc...) promise fragments.
        let mut brands: Vec<&[u8; 4]> = vec![b"isom", b"iso2", b"mp41"];
        if merge.tracks.iter().any(|t| t.entries.iter().any(|e| e.len() >= 8 && &e[4..8] == b"avc1")) {
            brands.push(b"avc1");
        }
        write_ftyp(&mut head, b"isom", &brands);
    } else if let Some(ftyp) = &target.ftyp {
        head.put_slice(ftyp);
    }
    if !head.len().is_multiple_of(4) {
        let pad = 8 + (4 - head.len() % 4);
        head.put_u32(pad as u32);
        head.put_slice(b"free");
        head.put_bytes(0, pad - 8);
    }
    let switch = head.len() as u64;
    let frames = {
        let t = merge.tracks.iter().position(|t| t.kind == crate::model::TrackKind::Video).unwrap_or(0);
        merge.sample_count(t) as u64
    };
    let mut area = layout::AREA_ALIGN;
    loop {
        let slots = Slots::new(switch, area);
        let mut out = Vec::new();
        let mut steps = Vec::new();
        let end = lay_out(merge, 0..merge.clips.len(), slots.media_start(), &mut out, &mut steps);
        let (moov, tables_len) = merge.build_moov(&out)?;
        let want = reserve(moov.len() as u64, tables_len as u64, frames, options);
        if want > layout::MAX_AREA {
            return Err(AppendError::Unusable {
                input: target.name.clone(),
                reason: format!("an index of {} bytes is too large to reserve room for", moov.len()),
            });
        }
        if area < want {
            area = want;
            continue;
        }
        let mut first = head.clone();
        first.put_slice(&Slots::switch_box());
        first.put_slice(&slots.area_contents(0, &moov));
        let mut all = vec![
            Step::Write { offset: 0, data: first.freeze() },
            Step::Write { offset: slots.mdat(), data: Bytes::copy_from_slice(&Slots::mdat_header()) },
        ];
        all.extend(steps);
        all.push(Step::Sync);
        let source_start = out.iter().find(|o| o.clip > 0).map_or(end, |o| o.offset);
        let (target_chunks, source_chunks) = chunk_counts(merge);
        return Ok(Plan {
            mode: Mode::Rewrite(reason),
            steps: all,
            len_after: end,
            media_bytes: end - source_start,
            index_bytes: moov.len() as u64,
            area,
            target_chunks,
            source_chunks,
            notes: Vec::new(),
        });
    }
}
