//! `--to mp4`: crash-safe while recording, a regular MP4 at a clean stop.
//!
//! The muxer writes fragmented MP4 ([`Fmp4Muxer`]) behind a `free` box reserved after
//! `ftyp`, sized by [`estimate_reserve`] from the expected duration. Every fragment it
//! emits is also read back into a [`FragmentIndex`] (the same index `livemux finalize`
//! builds from a file), and at [`Muxer::finish`] the plan of
//! [`finalize::plan_steps`](super::finalize::plan_steps) comes out as
//! [`FragmentKind::Finalize`] fragments: a file sink writes each in place and makes it
//! durable before the next; a stream skips them and stays a valid fragmented MP4. See
//! [`super::finalize`] for the layout and the write order.
//!
//! While it records, a `sidx` per track after the `moov` counts the fragments written so
//! far ([`super::sidx`]): players open and seek a running or killed recording without
//! reading every `moof`. It has room for the fragments of the expected duration, and at
//! least for those of an hour (up to 4096 fragments).

use super::finalize::{plan_steps, FragmentIndex, Layout};
use super::fmp4::Fmp4Muxer;
use super::init::fragmented_header_with;
use super::sidx::MAX_ENTRIES;
use crate::codecs::CodecConfig;
use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::{MuxError, Muxer, WriteStep};
use crate::model::{Fragment, FragmentKind, Packet, Track, TrackKind, TrackSet, Tracks};

/// Expected duration the reserved space is sized for, unless told otherwise: 1 minute
/// (about 64 KB), small next to short clips; longer recordings set `reserve_ms`.
pub const DEFAULT_RESERVE_MS: u64 = 60_000;

/// Shortest recording the running index has room for: 1 hour (43 KB a track at the
/// default 1-second fragments)...
pub const RUNNING_INDEX_MIN_MS: u64 = 3_600_000;
/// ...unless its fragments are short: room for this many at least (49 KB a track).
const RUNNING_INDEX_MIN_ENTRIES: u64 = 4096;

/// Fragments the running index has room for: those of `reserve_ms` cut at `policy.min_ms`,
/// and at least those of [`RUNNING_INDEX_MIN_MS`] up to [`RUNNING_INDEX_MIN_ENTRIES`].
fn running_index_capacity(reserve_ms: u64, policy: FragmentPolicy) -> u32 {
    let per = |ms: u64| ms / policy.min_ms.max(1) + 1;
    let fragments = per(reserve_ms).max(per(RUNNING_INDEX_MIN_MS).min(RUNNING_INDEX_MIN_ENTRIES));
    fragments.min(u64::from(MAX_ENTRIES)) as u32
}

/// Video frame rate the reserve is sized for (generous: 30 fps video fills half of it).
const RESERVE_VIDEO_FPS: u64 = 60;
/// Index bytes per video sample: `stsz` 4, a `ctts` run 8 (B-frames), `sdtp` 1.
const VIDEO_SAMPLE_BYTES: u64 = 13;
/// Index bytes per video keyframe (`stss`), at up to 2 keyframes a second.
const KEYFRAME_BYTES_PER_SECOND: u64 = 8;
/// Index bytes per audio sample: `stsz` 4, `sdtp` 1.
const AUDIO_SAMPLE_BYTES: u64 = 5;
/// Index bytes per chunk (one per track per fragment): `co64` 8, an `stsc` run 12.
const CHUNK_BYTES: u64 = 20;
/// Room for the table box headers and edits of one track.
const TRACK_OVERHEAD: u64 = 256;

/// Samples a second of a track, for sizing the index.
fn samples_per_second(track: &Track) -> u64 {
    match (&track.codec, track.kind) {
        (CodecConfig::Opus { .. }, _) => 50,
        (c, TrackKind::Audio) => c.audio_format().map_or(50, |a| (a.sample_rate as u64).div_ceil(1024).max(1)),
        (_, TrackKind::Video) => RESERVE_VIDEO_FPS,
        _ => 50,
    }
}

