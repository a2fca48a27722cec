//! Where output fragments end — one policy for every muxer, so fragmented MP4 and
//! Matroska clusters cut at the same packets.
//!
//! The *lead* track (the first video track, else the first audio track) decides: a
//! fragment ends before a lead keyframe once it spans at least `min_ms`, and before any
//! lead packet once it spans `max_ms`, keyframe or not, so that the crash-loss bound
//! holds with rare keyframes. A non-lead track that alone spans twice `max_ms` (a video
//! track that stalled) also ends it. Cuts depend only on packet timestamps and flags,
//! never on when bytes arrived.
//!
//! A fragment also ends before a packet that would take it past [`MAX_FRAGMENT_BYTES`],
//! wherever that falls (mid-GOP too): a muxer holds the open fragment in memory, and
//! input whose timestamps do not advance would otherwise grow it without end.

use crate::model::{Packet, Ticks, Track, TrackKind};

/// Most payload bytes of one fragment. Far above what a 2 s fragment holds at the
/// bitrates recorders use (32 MiB in 2 s is 134 Mbit/s), so it decides on broken or
/// hostile timing only. A muxer holds the open fragment and a sink up to two closed ones,
/// so this bounds memory at about three times as much.
pub const MAX_FRAGMENT_BYTES: u64 = 32 << 20;
/// What one packet costs against [`MAX_FRAGMENT_BYTES`] besides its payload: the muxer's
/// own record of it. Tiny packets then also end a fragment before their count explodes
/// (at most 128 Ki packets per fragment; a 2 s fragment of 48 kHz PCM samples is 96 Ki).
pub const PACKET_OVERHEAD_BYTES: u64 = 256;

fn cost(p: &Packet) -> u64 {
    (p.data.len() as u64).saturating_add(PACKET_OVERHEAD_BYTES)
}

/// How long output fragments (fragmented MP4 `moof`+`mdat`, Matroska clusters) are, in
/// milliseconds of the lead track (the first video track, else the first audio track).
///
/// A fragment ends at the first lead keyframe once it spans `min_ms`, and at any lead
/// packet once it spans `max_ms`: what a crash can lose is bounded by `max_ms`, whatever
/// the keyframe interval. The default is 1 s to 2 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FragmentPolicy {
    /// Shortest fragment ending at a keyframe.
    pub min_ms: u64,
    /// Longest fragment: it ends at the next lead packet, keyframe or not (taken as
    /// `min_ms` if it is less).
    pub max_ms: u64,
}

impl FragmentPolicy {
    /// Fragments of `min_ms` to `max_ms`.
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        FragmentPolicy { min_ms, max_ms }
    }
}

impl Default for FragmentPolicy {
    fn default() -> Self {
        FragmentPolicy { min_ms: 1000, max_ms: 2000 }
    }
}

/// Tracks the open fragment and says when to cut.
#[derive(Clone, Debug)]
pub struct Fragmenter {
    policy: FragmentPolicy,
    lead: Option<usize>,
    lead_is_video: bool,
    timescales: Vec<u32>,
    first_dts: Vec<Option<i64>>,
    /// End (dts + duration) of the last lead packet in the open fragment.
    last_lead_end: Option<i64>,
    packets: usize,
    /// Payload bytes in the open fragment.
    bytes: u64,
}

