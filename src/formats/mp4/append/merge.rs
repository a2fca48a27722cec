//! Joining the tracks of TARGET and the sources: compatibility, timescales, sample
//! entries, edit lists, and the new `moov`.
//!
//! Rules (per track, tracks paired by position):
//! - Decode times are continuous: each clip starts where the previous clip's samples end.
//! - Timescales: a source whose durations and composition offsets all convert exactly into
//!   TARGET's timescale is converted; otherwise the track moves to the least common multiple
//!   of the timescales (TARGET's samples are converted too); when that does not fit 32 bits,
//!   or a converted value overflows, the source is refused.
//! - Video presentation delay (B-frames): a clip's composition offsets are shifted by the
//!   difference between TARGET's delay and the clip's, so every clip's first frame is shown
//!   right after the previous clip's last one. Audio keeps its own timing (no `ctts`).
//! - Edit lists: TARGET's list may be leading empty edits and one normal edit at rate 1;
//!   that edit is extended to end where the last clip's own edit ends (so the last clip's
//!   trailing padding stays hidden, as it was). A source's normal edit gives its end;
//!   its leading empty edits are dropped (a gap in the middle of a track cannot be kept).
//!   Other edit lists are refused.
//! - Sample entries: a source entry equal to one of TARGET's (same codec parameters) reuses
//!   it. Other H.264/HEVC/AAC parameters at the same resolution or audio format become a
//!   second sample entry only when asked ([`super::AppendOptions::new_sample_entries`]):
//!   FFmpeg's decoder and GStreamer switch entries (FFmpeg's H.264 parser still logs
//!   errors), Chromium fails to play such a file (MEDIA_ERR_DECODE, measured). Any other
//!   difference is refused before anything is written.
//! - `sdtp` and sample groups (`sbgp`/`sgpd`) follow their samples; samples of a source
//!   without them get 0 ("unknown", "no group").
//! - The new `moov` is TARGET's, patched by the one `moov` patcher ([`super::super::patch`],
//!   shared with finalize and `--to mp4`): new `stsd`, tables, `sdtp` and sample groups;
//!   TARGET's other per-sample boxes (`saiz`, `saio`, `subs`...) are dropped, since they
//!   describe TARGET's samples only.
//!
//! `merge_track`, the rules above phase by phase, is in `merge/track.rs`.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::super::boxes::{FourCc, Mp4Error};
use super::super::patch::{patch_moov, MoviePatch, TrackPatch};
use super::super::tables::TableBuilder;
use super::super::write::{close, open_full};
use super::index::{family, Entry, InputIndex, SampleGroup, TrackIndex};
use super::AppendError;
use crate::model::{Edit, TrackKind};

mod track;
use track::merge_track;

/// A selection of chunks of one input.
#[derive(Clone, Debug)]
pub struct Clip<'a> {
    pub input: &'a InputIndex,
    /// 0 for TARGET, then the sources in order.
    pub input_no: usize,
    pub chunks: Range<usize>,
}

/// One clip's part of one output track.
#[derive(Clone, Debug)]
struct ClipTrack {
    samples: Range<usize>,
    /// Values convert as `v * mul / div` (exact, checked).
    mul: u64,
    div: u64,
    dts_shift: u64,
    cts_shift: i64,
    /// Input sample description (1-based) → output one.
    desc_map: Vec<u16>,
    /// Sample-group runs per output group.
    groups: Vec<Vec<(u32, u32)>>,
    sdtp: bool,
}

/// One output track.
#[derive(Clone, Debug)]
pub struct TrackOut {
    pub timescale: u32,
    pub kind: TrackKind,
    clips: Vec<ClipTrack>,
    pub entries: Vec<Bytes>,
    edits: Option<Vec<Edit>>,
    pub media_duration: u64,
    pub tkhd_duration: u64,
    sdtp: bool,
    groups: Vec<SampleGroup>,
}

/// Where a piece of an input goes in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutPiece {
    pub clip: usize,
    /// Index into the clip input's pieces.
    pub piece: usize,
    pub offset: u64,
}

/// TARGET and the sources, joined.
#[derive(Debug)]
pub struct Merge<'a> {
    pub clips: Vec<Clip<'a>>,
    pub tracks: Vec<TrackOut>,
    pub movie_duration: u64,
    pub notes: Vec<String>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn div_round(n: u128, d: u128) -> u64 {
    ((n + d / 2) / d).min(u64::MAX as u128) as u64
}

