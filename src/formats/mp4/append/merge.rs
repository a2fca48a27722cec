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

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::super::boxes::{Child, FourCc, Mp4Error, Reader};
use super::super::tables::TableBuilder;
use super::super::write::{close, open, open_full, rewrite_timed, write_edts};
use super::index::{family, Entry, InputIndex, SampleGroup, TrackIndex};
use super::AppendError;
use crate::model::{Edit, TrackKind};

/// Samples looked at to find a clip's presentation delay (deeper than any B-frame pyramid).
const DELAY_WINDOW: usize = 256;

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

/// An output edit: (segment duration in the movie timescale, media time, rate).
type OutEdit = (u64, i64, i16);

/// One output track.
#[derive(Clone, Debug)]
pub struct TrackOut {
    pub timescale: u32,
    pub kind: TrackKind,
    clips: Vec<ClipTrack>,
    pub entries: Vec<Bytes>,
    edits: Option<Vec<OutEdit>>,
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
        let moov = &target.moov;
        let hl = target.moov_header_len as usize;
        let root = Reader::new(&moov[hl..], target.moov_offset + hl as u64, FourCc::new(b"moov"));
        let mut buf = BytesMut::with_capacity(moov.len() + tables_len);
        let m = open(&mut buf, b"moov");
        let mut t = 0;
        for child in root.children() {
            let child = child.map_err(mp4)?;
            match &child.fourcc.0 {
                b"mvhd" => rewrite_timed(&mut buf, &child, None, self.movie_duration).map_err(mp4)?,
                b"trak" => {
                    let (tb, extra) = &tables[t];
                    write_trak(&mut buf, &child, &self.tracks[t], tb, extra).map_err(mp4)?;
                    t += 1;
                }
                b"mvex" => {}
                _ => buf.put_slice(child.data),
            }
        }
        close(&mut buf, m);
        Ok((buf.freeze(), tables_len))
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

/// Works out output track `t`.
fn merge_track(
    clips: &[Clip<'_>],
    t: usize,
    new_entries: bool,
    notes: &mut Vec<String>,
) -> Result<TrackOut, AppendError> {
    let target = clips[0].input;
    let tt = &target.tracks[t];
    let refuse = |clip: &Clip<'_>, reason: String| AppendError::Incompatible {
        target: target.name.clone(),
        input: clip.input.name.clone(),
        reason: format!("track {}: {reason}", t + 1),
    };
    // Times come from the inputs' tables: sums that do not fit 64 bits are refused.
    let overflow = |clip: &Clip<'_>, what: &str| {
        refuse(clip, format!("{what} does not fit 64 bits in timescale units (damaged tables or edit list?)"))
    };
    let ranges: Vec<Range<usize>> = clips.iter().map(|c| c.input.sample_range(&c.chunks, t)).collect();
    // The tables count samples in 32 bits.
    if ranges.iter().map(|r| r.len() as u64).sum::<u64>() > u32::MAX as u64 {
        return Err(refuse(
            clips.last().expect("TARGET is a clip"),
            "the joined track has over 2^32 - 1 samples".into(),
        ));
    }

    // Sample entries.
    let mut entries: Vec<Entry> = tt.entries.clone();
    let mut desc_maps = vec![(1..=tt.entries.len() as u16).collect::<Vec<u16>>()];
    for clip in &clips[1..] {
        let st = &clip.input.tracks[t];
        let mut map = Vec::with_capacity(st.entries.len());
        for e in &st.entries {
            if let Some(j) = entries.iter().position(|x| same_entry(x, e)) {
                map.push(j as u16 + 1);
                continue;
            }
            let first = &tt.entries[0];
            let name = family(e.fourcc);
            if !switchable(e.fourcc) || name != family(first.fourcc) || e.config.is_err() {
                return Err(refuse(
                    clip,
                    format!("its {name} parameters differ from TARGET's, and players do not switch {name} parameters within a track"),
                ));
            }
            if entry_shape(e) != entry_shape(first) {
                return Err(refuse(
                    clip,
                    format!("a sample entry is {}, TARGET's is {}", entry_shape(e), entry_shape(first)),
                ));
            }
            if !new_entries {
                return Err(refuse(
                    clip,
                    format!(
                        "its {name} parameters differ from TARGET's (another encoder or settings); a second sample \
                         entry plays in FFmpeg and GStreamer but not in Chromium, so it is only made with \
                         --new-sample-entries"
                    ),
                ));
            }
            if entries.len() >= u16::MAX as usize {
                return Err(refuse(clip, "too many sample entries".into()));
            }
            entries.push(e.clone());
            map.push(entries.len() as u16);
            notes.push(format!(
                "{}: track {} has other {} parameters than TARGET; they get a sample entry of their own",
                clip.input.name,
                t + 1,
                family(e.fourcc)
            ));
        }
        desc_maps.push(map);
    }