impl Fragmenter {
    pub fn new(tracks: &[Track], policy: FragmentPolicy) -> Self {
        let video = tracks.iter().position(|t| t.kind == TrackKind::Video);
        let lead = video.or_else(|| tracks.iter().position(|t| t.kind == TrackKind::Audio));
        let policy = FragmentPolicy { min_ms: policy.min_ms, max_ms: policy.max_ms.max(policy.min_ms) };
        Fragmenter {
            policy,
            lead,
            lead_is_video: video.is_some(),
            timescales: tracks.iter().map(|t| t.timescale).collect(),
            first_dts: vec![None; tracks.len()],
            last_lead_end: None,
            packets: 0,
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    fn span_ms(&self, track: usize, dts: i64) -> Option<i64> {
        let first = self.first_dts.get(track).copied().flatten()?;
        Some(Ticks::new(dts - first, self.timescales[track]).as_millis())
    }

    /// Whether the open fragment must end before `p`.
    pub fn cut_before(&self, p: &Packet) -> bool {
        if self.packets > 0 && self.bytes.saturating_add(cost(p)) > MAX_FRAGMENT_BYTES {
            return true;
        }
        let Some(span) = self.span_ms(p.track, p.dts_ticks) else {
            return false;
        };
        let (min, max) = (self.policy.min_ms as i64, self.policy.max_ms as i64);
        if Some(p.track) == self.lead {
            let at_sync = p.keyframe || !self.lead_is_video;
            (at_sync && span >= min) || span >= max
        } else {
            span >= 2 * max
        }
    }

    /// Whether the open fragment is long enough to end at an input fragment boundary.
    pub fn long_enough(&self) -> bool {
        match self.lead {
            Some(lead) => {
                let last = self.last_lead_end.unwrap_or(i64::MIN);
                self.span_ms(lead, last).is_some_and(|s| s >= self.policy.min_ms as i64)
            }
            None => !self.is_empty(),
        }
    }

    /// Adds `p` to the open fragment.
    pub fn add(&mut self, p: &Packet) {
        if let Some(first) = self.first_dts.get_mut(p.track) {
            first.get_or_insert(p.dts_ticks);
        }
        if Some(p.track) == self.lead {
            self.last_lead_end = Some(p.dts_ticks + p.duration_ticks as i64);
        }
        self.packets += 1;
        self.bytes = self.bytes.saturating_add(cost(p));
    }

    /// Starts a new fragment.
    pub fn reset(&mut self) {
        self.first_dts.iter_mut().for_each(|d| *d = None);
        self.last_lead_end = None;
        self.packets = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::{CodecConfig, Dimensions};
    use bytes::Bytes;

    fn track(kind: TrackKind) -> Track {
        Track::for_test(kind, 1000, CodecConfig::Vp8 { dims: Dimensions::default() })
    }

    fn pkt(track: usize, dts: i64, keyframe: bool) -> Packet {
        Packet { track, dts_ticks: dts, pts_ticks: dts, duration_ticks: 100, keyframe, data: Bytes::new().into() }
    }

    /// Runs packets through the policy and returns the dts of each fragment's first packet.
    fn cuts(f: &mut Fragmenter, packets: &[Packet]) -> Vec<i64> {
        let mut starts = vec![];
        for p in packets {
            if f.is_empty() || f.cut_before(p) {
                f.reset();
                starts.push(p.dts_ticks);
            }
            f.add(p);
        }
        starts
    }

    #[test]
    fn cuts_at_keyframes_after_min_and_anyway_at_max() {
        let tracks = [track(TrackKind::Video), track(TrackKind::Audio)];
        let mut f = Fragmenter::new(&tracks, FragmentPolicy::default());
        // Keyframes every 500 ms for 3 s, then none for 5 s.
        let packets: Vec<_> = (0..80).map(|i| pkt(0, i * 100, i % 5 == 0 && i < 30)).collect();
        assert_eq!(cuts(&mut f, &packets), [0, 1000, 2000, 4000, 6000]);
    }

    #[test]
    fn audio_only_cuts_by_duration() {
        let mut f = Fragmenter::new(&[track(TrackKind::Audio)], FragmentPolicy::default());
        let packets: Vec<_> = (0..35).map(|i| pkt(0, i * 100, false)).collect();
        assert_eq!(cuts(&mut f, &packets), [0, 1000, 2000, 3000]);
    }

    #[test]
    fn a_fragment_ends_at_the_byte_cap_whatever_the_timestamps() {
        let tracks = [track(TrackKind::Video)];
        let mut f = Fragmenter::new(&tracks, FragmentPolicy::default());
        let big = |keyframe| Packet { data: Bytes::from(vec![0u8; 1 << 20]).into(), ..pkt(0, 0, keyframe) };
        let mut cuts = 0;
        for i in 0..200 {
            let p = big(i == 0);
            if !f.is_empty() && f.cut_before(&p) {
                cuts += 1;
                f.reset();
            }
            f.add(&p);
        }
        // 200 MiB of packets that all have the same time: cut before 32 MiB.
        assert_eq!(cuts, 6);
    }

    #[test]
    fn long_enough_counts_the_lead_duration() {
        let mut f = Fragmenter::new(&[track(TrackKind::Video)], FragmentPolicy::default());
        for i in 0..9 {
            f.add(&pkt(0, i * 100, i == 0));
        }
        assert!(!f.long_enough());
        f.add(&pkt(0, 900, false));
        assert!(f.long_enough());
    }
}