/// Same codec parameters: same fourcc and configuration (parsed when possible, so that
/// `btrt` or other informational boxes do not count), or byte-identical entries.
fn same_entry(a: &Entry, b: &Entry) -> bool {
    use crate::codecs::CodecConfig;
    if a.bytes == b.bytes {
        return true;
    }
    match (&a.config, &b.config) {
        (Ok(CodecConfig::Unknown { .. }), _) | (_, Ok(CodecConfig::Unknown { .. })) => false,
        (Ok(x), Ok(y)) => a.fourcc == b.fourcc && x == y,
        _ => false,
    }
}

fn entry_shape(e: &Entry) -> String {
    match &e.config {
        Ok(c) => match (c.dimensions(), c.audio_format()) {
            (Some(d), _) => format!("{}x{}", d.width, d.height),
            (None, Some(a)) => format!("{} Hz {} ch", a.sample_rate, a.channels),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// Codecs whose parameters may change between sample entries of one track.
fn switchable(fourcc: FourCc) -> bool {
    matches!(family(fourcc), "h264" | "hevc" | "aac")
}

/// Leading empty edits and the one normal edit, or why the list is not of that form.
fn split_edits(edits: &[Edit]) -> Result<(Vec<Edit>, Option<Edit>), String> {
    let empties: Vec<Edit> = edits.iter().take_while(|e| e.media_time_ticks == -1).copied().collect();
    let rest = &edits[empties.len()..];
    match rest {
        [] if empties.is_empty() => Ok((empties, None)),
        [e] if e.media_time_ticks >= 0 && e.media_rate_integer == 1 => Ok((empties, Some(*e))),
        _ => Err(format!(
            "its edit list ({} entries: {}) is not leading empty edits and one normal edit, which is all append \
             can extend",
            edits.len(),
            edits
                .iter()
                .map(|e| format!("{}@{}x{}", e.segment_duration_movie_ticks, e.media_time_ticks, e.media_rate_integer))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

impl<'a> Merge<'a> {
    /// Checks the clips against TARGET (clip 0) and works out every output track.
    pub fn new(clips: Vec<Clip<'a>>, new_entries: bool) -> Result<Merge<'a>, AppendError> {
        let target = clips[0].input;
        let mut notes = Vec::new();
        for clip in &clips[1..] {
            check_layout(target, clip.input)?;
        }
        let mut tracks = Vec::with_capacity(target.tracks.len());
        for t in 0..target.tracks.len() {
            tracks.push(merge_track(&clips, t, new_entries, &mut notes)?);
        }
        for clip in &clips[1..] {
            for (t, tr) in clip.input.tracks.iter().enumerate() {
                let range = clip.input.sample_range(&clip.chunks, t);
                if tr.kind == TrackKind::Video && range.start < range.end && !tr.samples[range.start].sync {
                    notes.push(format!(
                        "{}: the selection starts at a video sample that is not a keyframe; players show damaged \
                         pictures until the next one",
                        clip.input.name
                    ));
                }
            }
        }
        let movie_duration = tracks.iter().map(|t| t.tkhd_duration).max().unwrap_or(0);
        Ok(Merge { clips, tracks, movie_duration, notes })
    }

    /// Samples of output track `track`.
    pub fn sample_count(&self, track: usize) -> usize {
        self.tracks[track].clips.iter().map(|c| c.samples.len()).sum()
    }

    /// Builds the new `moov` with the pieces at the given output offsets. Returns the box
    /// and the bytes its sample tables take.
    pub fn build_moov(&self, out: &[OutPiece]) -> Result<(Bytes, usize), AppendError> {
        let target = self.clips[0].input;
        let mp4 = |e: Mp4Error| AppendError::Mp4 { input: target.name.clone(), source: e };
        let mut tables = Vec::with_capacity(self.tracks.len());
        for (t, tr) in self.tracks.iter().enumerate() {
            tables.push(self.tables(t, tr, out)?);
        }
        let tables_len = tables.iter().map(|(tb, extra)| tb.encoded_len() + extra.len()).sum();
        let patches: Vec<TrackPatch<'_>> = self
            .tracks
            .iter()
            .zip(&tables)
            .map(|(tr, (tb, extra))| TrackPatch {
                track_duration: tr.tkhd_duration,
                media_timescale: Some(tr.timescale),
                media_duration: tr.media_duration,
                edits: tr.edits.as_deref(),
                entries: Some(&tr.entries),
                tables: tb,
                extra,
                sample_groups: true,
            })
            .collect();
        let patch = MoviePatch {
            timescale: target.movie_timescale,
            duration: self.movie_duration,
            next_track_id: target.tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1),
            tracks: &patches,
        };
        let moov = patch_moov(&target.moov, target.moov_offset, target.moov_header_len, &patch).map_err(mp4)?;
        Ok((moov, tables_len))
    }

    /// The tables of track `t`, and the boxes that follow them (`sdtp`, sample groups).
    fn tables(&self, t: usize, tr: &TrackOut, out: &[OutPiece]) -> Result<(TableBuilder, Vec<u8>), AppendError> {
        let mut tb = TableBuilder::new();
        let mut sdtp = Vec::new();
        for op in out {
            let clip = &self.clips[op.clip];
            let piece = &clip.input.pieces[op.piece];
            if piece.track != t {
                continue;
            }
            let ct = &tr.clips[op.clip];
            let src = &clip.input.tracks[t];
            tb.start_chunk(op.offset, ct.desc_map[piece.desc as usize - 1] as u32);
            for s in &src.samples[piece.samples()] {
                let duration = s.duration as u64 * ct.mul / ct.div;
                let cts = s.cts as i64 * ct.mul as i64 / ct.div as i64 + ct.cts_shift;
                let cts = i32::try_from(cts).map_err(|_| AppendError::Incompatible {
                    target: self.clips[0].input.name.clone(),
                    input: clip.input.name.clone(),
                    reason: format!("track {}: a composition offset overflows after the timescale change", t + 1),
                })?;
                tb.push(s.size, duration as u32, cts, s.sync);
                if tr.sdtp {
                    sdtp.push(if ct.sdtp { s.sdtp } else { 0 });
                }
            }
        }
        let mut extra = BytesMut::new();
        if tr.sdtp {
            let b = open_full(&mut extra, b"sdtp", 0, 0);
            extra.put_slice(&sdtp);
            close(&mut extra, b);
        }
        for (g, group) in tr.groups.iter().enumerate() {
            if let Some(sgpd) = &group.sgpd {
                extra.put_slice(sgpd);
            }
            let mut runs: Vec<(u32, u32)> = Vec::new();
            for ct in &tr.clips {
                for &(n, i) in &ct.groups[g] {
                    match runs.last_mut() {
                        Some((c, j)) if *j == i && *c as u64 + n as u64 <= u32::MAX as u64 => *c += n,
                        _ => runs.push((n, i)),
                    }
                }
            }
            let b = open_full(&mut extra, b"sbgp", group.parameter.is_some() as u8, 0);
            extra.put_slice(&group.grouping_type);
            if let Some(p) = group.parameter {
                extra.put_u32(p);
            }
            extra.put_u32(runs.len() as u32);
            for (n, i) in runs {
                extra.put_u32(n);
                extra.put_u32(i);
            }
            close(&mut extra, b);
        }
        Ok((tb, extra.to_vec()))
    }
}

/// Same number and kinds of tracks, same codecs, resolutions and audio formats.
fn check_layout(target: &InputIndex, source: &InputIndex) -> Result<(), AppendError> {
    let refuse =
        |reason: String| AppendError::Incompatible { target: target.name.clone(), input: source.name.clone(), reason };
    let list = |i: &InputIndex| i.tracks.iter().map(TrackIndex::describe).collect::<Vec<_>>().join(", ");
    if target.tracks.len() != source.tracks.len()
        || target.tracks.iter().zip(&source.tracks).any(|(a, b)| a.kind != b.kind)
    {
        return Err(refuse(format!(
            "track layouts differ: TARGET has {} track(s) ({}), the source has {} ({})",
            target.tracks.len(),
            list(target),
            source.tracks.len(),
            list(source)
        )));
    }
    for (n, (a, b)) in target.tracks.iter().zip(&source.tracks).enumerate() {
        let (ea, eb) = (&a.entries[0], &b.entries[0]);
        let (fa, fb) = (family(ea.fourcc), family(eb.fourcc));
        if fa != fb || (fa == "unknown" && ea.fourcc != eb.fourcc) {
            return Err(refuse(format!(
                "track {}: codecs differ: TARGET's is {} ('{}'), the source's is {} ('{}')",
                n + 1,
                fa,
                ea.fourcc,
                fb,
                eb.fourcc
            )));
        }
        let (sa, sb) = (entry_shape(ea), entry_shape(eb));
        if sa != sb {
            let what = if a.kind == TrackKind::Video { "resolutions" } else { "audio formats" };
            return Err(refuse(format!("track {}: {what} differ: TARGET's is {sa}, the source's is {sb}", n + 1)));
        }
    }
    Ok(())
}
