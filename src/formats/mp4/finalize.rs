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
//! `--to mp4` records `ftyp | free (R bytes at F) | moov (with mvex, at M) | moof mdat ...`.
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
//!   [`MAX_OLD_MOOV_SEARCH`] bytes of each `mdat`).
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

use std::io::{Read, Seek, SeekFrom};

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{parse_header, FourCc, HeaderParse, Mp4Error, Reader, MAX_META_BOX, MAX_MOOF};
use super::init::{write_mvhd, SECTOR};
use super::moof::{parse_moof, FragSample};
use super::moov::{parse_movie, Movie};
use super::tables::TableBuilder;
use super::write::{close, open, rewrite_timed, write_edts};
use crate::formats::timeline::{self, MediaStart, Plan, Timing, TrackPlan};
use crate::formats::{FinalizePlan, WriteStep};
use crate::model::Edit;

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

/// The sample tables of one track as fragments arrive.
#[derive(Clone, Debug, Default)]
struct TrackIndex {
    tables: TableBuilder,
    first_dts: Option<i64>,
    /// Smallest presentation time of the first [`FIRST_PTS_SAMPLES`] samples.
    first_pts: Option<i64>,
    last_dts: i64,
    /// Decode time the next sample has if nothing jumps: last dts + last duration.
    end_dts: i64,
    /// Composition offset of the last sample.
    last_cts: i64,
    /// Latest end of a sample on the presentation timeline (dts + cts offset + duration).
    pts_end: i64,
    /// Latest start of a sample on the presentation timeline (dts + cts offset): at or
    /// past `pts_end` when the last sample lasts 0 ticks (a closing metadata sample).
    pts_last_start: i64,
    /// End of the open chunk in the file, and its sample description.
    chunk: Option<(u64, u32)>,
    /// Decode times that went backwards or stood still between samples.
    overlaps: u64,
}

/// Samples looked at for a track's first presentation time (past any B-frame reordering).
const FIRST_PTS_SAMPLES: u32 = 32;

/// The index of a fragmented MP4, built from its `moov` and `moof` boxes, and the regular
/// `moov` it becomes.
#[derive(Clone, Debug)]
pub struct FragmentIndex {
    /// The fragmented `moov`, whole.
    moov: Bytes,
    moov_offset: u64,
    moov_header_len: u32,
    movie: Movie,
    tracks: Vec<TrackIndex>,
    next_dts: Vec<i64>,
    fragments: u64,
    /// A foreign fragmented file (`livemux finalize`): the last edit that shows media is
    /// taken to run to the end of the media, as FFmpeg reads fragmented files (their edit
    /// lists give a start, never an end: a recorder writes the duration it knew before
    /// the fragments, often the decode-time total, which cuts the last frame's composition
    /// offset off). The muxer's own file keeps an end its input's edit list gave.
    edits_run_to_media_end: bool,
}

/// What [`FragmentIndex::final_moov`] decided for one track.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TrackTiming {
    media_duration: u64,
    track_duration_movie: u64,
    /// The edit list to write (`None`: no `edts`).
    edits: Option<Vec<Edit>>,
}

/// `ceil(v * to / from)`, saturating.
fn rescale_up(v: u64, to: u32, from: u32) -> u64 {
    let from = from.max(1) as u128;
    ((v as u128 * to as u128).div_ceil(from)).min(u64::MAX as u128) as u64
}

impl FragmentIndex {
    /// Starts an index from the fragmented `moov` (`moov` is the whole box, at `offset`).
    /// Samples the `moov` itself indexes (a fragmented file may start with some) come
    /// first.
    pub fn new(moov: Bytes, offset: u64, header_len: u32) -> Result<Self, Mp4Error> {
        Self::in_file(moov, offset, header_len, u64::MAX)
    }

    /// [`FragmentIndex::new`] for a `moov` read from a file of `file_len` bytes: a sample
    /// the `moov` indexes itself must lie inside the file (so that a constant-size `stsz`
    /// claiming billions of samples fails at the first one past the end instead of
    /// filling memory).
    pub fn in_file(moov: Bytes, offset: u64, header_len: u32, file_len: u64) -> Result<Self, Mp4Error> {
        /// Samples of the `moov`'s own tables added at a time.
        const BATCH: usize = 4096;
        let movie = parse_movie(&moov, offset, header_len)?;
        let mut index = FragmentIndex {
            tracks: vec![TrackIndex::default(); movie.tracks.len()],
            next_dts: vec![0; movie.tracks.len()],
            movie,
            moov,
            moov_offset: offset,
            moov_header_len: header_len,
            fragments: 0,
            edits_run_to_media_end: false,
        };
        let mut batch = Vec::with_capacity(BATCH);
        for track in 0..index.movie.tracks.len() {
            let table = index.movie.tracks[track].table.clone();
            for info in table.samples() {
                let info = info?;
                if info.offset.checked_add(info.size as u64).is_none_or(|end| end > file_len) {
                    return Err(Mp4Error::invalid(
                        format!("sample {} of track {}", info.index, index.movie.tracks[track].track_id),
                        info.offset,
                        format!("{} bytes that run past the end of the file ({file_len} bytes)", info.size),
                    ));
                }
                let flags = if info.sync { 0x0200_0000 } else { 0x0101_0000 };
                batch.push(FragSample { track, info, flags });
                if batch.len() == BATCH {
                    index.continue_samples(&batch)?;
                    batch.clear();
                }
            }
            index.continue_samples(&batch)?;
            batch.clear();
        }
        for (next, t) in index.next_dts.iter_mut().zip(&index.tracks) {
            if t.first_dts.is_some() {
                *next = t.end_dts;
            }
        }
        Ok(index)
    }

    pub fn movie(&self) -> &Movie {
        &self.movie
    }

    /// Fragments added that hold at least one sample.
    pub fn fragments(&self) -> u64 {
        self.fragments
    }

    /// Samples added, per track of the `moov`.
    pub fn sample_counts(&self) -> Vec<u32> {
        self.tracks.iter().map(|t| t.tables.sample_count()).collect()
    }

    /// Reads a `moof` (`data` is the whole box, at `offset`) into samples with absolute
    /// file offsets. Call [`FragmentIndex::add`] with them, in file order, once the media
    /// they point at is known to be there.
    pub fn parse_fragment(&mut self, data: &[u8], offset: u64, header_len: u32) -> Result<Vec<FragSample>, Mp4Error> {
        parse_moof(data, offset, header_len, &self.movie, &mut self.next_dts)
    }

    /// Adds one fragment's samples (from [`FragmentIndex::parse_fragment`]).
    pub fn add(&mut self, samples: &[FragSample]) -> Result<(), Mp4Error> {
        if samples.is_empty() {
            return Ok(());
        }
        self.fragments += 1;
        self.push_samples(samples)
    }

    /// Adds a fragment's samples: each track's first one opens a chunk.
    fn push_samples(&mut self, samples: &[FragSample]) -> Result<(), Mp4Error> {
        for t in &mut self.tracks {
            t.chunk = None;
        }
        self.continue_samples(samples)
    }

    /// Adds samples; one that starts where the track's last one ended stays in its chunk.
    fn continue_samples(&mut self, samples: &[FragSample]) -> Result<(), Mp4Error> {
        for s in samples {
            let t = &mut self.tracks[s.track];
            let info = &s.info;
            if t.tables.sample_count() == u32::MAX {
                return Err(Mp4Error::TooLarge {
                    what: format!("samples of track {}", self.movie.tracks[s.track].track_id),
                    offset: info.offset,
                    size: u32::MAX as u64 + 1,
                    limit: u32::MAX as u64,
                });
            }
            match t.first_dts {
                None => t.first_dts = Some(info.dts),
                Some(_) if info.dts != t.end_dts => {
                    // Keep every decode time: the previous sample lasts until this one.
                    // 0 is a valid duration: two samples may share a decode time.
                    match info.dts.checked_sub(t.last_dts).and_then(|d| u32::try_from(d).ok()) {
                        Some(d) => {
                            t.tables.set_last_duration(d);
                            t.pts_end = t.pts_end.max(info.dts.saturating_add(t.last_cts));
                        }
                        _ => t.overlaps += 1,
                    }
                }
                Some(_) => {}
            }
            if t.chunk != Some((info.offset, info.description)) {
                t.tables.start_chunk(info.offset, info.description);
            }
            let cts = i32::try_from(info.cts_offset).map_err(|_| Mp4Error::Unsupported {
                what: format!("composition offset of track {}", self.movie.tracks[s.track].track_id),
                offset: info.offset,
                reason: format!("{} does not fit the 32 bits of 'ctts'", info.cts_offset),
            })?;
            if t.tables.sample_count() < FIRST_PTS_SAMPLES {
                let pts = info.dts.saturating_add(info.cts_offset);
                t.first_pts = Some(t.first_pts.map_or(pts, |p| p.min(pts)));
            }
            t.tables.push(info.size, info.duration, cts, info.sync);
            t.tables.set_dependency((s.flags >> 20) as u8);
            t.last_dts = info.dts;
            t.last_cts = info.cts_offset;
            t.end_dts = info.dts.saturating_add(info.duration as i64);
            t.pts_end = t.pts_end.max(t.end_dts.saturating_add(info.cts_offset));
            t.pts_last_start = t.pts_last_start.max(info.dts.saturating_add(info.cts_offset));
            t.chunk = info.offset.checked_add(info.size as u64).map(|end| (end, info.description));
        }
        Ok(())
    }

