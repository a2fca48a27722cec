//! Where each track starts on the presentation timeline, decided once for every writer.
//!
//! A track's packets carry decode and presentation times in its own ticks (its *media
//! timeline*); its edit list ([`Track::edits`], MP4 `elst` semantics) maps them onto the
//! presentation timeline that players show. Every writer (fragmented MP4, the regular MP4
//! of `--to mp4` and `livemux finalize`, Matroska/WebM) asks this module how to place a
//! track, so that they agree with each other and with the input.
//!
//! # The rule
//!
//! - **Presentation start of a track**: the time its first shown media appears. With an
//!   edit list made of empty edits (a lead-in of `E`) followed by one media edit from media
//!   time `M`, a media time `t` is shown at `E + (t - M)`; the track starts at
//!   `E + (max(first_pts, M) - M)`, `first_pts` being the smallest presentation time of its
//!   first packets. Samples before `M` are trimmed (AAC priming, B-frame delay, a cut), and
//!   a media edit with a duration trims what lies after it. No edit list is `E = 0, M = 0`.
//!   This is what FFmpeg reports as the stream's `start_time` for an MP4.
//! - **Common start**: the smallest presentation start over all tracks that have packets.
//!   Up to [`KEPT_COMMON_START_NS`] (1 hour) it is kept as the input has it: a recorder's
//!   lead-in, an `-output_ts_offset`, a test vector whose first frame is at 10 s, an HLS or
//!   DASH segment 30 s into a programme all read the same after the remux. Beyond, it is a
//!   clock rather than a position (a live capture whose decode times count from 1970, a
//!   `tfdt` of 1.68e9 s; an encoder's uptime; a 90 kHz counter) and is taken off every
//!   track, so that a regular MP4 does not open with a 53-year (or 19-hour) empty edit;
//!   `ffmpeg -c copy` takes off any common start. Either way the differences between tracks
//!   are kept exactly (to a tick, or to the output's 1 ms).
//! - **Writing it**: each track's media is moved so that its first decode time is 0 (a
//!   regular MP4's sample tables start there, and a `tfdt` cannot be negative), and the
//!   edit list is rebuilt as at most one empty edit (the track's start less the common
//!   shift) and one media edit (the first shown media time in the moved timeline, and the
//!   input's end trim if it had one). Matroska has no edit lists: block timestamps are the
//!   presentation times. Audio the edit trims at the start (AAC priming, Opus pre-skip)
//!   is kept in place and declared with `CodecDelay` (Matroska's "decode, then drop this
//!   much", which readers also subtract from every timestamp, so each packet reads at the
//!   time it has in the MP4; FFmpeg 5.1 shows those packets, where its MP4 reader marks
//!   them discarded), so that the first shown samples decode exactly; an Opus track with
//!   nothing trimmed declares its pre-skip, as WebM expects. Audio past the edit's end is
//!   left out. Video frames before the start keep their (earlier) times,
//!   since the frames after them need them. A fragmented MP4 keeps the edit list, but
//!   leaves out audio packets past its end (FFmpeg ignores an edit's end in fragments).
//! - A track with a more complex edit list (several media edits, a rate other than 1), or
//!   one whose first packet a writer did not see before it had to commit (a fragmented
//!   header), keeps its edit list as it is, and its media moves by the common shift.

use crate::model::{Edit, Track};

/// Nanoseconds per second.
const NS: i128 = 1_000_000_000;

/// A common start up to this (1 hour, in ns) is kept as the input has it; beyond, it is
/// taken off every track.
pub const KEPT_COMMON_START_NS: i128 = 3600 * NS;

/// `ticks` of `timescale` in ns, rounded toward negative infinity.
pub fn ticks_to_ns(ticks: i128, timescale: u32) -> i128 {
    (ticks * NS).div_euclid(timescale.max(1) as i128)
}

/// `ns` in ticks of `timescale`, rounded to the nearest tick.
pub fn ns_to_ticks(ns: i128, timescale: u32) -> i128 {
    (ns * timescale.max(1) as i128 + NS / 2).div_euclid(NS)
}