    // Timescale.
    let scales_into = |clip: &Clip<'_>, range: &Range<usize>, to: u64| {
        let from = clip.input.tracks[t].timescale as u64;
        to % from == 0
            || clip.input.tracks[t].samples[range.clone()]
                .iter()
                .all(|s| (s.duration as u64 * to) % from == 0 && (s.cts as i64 * to as i64) % from as i64 == 0)
    };
    let mut timescale = tt.timescale as u64;
    if !clips.iter().zip(&ranges).skip(1).all(|(c, r)| scales_into(c, r, timescale)) {
        for clip in clips {
            let ts = clip.input.tracks[t].timescale as u64;
            timescale = timescale / gcd(timescale, ts) * ts;
            if timescale > u32::MAX as u64 {
                return Err(refuse(
                    clip,
                    format!(
                        "its timescale {ts} and TARGET's {} cannot be combined exactly (no common timescale fits \
                         32 bits)",
                        tt.timescale
                    ),
                ));
            }
        }
        notes.push(format!(
            "track {}: timescale changed from {} to {} so that every source's timing is kept exactly",
            t + 1,
            tt.timescale,
            timescale
        ));
    }

    // Per clip: conversion, durations, delays.
    let movie_ts = target.movie_timescale as u64;
    let video = tt.kind == TrackKind::Video;
    let mut cts: Vec<ClipTrack> = Vec::with_capacity(clips.len());
    let mut durations = Vec::with_capacity(clips.len());
    let mut delays = Vec::with_capacity(clips.len());
    let mut dts_shift = 0u64;
    for (k, (clip, range)) in clips.iter().zip(&ranges).enumerate() {
        let st = &clip.input.tracks[t];
        let (mul, div) = (timescale, st.timescale as u64);
        let mut dur = 0u64;
        for s in &st.samples[range.clone()] {
            let d = s.duration as u64 * mul / div;
            if d > u32::MAX as u64 {
                return Err(refuse(clip, format!("a sample duration overflows in timescale {timescale}")));
            }
            dur = dur.checked_add(d).ok_or_else(|| overflow(clip, "its duration"))?;
        }
        let mut delay = 0i64;
        if video {
            let mut dts = 0i64;
            delay = i64::MAX;
            for s in st.samples[range.clone()].iter().take(DELAY_WINDOW) {
                delay = delay.min(dts + s.cts as i64 * mul as i64 / div as i64);
                dts += (s.duration as u64 * mul / div) as i64;
            }
            if delay == i64::MAX {
                delay = 0;
            }
        }
        cts.push(ClipTrack {
            samples: range.clone(),
            mul,
            div,
            dts_shift,
            cts_shift: 0,
            desc_map: desc_maps[k].clone(),
            groups: Vec::new(),
            sdtp: st.has_sdtp,
        });
        dts_shift = dts_shift.checked_add(dur).ok_or_else(|| overflow(clip, "the joined duration"))?;
        durations.push(dur);
        delays.push(delay);
    }
    let mut presentation_ends: Vec<Option<i64>> = vec![None; clips.len()];
    if video {
        // Each clip's first frame is shown right after the previous clips' last one: its
        // delay is made TARGET's, and when a previous clip was cut inside a group of
        // B-frames (its last frames in decode order are shown after frames that were cut
        // off), its presentation runs past its decode end; the clip's frames are then
        // shown that much later (larger composition offsets). Decode times stay continuous.
        let mut shown_until: Option<i64> = None;
        for (k, (clip, range)) in clips.iter().zip(&ranges).enumerate() {
            if range.is_empty() {
                continue;
            }
            let c = &mut cts[k];
            let dts_start = i64::try_from(c.dts_shift).map_err(|_| overflow(clip, "the joined duration"))?;
            if k > 0 {
                c.cts_shift = delays[0] - delays[k];
                let starts = dts_start + delays[0];
                if let Some(until) = shown_until.filter(|&u| u > starts) {
                    c.cts_shift += until - starts;
                    notes.push(format!(
                        "{}: track {}: the clip before it ends inside a group of B-frames (frames shown after \
                         its last one were cut off): its frames are shown {} ticks later so that presentation \
                         times do not overlap",
                        clip.input.name,
                        t + 1,
                        until - starts
                    ));
                }
            }
            // Latest presentation end of this clip's frames, on the output timeline.
            let st = &clip.input.tracks[t];
            let (mul, div) = (c.mul as i128, c.div as i128);
            let mut dts = dts_start as i128;
            let mut end = i128::MIN;
            for s in &st.samples[range.clone()] {
                let d = s.duration as i128 * mul / div;
                end = end.max(dts + s.cts as i128 * mul / div + c.cts_shift as i128 + d);
                dts += d;
            }
            let end = i64::try_from(end).map_err(|_| overflow(clip, "its presentation end"))?;
            shown_until = Some(shown_until.map_or(end, |u| u.max(end)));
            presentation_ends[k] = Some(end);
        }
    }
    let media_duration = dts_shift;

    // Edit lists.
    let (target_empties, target_main) = split_edits(&tt.edits)
        .map_err(|e| AppendError::Unusable { input: target.name.clone(), reason: format!("track {}: {e}", t + 1) })?;
    let mut clip_mains = vec![target_main];
    for clip in &clips[1..] {
        let (empties, main) = split_edits(&clip.input.tracks[t].edits).map_err(|e| refuse(clip, e))?;
        if !empties.is_empty() {
            notes.push(format!(
                "{}: track {} starts with an empty edit (a delay); it is dropped in the middle of TARGET",
                clip.input.name,
                t + 1
            ));
        }
        clip_mains.push(main);
    }
    let edits = if tt.edits.is_empty() {
        None
    } else {
        let Some(main) = target_main else {
            return Err(AppendError::Unusable {
                input: target.name.clone(),
                reason: format!("track {}: its edit list shows no media", t + 1),
            });
        };
        let target_mt =
            i64::try_from(div_round(main.media_time_ticks as u128 * timescale as u128, tt.timescale as u128))
                .map_err(|_| overflow(&clips[0], "its edit's media time"))?;
        // The last clip with samples in this track decides where presentation ends.
        let k = (0..clips.len()).rev().find(|&k| !ranges[k].is_empty()).unwrap_or(0);
        let clip = &clips[k];
        let st = &clip.input.tracks[t];
        let complete = ranges[k].end == st.samples.len();
        let end_in_clip = match clip_mains[k] {
            Some(e) if complete => {
                let (mul, div) = (timescale as u128, st.timescale as u128);
                let mt = i64::try_from(div_round(e.media_time_ticks as u128 * mul, div)).ok();
                let seg = i64::try_from(div_round(
                    e.segment_duration_movie_ticks as u128 * timescale as u128,
                    clip.input.movie_timescale.max(1) as u128,
                ))
                .ok();
                let before: u64 = st.samples[..ranges[k].start].iter().map(|s| s.duration as u64).sum();
                let before = i64::try_from(before as u128 * mul / div).ok();
                mt.zip(seg)
                    .and_then(|(mt, seg)| mt.checked_add(seg))
                    .zip(before)
                    .and_then(|(end, before)| end.checked_sub(before))
                    .ok_or_else(|| overflow(clip, "the end of its edit"))?
            }
            // A video clip cut inside a group of B-frames shows its last frames past its
            // decode end plus its delay: up to the last one's end.
            _ => match presentation_ends[k] {
                Some(end) => end
                    .checked_sub(cts[k].dts_shift as i64)
                    .and_then(|e| e.checked_sub(cts[k].cts_shift))
                    .ok_or_else(|| overflow(clip, "its presentation end"))?,
                None => i64::try_from(durations[k])
                    .ok()
                    .and_then(|d| d.checked_add(delays[k]))
                    .ok_or_else(|| overflow(clip, "its duration"))?,
            },
        };
        let m_end = i64::try_from(cts[k].dts_shift)
            .ok()
            .and_then(|d| d.checked_add(end_in_clip))
            .and_then(|e| e.checked_add(cts[k].cts_shift))
            .ok_or_else(|| overflow(clip, "the end of the joined track"))?;
        let seg = m_end.saturating_sub(target_mt).max(0) as u128;
        let seg_movie = div_round(seg * movie_ts as u128, timescale as u128);
        let mut list: Vec<OutEdit> = target_empties
            .iter()
            .map(|e| (e.segment_duration_movie_ticks, e.media_time_ticks, e.media_rate_integer))
            .collect();
        list.push((seg_movie, target_mt, 1));
        Some(list)
    };
    let tkhd_duration = match &edits {
        Some(list) => list
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.0))
            .ok_or_else(|| overflow(&clips[0], "the sum of its edit durations"))?,
        None => div_round(media_duration as u128 * movie_ts as u128, timescale as u128),
    };

    // sdtp and sample groups.
    let sdtp = clips.iter().any(|c| c.input.tracks[t].has_sdtp);
    let groups = tt.groups.clone();
    for (k, clip) in clips.iter().enumerate() {
        let st = &clip.input.tracks[t];
        for g in &groups {
            let runs = if k == 0 {
                g.runs_for(ranges[0].clone())
            } else {
                match st
                    .groups
                    .iter()
                    .find(|h| h.grouping_type == g.grouping_type && h.parameter == g.parameter && h.sgpd == g.sgpd)
                {
                    Some(h) => h.runs_for(ranges[k].clone()),
                    None => {
                        if !ranges[k].is_empty() {
                            notes.push(format!(
                                "{}: track {} has no '{}' sample group like TARGET's; its samples join none",
                                clip.input.name,
                                t + 1,
                                FourCc(g.grouping_type)
                            ));
                        }
                        let n = ranges[k].len() as u64;
                        let mut v = Vec::new();
                        let mut left = n;
                        while left > 0 {
                            let c = left.min(u32::MAX as u64);
                            v.push((c as u32, 0));
                            left -= c;
                        }
                        v
                    }
                }
            };
            cts[k].groups.push(runs);
        }
        if k > 0 && !ranges[k].is_empty() {
            for h in &st.groups {
                if !groups.iter().any(|g| g.grouping_type == h.grouping_type) {
                    notes.push(format!(
                        "{}: track {}: its '{}' sample group is dropped (TARGET has none)",
                        clip.input.name,
                        t + 1,
                        FourCc(h.grouping_type)
                    ));
                }
            }
        }
    }

    Ok(TrackOut {
        timescale: timescale as u32,
        kind: tt.kind,
        clips: cts,
        entries: entries.into_iter().map(|e| e.bytes).collect(),
        edits,
        media_duration,
        tkhd_duration,
        sdtp,
        groups,
    })
}