/// Bytes of the `free` box to reserve so that the regular `moov` of a recording of
/// `duration_ms` fits before the media: the fragmented `moov` plus index bytes per second
/// (video taken at 60 fps with B-frames, audio at its frame rate, one chunk per track per
/// fragment of `policy.min_ms`). 0 for a duration of 0: no reserve, the `moov` goes at the end.
pub fn estimate_reserve(tracks: &Tracks, duration_ms: u64, policy: FragmentPolicy) -> u64 {
    if duration_ms == 0 {
        return 0;
    }
    // The header with the movie's `udta` (title, tags, cover art), which the regular
    // `moov` keeps.
    let base = fragmented_header_with(tracks, &tracks.movie, 0).map_or(4096, |h| h.0.len() as u64)
        + TRACK_OVERHEAD * tracks.len() as u64;
    let fragments_per_second = 1000f64 / policy.min_ms.max(1) as f64;
    let per_second: f64 = tracks
        .iter()
        .map(|t| {
            let samples = samples_per_second(t);
            let sample_bytes = match t.kind {
                TrackKind::Video => samples * VIDEO_SAMPLE_BYTES + KEYFRAME_BYTES_PER_SECOND,
                _ => samples * AUDIO_SAMPLE_BYTES,
            };
            sample_bytes as f64 + fragments_per_second * CHUNK_BYTES as f64
        })
        .sum();
    base.saturating_add((per_second * duration_ms as f64 / 1000.0).ceil() as u64)
}

/// Fragmented MP4 while recording, finalized into a regular MP4 by [`Muxer::finish`].
pub struct RegularMp4Muxer {
    inner: Fmp4Muxer,
    index: Option<FragmentIndex>,
    notes: Vec<String>,
}

fn finalize_error(e: impl std::fmt::Display) -> MuxError {
    MuxError::Finalize(e.to_string())
}

impl RegularMp4Muxer {
    /// `reserve_ms`: the expected duration; the reserved space is sized for it (0: none).
    pub fn new(tracks: TrackSet, policy: FragmentPolicy, reserve_ms: u64) -> Self {
        let reserve = estimate_reserve(&tracks, reserve_ms, policy);
        Self::with_reserve_bytes(tracks, policy, reserve, running_index_capacity(reserve_ms, policy))
    }

    /// For an input of a known duration (a finished file): the reserve and the running
    /// index sized for it, a tenth more and a fragment or two to spare, without the
    /// running index's minimum of an hour.
    pub fn for_duration(tracks: TrackSet, policy: FragmentPolicy, duration_ms: u64) -> Self {
        let ms = duration_ms.saturating_add(duration_ms / 10).saturating_add(policy.min_ms);
        let reserve = estimate_reserve(&tracks, ms, policy);
        let capacity = (ms / policy.min_ms.max(1) + 2).min(u64::from(MAX_ENTRIES)) as u32;
        Self::with_reserve_bytes(tracks, policy, reserve, capacity)
    }

    /// A muxer with a reserved `free` box of exactly `reserve` bytes (0: none) and a running
    /// index with room for `index_capacity` fragments.
    pub fn with_reserve_bytes(tracks: TrackSet, policy: FragmentPolicy, reserve: u64, index_capacity: u32) -> Self {
        let inner = Fmp4Muxer::with_reserve(tracks, policy, reserve).with_running_index(index_capacity);
        RegularMp4Muxer { inner, index: None, notes: Vec::new() }
    }

