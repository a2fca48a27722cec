//! Turning a fragmented MP4 into a regular one in place, without moving or rewriting media,
//! in a write order that leaves a valid file after a crash at any moment.
//!
//! Used twice with the same code: by [`super::regular::RegularMp4Muxer`] at a clean stop
//! (`--to mp4`), fed the fragments it wrote, and by `livemux finalize` on a file left by a
//! crash or by another recorder ([`plan`], which reads only box headers and `moof` boxes,
//! seeking over media). Both feed a [`FragmentIndex`], which builds the regular `moov`,
//! and [`plan_steps`], which decides where it goes and in which order the bytes are written.
//!
//! # Layout
//!
//! `--to mp4` records `ftyp | free (R bytes at F) | moov (with mvex, at M) | sidx... |
//! moof mdat ...` (the `sidx` boxes: the running index, [`super::sidx`]).
//! F is placed so that the 16 bytes at F lie in one 512-byte sector. A foreign fMP4
//! (Chromium: `ftyp | moov | moof mdat ...`) has no reserved box; then F is M. Let T be the
//! end of the last complete fragment (anything after it, an incomplete fragment or an
//! `mfra`, is cut first). The final state never moves media: the old `moov`, every `moof`
//! and whatever lies between fragments (`sidx`, `styp`, `emsg`, `free`) end up inside one
//! big `mdat`, and the new `moov` has no `mvex`.
//!
//! # Write order (each step is made durable before the next begins)
//!
//! - **Step 0**, if the file goes on past T: truncate it to T. The file is the same fMP4
//!   minus a tail that no reader could use.
//!
//! **Faststart**, when the reserved box holds the `moov` (S bytes) and an `mdat` header
//! (H = 8 or 16 bytes): S + H <= R.
//! - **Step 1**: write the `moov` body at F+8..F+S and, right after it at F+S, the header
//!   of an `mdat` that runs to T, as one write. Both are inside the `free` box's payload:
//!   nothing points at them yet, the file is still the same fMP4.
//! - **Step 2, the switch**: one 8-byte write at F, `[S]['moov']`. The `free` box becomes
//!   the `moov`; the `mdat` written in step 1 follows it and covers the rest of the
//!   reserve, the old `moov` and every fragment: `ftyp | moov | mdat`.
//!
//! **`moov` at the end**, when there is no reserve or the index does not fit it.
//! - **Step 1**: append at T a `free` box header whose size covers the new `moov`, followed
//!   by the `moov`, as one write. The new `moov` is hidden in a trailing `free` box: still
//!   the same fMP4.
//! - **Step 2, the switch**: one 16-byte write at F (over the reserved `free` header, or
//!   over the fragmented `moov`'s header and the first 8 bytes of its body, which become
//!   `mdat` payload): a 64-bit `mdat` header whose size runs to T+8, so that the `free`
//!   header is inside it and the hidden `moov` becomes a top-level box:
//!   `ftyp | mdat | moov`.
//!
//! A crash during step 0 or 1 leaves the fMP4 with, at worst, a trailing box cut short or
//! stray bytes inside a `free` box; running `livemux finalize` again completes the job. The
//! switch is the only write that changes what the file is, and it is at most 16 bytes
//! inside one sector, which disks write whole. Sectors of one step may reach the disk in
//! any order or not at all before its fsync; every such state is valid too
//! (`tests/regular_mp4.rs` replays them all, with ffprobe as the judge). Where the 16 bytes
//! at a foreign file's `moov` would cross a sector boundary, the switch uses a 32-bit
//! `mdat` header (8 bytes) when the size allows.
//!
//! # The regular `moov`
//!
//! It is the fragmented `moov` with its sample tables filled in and `mvex` dropped, so a
//! foreign file keeps its sample entries (`stsd` copied verbatim), handler names, user data
//! and edit lists. Per track: one chunk per contiguous run of a fragment, `stsc` compacted,
//! `stco` (or `co64` past 4 GiB), `stss` unless every sample is sync, `ctts` (version 1
//! when an offset is negative), `sdtp` when the fragments' sample flags say more than
//! "sync or not". Durations come from `trun`/`tfhd`/`trex`, corrected so that every decode
//! time of the fragments survives; `mvhd`/`tkhd`/`mdhd` take version 1 when a duration
//! does not fit 32 bits. A regular file's media timeline starts at its first sample, so
//! each track's edits are rebuilt by [`crate::formats::timeline`] (the rule the muxers
//! follow): a track whose first decode time is late keeps that lead-in as an empty edit,
//! and a start common to all tracks over an hour (a live capture's clock) is taken off rather
//! than written as a years-long empty edit. Samples may last 0 (two at one decode time).
//! The last edit is cut to the media that exists
//! (a crash leaves less media than the recorder's edit list announced; a fragmented file
//! may write 0 for "to the end"). Memory is the final tables only ([`TableBuilder`]).
//!
//! # Decisions beyond the first design
//!
//! - The regular `moov` is the fragmented one patched (tables, durations, edits, no
//!   `mvex`) rather than written anew from the tracks: a foreign file keeps what livemux
//!   cannot describe, and the muxer and `livemux finalize` share one path.
//! - The faststart `mdat` header is 8 bytes when its size fits 32 bits (a smaller reserve
//!   suffices); the faststart switch needs its 8 bytes inside one sector, else the `moov`
//!   goes at the end.
//! - A regular MP4 (a `moov` without `mvex`) is "nothing to do", whether livemux finalized
//!   it or another tool wrote it: the two cannot be told apart, and neither needs work.
//!   Unless fragments follow it: finalize ran while the recorder was still writing, and
//!   the recorder's later fragments refer to a `moov` that lost its `mvex` (FFmpeg: "trun
//!   track id unknown, no tfhd"). Their media is the user's, so they are indexed rather
//!   than hidden: the fragmented `moov` the file was finalized from is still inside the
//!   `mdat` (after the reserve, or behind the `free` box the switch went over), and the
//!   index is rebuilt from it over every fragment, as if finalize had run at the end. The
//!   switch then goes over the first box of the regular layout (the regular `moov`, or
//!   the `mdat` before it), with the same write order as a `moov` at the end: before the
//!   switch the file is the one the user had; after it, a regular MP4 with every fragment.
//!   The same holds when the recorder wrote over a `moov` put at the end (no top-level
//!   `moov` then), and when there was no reserve (the switch went over the old `moov`'s
//!   header and its `mvhd`'s; both are rebuilt, the rest is intact). Refused, file
//!   untouched, when no such `moov` is found (the search reads at most
//!   [`MAX_OLD_MOOV_SEARCH`](scan::MAX_OLD_MOOV_SEARCH) bytes of each `mdat`).
//!   Refused: no `moov`, no complete fragment, or a damaged fragment followed by complete
//!   ones (cutting those off would lose media; a damaged *last* fragment is cut like an
//!   incomplete one).
//! - T is the end of the top-level box that completes the last fragment whose samples are
//!   all in the file, so an `mdat` shared by two `moof`s or boxes between `moof` and `mdat`
//!   work; complete boxes after T (`mfra`, a trailing `free` from an interrupted finalize)
//!   are cut with the incomplete tail.
//! - Sector atomicity (a write of up to 16 bytes inside one 512-byte sector reaches the
//!   disk whole or not at all) is the one assumption about the disk; larger writes may
//!   land in pieces, which the step order makes harmless.
//!
//! Written by hand: it rests on the crate's own box reader and table builder, and no crate
//! offers an in-place conversion with a durable write order.
//!
//! Files: `index.rs` (the [`FragmentIndex`] and the regular `moov` it becomes, written by
//! the one `moov` patcher, [`super::patch`]), `scan.rs` (reading a file: top-level boxes,
//! fragments, the old `moov` of a file finalized too early) and `plan.rs` (the [`Layout`]
//! and the write order, [`plan_steps`]).