/// `ns` in ticks of `timescale`, rounded toward negative infinity.
fn ns_to_ticks_floor(ns: i128, timescale: u32) -> i128 {
    (ns * timescale.max(1) as i128).div_euclid(NS)
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// What the plan needs of a track: its timescale and edit list.
#[derive(Clone, Copy, Debug)]
pub struct Timing<'a> {
    pub timescale: u32,
    /// The timescale of the edits' segment durations.
    pub movie_timescale: u32,
    pub edits: &'a [Edit],
}

impl<'a> From<&'a Track> for Timing<'a> {
    fn from(t: &'a Track) -> Self {
        Timing { timescale: t.timescale, movie_timescale: t.movie_timescale, edits: &t.edits }
    }
}

/// A track's edit list, read as lead-in + one media edit when it is that simple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EditShape {
    /// Leading empty edits, in ns.
    pub lead_in_ns: i128,
    /// Media time (track ticks) of the first shown media.
    pub media_start: i64,
    /// Media time (track ticks) where shown media ends, when the media edit says.
    pub media_end: Option<i64>,
}

impl EditShape {
    /// The shape of `track`'s edits; `None` for an edit list this module does not rebuild
    /// (several media edits, a rate other than 1).
    pub fn of(track: Timing<'_>) -> Option<Self> {
        let mut lead_in_ns = 0i128;
        let mut media: Option<&Edit> = None;
        for e in track.edits {
            if e.media_time_ticks < 0 {
                if media.is_some() {
                    return None; // a gap after media
                }
                lead_in_ns += ticks_to_ns(e.segment_duration_movie_ticks as i128, track.movie_timescale);
            } else {
                if media.is_some() || e.media_rate_integer != 1 {
                    return None;
                }
                media = Some(e);
            }
        }
        let Some(m) = media else {
            return Some(EditShape { lead_in_ns, media_start: 0, media_end: None });
        };
        let media_end = (m.segment_duration_movie_ticks > 0).then(|| {
            let d = ns_to_ticks(
                ticks_to_ns(m.segment_duration_movie_ticks as i128, track.movie_timescale),
                track.timescale,
            );
            clamp_i64(m.media_time_ticks as i128 + d)
        });
        Some(EditShape { lead_in_ns, media_start: m.media_time_ticks, media_end })
    }

    /// Presentation start of a track of this shape whose smallest first presentation time
    /// is `first_pts` (ticks of `timescale`), in ns.
    pub fn start_ns(&self, first_pts: i64, timescale: u32) -> i128 {
        self.lead_in_ns + ticks_to_ns(first_pts.max(self.media_start) as i128 - self.media_start as i128, timescale)
    }
}

/// Where a track's media begins: its first decode time and the smallest presentation time
/// of its first packets (ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaStart {
    pub first_dts: i64,
    pub first_pts: i64,
}

/// How one track is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackPlan {
    pub timescale: u32,
    /// Ticks taken off every decode and presentation time of the track.
    pub media_shift: i64,
    /// Empty lead-in before the first shown media, in ns (output timeline).
    pub lead_in_ns: i128,
    /// First shown media time, in the moved media timeline (ticks).
    pub media_start: i64,
    /// End of the shown media, in the moved media timeline (ticks), when trimmed.
    pub media_end: Option<i64>,
    /// The edit list, when the track keeps its own (complex, or not seen in time).
    pub kept_edits: Option<Vec<Edit>>,
}

impl TrackPlan {
    /// Presentation time (ns, output timeline) of a moved media time `t`.
    pub fn presentation_ns(&self, t: i64) -> i128 {
        self.lead_in_ns + ticks_to_ns(t as i128 - self.media_start as i128, self.timescale)
    }

    /// Ticks of media the edit trims at the start of a track whose moved first presentation
    /// time is `first_pts` (0 when none).
    pub fn start_trim(&self, first_pts: i64) -> i64 {
        (self.media_start.saturating_sub(first_pts)).max(0)
    }

