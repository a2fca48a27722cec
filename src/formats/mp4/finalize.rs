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
//! 0. If the file goes on past T: truncate it to T. The file is the same fMP4 minus a tail
//!    that no reader could use.
//! 1. **Faststart** (the reserved box holds the `moov` of S bytes and an `mdat` header H:
//!    S + H <= R): write the `moov` body at F+8..F+S and, right after it at F+S, the header
//!    of an `mdat` that runs to T, as one write. Both are inside the `free` box's payload:
//!    nothing points at them yet, the file is still the same fMP4.
//!    2. The switch: one 8-byte write at F, `[S]['moov']`. The `free` box becomes the `moov`;
//!    the `mdat` written in step 1 follows it and covers the rest of the reserve, the old
//!    `moov` and every fragment: `ftyp | moov | mdat`.
//! 1. **`moov` at the end** (no reserve, or the index does not fit it): append at T a
//!    `free` box header whose size covers the new `moov`, followed by the `moov`, as one
//!    write. The new `moov` is hidden in a trailing `free` box: still the same fMP4.
//!    2. The switch: one 16-byte write at F (over the reserved `free` header, or over the
//!    fragmented `moov`'s header and the first 8 bytes of its body, which become `mdat`
//!    payload): a 64-bit `mdat` header whose size runs to T+8, so that the `free` header
//!    is inside it and the hidden `moov` becomes a top-level box: `ftyp | mdat | moov`.
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
//! does not fit 32 bits. A track whose first decode time D (its first `tfdt`) is not 0
//! gets its edits shifted by D (or an empty edit of D), since a regular file's media
//! timeline starts at its first sample. The last edit is cut to the media that exists
//! (a crash leaves less media than the recorder's edit list announced; a fragmented file
//! may write 0 for "to the end"). Memory is the final tables only ([`TableBuilder`]).
//!
//! Written by hand: it rests on the crate's own box reader and table builder, and no crate
//! offers an in-place conversion with a durable write order.

