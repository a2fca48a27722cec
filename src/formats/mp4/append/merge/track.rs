//! Working out one output track of an append, phase by phase (the rules are in the doc of
//! [`super`]): sample entries, a common timescale, each clip's conversion and delay, the
//! presentation shifts of video clips, the joined edit list, the joined sample groups.

use std::ops::Range;

use super::super::super::boxes::FourCc;
use super::super::index::{family, Entry, SampleGroup, TrackIndex};
use super::super::AppendError;
use super::{div_round, entry_shape, gcd, same_entry, split_edits, switchable, Clip, ClipTrack, TrackOut};
use crate::model::{Edit, TrackKind};

/// Samples looked at to find a clip's presentation delay (deeper than any B-frame pyramid).
const DELAY_WINDOW: usize = 256;

/// Output track `t` of `clips` being worked out, with each clip's samples of it.
struct Job<'c, 'a> {
    clips: &'c [Clip<'a>],
    t: usize,
    ranges: Vec<Range<usize>>,
}

/// Each clip's timing in the output timescale.
struct Timed {
    clips: Vec<ClipTrack>,
    /// Decode duration of each clip.
    durations: Vec<u64>,
    /// Presentation delay of each clip (video: the smallest presentation time in
    /// [`DELAY_WINDOW`] samples; audio: 0).
    delays: Vec<i64>,
    /// Latest presentation end of each video clip with samples, on the output timeline.
    presentation_ends: Vec<Option<i64>>,
    /// All clips' decode durations together.
    media_duration: u64,
}

impl<'a> Job<'_, 'a> {
    fn target_track(&self) -> &'a TrackIndex {
        &self.clips[0].input.tracks[self.t]
    }

    fn track<'s>(&self, clip: &'s Clip<'_>) -> &'s TrackIndex {
        &clip.input.tracks[self.t]
    }

    fn refuse(&self, clip: &Clip<'_>, reason: String) -> AppendError {
        AppendError::Incompatible {
            target: self.clips[0].input.name.clone(),
            input: clip.input.name.clone(),
            reason: format!("track {}: {reason}", self.t + 1),
        }
    }

    /// Times come from the inputs' tables: sums that do not fit 64 bits are refused.
    fn overflow(&self, clip: &Clip<'_>, what: &str) -> AppendError {
        self.refuse(clip, format!("{what} does not fit 64 bits in timescale units (damaged tables or edit list?)"))
    }
}

/// Works out output track `t`.
pub(super) fn merge_track(
    clips: &[Clip<'_>],
    t: usize,
    new_entries: bool,
    notes: &mut Vec<String>,
) -> Result<TrackOut, AppendError> {
    let job = Job { clips, t, ranges: clips.iter().map(|c| c.input.sample_range(&c.chunks, t)).collect() };
    // The tables count samples in 32 bits.
    if job.ranges.iter().map(|r| r.len() as u64).sum::<u64>() > u32::MAX as u64 {
        let last = clips.last().expect("TARGET is a clip");
        return Err(job.refuse(last, "the joined track has over 2^32 - 1 samples".into()));
    }
    let (entries, desc_maps) = sample_entries(&job, new_entries, notes)?;
    let timescale = timescale(&job, notes)?;
    let mut timed = clip_timing(&job, timescale, desc_maps)?;
    let media_duration = timed.media_duration;
    if job.target_track().kind == TrackKind::Video {
        align_presentation(&job, &mut timed, notes)?;
    }
    let edits = join_edits(&job, timescale, &timed, notes)?;
    let movie_ts = clips[0].input.movie_timescale as u64;
    let tkhd_duration = match &edits {
        Some(list) => list
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.segment_duration_movie_ticks))
            .ok_or_else(|| job.overflow(&clips[0], "the sum of its edit durations"))?,
        None => div_round(media_duration as u128 * movie_ts as u128, timescale as u128),
    };
    let groups = join_groups(&job, &mut timed.clips, notes);
    Ok(TrackOut {
        timescale: timescale as u32,
        kind: job.target_track().kind,
        clips: timed.clips,
        entries: entries.into_iter().map(|e| e.bytes).collect(),
        edits,
        media_duration,
        tkhd_duration,
        sdtp: clips.iter().any(|c| job.track(c).has_sdtp),
        groups,
    })
}