/// Boxes of `stbl` that describe samples one by one: rebuilt or dropped.
const PER_SAMPLE: [&[u8; 4]; 15] = [
    b"stts", b"ctts", b"stss", b"stsz", b"stz2", b"stsc", b"stco", b"co64", b"sdtp", b"sbgp", b"sgpd", b"cslg",
    b"subs", b"stps", b"padb",
];

fn write_trak(
    buf: &mut BytesMut,
    trak: &Child<'_>,
    tr: &TrackOut,
    tables: &TableBuilder,
    extra: &[u8],
) -> Result<(), Mp4Error> {
    let start = open(buf, b"trak");
    for c in trak.reader().children() {
        let c = c?;
        match &c.fourcc.0 {
            b"tkhd" => rewrite_timed(buf, &c, None, tr.tkhd_duration)?,
            b"edts" => {
                if let Some(edits) = &tr.edits {
                    write_edts(buf, edits);
                }
            }
            b"mdia" => {
                let mdia = open(buf, b"mdia");
                for m in c.reader().children() {
                    let m = m?;
                    match &m.fourcc.0 {
                        b"mdhd" => rewrite_timed(buf, &m, Some(tr.timescale), tr.media_duration)?,
                        b"minf" => {
                            let minf = open(buf, b"minf");
                            for n in m.reader().children() {
                                let n = n?;
                                if n.fourcc.0 == *b"stbl" {
                                    write_stbl(buf, &n, tr, tables, extra)?;
                                } else {
                                    buf.put_slice(n.data);
                                }
                            }
                            close(buf, minf);
                        }
                        _ => buf.put_slice(m.data),
                    }
                }
                close(buf, mdia);
            }
            _ => buf.put_slice(c.data),
        }
    }
    close(buf, start);
    Ok(())
}

fn write_stbl(
    buf: &mut BytesMut,
    stbl: &Child<'_>,
    tr: &TrackOut,
    tables: &TableBuilder,
    extra: &[u8],
) -> Result<(), Mp4Error> {
    let start = open(buf, b"stbl");
    let stsd = open_full(buf, b"stsd", 0, 0);
    buf.put_u32(tr.entries.len() as u32);
    tr.entries.iter().for_each(|e| buf.put_slice(e));
    close(buf, stsd);
    tables.write(buf);
    buf.put_slice(extra);
    for c in stbl.reader().children() {
        let c = c?;
        if c.fourcc.0 != *b"stsd" && !PER_SAMPLE.contains(&&c.fourcc.0) {
            buf.put_slice(c.data);
        }
    }
    close(buf, start);
    Ok(())
}