    /// Reads an emitted media fragment's `moof` back into the index. The first fragment
    /// carries the header before its `moof`; the index starts from that header's `moov`.
    fn index(&mut self, fragment: &Fragment) -> Result<(), MuxError> {
        let mut parts = fragment.parts.iter();
        let mut offset = fragment.offset;
        if self.index.is_none() {
            let header = self.inner.header_bytes().ok_or_else(|| finalize_error("a fragment before the header"))?;
            let layout = self.inner.layout().ok_or_else(|| finalize_error("a fragment before the header"))?;
            let at = layout.moov_offset as usize;
            let size = header.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let moov = header.get(at..at + size).map(|_| header.slice(at..at + size));
            let moov = moov.ok_or_else(|| finalize_error("a header without its whole moov"))?;
            self.index = Some(FragmentIndex::new(moov, layout.moov_offset, 8).map_err(finalize_error)?);
            if fragment.offset == 0 {
                parts.next();
                offset += header.len() as u64;
            }
        }
        let index = self.index.as_mut().expect("set above");
        let head = parts.next().ok_or_else(|| finalize_error("an empty fragment"))?;
        let size = head.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let moof = head.get(..size).ok_or_else(|| finalize_error("a fragment without its whole moof"))?;
        let samples = index.parse_fragment(moof, offset, 8).map_err(finalize_error)?;
        index.add(&samples).map_err(finalize_error)
    }

    fn index_all(&mut self, fragments: &[Fragment]) -> Result<(), MuxError> {
        fragments.iter().filter(|f| f.kind == FragmentKind::Media).try_for_each(|f| self.index(f))
    }
}

impl Muxer for RegularMp4Muxer {
    fn header(&mut self) -> Result<Fragment, MuxError> {
        // The header goes out with the first fragment, where `index` picks it up.
        self.inner.header()
    }

    fn push(&mut self, packet: Packet) -> Result<Option<Fragment>, MuxError> {
        let out = self.inner.push(packet)?;
        self.index_all(out.as_slice())?;
        Ok(out)
    }

    fn boundary(&mut self) -> Result<Option<Fragment>, MuxError> {
        let out = self.inner.boundary()?;
        self.index_all(out.as_slice())?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Fragment>, MuxError> {
        let mut out = self.inner.finish()?;
        self.index_all(&out)?;
        let (Some(index), Some(header)) = (&self.index, self.inner.layout()) else {
            self.notes.push("no media was written: the output stays a fragmented MP4 without fragments".into());
            return Ok(out);
        };
        if index.fragments() == 0 {
            self.notes.push("no media was written: the output stays a fragmented MP4 without fragments".into());
            return Ok(out);
        }
        let end = self.inner.written();
        let layout = Layout { reserve: header.reserve, moov_offset: header.moov_offset, end, len: end };
        let plan = plan_steps(&layout, index.final_moov().map_err(finalize_error)?);
        self.notes.extend(plan.notes.into_iter().map(|n| format!("regular MP4 at the clean stop: {n}")));
        for step in plan.steps {
            let WriteStep::Write { offset, data } = step else {
                return Err(finalize_error("the plan for a file just written cuts it"));
            };
            out.push(Fragment::finalize(offset, data));
        }
        Ok(out)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.inner.notes();
        notes.extend(self.notes.iter().cloned());
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::{AudioFormat, Dimensions};

    fn track(kind: TrackKind, codec: CodecConfig) -> Track {
        Track::for_test(kind, 48_000, codec)
    }

    #[test]
    fn reserve_grows_with_the_expected_duration() {
        let audio = CodecConfig::Unknown {
            fourcc: *b"xaud",
            dims: None,
            audio: Some(AudioFormat { sample_rate: 48_000, channels: 2 }),
        };
        let tracks: Tracks = vec![
            track(TrackKind::Video, CodecConfig::Vp8 { dims: Dimensions { width: 640, height: 360 } }),
            track(TrackKind::Audio, audio),
        ]
        .into();
        let policy = FragmentPolicy::default();
        assert_eq!(estimate_reserve(&tracks, 0, policy), 0);
        let ten_min = estimate_reserve(&tracks, 600_000, policy);
        let two_h = estimate_reserve(&tracks, 7_200_000, policy);
        // 60 fps x 13 + 8, 47 x 5, 2 chunks of 20 a second: 1063 bytes a second.
        assert!((600_000..700_000).contains(&ten_min), "{ten_min}");
        assert!(two_h > 11 * ten_min && two_h < 12 * ten_min, "{two_h}");
    }
}