/// The output's sample entries (TARGET's, then any a source adds) and, per clip, the map
/// from its sample descriptions (1-based) to the output's.
fn sample_entries(
    job: &Job<'_, '_>,
    new_entries: bool,
    notes: &mut Vec<String>,
) -> Result<(Vec<Entry>, Vec<Vec<u16>>), AppendError> {
    let tt = job.target_track();
    let mut entries: Vec<Entry> = tt.entries.clone();
    let mut desc_maps = vec![(1..=tt.entries.len() as u16).collect::<Vec<u16>>()];
    for clip in &job.clips[1..] {
        let st = job.track(clip);
        let mut map = Vec::with_capacity(st.entries.len());
        for e in &st.entries {
            if let Some(j) = entries.iter().position(|x| same_entry(x, e)) {
                map.push(j as u16 + 1);
                continue;
            }
            check_new_entry(job, clip, e, new_entries)?;
            if entries.len() >= u16::MAX as usize {
                return Err(job.refuse(clip, "too many sample entries".into()));
            }
            entries.push(e.clone());
            map.push(entries.len() as u16);
            notes.push(format!(
                "{}: track {} has other {} parameters than TARGET; they get a sample entry of their own",
                clip.input.name,
                job.t + 1,
                family(e.fourcc)
            ));
        }
        desc_maps.push(map);
    }
    Ok((entries, desc_maps))
}

/// Whether a source's sample entry unlike any of TARGET's may become a second one.
fn check_new_entry(job: &Job<'_, '_>, clip: &Clip<'_>, e: &Entry, new_entries: bool) -> Result<(), AppendError> {
    let first = &job.target_track().entries[0];
    let name = family(e.fourcc);
    if !switchable(e.fourcc) || name != family(first.fourcc) || e.config.is_err() {
        return Err(job.refuse(
            clip,
            format!(
                "its {name} parameters differ from TARGET's, and players do not switch {name} parameters within a \
                 track"
            ),
        ));
    }
    if entry_shape(e) != entry_shape(first) {
        return Err(
            job.refuse(clip, format!("a sample entry is {}, TARGET's is {}", entry_shape(e), entry_shape(first)))
        );
    }
    if !new_entries {
        return Err(job.refuse(
            clip,
            format!(
                "its {name} parameters differ from TARGET's (another encoder or settings); a second sample entry \
                 plays in FFmpeg and GStreamer but not in Chromium, so it is only made with --new-sample-entries"
            ),
        ));
    }
    Ok(())
}

/// TARGET's timescale when every source converts into it exactly, else the least common
/// multiple of all of them (refused past 32 bits).
fn timescale(job: &Job<'_, '_>, notes: &mut Vec<String>) -> Result<u64, AppendError> {
    let tt = job.target_track();
    let scales_into = |clip: &Clip<'_>, range: &Range<usize>, to: u64| {
        let st = job.track(clip);
        let from = st.timescale as u64;
        to.is_multiple_of(from)
            || st.samples[range.clone()]
                .iter()
                .all(|s| (s.duration as u64 * to).is_multiple_of(from) && (s.cts as i64 * to as i64) % from as i64 == 0)
    };
    let mut timescale = tt.timescale as u64;
    if job.clips.iter().zip(&job.ranges).skip(1).all(|(c, r)| scales_into(c, r, timescale)) {
        return Ok(timescale);
    }
    for clip in job.clips {
        let ts = job.track(clip).timescale as u64;
        timescale = timescale / gcd(timescale, ts) * ts;
        if timescale > u32::MAX as u64 {
            return Err(job.refuse(
                clip,
                format!(
                    "its timescale {ts} and TARGET's {} cannot be combined exactly (no common timescale fits 32 bits)",
                    tt.timescale
                ),
            ));
        }
    }
    notes.push(format!(
        "track {}: timescale changed from {} to {} so that every source's timing is kept exactly",
        job.t + 1,
        tt.timescale,
        timescale
    ));
    Ok(timescale)
}