    /// One line per oddity met while indexing, for the user.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (t, m) in self.tracks.iter().zip(&self.movie.tracks) {
            if t.overlaps > 0 {
                notes.push(format!(
                    "track {}: decode times went backwards or stood still {} times between fragments; \
                     sample durations kept there",
                    m.track_id, t.overlaps
                ));
            }
        }
        notes
    }

    /// Where every track goes on the timeline ([`crate::formats::timeline`]): the same
    /// rule the muxers follow.
    fn plan(&self) -> Plan {
        let movie_ts = self.movie.timescale;
        let starts: Vec<Option<MediaStart>> =
            self.tracks.iter().map(|t| Some(MediaStart { first_dts: t.first_dts?, first_pts: t.first_pts? })).collect();
        timeline::plan(
            self.movie.tracks.iter().map(|m| Timing {
                timescale: m.timescale,
                movie_timescale: movie_ts,
                edits: &m.edits,
            }),
            &starts,
        )
    }

    fn timing(&self, i: usize, plan: &TrackPlan) -> Result<TrackTiming, Mp4Error> {
        let t = &self.tracks[i];
        let m = &self.movie.tracks[i];
        let movie_ts = self.movie.timescale;
        let media_duration = t.tables.duration();
        if t.tables.sample_count() == 0 {
            return Ok(TrackTiming { media_duration: 0, track_duration_movie: 0, edits: None });
        }
        // A regular file's media timeline starts at its first sample: the plan moved it
        // there (its media shift is the first decode time) and rebuilt the edits.
        let shift = t.first_dts.unwrap_or(0);
        let mut edits: Vec<Edit> = plan.mp4_edits(movie_ts);
        if plan.kept_edits.is_some() {
            let extra = shift.saturating_sub(plan.media_shift);
            for e in edits.iter_mut().filter(|e| e.media_time_ticks >= 0) {
                e.media_time_ticks = e.media_time_ticks.saturating_sub(extra).max(0);
            }
        }
        // The last edit that shows media ends with the media (0 in a fragmented file
        // means "to the end"; a crash leaves less media than the recorder announced).
        let media_end = t.pts_end.saturating_sub(shift).max(0) as u64;
        if let Some(e) = edits.iter_mut().rev().find(|e| e.media_time_ticks >= 0) {
            let left = media_end.saturating_sub(e.media_time_ticks as u64);
            let avail = rescale_up(left, movie_ts, m.timescale);
            // An edit that ends with the media covers a last sample of 0 ticks too, which
            // starts where the media ends (FFmpeg shows it from the fragmented file, and
            // leaves it out of a regular one whose edit ends there).
            let last_start = t.pts_last_start.saturating_sub(shift).max(0) as u64;
            let cover = match last_start >= media_end {
                true => rescale_up(
                    last_start.saturating_add(1).saturating_sub(e.media_time_ticks as u64),
                    movie_ts,
                    m.timescale,
                ),
                false => avail,
            };
            let to_end = e.segment_duration_movie_ticks == 0 || self.edits_run_to_media_end;
            if to_end || e.segment_duration_movie_ticks >= avail {
                e.segment_duration_movie_ticks = cover.max(avail);
            }
        }
        if edits.is_empty() {
            let track_duration_movie = rescale_up(media_duration, movie_ts, m.timescale);
            return Ok(TrackTiming { media_duration, track_duration_movie, edits: None });
        }
        let track_duration_movie = edits
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.segment_duration_movie_ticks))
            .ok_or_else(|| Mp4Error::Unsupported {
                what: format!("edit list of track {}", m.track_id),
                offset: self.moov_offset,
                reason: format!("its {} segment durations add up to more than 64 bits can hold", edits.len()),
            })?;
        Ok(TrackTiming { media_duration, track_duration_movie, edits: Some(edits) })
    }

    /// The regular `moov`: the fragmented one with full sample tables and no `mvex`.
    pub fn final_moov(&self) -> Result<Bytes, Mp4Error> {
        let plan = self.plan();
        let timings =
            plan.tracks.iter().enumerate().map(|(i, p)| self.timing(i, p)).collect::<Result<Vec<TrackTiming>, _>>()?;
        let movie_duration = timings.iter().map(|t| t.track_duration_movie).max().unwrap_or(0);
        let tables_len: usize = self.tracks.iter().map(|t| t.tables.encoded_len()).sum();
        let mut out = BytesMut::with_capacity(self.moov.len() + tables_len + 64 * self.tracks.len());
        let hl = self.moov_header_len as usize;
        let moov = Reader::new(&self.moov[hl..], self.moov_offset + hl as u64, FourCc::new(b"moov"));
        let start = open(&mut out, b"moov");
        // A `moov` without `mvhd` (or with its timescale 0) gets one: readers need it.
        let mut has_mvhd = false;
        for child in moov.children() {
            has_mvhd |= child?.fourcc.0 == *b"mvhd";
        }
        if !has_mvhd {
            let next_id = self.movie.tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1);
            write_mvhd(&mut out, self.movie.timescale, movie_duration, next_id);
        }
        let mut trak_index = 0;
        for child in moov.children() {
            let child = child?;
            match &child.fourcc.0 {
                b"mvhd" => rewrite_timed(&mut out, &child, Some(self.movie.timescale), movie_duration)?,
                b"mvex" => {}
                b"trak" => {
                    // parse_movie keeps every trak, in order.
                    let i = trak_index;
                    trak_index += 1;
                    let (Some(t), Some(timing)) = (self.tracks.get(i), timings.get(i)) else {
                        return Err(child.reader().error("more 'trak' boxes than tracks"));
                    };
                    rewrite_trak(&mut out, &child.reader(), &t.tables, timing)?;
                }
                _ => out.put_slice(child.data),
            }
        }
        close(&mut out, start);
        Ok(out.freeze())
    }
}

fn write_edits(out: &mut BytesMut, edits: &[Edit]) {
    let entries: Vec<_> =
        edits.iter().map(|e| (e.segment_duration_movie_ticks, e.media_time_ticks, e.media_rate_integer)).collect();
    write_edts(out, &entries);
}

fn rewrite_trak(
    out: &mut BytesMut,
    trak: &Reader<'_>,
    tables: &TableBuilder,
    timing: &TrackTiming,
) -> Result<(), Mp4Error> {
    let start = open(out, b"trak");
    let mut has_edts = false;
    for c in trak.children() {
        has_edts |= c?.fourcc.0 == *b"edts";
    }
    for c in trak.children() {
        let c = c?;
        match &c.fourcc.0 {
            b"tkhd" => {
                rewrite_timed(out, &c, None, timing.track_duration_movie)?;
                if let (false, Some(edits)) = (has_edts, &timing.edits) {
                    write_edits(out, edits);
                }
            }
            b"edts" => {
                if let Some(edits) = &timing.edits {
                    write_edits(out, edits);
                }
            }
            b"mdia" => {
                let mdia = open(out, b"mdia");
                for m in c.reader().children() {
                    let m = m?;
                    match &m.fourcc.0 {
                        b"mdhd" => rewrite_timed(out, &m, None, timing.media_duration)?,
                        b"minf" => {
                            let minf = open(out, b"minf");
                            for n in m.reader().children() {
                                let n = n?;
                                if n.fourcc.0 == *b"stbl" {
                                    rewrite_stbl(out, &n.reader(), tables)?;
                                } else {
                                    out.put_slice(n.data);
                                }
                            }
                            close(out, minf);
                        }
                        _ => out.put_slice(m.data),
                    }
                }
                close(out, mdia);
            }
            _ => out.put_slice(c.data),
        }
    }
    close(out, start);
    Ok(())
}