use std::io::{Read, Seek, SeekFrom};

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{parse_header, FourCc, HeaderParse, Mp4Error, Reader, MAX_META_BOX, MAX_MOOF};
use super::init::SECTOR;
use super::moof::{parse_moof, FragSample};
use super::moov::{parse_movie, Movie};
use super::tables::TableBuilder;
use super::write::{close, open, open_full};
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
    last_dts: i64,
    /// Decode time the next sample has if nothing jumps: last dts + last duration.
    end_dts: i64,
    /// Composition offset of the last sample.
    last_cts: i64,
    /// Latest end of a sample on the presentation timeline (dts + cts offset + duration).
    pts_end: i64,
    /// End of the open chunk in the file, and its sample description.
    chunk: Option<(u64, u32)>,
    /// Decode times that went backwards or stood still between samples.
    overlaps: u64,
}

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
    pub fn new(moov: Bytes, offset: u64, header_len: u32) -> Result<Self, Mp4Error> {
        let movie = parse_movie(&moov, offset, header_len)?;
        Ok(FragmentIndex {
            tracks: vec![TrackIndex::default(); movie.tracks.len()],
            next_dts: vec![0; movie.tracks.len()],
            movie,
            moov,
            moov_offset: offset,
            moov_header_len: header_len,
            fragments: 0,
        })
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
        for t in &mut self.tracks {
            t.chunk = None;
        }
        for s in samples {
            let t = &mut self.tracks[s.track];
            let info = &s.info;
            match t.first_dts {
                None => t.first_dts = Some(info.dts),
                Some(_) if info.dts != t.end_dts => {
                    // Keep every decode time: the previous sample lasts until this one.
                    match u32::try_from(info.dts - t.last_dts) {
                        Ok(d) if d > 0 => {
                            t.tables.set_last_duration(d);
                            t.pts_end = t.pts_end.max(info.dts + t.last_cts);
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
            t.tables.push(info.size, info.duration, cts, info.sync);
            t.tables.set_dependency((s.flags >> 20) as u8);
            t.last_dts = info.dts;
            t.last_cts = info.cts_offset;
            t.end_dts = info.dts + info.duration as i64;
            t.pts_end = t.pts_end.max(t.end_dts + info.cts_offset);
            t.chunk = Some((info.offset + info.size as u64, info.description));
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

    fn timing(&self, i: usize) -> TrackTiming {
        let t = &self.tracks[i];
        let m = &self.movie.tracks[i];
        let movie_ts = self.movie.timescale;
        let media_duration = t.tables.duration();
        if t.tables.sample_count() == 0 {
            return TrackTiming { media_duration: 0, track_duration_movie: 0, edits: None };
        }
        let shift = t.first_dts.unwrap_or(0);
        let mut edits: Vec<Edit> = m.edits.clone();
        if shift != 0 {
            if edits.is_empty() {
                edits.push(Edit {
                    segment_duration_movie_ticks: rescale_up(shift.unsigned_abs(), movie_ts, m.timescale),
                    media_time_ticks: -1,
                    media_rate_integer: 1,
                });
                edits.push(Edit { segment_duration_movie_ticks: 0, media_time_ticks: shift, media_rate_integer: 1 });
            }
            for e in edits.iter_mut().filter(|e| e.media_time_ticks >= 0) {
                e.media_time_ticks = (e.media_time_ticks - shift).max(0);
            }
        }
        // The last edit that shows media ends with the media (0 in a fragmented file
        // means "to the end"; a crash leaves less media than the recorder announced).
        let media_end = (t.pts_end - shift).max(0) as u64;
        if let Some(e) = edits.iter_mut().rev().find(|e| e.media_time_ticks >= 0) {
            let left = media_end.saturating_sub(e.media_time_ticks as u64);
            let avail = rescale_up(left, movie_ts, m.timescale);
            if e.segment_duration_movie_ticks == 0 || e.segment_duration_movie_ticks > avail {
                e.segment_duration_movie_ticks = avail;
            }
        }
        if edits.is_empty() {
            let track_duration_movie = rescale_up(media_duration, movie_ts, m.timescale);
            return TrackTiming { media_duration, track_duration_movie, edits: None };
        }
        let track_duration_movie = edits.iter().map(|e| e.segment_duration_movie_ticks).sum();
        TrackTiming { media_duration, track_duration_movie, edits: Some(edits) }
    }

    /// The regular `moov`: the fragmented one with full sample tables and no `mvex`.
    pub fn final_moov(&self) -> Result<Bytes, Mp4Error> {
        let timings: Vec<TrackTiming> = (0..self.tracks.len()).map(|i| self.timing(i)).collect();
        let movie_duration = timings.iter().map(|t| t.track_duration_movie).max().unwrap_or(0);
        let tables_len: usize = self.tracks.iter().map(|t| t.tables.encoded_len()).sum();
        let mut out = BytesMut::with_capacity(self.moov.len() + tables_len + 64 * self.tracks.len());
        let hl = self.moov_header_len as usize;
        let moov = Reader::new(&self.moov[hl..], self.moov_offset + hl as u64, FourCc::new(b"moov"));
        let start = open(&mut out, b"moov");
        let mut trak_index = 0;
        for child in moov.children() {
            let child = child?;
            match &child.fourcc.0 {
                b"mvhd" => write_timed(&mut out, &child.reader(), child.fourcc, 1, movie_duration)?,
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

/// Rewrites a full box laid out as mvhd, tkhd and mdhd are: creation and modification
/// times, `words` 32-bit fields, a duration, then the rest (copied). Version 1 when the
/// duration (or a time) needs 64 bits or the box was version 1 already.
fn write_timed(
    out: &mut BytesMut,
    r: &Reader<'_>,
    fourcc: FourCc,
    words: usize,
    duration: u64,
) -> Result<(), Mp4Error> {
    let mut r = r.clone();
    let (version, flags) = r.full_header()?;
    let time = |r: &mut Reader<'_>| if version == 1 { r.u64() } else { r.u32().map(u64::from) };
    let (created, modified) = (time(&mut r)?, time(&mut r)?);
    let mut fields = [0u32; 2];
    for f in fields.iter_mut().take(words) {
        *f = r.u32()?;
    }
    time(&mut r)?;
    let rest = r.bytes(r.remaining())?;
    let v1 = version == 1 || [created, modified, duration].iter().any(|&t| t > u32::MAX as u64);
    let start = open_full(out, &fourcc.0, v1 as u8, flags);
    for t in [created, modified] {
        if v1 {
            out.put_u64(t)
        } else {
            out.put_u32(t as u32)
        }
    }
    fields.iter().take(words).for_each(|&f| out.put_u32(f));
    if v1 {
        out.put_u64(duration);
    } else {
        out.put_u32(duration as u32);
    }
    out.put_slice(rest);
    close(out, start);
    Ok(())
}

fn write_edts(out: &mut BytesMut, edits: &[Edit]) {
    let v1 = edits
        .iter()
        .any(|e| e.segment_duration_movie_ticks > u32::MAX as u64 || i32::try_from(e.media_time_ticks).is_err());
    let edts = open(out, b"edts");
    let elst = open_full(out, b"elst", v1 as u8, 0);
    out.put_u32(edits.len() as u32);
    for e in edits {
        if v1 {
            out.put_u64(e.segment_duration_movie_ticks);
            out.put_i64(e.media_time_ticks);
        } else {
            out.put_u32(e.segment_duration_movie_ticks as u32);
            out.put_i32(e.media_time_ticks as i32);
        }
        out.put_i16(e.media_rate_integer);
        out.put_u16(0);
    }
    close(out, elst);
    close(out, edts);
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
                write_timed(out, &c.reader(), c.fourcc, 2, timing.track_duration_movie)?;
                if let (false, Some(edits)) = (has_edts, &timing.edits) {
                    write_edts(out, edits);
                }
            }
            b"edts" => {
                if let Some(edits) = &timing.edits {
                    write_edts(out, edits);
                }
            }
            b"mdia" => {
                let mdia = open(out, b"mdia");
                for m in c.reader().children() {
                    let m = m?;
                    match &m.fourcc.0 {
                        b"mdhd" => write_timed(out, &m.reader(), m.fourcc, 1, timing.media_duration)?,
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
        _ => (layout.moov_offset, "no space was reserved before the fragmented moov".to_string()),
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
    let moov = loop {
        let b = match top_box(r, offset, len)? {
            Ok(b) => b,
            Err(Stop::Cut(at)) => {
                return Err(FinalizeMp4Error::Unusable(format!(
                    "no complete 'moov' box: the file is cut at offset {at} before one; \
                     a recording without its index needs `livemux recover` with a reference"
                )))
            }
            Err(Stop::End) | Err(Stop::Garbage(..)) => {
                return Err(FinalizeMp4Error::Unusable(
                    "no 'moov' box: not an MP4 that can be finalized; a recording without its index \
                     needs `livemux recover` with a reference"
                        .into(),
                ))
            }
        };
        match &b.fourcc.0 {
            b"moov" => break b,
            b"moof" => {
                return Err(FinalizeMp4Error::Unusable(format!(
                    "a 'moof' at offset {} comes before any 'moov'",
                    b.offset
                )))
            }
            _ if is_padding(b.fourcc) && b.offset > 0 => padding.push(b),
            _ => padding.clear(),
        }
        if b.open_ended {
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
    let mut index = FragmentIndex::new(data, moov.offset, moov.header_len)?;
    if !index.movie.fragmented {
        let samples = index.movie.tracks.iter().map(|t| t.table.sample_count).collect();
        return Ok(Scanned::Regular { samples });
    }
    let reserve = padding.iter().filter(|b| b.size >= 16).max_by_key(|b| (b.size, u64::MAX - b.offset));
    let reserve = reserve.map(|b| (b.offset, b.size));

    // Fragments: parsed when their moof is read, added once the media they point at is
    // inside complete boxes.
    let mut pending: std::collections::VecDeque<(Vec<FragSample>, u64, u64)> = Default::default();
    let mut end = moov.end();
    let mut complete = 0u64;
    let mut damaged: Option<(u64, Mp4Error)> = None;
    let mut notes = Vec::new();
    offset = moov.end();
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
                        let max_end = samples.iter().map(|s| s.info.offset + s.info.size as u64).max().unwrap_or(0);
                        pending.push_back((samples, b.offset, max_end));
                    }
                    Err(e) => damaged = Some((b.offset, e)),
                }
            }
        }
        if damaged.is_none() {
            while pending.front().is_some_and(|(_, _, max_end)| *max_end <= b.end()) {
                let (samples, _, _) = pending.pop_front().unwrap();
                index.add(&samples)?;
                end = b.end();
                complete += 1;
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
    if len > end {
        let what = match (&damaged, &stop, pending.front()) {
            (Some((at, e)), _, _) => format!("a damaged fragment at offset {at} ({e}) and what follows it"),
            (None, _, Some((_, at, _))) => format!("an incomplete last fragment (its moof is at offset {at})"),
            (None, Stop::Cut(at), None) => format!("a box cut short at offset {at}"),
            (None, Stop::Garbage(at, e), None) => format!("bytes that are no box at offset {at} ({e})"),
            (None, Stop::End, None) => "boxes after the last fragment".to_string(),
        };
        notes.push(format!("cut {} bytes at offset {end}: {what}", len - end));
    }
    notes.extend(index.notes());
    notes.push(format!(
        "{} fragments, {} samples",
        complete,
        index.sample_counts().iter().map(|&n| n as u64).sum::<u64>()
    ));
    let layout = Layout { reserve, moov_offset: moov.offset, end, len };
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
        Scanned::Fragmented { index, layout, notes } => {
            let moov = index.final_moov()?;
            let mut plan = plan_steps(&layout, moov);
            let mut all = notes;
            all.append(&mut plan.notes);
            plan.notes = all;
            Ok(plan)
        }
    }
}