use std::io::{Read, Seek};

use super::boxes::Mp4Error;
use crate::formats::FinalizePlan;

mod index;
mod plan;
mod scan;
#[cfg(test)]
mod tests;

pub use index::FragmentIndex;
pub use plan::{plan_steps, Layout};
pub use scan::{scan, Scanned};

/// Why a file cannot be finalized.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeMp4Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
    /// The file is not something this can finalize (no `moov`, no complete fragment...).
    #[error("{0}")]
    Unusable(String),
}

/// The plan that makes the MP4 `r` (of `len` bytes) a regular MP4 in place: nothing for a
/// regular MP4 already, the steps of the module doc for a fragmented one.
pub fn plan<R: Read + Seek>(r: &mut R, len: u64) -> Result<FinalizePlan, FinalizeMp4Error> {
    match scan(r, len)? {
        Scanned::Regular { .. } => Ok(FinalizePlan {
            steps: Vec::new(),
            notes: vec!["already a regular MP4 (its moov indexes the media, no fragments): nothing to do".into()],
        }),
        Scanned::Fragmented { mut index, layout, notes } => {
            index.edits_run_to_media_end = true;
            // Its `senc`/`saiz`/`saio` would end up hidden in the mdat: refused, untouched.
            let tracks = &index.movie().tracks;
            if let Some(why) = tracks.iter().enumerate().find_map(|(i, t)| t.encryption_refusal(i + 1)) {
                return Err(FinalizeMp4Error::Unusable(format!("{why}; the file is left as it is")));
            }
            let moov = index.final_moov()?;
            let mut plan = plan_steps(&layout, moov);
            let mut all = notes;
            all.append(&mut plan.notes);
            plan.notes = all;
            Ok(plan)
        }
    }
}