/// Sample-table boxes the fragmented `stbl` may hold (empty) that the new tables replace,
/// or that describe samples per fragment and have no meaning left.
const REPLACED_TABLES: [&[u8; 4]; 16] = [
    b"stts", b"ctts", b"cslg", b"stss", b"stps", b"sdtp", b"stsz", b"stz2", b"stsc", b"stco", b"co64", b"sbgp",
    b"subs", b"saiz", b"saio", b"padb",
];

fn rewrite_stbl(out: &mut BytesMut, stbl: &Reader<'_>, tables: &TableBuilder) -> Result<(), Mp4Error> {
    let start = open(out, b"stbl");
    for c in stbl.children() {
        let c = c?;
        if !REPLACED_TABLES.contains(&&c.fourcc.0) {
            out.put_slice(c.data);
        }
    }
    tables.write(out);
    close(out, start);
    Ok(())
}

/// Where things are in a fragmented file, as [`plan_steps`] needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// A `free` box reserved before the fragmented `moov`: (offset, total size).
    pub reserve: Option<(u64, u64)>,
    /// Offset of the fragmented `moov`.
    pub moov_offset: u64,
    /// End of the last complete fragment (T).
    pub end: u64,
    /// Length of the file; past `end`, it is cut first.
    pub len: u64,
}

/// Whether `len` bytes at `offset` lie inside one sector.
fn in_one_sector(offset: u64, len: u64) -> bool {
    offset % SECTOR + len <= SECTOR
}

/// An `mdat` header for a box of `size` bytes (header included), 32-bit when `compact`
/// and the size fits.
fn mdat_header(size: u64, compact: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    if compact && size <= u32::MAX as u64 {
        h.extend_from_slice(&(size as u32).to_be_bytes());
        h.extend_from_slice(b"mdat");
    } else {
        h.extend_from_slice(&1u32.to_be_bytes());
        h.extend_from_slice(b"mdat");
        h.extend_from_slice(&size.to_be_bytes());
    }
    h
}

/// The writes that turn the fragmented file described by `layout` into a regular MP4 with
/// the given `moov` (from [`FragmentIndex::final_moov`]), in the order of the module doc.
pub fn plan_steps(layout: &Layout, moov: Bytes) -> FinalizePlan {
    let mut plan = FinalizePlan::default();
    let end = layout.end;
    if layout.len > end {
        plan.steps.push(WriteStep::Truncate { len: end });
    }
    let s = moov.len() as u64;
    if let Some((f, r)) = layout.reserve {
        // The mdat after the moov runs from F+S to T; its header is 16 bytes only when
        // 32 bits cannot hold its size.
        let mdat_size = end.saturating_sub(f + s);
        let header = mdat_header(mdat_size, true);
        if s + (header.len() as u64) <= r && in_one_sector(f, 8) {
            let mut data = BytesMut::with_capacity(moov.len() - 8 + header.len());
            data.put_slice(&moov[8..]);
            data.put_slice(&header);
            plan.steps.push(WriteStep::Write { offset: f + 8, data: data.freeze() });
            plan.steps.push(WriteStep::Write { offset: f, data: moov.slice(..8) });
            plan.notes.push(format!(
                "faststart: the {s}-byte moov fits the {r} bytes reserved at offset {f}: \
                 it goes before the media, which is not moved"
            ));
            return plan;
        }
    }
    // moov at the end: hidden in a trailing free box first, then revealed by the switch.
    let (switch_at, why) = match layout.reserve {
        Some((f, r)) if r >= 16 && in_one_sector(f, 16) => {
            (f, format!("it does not fit the {r} bytes reserved at offset {f}"))
        }
        _ => (layout.moov_offset, "no free space is reserved before the index for it".to_string()),
    };
    let mut tail = BytesMut::with_capacity(moov.len() + 8);
    tail.put_u32((s + 8) as u32);
    tail.put_slice(b"free");
    tail.put_slice(&moov);
    plan.steps.push(WriteStep::Write { offset: end, data: tail.freeze() });
    let header = mdat_header(end + 8 - switch_at, !in_one_sector(switch_at, 16));
    if !in_one_sector(switch_at, header.len() as u64) {
        plan.notes.push(format!(
            "the {}-byte switch at offset {switch_at} crosses a {SECTOR}-byte sector boundary: \
             it is atomic only on devices that write 4 KiB pages whole",
            header.len()
        ));
    }
    plan.steps.push(WriteStep::Write { offset: switch_at, data: header.into() });
    plan.notes.push(format!("moov at the end ({s} bytes; {why}): the media is not moved"));
    plan
}

/// What [`scan`] found.
#[derive(Debug)]
pub enum Scanned {
    /// A regular MP4 already (its `moov` has no `mvex`): sample counts per track.
    Regular { samples: Vec<u32> },
    /// A fragmented MP4: its index up to the last complete fragment, and where things are.
    Fragmented { index: Box<FragmentIndex>, layout: Layout, notes: Vec<String> },
}