    /// The MP4 edit list for it, segment durations in `movie_timescale`; empty when the
    /// identity (no lead-in, media from 0, no end trim). The media edit's duration is 0
    /// ("to the end") unless the input trimmed the end; a regular MP4 cuts it to the media.
    pub fn mp4_edits(&self, movie_timescale: u32) -> Vec<Edit> {
        if let Some(kept) = &self.kept_edits {
            return kept.clone();
        }
        let lead = ns_to_ticks(self.lead_in_ns, movie_timescale).max(0);
        if lead == 0 && self.media_start == 0 && self.media_end.is_none() {
            return Vec::new();
        }
        let mut edits = Vec::with_capacity(2);
        if lead > 0 {
            edits.push(Edit {
                segment_duration_movie_ticks: lead.min(u64::MAX as i128) as u64,
                media_time_ticks: -1,
                media_rate_integer: 1,
            });
        }
        let duration = self.media_end.map_or(0, |end| {
            let ticks = (end as i128 - self.media_start as i128).max(0);
            ns_to_ticks(ticks_to_ns(ticks, self.timescale), movie_timescale).clamp(0, u64::MAX as i128) as u64
        });
        edits.push(Edit {
            segment_duration_movie_ticks: duration,
            media_time_ticks: self.media_start,
            media_rate_integer: 1,
        });
        edits
    }
}

/// How every track is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Taken off every presentation time (ns): the common start when it is over an hour.
    pub shift_ns: i128,
    pub tracks: Vec<TrackPlan>,
}

/// Decides how to write `tracks`, given where each one's media begins (`None`: a track
/// without packets, or whose first packets the writer cannot wait for).
pub fn plan<'a>(tracks: impl IntoIterator<Item = Timing<'a>>, starts: &[Option<MediaStart>]) -> Plan {
    let tracks: Vec<Timing<'a>> = tracks.into_iter().collect();
    let shapes: Vec<Option<EditShape>> = tracks.iter().map(|t| EditShape::of(*t)).collect();
    let common = tracks
        .iter()
        .zip(&shapes)
        .zip(starts)
        .filter_map(|((t, shape), start)| {
            let start = start.as_ref()?;
            let shape = (*shape)?;
            Some(shape.start_ns(start.first_pts, t.timescale))
        })
        .min();
    let shift_ns = match common {
        Some(c) if c > KEPT_COMMON_START_NS => c,
        _ => 0,
    };
    let plans = tracks
        .iter()
        .zip(&shapes)
        .zip(starts)
        .map(|((t, shape), start)| match (shape, start) {
            (Some(shape), Some(start)) => simple(t.timescale, shape, start, shift_ns),
            _ => kept(*t, shift_ns),
        })
        .collect();
    Plan { shift_ns, tracks: plans }
}

/// A track rebuilt as lead-in + one media edit, its media moved to start at 0.
fn simple(timescale: u32, shape: &EditShape, start: &MediaStart, shift_ns: i128) -> TrackPlan {
    let d = start.first_dts;
    // The first media that can be shown (nothing exists before the first decode time),
    // and when it is shown, less the common shift.
    let first_shown = shape.media_start.max(d);
    let shown_at =
        shape.lead_in_ns + ticks_to_ns(first_shown as i128 - shape.media_start as i128, timescale) - shift_ns;
    let moved_start = first_shown as i128 - d as i128;
    let (mut lead_in_ns, mut media_start) = if shown_at >= 0 {
        (shown_at, moved_start)
    } else {
        // Shown before the output's 0: start later in the media instead.
        (0, moved_start + ns_to_ticks(-shown_at, timescale))
    };
    // An edit that starts in the gap before the first sample is the same as a longer
    // lead-in and an edit from that sample, which is how FFmpeg reads it (it maps an edit
    // start between samples onto a sample by decode time). An edit from 0 stays: it adds
    // nothing (and no lead-in rounded to the movie timescale).
    let first_pts = start.first_pts as i128 - d as i128;
    if media_start > 0 && first_pts > media_start {
        lead_in_ns += ticks_to_ns(first_pts - media_start, timescale);
        media_start = first_pts;
    }
    TrackPlan {
        timescale,
        media_shift: d,
        lead_in_ns,
        media_start: clamp_i64(media_start),
        media_end: shape.media_end.map(|e| e.saturating_sub(d)),
        kept_edits: None,
    }
}