/// Per clip: conversion into `timescale`, decode duration and start, presentation delay.
fn clip_timing(job: &Job<'_, '_>, timescale: u64, desc_maps: Vec<Vec<u16>>) -> Result<Timed, AppendError> {
    let video = job.target_track().kind == TrackKind::Video;
    let n = job.clips.len();
    let mut timed = Timed {
        clips: Vec::with_capacity(n),
        durations: Vec::with_capacity(n),
        delays: Vec::with_capacity(n),
        presentation_ends: vec![None; n],
        media_duration: 0,
    };
    let mut dts_shift = 0u64;
    for ((clip, range), desc_map) in job.clips.iter().zip(&job.ranges).zip(desc_maps) {
        let st = job.track(clip);
        let (mul, div) = (timescale, st.timescale as u64);
        let mut dur = 0u64;
        for s in &st.samples[range.clone()] {
            let d = s.duration as u64 * mul / div;
            if d > u32::MAX as u64 {
                return Err(job.refuse(clip, format!("a sample duration overflows in timescale {timescale}")));
            }
            dur = dur.checked_add(d).ok_or_else(|| job.overflow(clip, "its duration"))?;
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
        timed.clips.push(ClipTrack {
            samples: range.clone(),
            mul,
            div,
            dts_shift,
            cts_shift: 0,
            desc_map,
            groups: Vec::new(),
            sdtp: st.has_sdtp,
        });
        dts_shift = dts_shift.checked_add(dur).ok_or_else(|| job.overflow(clip, "the joined duration"))?;
        timed.durations.push(dur);
        timed.delays.push(delay);
    }
    timed.media_duration = dts_shift;
    Ok(timed)
}

/// Video: each clip's first frame is shown right after the previous clips' last one. Its
/// delay is made TARGET's, and when a previous clip was cut inside a group of B-frames
/// (its last frames in decode order are shown after frames that were cut off), its
/// presentation runs past its decode end; the clip's frames are then shown that much later
/// (larger composition offsets). Decode times stay continuous.
fn align_presentation(job: &Job<'_, '_>, timed: &mut Timed, notes: &mut Vec<String>) -> Result<(), AppendError> {
    let mut shown_until: Option<i64> = None;
    for (k, (clip, range)) in job.clips.iter().zip(&job.ranges).enumerate() {
        if range.is_empty() {
            continue;
        }
        let c = &mut timed.clips[k];
        let dts_start = i64::try_from(c.dts_shift).map_err(|_| job.overflow(clip, "the joined duration"))?;
        if k > 0 {
            c.cts_shift = timed.delays[0] - timed.delays[k];
            let starts = dts_start + timed.delays[0];
            if let Some(until) = shown_until.filter(|&u| u > starts) {
                c.cts_shift += until - starts;
                notes.push(format!(
                    "{}: track {}: the clip before it ends inside a group of B-frames (frames shown after its last \
                     one were cut off): its frames are shown {} ticks later so that presentation times do not \
                     overlap",
                    clip.input.name,
                    job.t + 1,
                    until - starts
                ));
            }
        }
        // Latest presentation end of this clip's frames, on the output timeline.
        let (mul, div) = (c.mul as i128, c.div as i128);
        let mut dts = dts_start as i128;
        let mut end = i128::MIN;
        for s in &job.track(clip).samples[range.clone()] {
            let d = s.duration as i128 * mul / div;
            end = end.max(dts + s.cts as i128 * mul / div + c.cts_shift as i128 + d);
            dts += d;
        }
        let end = i64::try_from(end).map_err(|_| job.overflow(clip, "its presentation end"))?;
        shown_until = Some(shown_until.map_or(end, |u| u.max(end)));
        timed.presentation_ends[k] = Some(end);
    }
    Ok(())
}

/// TARGET's leading empty edits and its normal edit, extended to where the last clip with
/// samples ends its presentation (`None`: TARGET has no edit list).
fn join_edits(
    job: &Job<'_, '_>,
    timescale: u64,
    timed: &Timed,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<Edit>>, AppendError> {
    let target = job.clips[0].input;
    let tt = job.target_track();
    let (target_empties, target_main) = split_edits(&tt.edits).map_err(|e| AppendError::Unusable {
        input: target.name.clone(),
        reason: format!("track {}: {e}", job.t + 1),
    })?;
    let mut clip_mains = vec![target_main];
    for clip in &job.clips[1..] {
        let (empties, main) = split_edits(&job.track(clip).edits).map_err(|e| job.refuse(clip, e))?;
        if !empties.is_empty() {
            notes.push(format!(
                "{}: track {} starts with an empty edit (a delay); it is dropped in the middle of TARGET",
                clip.input.name,
                job.t + 1
            ));
        }
        clip_mains.push(main);
    }
    if tt.edits.is_empty() {
        return Ok(None);
    }
    let Some(main) = target_main else {
        return Err(AppendError::Unusable {
            input: target.name.clone(),
            reason: format!("track {}: its edit list shows no media", job.t + 1),
        });
    };
    let target_mt = i64::try_from(div_round(main.media_time_ticks as u128 * timescale as u128, tt.timescale as u128))
        .map_err(|_| job.overflow(&job.clips[0], "its edit's media time"))?;
    // The last clip with samples in this track decides where presentation ends.
    let k = (0..job.clips.len()).rev().find(|&k| !job.ranges[k].is_empty()).unwrap_or(0);
    let clip = &job.clips[k];
    let end_in_clip = clip_end(job, k, timescale, clip_mains[k], timed)?;
    let (ct, movie_ts) = (&timed.clips[k], target.movie_timescale as u128);
    let m_end = i64::try_from(ct.dts_shift)
        .ok()
        .and_then(|d| d.checked_add(end_in_clip))
        .and_then(|e| e.checked_add(ct.cts_shift))
        .ok_or_else(|| job.overflow(clip, "the end of the joined track"))?;
    let seg = m_end.saturating_sub(target_mt).max(0) as u128;
    let seg_movie = div_round(seg * movie_ts, timescale as u128);
    let mut list = target_empties;
    list.push(Edit { segment_duration_movie_ticks: seg_movie, media_time_ticks: target_mt, media_rate_integer: 1 });
    Ok(Some(list))
}

/// Where clip `k`'s presentation ends, in the output timescale, from its first sample's
/// decode time: its own edit's end when the clip runs to the end of its input, else its
/// frames' latest end (a video clip cut inside a group of B-frames shows its last frames
/// past its decode end plus its delay), else its duration plus its delay.
fn clip_end(
    job: &Job<'_, '_>,
    k: usize,
    timescale: u64,
    main: Option<Edit>,
    timed: &Timed,
) -> Result<i64, AppendError> {
    let clip = &job.clips[k];
    let st = job.track(clip);
    let range = &job.ranges[k];
    match main {
        Some(e) if range.end == st.samples.len() => {
            let (mul, div) = (timescale as u128, st.timescale as u128);
            let mt = i64::try_from(div_round(e.media_time_ticks as u128 * mul, div)).ok();
            let seg = i64::try_from(div_round(
                e.segment_duration_movie_ticks as u128 * timescale as u128,
                clip.input.movie_timescale.max(1) as u128,
            ))
            .ok();
            let before: u64 = st.samples[..range.start].iter().map(|s| s.duration as u64).sum();
            let before = i64::try_from(before as u128 * mul / div).ok();
            mt.zip(seg)
                .and_then(|(mt, seg)| mt.checked_add(seg))
                .zip(before)
                .and_then(|(end, before)| end.checked_sub(before))
                .ok_or_else(|| job.overflow(clip, "the end of its edit"))
        }
        _ => match timed.presentation_ends[k] {
            Some(end) => end
                .checked_sub(timed.clips[k].dts_shift as i64)
                .and_then(|e| e.checked_sub(timed.clips[k].cts_shift))
                .ok_or_else(|| job.overflow(clip, "its presentation end")),
            None => i64::try_from(timed.durations[k])
                .ok()
                .and_then(|d| d.checked_add(timed.delays[k]))
                .ok_or_else(|| job.overflow(clip, "its duration")),
        },
    }
}

/// TARGET's sample groups, with each clip's runs (a source without the same group joins
/// none: index 0); a source's groups TARGET lacks are dropped, with a note.
fn join_groups(job: &Job<'_, '_>, clips: &mut [ClipTrack], notes: &mut Vec<String>) -> Vec<SampleGroup> {
    let groups = job.target_track().groups.clone();
    for (k, clip) in job.clips.iter().enumerate() {
        let st = job.track(clip);
        let range = &job.ranges[k];
        for g in &groups {
            let runs = if k == 0 {
                g.runs_for(range.clone())
            } else {
                match st
                    .groups
                    .iter()
                    .find(|h| h.grouping_type == g.grouping_type && h.parameter == g.parameter && h.sgpd == g.sgpd)
                {
                    Some(h) => h.runs_for(range.clone()),
                    None => {
                        if !range.is_empty() {
                            notes.push(format!(
                                "{}: track {} has no '{}' sample group like TARGET's; its samples join none",
                                clip.input.name,
                                job.t + 1,
                                FourCc(g.grouping_type)
                            ));
                        }
                        no_group_runs(range.len() as u64)
                    }
                }
            };
            clips[k].groups.push(runs);
        }
        if k > 0 && !range.is_empty() {
            for h in st.groups.iter().filter(|h| !groups.iter().any(|g| g.grouping_type == h.grouping_type)) {
                notes.push(format!(
                    "{}: track {}: its '{}' sample group is dropped (TARGET has none)",
                    clip.input.name,
                    job.t + 1,
                    FourCc(h.grouping_type)
                ));
            }
        }
    }
    groups
}

/// Runs that put `n` samples in no group.
fn no_group_runs(n: u64) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    let mut left = n;
    while left > 0 {
        let c = left.min(u32::MAX as u64);
        v.push((c as u32, 0));
        left -= c;
    }
    v
}