/// Reads `n` bytes at `offset`.
fn read_at<R: Read + Seek>(r: &mut R, offset: u64, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// A top-level box: offset, header length, size (to the end of the file for size 0).
#[derive(Clone, Copy, Debug)]
struct TopBox {
    offset: u64,
    fourcc: FourCc,
    header_len: u32,
    size: u64,
    /// Size 0 in the file: runs to the end.
    open_ended: bool,
}

impl TopBox {
    fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// How the walk over top-level boxes ended before the end of the file.
enum Stop {
    /// Clean: the last box ends at the end of the file.
    End,
    /// A box runs past the end of the file, or a header is cut.
    Cut(u64),
    /// Bytes that are no box header.
    Garbage(u64, Mp4Error),
}

/// The box whose header starts at `offset`, or why there is none.
fn top_box<R: Read + Seek>(r: &mut R, offset: u64, len: u64) -> Result<Result<TopBox, Stop>, std::io::Error> {
    if offset >= len {
        return Ok(Err(Stop::End));
    }
    let n = (len - offset).min(32) as usize;
    let head = read_at(r, offset, n)?;
    match parse_header(&head, offset) {
        Ok(HeaderParse::NeedMore) => Ok(Err(Stop::Cut(offset))),
        Err(e) => Ok(Err(Stop::Garbage(offset, e))),
        Ok(HeaderParse::Header(h)) => {
            let size = h.size.unwrap_or(len - offset);
            if offset.saturating_add(size) > len {
                return Ok(Err(Stop::Cut(offset)));
            }
            Ok(Ok(TopBox { offset, fourcc: h.fourcc, header_len: h.header_len, size, open_ended: h.size.is_none() }))
        }
    }
}

fn is_padding(f: FourCc) -> bool {
    matches!(&f.0, b"free" | b"skip" | b"wide")
}

/// Reads a file's top-level boxes, its `moov` and every `moof` (seeking over media), and
/// indexes every complete fragment.
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> Result<Scanned, FinalizeMp4Error> {
    // Up to the moov: remember the run of padding boxes just before it.
    let mut offset = 0;
    let mut padding: Vec<TopBox> = Vec::new();
    // No moov before the first fragment or the end: the file may be one finalized while
    // its recorder kept writing over the new moov (see `scan_hidden`).
    let moov = loop {
        let b = match top_box(r, offset, len)? {
            Ok(b) => b,
            Err(stop) => {
                if let Some(hidden) = scan_hidden(r, len)? {
                    return Ok(hidden);
                }
                return Err(FinalizeMp4Error::Unusable(match stop {
                    Stop::Cut(at) => format!(
                        "no complete 'moov' box: the file is cut at offset {at} before one; \
                         a recording without its index needs `livemux recover` with a reference"
                    ),
                    Stop::End | Stop::Garbage(..) => "no 'moov' box: not an MP4 that can be finalized; a recording \
                                                      without its index needs `livemux recover` with a reference"
                        .into(),
                }));
            }
        };
        match &b.fourcc.0 {
            b"moov" => break b,
            b"moof" => {
                if let Some(hidden) = scan_hidden(r, len)? {
                    return Ok(hidden);
                }
                return Err(FinalizeMp4Error::Unusable(format!(
                    "a 'moof' at offset {} comes before any 'moov'",
                    b.offset
                )));
            }
            _ if is_padding(b.fourcc) && b.offset > 0 => padding.push(b),
            _ => padding.clear(),
        }
        if b.open_ended {
            if let Some(hidden) = scan_hidden(r, len)? {
                return Ok(hidden);
            }
            return Err(FinalizeMp4Error::Unusable(format!(
                "no 'moov' box before the '{}' box at offset {} that runs to the end of the file",
                b.fourcc, b.offset
            )));
        }
        offset = b.end();
    };
    if moov.size > MAX_META_BOX {
        return Err(Mp4Error::TooLarge {
            what: "'moov' box".into(),
            offset: moov.offset,
            size: moov.size,
            limit: MAX_META_BOX,
        }
        .into());
    }
    let data: Bytes = read_at(r, moov.offset, moov.size as usize)?.into();
    let movie = parse_movie(&data, moov.offset, moov.header_len)?;
    if !movie.fragmented {
        let samples = movie.tracks.iter().map(|t| t.table.sample_count).collect();
        return match first_moof_after(r, moov.end(), len)? {
            None => Ok(Scanned::Regular { samples }),
            Some(stray) => scan_mixed(r, len, &moov, &movie, stray),
        };
    }
    let mut index = FragmentIndex::in_file(data, moov.offset, moov.header_len, len)?;
    let reserve = padding.iter().filter(|b| b.size >= 16).max_by_key(|b| (b.size, u64::MAX - b.offset));
    let reserve = reserve.map(|b| (b.offset, b.size));
    let walk = index_fragments(r, len, &mut index, moov.end())?;
    let notes = walk.notes(len, &index);
    let layout = Layout { reserve, moov_offset: moov.offset, end: walk.end, len };
    Ok(Scanned::Fragmented { index: Box::new(index), layout, notes })
}

/// What [`index_fragments`] found.
struct FragmentWalk {
    /// End of the last complete fragment (T).
    end: u64,
    /// Complete fragments, and the offset of each one's `moof`.
    moofs: Vec<u64>,
    damaged: Option<(u64, Mp4Error)>,
    stop: Stop,
    /// The `moof` of the first fragment whose media is not all in the file.
    incomplete: Option<u64>,
}

impl FragmentWalk {
    /// The notes for the user: what is cut, what the index holds.
    fn notes(&self, len: u64, index: &FragmentIndex) -> Vec<String> {
        let mut notes = Vec::new();
        if len > self.end {
            let what = match (&self.damaged, &self.stop, self.incomplete) {
                (Some((at, e)), _, _) => format!("a damaged fragment at offset {at} ({e}) and what follows it"),
                (None, _, Some(at)) => format!("an incomplete last fragment (its moof is at offset {at})"),
                (None, Stop::Cut(at), None) => format!("a box cut short at offset {at}"),
                (None, Stop::Garbage(at, e), None) => format!("bytes that are no box at offset {at} ({e})"),
                (None, Stop::End, None) => "boxes after the last fragment".to_string(),
            };
            notes.push(format!("cut {} bytes at offset {}: {what}", len - self.end, self.end));
        }
        notes.extend(index.notes());
        notes.push(format!(
            "{} fragments, {} samples",
            self.moofs.len(),
            index.sample_counts().iter().map(|&n| n as u64).sum::<u64>()
        ));
        notes
    }
}

/// Walks the top-level boxes from `from` (the end of the fragmented `moov`) and adds every
/// complete fragment to `index`: parsed when its `moof` is read, added once the media it
/// points at is inside complete boxes. Refuses a damaged fragment followed by complete ones.
fn index_fragments<R: Read + Seek>(
    r: &mut R,
    len: u64,
    index: &mut FragmentIndex,
    from: u64,
) -> Result<FragmentWalk, FinalizeMp4Error> {
    let mut pending: std::collections::VecDeque<(Vec<FragSample>, u64, u64)> = Default::default();
    let mut end = from;
    let mut moofs = Vec::new();
    let mut damaged: Option<(u64, Mp4Error)> = None;
    let mut offset = from;
    let stop = loop {
        let b = match top_box(r, offset, len)? {
            Ok(b) => b,
            Err(stop) => break stop,
        };
        if b.open_ended && b.fourcc.0 != *b"mdat" {
            break Stop::Garbage(b.offset, Mp4Error::invalid(format!("'{}' box", b.fourcc), b.offset, "size 0"));
        }
        if b.fourcc.0 == *b"moof" {
            if let Some((at, _)) = &damaged {
                return Err(FinalizeMp4Error::Unusable(format!(
                    "the fragment at offset {at} is damaged and complete fragments follow it \
                     (offset {}): not cutting them off; `livemux remux` copies what is readable",
                    b.offset
                )));
            }
            if b.size > MAX_MOOF {
                damaged = Some((
                    b.offset,
                    Mp4Error::TooLarge { what: "'moof' box".into(), offset: b.offset, size: b.size, limit: MAX_MOOF },
                ));
            } else {
                let data = read_at(r, b.offset, b.size as usize)?;
                match index.parse_fragment(&data, b.offset, b.header_len) {
                    Ok(samples) => {
                        // An end past 64 bits is past the file: the fragment never completes.
                        let max_end =
                            samples.iter().map(|s| s.info.offset.saturating_add(s.info.size as u64)).max().unwrap_or(0);
                        pending.push_back((samples, b.offset, max_end));
                    }
                    Err(e) => damaged = Some((b.offset, e)),
                }
            }
        }
        if damaged.is_none() {
            while pending.front().is_some_and(|(_, _, max_end)| *max_end <= b.end()) {
                let (samples, at, _) = pending.pop_front().expect("a pending fragment");
                index.add(&samples)?;
                end = b.end();
                moofs.push(at);
            }
        }
        offset = b.end();
    };
    if index.fragments() == 0 {
        return Err(FinalizeMp4Error::Unusable(match damaged {
            Some((at, e)) => format!("no complete fragment before the damaged one at offset {at}: {e}"),
            None => "no complete fragment: the recording stopped before its first fragment was written".into(),
        }));
    }
    let incomplete = pending.front().map(|(_, at, _)| *at);
    Ok(FragmentWalk { end, moofs, damaged, stop, incomplete })
}

/// The first top-level `moof` at or after `from`, if the boxes from there lead to one.
fn first_moof_after<R: Read + Seek>(r: &mut R, from: u64, len: u64) -> std::io::Result<Option<TopBox>> {
    let mut offset = from;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.fourcc.0 == *b"moof" {
            return Ok(Some(b));
        }
        if b.open_ended {
            break;
        }
        offset = b.end();
    }
    Ok(None)
}

/// Bytes of an `mdat` searched for the fragmented `moov` of a file finalized while its
/// recorder kept writing (the reserve that preceded it is at most this large).
pub const MAX_OLD_MOOV_SEARCH: u64 = 256 << 20;

/// The fragmented `moov` a file was finalized from, inside the top-level `mdat` boxes
/// before `until` (finalizing covers it with the `mdat`): the first `moov` box there that
/// parses, is fragmented and declares the same track ids, in order, as `regular` (if
/// given). Returns the `mdat`, the `moov` and its bytes.
fn find_old_moov<R: Read + Seek>(
    r: &mut R,
    len: u64,
    regular: Option<&Movie>,
    until: u64,
) -> Result<Option<(TopBox, TopBox, Bytes)>, FinalizeMp4Error> {
    const BLOCK: usize = 1 << 20;
    let ids: Option<Vec<u32>> = regular.map(|m| m.tracks.iter().map(|t| t.track_id).collect());
    let mut offset = 0;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.offset >= until {
            break;
        }
        if b.fourcc.0 == *b"mdat" {
            if let Some((cand, data)) = overwritten_moov(r, &b)? {
                if let Ok(movie) = parse_movie(&data, cand.offset, cand.header_len) {
                    let same_ids =
                        ids.as_ref().is_none_or(|ids| movie.tracks.iter().map(|t| t.track_id).eq(ids.iter().copied()));
                    if movie.fragmented && !movie.tracks.is_empty() && same_ids {
                        return Ok(Some((b, cand, data)));
                    }
                }
            }
            let (from, to) = (b.offset + b.header_len as u64, b.end().min(b.offset + MAX_OLD_MOOV_SEARCH));
            let mut at = from;
            while at + 8 <= to {
                let n = (to - at).min(BLOCK as u64 + 16) as usize;
                let buf = read_at(r, at, n)?;
                for i in buf.windows(4).enumerate().filter(|(_, w)| *w == b"moov").map(|(i, _)| i) {
                    let Some(start) = (at + i as u64).checked_sub(4).filter(|&s| s >= from) else { continue };
                    let Ok(Ok(cand)) = top_box(r, start, b.end()) else { continue };
                    if cand.fourcc.0 != *b"moov" || cand.size > MAX_META_BOX || cand.size < 16 {
                        continue;
                    }
                    // Read a candidate only if its first child looks like a moov's.
                    let first = read_at(r, cand.offset + cand.header_len as u64, 8)?;
                    let child = u32::from_be_bytes(first[..4].try_into().expect("4 bytes")) as u64;
                    let plausible = matches!(&first[4..8], b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods");
                    if !plausible || child < 8 || child > cand.size - cand.header_len as u64 {
                        continue;
                    }
                    let data: Bytes = read_at(r, cand.offset, cand.size as usize)?.into();
                    let Ok(movie) = parse_movie(&data, cand.offset, cand.header_len) else { continue };
                    let same_ids =
                        ids.as_ref().is_none_or(|ids| movie.tracks.iter().map(|t| t.track_id).eq(ids.iter().copied()));
                    if movie.fragmented && !movie.tracks.is_empty() && same_ids {
                        return Ok(Some((b, cand, data)));
                    }
                }
                if n < BLOCK + 16 {
                    break;
                }
                at += BLOCK as u64;
            }
        }
        if b.open_ended {
            break;
        }
        offset = b.end();
    }
    Ok(None)
}

/// The fragmented `moov` under the header of `mdat`, rebuilt: without a reserve, the
/// switch of a `moov` at the end is written over the fragmented `moov`'s header and, with
/// a 16-byte `mdat` header, its `mvhd`'s header. The rest is intact: the `mvhd` body (whose
/// size its version gives), then the other children up to the first box that no `moov`
/// holds (the first `moof`). `None` if the bytes do not read that way.
fn overwritten_moov<R: Read + Seek>(r: &mut R, mdat: &TopBox) -> Result<Option<(TopBox, Bytes)>, FinalizeMp4Error> {
    let (m, h) = (mdat.offset, mdat.header_len as u64);
    let child = |fourcc: &[u8]| matches!(fourcc, b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods" | b"free");
    let head = |r: &mut R, at: u64| -> std::io::Result<Option<(u64, [u8; 4])>> {
        if at.saturating_add(8) > mdat.end() {
            return Ok(None);
        }
        let b = read_at(r, at, 8)?;
        let size = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as u64;
        Ok(Some((size, b[4..8].try_into().expect("4 bytes"))))
    };
    // The first child: an intact mvhd (8-byte mdat header) or its body (16 bytes).
    let (mut at, mvhd_header) = match h {
        8 => match head(r, m + 8)? {
            Some((size, f)) if &f == b"mvhd" && (108..=120).contains(&size) => (m + 8 + size, None),
            _ => return Ok(None),
        },
        16 => {
            let Some(&[version, 0, 0, 0]) = read_at(r, m + 16, 4).ok().as_deref() else { return Ok(None) };
            let size = match version {
                0 => 108u64,
                1 => 120,
                _ => return Ok(None),
            };
            (m + 8 + size, Some(size))
        }
        _ => return Ok(None),
    };
    let mut traks = 0;
    while let Some((size, f)) = head(r, at)? {
        if !child(&f) || size < 8 || at + size > mdat.end() {
            break;
        }
        traks += (&f == b"trak") as usize;
        at += size;
    }
    let size = at - m;
    if traks == 0 || size > MAX_META_BOX {
        return Ok(None);
    }
    let mut data = BytesMut::with_capacity(size as usize);
    data.put_u32(size as u32);
    data.put_slice(b"moov");
    if let Some(mvhd) = mvhd_header {
        data.put_u32(mvhd as u32);
        data.put_slice(b"mvhd");
    }
    data.put_slice(&read_at(r, m + h, (at - m - h) as usize)?);
    let cand = TopBox { offset: m, fourcc: FourCc::new(b"moov"), header_len: 8, size, open_ended: false };
    Ok(Some((cand, data.freeze())))
}

/// A file with no top-level `moov` whose first `mdat` hides a fragmented `moov` and its
/// fragments, which go on past the `mdat`'s end: `livemux finalize` put the index at the
/// end (behind a reserve too small for it) while the recorder was still writing, and the
/// recorder's next fragment went over the new `moov`. The index is built from the hidden
/// `moov` over every fragment, and the switch rewrites that `mdat`'s header. `None` when
/// the file is not in that state.
fn scan_hidden<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Scanned>, FinalizeMp4Error> {
    let Some((mdat, old, data)) = find_old_moov(r, len, None, len)? else { return Ok(None) };
    // Not that state after all: the caller reports the missing moov.
    let Ok(mut index) = FragmentIndex::in_file(data, old.offset, old.header_len, len) else { return Ok(None) };
    let Ok(walk) = index_fragments(r, len, &mut index, old.end()) else { return Ok(None) };
    // The switch rewrites the mdat header: it may go over the old moov (read already),
    // never over media, which starts after it.
    let header = if in_one_sector(mdat.offset, 16) { 16 } else { 8 };
    if walk.end <= mdat.end() || mdat.offset + header > old.end() {
        return Ok(None);
    }
    let mut notes = vec![format!(
        "no top-level moov: the mdat at offset {} hides the fragmented moov (offset {}) of fragments that go on \
         past its end (offset {}): it was finalized while its recorder was still writing, which then wrote over \
         the new moov; its later fragments are indexed with the rest",
        mdat.offset,
        old.offset,
        mdat.end()
    )];
    notes.extend(walk.notes(len, &index));
    let layout = Layout { reserve: None, moov_offset: mdat.offset, end: walk.end, len };
    Ok(Some(Scanned::Fragmented { index: Box::new(index), layout, notes }))
}

/// A regular MP4 followed by fragments: `livemux finalize` ran while the recorder was
/// still appending fragments, which then referred to a `moov` that no longer has `mvex`
/// (FFmpeg: "trun track id unknown, no tfhd"). The fragmented `moov` it was finalized
/// from is still in the file, inside the `mdat`, and so is every fragment before the
/// finalize: the index is built again from it over all fragments, the stray ones
/// included, as if the finalize had run at the end. The switch goes over the first box
/// of the regular layout (the regular `moov` before its `mdat`, or the `mdat` before it),
/// so the new `mdat` covers the old index and every fragment: the plan is the one of a
/// `moov` at the end, and a crash before the switch leaves the file as it was.
fn scan_mixed<R: Read + Seek>(
    r: &mut R,
    len: u64,
    regular_moov: &TopBox,
    regular: &Movie,
    stray: TopBox,
) -> Result<Scanned, FinalizeMp4Error> {
    let mixed = format!(
        "a regular MP4 (moov at offset {}) followed by fragments (the first 'moof' at offset {}): it was \
         finalized while its recorder was still writing",
        regular_moov.offset, stray.offset
    );
    let Some((_, old, data)) = find_old_moov(r, len, Some(regular), stray.offset)? else {
        return Err(FinalizeMp4Error::Unusable(format!(
            "{mixed}, and the fragmented moov it was finalized from is not found in its mdat, so the fragments \
             after it cannot be indexed; `livemux remux` copies what the regular moov indexes"
        )));
    };
    // The first box of the regular layout after the leading boxes: the regular moov
    // (faststart) or the mdat before it (moov at the end); its header takes the switch.
    let mut switch_at = regular_moov.offset;
    let mut offset = 0;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.offset >= regular_moov.offset {
            break;
        }
        if b.fourcc.0 == *b"mdat" && b.end() > old.offset {
            switch_at = b.offset;
            break;
        }
        offset = b.end();
    }
    let mut index = FragmentIndex::in_file(data, old.offset, old.header_len, len)?;
    let walk = index_fragments(r, len, &mut index, old.end())?;
    let stray_fragments = walk.moofs.iter().filter(|&&at| at >= stray.offset).count();
    let counts = index.sample_counts();
    let regular_counts = regular.tracks.iter().map(|t| t.table.sample_count);
    if stray_fragments == 0 || counts.iter().zip(regular_counts).any(|(&n, r)| n < r) {
        return Err(FinalizeMp4Error::Unusable(format!(
            "{mixed}, but the fragmented moov found at offset {} and its fragments do not hold what the regular \
             moov indexes plus the fragments after it; not changing the file",
            old.offset
        )));
    }
    let mut notes = vec![format!(
        "{mixed}; its {stray_fragments} later fragments are indexed with the rest, from the fragmented moov at \
         offset {}",
        old.offset
    )];
    notes.extend(walk.notes(len, &index));
    let layout = Layout { reserve: None, moov_offset: switch_at, end: walk.end, len };
    Ok(Scanned::Fragmented { index: Box::new(index), layout, notes })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::{CodecConfig, Dimensions};
    use crate::formats::fragmenter::FragmentPolicy;
    use crate::formats::mp4::file::top_level;
    use crate::formats::mp4::regular::RegularMp4Muxer;
    use crate::formats::mp4::sample_table::SampleInfo;
    use crate::formats::Muxer;
    use crate::model::{FragmentKind, Packet, Track, TrackKind};
    use std::io::Cursor;
    use std::sync::Arc;

    fn track(kind: TrackKind, timescale: u32, edits: Vec<Edit>) -> Track {
        let (codec, entry) = match kind {
            TrackKind::Video => (CodecConfig::Vp8 { dims: Dimensions { width: 64, height: 48 } }, None),
            _ => {
                // An audio entry livemux does not know: written back verbatim.
                let mut e = vec![0, 0, 0, 36, b'x', b'a', b'u', b'd', 0, 0, 0, 0, 0, 0, 0, 1];
                e.extend_from_slice(&[0; 8]);
                e.extend_from_slice(&[0, 2, 0, 16, 0, 0, 0, 0, 0xBB, 0x80, 0, 0]);
                (CodecConfig::Unknown { fourcc: *b"xaud", dims: None, audio: None }, Some(Bytes::from(e)))
            }
        };
        Track { edits, mp4_sample_entry: entry, ..Track::for_test(kind, timescale, codec) }
    }

    /// Video at 30 fps (every 30th a keyframe, some B-frame-like offsets, one negative)
    /// and audio at 48 kHz in 1024-sample frames, interleaved by time, `secs` long.
    fn packets(secs: i64, audio_start: i64) -> Vec<Packet> {
        let mut out = Vec::new();
        let mut n = 0u8;
        let mut payload = |len: usize| {
            n = n.wrapping_add(1);
            Bytes::from(vec![n; len])
        };
        let (mut v, mut a) = (0i64, 0i64);
        while v < secs * 30 || a * 1024 < secs * 48_000 {
            let v_time = v * 1000 / 30;
            let a_time = audio_start * 1000 / 48_000 + a * 1024 * 1000 / 48_000;
            if v < secs * 30 && (v_time <= a_time || a * 1024 >= secs * 48_000) {
                let dts = v * 512;
                let cts = match v % 3 {
                    1 => 1024,
                    2 if v == 5 => -256,
                    _ => 0,
                };
                out.push(Packet {
                    track: 0,
                    dts_ticks: dts,
                    pts_ticks: dts + cts,
                    duration_ticks: 512,
                    keyframe: v % 30 == 0,
                    data: payload(100 + (v as usize * 7) % 50).into(),
                });
                v += 1;
            } else {
                let dts = audio_start + a * 1024;
                out.push(Packet {
                    track: 1,
                    dts_ticks: dts,
                    pts_ticks: dts,
                    duration_ticks: 1024,
                    keyframe: true,
                    data: payload(20 + (a as usize % 5)).into(),
                });
                a += 1;
            }
        }
        out
    }

    struct Muxed {
        /// The file as written while recording.
        recorded: Vec<u8>,
        steps: Vec<WriteStep>,
        notes: Vec<String>,
    }

    fn mux(tracks: Vec<Track>, packets: &[Packet], reserve: u64) -> Muxed {
        let mut m = RegularMp4Muxer::with_reserve_bytes(Arc::new(tracks.into()), FragmentPolicy::default(), reserve);
        let mut frags = vec![m.header().unwrap()];
        for p in packets {
            frags.extend(m.push(p.clone()).unwrap());
        }
        frags.extend(m.finish().unwrap());
        let mut recorded = Vec::new();
        let mut steps = Vec::new();
        for f in frags {
            if f.kind == FragmentKind::Finalize {
                steps.push(WriteStep::Write { offset: f.offset, data: f.to_bytes() });
            } else {
                assert_eq!(f.offset, recorded.len() as u64);
                recorded.extend_from_slice(&f.to_bytes());
            }
        }
        Muxed { recorded, steps, notes: m.notes() }
    }

    fn apply(file: &mut Vec<u8>, steps: &[WriteStep]) {
        crate::formats::plan::apply_in_memory(file, &[], steps);
    }

    /// The samples of a regular file, per track, read with the crate's table reader.
    fn regular_samples(file: &[u8]) -> Vec<Vec<SampleInfo>> {
        let boxes = top_level(&mut Cursor::new(file), file.len() as u64).unwrap();
        let names: Vec<_> = boxes.iter().map(|(_, h)| h.fourcc.to_string()).collect();
        assert!(names.iter().all(|n| n != "moof" && n != "free"), "{names:?}");
        assert_eq!(boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moov").count(), 1, "{names:?}");
        let Scanned::Regular { .. } = scan(&mut Cursor::new(file), file.len() as u64).unwrap() else {
            panic!("not regular: {names:?}")
        };
        let (offset, hl, moov) =
            crate::formats::mp4::file::read_moov(&mut Cursor::new(file), file.len() as u64).unwrap().unwrap();
        let movie = parse_movie(&moov, offset, hl).unwrap();
        assert!(!movie.fragmented);
        movie.tracks.iter().map(|t| t.table.samples().map(|s| s.unwrap()).collect()).collect()
    }

    /// Every packet is in the regular file with its bytes, times and flags.
    fn check_packets(file: &[u8], packets: &[Packet]) {
        let samples = regular_samples(file);
        for (track, samples) in samples.iter().enumerate() {
            let expected: Vec<&Packet> = packets.iter().filter(|p| p.track == track).collect();
            assert_eq!(samples.len(), expected.len(), "track {track}");
            for (s, p) in samples.iter().zip(expected) {
                let at = s.offset as usize;
                assert_eq!(&file[at..at + s.size as usize], &p.data.contiguous()[..], "track {track} {s:?}");
                assert_eq!(s.dts, p.dts_ticks - expected_first(packets, track), "track {track} {s:?}");
                assert_eq!(s.cts_offset, p.pts_ticks - p.dts_ticks);
                assert_eq!(s.sync, p.keyframe);
            }
        }
    }

    fn expected_first(packets: &[Packet], track: usize) -> i64 {
        packets.iter().find(|p| p.track == track).unwrap().dts_ticks
    }

    #[test]
    fn faststart_when_the_index_fits_the_reserve() {
        let packets = packets(5, 0);
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 64 << 10);
        assert!(m.notes.iter().any(|n| n.contains("faststart")), "{:?}", m.notes);
        // Two writes: moov body + mdat header inside the free box, then the 8-byte switch.
        assert_eq!(m.steps.len(), 2);
        let WriteStep::Write { offset: f, data } = &m.steps[1] else { panic!() };
        assert_eq!((data.len(), &data[4..8]), (8, &b"moov"[..]));
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        assert_eq!(file.len(), m.recorded.len(), "nothing appended");
        let boxes = top_level(&mut Cursor::new(&file), file.len() as u64).unwrap();
        let kinds: Vec<_> = boxes.iter().map(|(o, h)| (h.fourcc.to_string(), *o)).collect();
        assert_eq!(kinds[1], ("moov".to_string(), *f), "{kinds:?}");
        assert_eq!(kinds[2].0, "mdat", "{kinds:?}");
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        check_packets(&file, &packets);
        // Only bytes inside the reserved box were written.
        let end = m.steps.iter().map(|s| match s {
            WriteStep::Write { offset, data } => offset + data.len() as u64,
            _ => 0,
        });
        assert!(end.max().unwrap() <= f + (64 << 10));
    }

    #[test]
    fn moov_at_the_end_without_reserve_or_room() {
        let packets = packets(5, 0);
        for reserve in [0, 200] {
            let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
            let m = mux(tracks, &packets, reserve);
            assert!(m.notes.iter().any(|n| n.contains("moov at the end")), "{:?}", m.notes);
            let mut file = m.recorded.clone();
            apply(&mut file, &m.steps);
            let WriteStep::Write { offset, data } = &m.steps[1] else { panic!() };
            assert_eq!((data.len(), &data[4..8]), (16, &b"mdat"[..]));
            let ftyp = u32::from_be_bytes(m.recorded[..4].try_into().unwrap()) as u64;
            assert_eq!(*offset, ftyp, "the switch is over the free box or the moov right after ftyp");
            check_packets(&file, &packets);
        }
    }

    #[test]
    fn the_file_plan_equals_the_muxer_plan() {
        let packets = packets(4, 0);
        for reserve in [0, 64 << 10] {
            let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
            let m = mux(tracks, &packets, reserve);
            let p = plan(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
            assert_eq!(p.steps, m.steps, "reserve {reserve}");
        }
    }

    #[test]
    fn cut_tail_and_trailing_boxes_are_dropped_first() {
        let packets = packets(4, 0);
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 0);
        let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
        let last_moof = boxes.iter().rev().find(|(_, h)| h.fourcc.0 == *b"moof").unwrap().0 as usize;
        // Cut in the middle of the last fragment's media.
        let cut = &m.recorded[..m.recorded.len() - 30];
        let p = plan(&mut Cursor::new(cut), cut.len() as u64).unwrap();
        assert_eq!(p.steps[0], WriteStep::Truncate { len: last_moof as u64 });
        assert!(p.notes[0].contains("incomplete last fragment"), "{:?}", p.notes);
        let mut file = cut.to_vec();
        apply(&mut file, &p.steps);
        let samples = regular_samples(&file);
        let before_cut = |t: usize| packets.iter().filter(|p| p.track == t).count();
        assert!(samples[0].len() < before_cut(0) && !samples[0].is_empty());
        // A trailing mfra-like box after the last fragment is cut too.
        let mut extra = m.recorded.clone();
        extra.extend_from_slice(&[0, 0, 0, 16, b'm', b'f', b'r', b'a', 0, 0, 0, 8, b'm', b'f', b'r', b'o']);
        let p = plan(&mut Cursor::new(&extra), extra.len() as u64).unwrap();
        assert_eq!(p.steps[0], WriteStep::Truncate { len: m.recorded.len() as u64 });
        let mut file = extra.clone();
        apply(&mut file, &p.steps);
        check_packets(&file, &packets);
    }

    #[test]
    fn refuses_what_it_cannot_finalize_and_leaves_regular_files_alone() {
        let packets = packets(3, 0);
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 0);
        let unusable = |data: &[u8]| match plan(&mut Cursor::new(data), data.len() as u64) {
            Err(FinalizeMp4Error::Unusable(m)) => m,
            other => panic!("{other:?}"),
        };
        // Header only: no fragment.
        let moov_end = {
            let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
            let (o, h) = boxes.iter().find(|(_, h)| h.fourcc.0 == *b"moov").unwrap();
            (*o + h.size.unwrap()) as usize
        };
        assert!(unusable(&m.recorded[..moov_end + 100]).contains("no complete fragment"));
        assert!(unusable(&m.recorded[..moov_end - 10]).contains("no complete 'moov'"));
        assert!(unusable(&[0, 0, 0, 16, b'f', b't', b'y', b'p', 0, 0, 0, 0, 0, 0, 0, 0]).contains("no 'moov'"));
        // A damaged fragment in the middle is not cut off with the ones after it.
        let mut damaged = m.recorded.clone();
        let boxes = top_level(&mut Cursor::new(&damaged), damaged.len() as u64).unwrap();
        let moof = boxes.iter().find(|(_, h)| h.fourcc.0 == *b"moof").unwrap().0 as usize;
        let trun = moof + damaged[moof..].windows(4).position(|w| w == b"trun").unwrap();
        damaged[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(unusable(&damaged).contains("complete fragments follow"));
        // Finalized: nothing to do.
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert!(p.steps.is_empty() && p.notes[0].contains("already a regular MP4"), "{p:?}");
    }

    #[test]
    fn late_start_and_edit_lists_keep_presentation_times() {
        // Audio starts 0.5 s late (first tfdt 24000); video has an edit skipping 2 frames.
        let packets = packets(3, 24_000);
        let edit = Edit { segment_duration_movie_ticks: 60_000, media_time_ticks: 1024, media_rate_integer: 1 };
        let tracks = vec![track(TrackKind::Video, 15360, vec![edit]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 0);
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        check_packets(&file, &packets);
        let (offset, hl, moov) =
            crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
        let movie = parse_movie(&moov, offset, hl).unwrap();
        // Video: the edit is cut to the media: presentation ends at 46592 ticks (frame 88,
        // shown 1024 ticks late), minus the 1024 skipped, in ms rounded up.
        assert_eq!(movie.tracks[0].edits.len(), 1);
        assert_eq!(movie.tracks[0].edits[0].media_time_ticks, 1024);
        assert_eq!(movie.tracks[0].edits[0].segment_duration_movie_ticks, 2967);
        // Audio: an empty edit of 0.5 s, then the media from its first sample.
        let a = &movie.tracks[1].edits;
        assert_eq!((a[0].segment_duration_movie_ticks, a[0].media_time_ticks), (500, -1));
        assert_eq!(a[1].media_time_ticks, 0);
        assert_eq!(movie.duration, 500 + a[1].segment_duration_movie_ticks);
    }

    #[test]
    fn long_durations_take_version_1_headers_and_far_offsets_co64() {
        // Three samples of 2^32 - 1 ticks at a 1 GHz timescale: 12.9 s, past 32 bits.
        let mut t = track(TrackKind::Video, 1_000_000_000, vec![]);
        t.movie_timescale = 1_000_000_000;
        let packets: Vec<Packet> = (0..3)
            .map(|i| Packet {
                track: 0,
                dts_ticks: i * u32::MAX as i64,
                pts_ticks: i * u32::MAX as i64,
                duration_ticks: u32::MAX,
                keyframe: true,
                data: Bytes::from(vec![i as u8; 10]).into(),
            })
            .collect();
        let m = mux(vec![t], &packets, 0);
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        check_packets(&file, &packets);
        let (offset, hl, moov) =
            crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
        let movie = parse_movie(&moov, offset, hl).unwrap();
        assert_eq!(movie.duration, 3 * u32::MAX as u64);
        let at = moov.windows(4).position(|w| w == b"mdhd").unwrap();
        assert_eq!(moov[at + 4], 1, "mdhd version 1");
        let at = moov.windows(4).position(|w| w == b"tkhd").unwrap();
        assert_eq!(moov[at + 4], 1, "tkhd version 1");

        // co64: an index whose fragments lie past 4 GiB (only the tables are built).
        let (offset, hl, frag_moov) = {
            let r = &m.recorded;
            crate::formats::mp4::file::read_moov(&mut Cursor::new(r), r.len() as u64).unwrap().unwrap()
        };
        let mut index = FragmentIndex::new(frag_moov, offset, hl).unwrap();
        let far = 5u64 << 30;
        let sample = |i: u32| FragSample {
            track: 0,
            info: SampleInfo {
                index: i,
                offset: far + i as u64 * 10,
                size: 10,
                dts: i as i64 * 1000,
                cts_offset: 0,
                duration: 1000,
                sync: i == 0,
                description: 1,
            },
            flags: if i == 0 { 0x0200_0000 } else { 0x0101_0000 },
        };
        index.add(&[sample(0), sample(1)]).unwrap();
        let moov = index.final_moov().unwrap();
        assert!(moov.windows(4).any(|w| w == b"co64"));
        assert!(moov.windows(4).any(|w| w == b"stss"));
        assert!(!moov.windows(4).any(|w| w == b"mvex"));
    }

    #[test]
    fn samples_the_fragmented_moov_indexes_itself_come_first() {
        // A regular moov with an mvex added: a fragmented movie whose moov has samples.
        let packets = packets(3, 0);
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 0);
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        let (offset, hl, moov) =
            crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
        let mut hybrid = BytesMut::from(&moov[..]);
        let mvex = open(&mut hybrid, b"mvex");
        for id in 1..=2 {
            let trex = crate::formats::mp4::write::open_full(&mut hybrid, b"trex", 0, 0);
            [id, 1, 0, 0, 0].iter().for_each(|&v| hybrid.put_u32(v));
            close(&mut hybrid, trex);
        }
        close(&mut hybrid, mvex);
        close(&mut hybrid, 0);
        let hybrid = hybrid.freeze();
        // Samples the moov indexes must be inside the file, checked as they are read.
        let e = FragmentIndex::in_file(hybrid.clone(), offset, hl, offset - 10).unwrap_err();
        assert!(e.to_string().contains("run past the end of the file"), "{e}");
        let index = FragmentIndex::in_file(hybrid, offset, hl, file.len() as u64).unwrap();
        let regular = regular_samples(&file);
        assert_eq!(index.sample_counts(), regular.iter().map(|t| t.len() as u32).collect::<Vec<_>>());
        assert_eq!(index.next_dts[1], packets.iter().filter(|p| p.track == 1).count() as i64 * 1024);
        let rebuilt = parse_movie(&index.final_moov().unwrap(), offset, hl).unwrap();
        assert!(!rebuilt.fragmented);
        for (t, want) in rebuilt.tracks.iter().zip(&regular) {
            let got: Vec<SampleInfo> = t.table.samples().map(|s| s.unwrap()).collect();
            assert_eq!(&got, want);
        }
    }

    #[test]
    fn edit_durations_past_64_bits_are_an_error_not_a_panic() {
        // An empty edit of almost 2^64 ticks, then the media: the track duration overflows.
        let packets = packets(4, 0);
        let empty = Edit { segment_duration_movie_ticks: u64::MAX - 10, media_time_ticks: -1, media_rate_integer: 1 };
        let main = Edit { segment_duration_movie_ticks: 1000, media_time_ticks: 0, media_rate_integer: 1 };
        let tracks = vec![track(TrackKind::Video, 15360, vec![empty, main]), track(TrackKind::Audio, 48000, vec![])];
        let mut m = RegularMp4Muxer::with_reserve_bytes(Arc::new(tracks.into()), FragmentPolicy::default(), 0);
        let mut recorded = m.header().unwrap().to_bytes().to_vec();
        for p in &packets {
            m.push(p.clone()).unwrap().iter().for_each(|f| recorded.extend_from_slice(&f.to_bytes()));
        }
        let err = m.finish().unwrap_err();
        assert!(err.to_string().contains("add up to more than 64 bits"), "{err}");
        // The same file left by a crash: `livemux finalize` says so too.
        match plan(&mut Cursor::new(&recorded), recorded.len() as u64) {
            Err(FinalizeMp4Error::Mp4(e)) => assert!(e.to_string().contains("add up to more than 64 bits"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// The mixed state: `recorded` finalized after `k` fragments, then the rest appended.
    fn mixed(m: &Muxed, k: usize) -> (Vec<u8>, Vec<u8>) {
        let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
        let moofs: Vec<usize> =
            boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moof").map(|(o, _)| *o as usize).collect();
        let cut = moofs[k];
        let mut file = m.recorded[..cut].to_vec();
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        apply(&mut file, &p.steps);
        file.extend_from_slice(&m.recorded[cut..]);
        let mut whole = m.recorded.clone();
        apply(&mut whole, &m.steps);
        (file, whole)
    }

    #[test]
    fn fragments_after_a_regular_moov_are_indexed_with_the_rest() {
        let packets = packets(5, 0);
        for reserve in [64 << 10, 100] {
            let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
            let m = mux(tracks, &packets, reserve);
            let (mut file, whole) = mixed(&m, 2);
            let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
            assert!(p.notes[0].contains("later fragments are indexed"), "{:?}", p.notes);
            assert_eq!(p.steps.len(), 2, "hidden moov, then the switch: {:?}", p.notes);
            apply(&mut file, &p.steps);
            check_packets(&file, &packets);
            // As if finalized once at the end (offsets aside: appended strays move).
            type Timing = Vec<Vec<(u32, i64, i64, u32, bool)>>;
            let timing = |f: &[u8]| -> Timing {
                let samples = regular_samples(f);
                samples
                    .iter()
                    .map(|t| t.iter().map(|s| (s.size, s.dts, s.cts_offset, s.duration, s.sync)).collect())
                    .collect()
            };
            assert_eq!(timing(&file), timing(&whole), "reserve {reserve}");
        }
        // The recorder went on writing at the old end, over the hidden moov: no top-level
        // moov, and the mdat's header covers the first 8 bytes of the next moof.
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 100);
        let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
        let cut = boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moof").nth(2).unwrap().0 as usize;
        let mut file = m.recorded[..cut].to_vec();
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        apply(&mut file, &p.steps);
        assert!(file.len() > cut);
        file.truncate(cut);
        file.extend_from_slice(&m.recorded[cut..]);
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert!(p.notes[0].contains("wrote over the new moov"), "{:?}", p.notes);
        apply(&mut file, &p.steps);
        check_packets(&file, &packets);
        // Without a reserve the switch went over the old moov's header: it is rebuilt.
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, 0);
        let (mut file, _) = mixed(&m, 2);
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert!(p.notes[0].contains("later fragments are indexed"), "{:?}", p.notes);
        let mut repaired = file.clone();
        apply(&mut repaired, &p.steps);
        check_packets(&repaired, &packets);
        // Its mvhd damaged too: nothing to index from; refused, with the reason.
        let ftyp = u32::from_be_bytes(file[..4].try_into().unwrap()) as usize;
        file[ftyp + 16] = 7;
        match plan(&mut Cursor::new(&file), file.len() as u64) {
            Err(FinalizeMp4Error::Unusable(e)) => assert!(e.contains("is not found in its mdat"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_switch_stays_inside_one_sector() {
        let moov = Bytes::from(vec![0u8; 100]);
        let layout = |reserve, moov_offset| Layout { reserve, moov_offset, end: 10_000, len: 10_000 };
        // A foreign moov whose 16 bytes would cross a sector: a 32-bit header instead.
        let p = plan_steps(&layout(None, 500), moov.clone());
        let WriteStep::Write { offset: 500, data } = &p.steps[1] else { panic!("{p:?}") };
        assert_eq!(&data[..], &[0, 0, 0x25, 0x24, b'm', b'd', b'a', b't'][..]);
        // Within a sector: the 64-bit header, covering the trailing free header.
        let p = plan_steps(&layout(None, 36), moov.clone());
        let WriteStep::Write { offset: 36, data } = &p.steps[1] else { panic!("{p:?}") };
        assert_eq!(u64::from_be_bytes(data[8..16].try_into().unwrap()), 10_008 - 36);
        let WriteStep::Write { offset: 10_000, data } = &p.steps[0] else { panic!("{p:?}") };
        assert_eq!(&data[..8], &[0, 0, 0, 108, b'f', b'r', b'e', b'e'][..]);
        // A reserve too small for the moov: the switch goes over the free box.
        let p = plan_steps(&layout(Some((32, 64)), 96), moov.clone());
        assert!(matches!(&p.steps[1], WriteStep::Write { offset: 32, .. }), "{p:?}");
        // Big enough (100 + 8 <= 108): faststart with a 32-bit mdat header.
        let p = plan_steps(&layout(Some((32, 108)), 140), moov);
        let WriteStep::Write { offset: 40, data } = &p.steps[0] else { panic!("{p:?}") };
        assert_eq!(data.len(), 92 + 8);
        assert_eq!(&data[92..], &[0, 0, 0x26, 0x8C, b'm', b'd', b'a', b't'][..]);
    }
}