/// A track that keeps its own edit list, its media moved by the common shift: every
/// presentation time moves by the shift with it.
fn kept(t: Timing<'_>, shift_ns: i128) -> TrackPlan {
    let shift = clamp_i64(ns_to_ticks_floor(shift_ns, t.timescale));
    let shape = EditShape::of(t);
    let (lead_in_ns, media_start, media_end) =
        shape.map_or((0, 0, None), |s| (s.lead_in_ns, s.media_start, s.media_end));
    TrackPlan {
        timescale: t.timescale,
        media_shift: shift,
        lead_in_ns,
        media_start,
        media_end,
        kept_edits: Some(t.edits.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::CodecConfig;
    use crate::model::TrackKind;

    fn track(timescale: u32, edits: &[(u64, i64)]) -> Track {
        let codec = CodecConfig::Unknown { fourcc: *b"xxxx", dims: None, audio: None };
        Track {
            edits: edits
                .iter()
                .map(|&(d, m)| Edit { segment_duration_movie_ticks: d, media_time_ticks: m, media_rate_integer: 1 })
                .collect(),
            ..Track::for_test(TrackKind::Video, timescale, codec)
        }
    }

    fn at(first_dts: i64, first_pts: i64) -> Option<MediaStart> {
        Some(MediaStart { first_dts, first_pts })
    }

    #[test]
    fn lead_in_and_priming_are_kept_below_a_second() {
        // Video shown 1 s in (empty edit), AAC with 1024 ticks of priming.
        let tracks = [track(30_000, &[(1000, -1), (9000, 0)]), track(48_000, &[(10_000, 1024)])];
        let p = plan(tracks.iter().map(Timing::from), &[at(0, 0), at(0, 0)]);
        assert_eq!(p.shift_ns, 0);
        assert_eq!((p.tracks[0].lead_in_ns, p.tracks[0].media_start), (NS, 0));
        assert_eq!((p.tracks[1].lead_in_ns, p.tracks[1].media_start), (0, 1024));
        assert_eq!(p.tracks[1].start_trim(0), 1024);
        assert_eq!(p.tracks[1].presentation_ns(0), ticks_to_ns(-1024, 48_000));
        let e = p.tracks[0].mp4_edits(1000);
        assert_eq!(
            e.iter().map(|e| (e.segment_duration_movie_ticks, e.media_time_ticks)).collect::<Vec<_>>(),
            [(1000, -1), (9000, 0)]
        );
    }

    #[test]
    fn a_late_media_clock_moves_into_the_lead_in() {
        // HLS: empty edits of 900 and 29 ms, media from 0, decode times 29.029 / 29.909 s:
        // a start under an hour is kept, the decode times become the lead-in.
        let tracks = [track(60_000, &[(900, -1), (0, 0)]), track(48_000, &[(29, -1), (0, 0)])];
        let p = plan(tracks.iter().map(Timing::from), &[at(1_741_740, 1_741_740), at(1_435_648, 1_435_648)]);
        assert_eq!(p.shift_ns, 0);
        let v = &p.tracks[0];
        assert_eq!((v.lead_in_ns, v.media_start, v.media_shift), (29_929_000_000, 0, 1_741_740));
        assert_eq!(p.tracks[1].lead_in_ns, 29_938_333_333);
        // The same 20 hours later: taken off, audio 9.333 ms after video as in the input.
        let late: i64 = 20 * 3600;
        let (v0, a0) = (1_741_740 + late * 60_000, 1_435_648 + late * 48_000);
        let p = plan(tracks.iter().map(Timing::from), &[at(v0, v0), at(a0, a0)]);
        assert_eq!(p.shift_ns, 29_929_000_000 + late as i128 * NS);
        assert_eq!((p.tracks[0].lead_in_ns, p.tracks[0].media_start), (0, 0));
        assert_eq!(p.tracks[1].lead_in_ns, 9_333_333);
        let e = p.tracks[1].mp4_edits(1000);
        assert!(e.iter().any(|e| e.media_time_ticks == -1 && e.segment_duration_movie_ticks == 9));
    }

    #[test]
    fn a_large_absolute_start_is_taken_off_and_b_frame_delay_trimmed() {
        // tfdt 1.68e9 s, first frame shown 2002 ticks after the first decode time.
        let d = 101_132_901_810_243;
        let p = plan([Timing::from(&track(60_000, &[]))], &[at(d, d + 2002)]);
        assert_eq!(p.shift_ns, ticks_to_ns(d as i128 + 2002, 60_000));
        let t = &p.tracks[0];
        assert_eq!((t.media_shift, t.lead_in_ns, t.media_start), (d, 0, 2002));
        assert_eq!(t.presentation_ns(2002), 0);
    }

    #[test]
    fn per_track_offsets_without_edits_are_kept() {
        // Video's first frame at 83 ms (no edit list), audio at 0.
        let tracks = [track(57_600, &[]), track(48_000, &[])];
        let p = plan(tracks.iter().map(Timing::from), &[at(0, 4800), at(0, 0)]);
        assert_eq!(p.shift_ns, 0);
        assert_eq!(p.tracks[0].presentation_ns(4800), 83_333_333);
        assert!(p.tracks[0].mp4_edits(1000).is_empty());
        assert!(p.tracks[1].mp4_edits(1000).is_empty());
        // An edit from a time between 0 and the first frame is written from the first frame
        // after a longer lead-in (FFmpeg maps an edit start onto a sample by decode time).
        let gap = [track(1000, &[(0, 400)])];
        let p = plan(gap.iter().map(Timing::from), &[at(23, 423)]);
        let e = p.tracks[0].mp4_edits(1000);
        let e: Vec<_> = e.iter().map(|e| (e.segment_duration_movie_ticks, e.media_time_ticks)).collect();
        assert_eq!(e, [(23, -1), (0, 400)]);
        // A track that starts 880 ms later in decode time gets an empty edit.
        let p = plan(tracks.iter().map(Timing::from), &[at(0, 0), at(42_240, 42_240)]);
        let e = p.tracks[1].mp4_edits(1000);
        assert_eq!((e[0].segment_duration_movie_ticks, e[0].media_time_ticks), (880, -1));
        assert_eq!(p.tracks[1].media_shift, 42_240);
    }

    #[test]
    fn complex_or_unseen_tracks_keep_their_edits_and_move_their_media() {
        let tracks = [track(1000, &[]), track(1000, &[(500, 0), (500, 2000)])];
        let h = 5 * 3600 * 1000;
        let p = plan(tracks.iter().map(Timing::from), &[at(h, h), at(h, h)]);
        assert_eq!(p.shift_ns, 5 * 3600 * NS);
        let kept = p.tracks[1].kept_edits.as_ref().unwrap();
        assert_eq!(kept, &tracks[1].edits);
        assert_eq!(p.tracks[1].media_shift, h);
        // Its media moved by the 5 h shift: media time 5 h (now 0) is shown at 0.
        assert_eq!(p.tracks[1].presentation_ns(0), 0);
        let p = plan(tracks[..1].iter().map(Timing::from), &[None]);
        assert_eq!((p.shift_ns, p.tracks[0].media_shift), (0, 0));
    }

    #[test]
    fn rounding_stays_within_a_tick() {
        assert_eq!(ns_to_ticks(ticks_to_ns(1001, 30_000), 30_000), 1001);
        assert_eq!(ticks_to_ns(-1, 1000), -1_000_000);
        assert_eq!(ns_to_ticks(-1_000_000, 1000), -1);
    }
}
