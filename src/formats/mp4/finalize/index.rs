//! The index of a fragmented MP4 as its fragments arrive, and the regular `moov` it
//! becomes (written by the one `moov` patcher, [`crate::formats::mp4::patch`]).

use bytes::Bytes;

use super::super::boxes::Mp4Error;
use super::super::moof::{parse_moof, FragSample};
use super::super::moov::{parse_movie, Movie};
use super::super::patch::{patch_moov, MoviePatch, TrackPatch};
use super::super::tables::TableBuilder;
use crate::formats::timeline::{self, MediaStart, Plan, Timing, TrackPlan};
use crate::model::Edit;

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
    pub(super) next_dts: Vec<i64>,
    fragments: u64,
    /// A foreign fragmented file (`livemux finalize`): the last edit that shows media is
    /// taken to run to the end of the media, as FFmpeg reads fragmented files (their edit
    /// lists give a start, never an end: a recorder writes the duration it knew before
    /// the fragments, often the decode-time total, which cuts the last frame's composition
    /// offset off). The muxer's own file keeps an end its input's edit list gave.
    pub(super) edits_run_to_media_end: bool,
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

    /// The regular `moov`: the fragmented one with full sample tables and no `mvex`
    /// ([`super::patch`]).
    pub fn final_moov(&self) -> Result<Bytes, Mp4Error> {
        let plan = self.plan();
        let timings =
            plan.tracks.iter().enumerate().map(|(i, p)| self.timing(i, p)).collect::<Result<Vec<TrackTiming>, _>>()?;
        let movie_duration = timings.iter().map(|t| t.track_duration_movie).max().unwrap_or(0);
        let tracks: Vec<TrackPatch<'_>> = self
            .tracks
            .iter()
            .zip(&timings)
            .map(|(t, timing)| TrackPatch {
                track_duration: timing.track_duration_movie,
                media_timescale: None,
                media_duration: timing.media_duration,
                edits: timing.edits.as_deref(),
                entries: None,
                tables: &t.tables,
                extra: &[],
                sample_groups: false,
            })
            .collect();
        let patch = MoviePatch {
            timescale: self.movie.timescale,
            duration: movie_duration,
            next_track_id: self.movie.tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1),
            tracks: &tracks,
        };
        patch_moov(&self.moov, self.moov_offset, self.moov_header_len, &patch)
    }
}
