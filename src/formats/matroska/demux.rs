//! Matroska blocks to packets: timestamps in each track's timescale, decode times for
//! reordered video, durations, Annex B to length-prefixed NAL units.
//!
//! Matroska stores presentation times only. A video track's decode times are its sorted
//! presentation times (the k-th packet in file order decodes at the k-th smallest
//! presentation time), found with a lookahead of [`REORDER_WINDOW`] packets; when that
//! puts a decode time after its presentation time (B-frames), presentation times are
//! delayed by the largest such gap and an edit list entry says so, as MP4 muxers do.
//! A track whose first timestamp is negative (AAC priming, as FFmpeg and livemux write
//! it) is moved to start at 0 the same way, with an edit that keeps the presentation.
//! Durations are the distance to the track's next packet; the last packet's comes from
//! BlockDuration, DefaultDuration, the codec, or the previous packet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::block::parse_block;
use super::ebml::{read_uint, MkvError};
use super::ids;
use super::reader::{elements, Element};
use super::tracks::{parse_tracks, SegmentInfo, TrackEntry};
use crate::codecs::{h264, opus, CodecConfig};
use crate::formats::{push_packet, ContainerEvent, ElementKind, EndState, PacketEvent, SplitSummary};
use crate::model::{Edit, Packet, Payload, TrackKind, TrackSet};

/// Packets a video track is looked ahead to find decode times (deepest B-frame pyramid
/// this recovers exactly).
pub const REORDER_WINDOW: usize = 8;
/// Largest timestamp accepted, in a track's ticks (2^53: over 3,000 years at 90 kHz):
/// with it, no sum of timestamps and 32-bit durations can overflow.
pub const MAX_TIMESTAMP_TICKS: i64 = 1 << 53;

#[derive(Debug, Default)]
struct TrackState {
    entry: TrackEntry,
    timescale: u32,
    /// Packets waiting for their decode time and duration, in file order.
    held: VecDeque<Packet>,
    /// Presentation times not yet used as a decode time.
    unused_pts: BinaryHeap<Reverse<i64>>,
    window: usize,
    /// Delay added to presentation times, once decided.
    shift: Option<i64>,
    /// Added to decode and presentation times so that the first decode time is not
    /// negative (AAC priming, a B-frame delay kept as negative timestamps); an edit
    /// keeps the presentation where it was.
    offset: i64,
    last_duration: u32,
    fallback_duration: Option<u32>,
}

impl TrackState {
    /// A timestamp in this track's ticks; `None` beyond [`MAX_TIMESTAMP_TICKS`].
    fn ticks(&self, timestamp: i64, scale: u64) -> Option<i64> {
        let ns = i128::from(timestamp).checked_mul(i128::from(scale))?;
        let ticks = ns.checked_mul(i128::from(self.timescale))?.div_euclid(1_000_000_000);
        (ticks.abs() <= i128::from(MAX_TIMESTAMP_TICKS)).then_some(ticks as i64)
    }

    /// The delay that keeps every held packet's decode time at or before its
    /// presentation time.
    fn decide_shift(&mut self) -> i64 {
        let mut sorted: Vec<i64> = self.held.iter().map(|p| p.pts_ticks).collect();
        sorted.sort_unstable();
        let shift = self.held.iter().zip(&sorted).map(|(p, &d)| d - p.pts_ticks).max().unwrap_or(0).max(0);
        self.shift = Some(shift);
        shift
    }

    /// Releases the oldest held packet: its decode time is the smallest unused
    /// presentation time, its duration the gap to the next one.
    fn release(&mut self, out: &mut Vec<Packet>, last: bool) {
        let shift = self.shift.unwrap_or(0);
        let Some(mut p) = self.held.pop_front() else { return };
        let Some(Reverse(dts)) = self.unused_pts.pop() else { return };
        let next = self.unused_pts.peek().map(|r| r.0);
        let duration = match next {
            Some(n) if n > dts => (n - dts).min(u32::MAX as i64) as u32,
            // Two packets at one timestamp (Chrome 52 repeats Opus timestamps): the
            // first lasts 0, as the timestamps say.
            Some(n) if n == dts => 0,
            _ if last || next.is_none() => {
                if p.duration_ticks > 0 {
                    p.duration_ticks
                } else {
                    self.fallback_duration.unwrap_or(self.last_duration)
                }
            }
            _ => self.last_duration,
        };
        if duration > 0 {
            self.last_duration = duration;
        }
        p.dts_ticks = dts + self.offset;
        p.pts_ticks += shift + self.offset;
        p.duration_ticks = duration;
        out.push(p);
    }
}

/// Packet-split for Matroska: block elements in, packets out.
#[derive(Debug, Default)]
pub struct MkvSplitter {
    info: SegmentInfo,
    entries: Vec<TrackEntry>,
    tracks: Option<TrackSet>,
    /// Track number → index in the track set.
    by_number: Vec<(u64, usize)>,
    state: Vec<TrackState>,
    cluster_timestamp: u64,
    tracks_sent: bool,
    summary: SplitSummary,
    skipped_blocks: u64,
}

impl MkvSplitter {
    #[cfg(any(test, feature = "internals"))]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn handle(&mut self, ev: ContainerEvent, out: &mut Vec<PacketEvent>) -> Result<(), MkvError> {
        match ev {
            ContainerEvent::Meta(m) => match m.kind {
                ElementKind::Ebml(ids::INFO) => {
                    self.info = SegmentInfo::parse(&m.data[m.header_len as usize..], m.offset + m.header_len as u64)?
                }
                ElementKind::Ebml(ids::TRACKS) => {
                    self.entries = parse_tracks(&m.data[m.header_len as usize..], m.offset + m.header_len as u64)?
                }
                ElementKind::Ebml(ids::TIMESTAMP) => {
                    self.cluster_timestamp = read_uint(&m.data[m.header_len as usize..]).unwrap_or(0);
                }
                _ => {}
            },
            ContainerEvent::MediaStart(_) => self.cluster_timestamp = 0,
            ContainerEvent::Tracks(tracks) => self.set_tracks(tracks),
            ContainerEvent::Media(chunk) => {
                for e in elements(chunk.offset, &chunk.data) {
                    self.block(&e?, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn set_tracks(&mut self, tracks: TrackSet) {
        self.by_number = tracks.iter().enumerate().map(|(i, t)| (t.input_id, i)).collect();
        self.state = tracks
            .iter()
            .map(|t| {
                let entry = self.entries.iter().find(|e| e.number == t.input_id).cloned().unwrap_or_default();
                let fallback_duration = match &t.codec {
                    CodecConfig::Aac { .. } => Some((1024u64 * t.timescale as u64 / 48_000).max(1) as u32),
                    _ => entry
                        .default_duration_ns
                        .map(|ns| (ns as u128 * t.timescale as u128 / 1_000_000_000).min(u32::MAX as u128) as u32),
                };
                TrackState {
                    entry,
                    timescale: t.timescale,
                    window: if t.kind == TrackKind::Video { REORDER_WINDOW } else { 1 },
                    fallback_duration,
                    ..TrackState::default()
                }
            })
            .collect();
        self.summary.packets = vec![0; tracks.len()];
        self.tracks = Some(tracks);
    }

    fn block(&mut self, e: &Element, out: &mut Vec<PacketEvent>) -> Result<(), MkvError> {
        let block = match parse_block(e) {
            Ok(b) => b,
            Err(err) => {
                self.skipped_blocks += 1;
                if self.skipped_blocks <= 3 {
                    self.summary.notes.push(format!("damaged block skipped: {err}"));
                }
                return Ok(());
            }
        };
        let Some(&(_, index)) = self.by_number.iter().find(|(n, _)| *n == block.track) else {
            return Ok(()); // a track that is not carried (subtitles...)
        };
        let scale = self.info.timestamp_scale;
        let st = &mut self.state[index];
        let timestamp = i64::try_from(self.cluster_timestamp)
            .ok()
            .and_then(|t| t.checked_add(block.relative_timestamp as i64))
            .and_then(|t| st.ticks(t, scale));
        let Some(pts) = timestamp else {
            self.skipped_blocks += 1;
            if self.skipped_blocks <= 3 {
                self.summary.notes.push(format!(
                    "block at byte {} skipped: its timestamp ({} + {}) is out of range",
                    e.offset, self.cluster_timestamp, block.relative_timestamp
                ));
            }
            return Ok(());
        };
        let block_duration = block.duration.map(|d| {
            let d = i64::try_from(d).ok().and_then(|d| st.ticks(d, scale)).unwrap_or(0);
            d.clamp(0, u32::MAX as i64) as u32
        });
        let count = block.frames.len() as u64;
        let default_ns = self.state[index].entry.default_duration_ns;
        // Frame i of the block starts `i * num / den` ticks after it: spaced exactly, not by
        // a duration truncated to whole ticks (a 1 ms timescale would lose 0.8 ms a frame).
        let mut spacing: Option<(u64, u64)> = None;
        for (i, frame) in block.frames.into_iter().enumerate() {
            let data = self.payload(index, frame);
            let st = &mut self.state[index];
            let (num, den) = *spacing.get_or_insert_with(|| match block_duration {
                Some(d) => (u64::from(d), count.max(1)),
                None => frame_duration(&st.entry, &data, st.timescale)
                    .or(if count > 1 {
                        default_ns.map(|ns| (ns.saturating_mul(u64::from(st.timescale)), 1_000_000_000))
                    } else {
                        None
                    })
                    .unwrap_or((0, 1)),
            });
            let at = |i: u64| i.checked_mul(num).map_or(0, |t| (t / den).min(u32::MAX as u64) as i64);
            let i = i as u64;
            let per_frame = (at(i + 1) - at(i)).clamp(0, u32::MAX as i64) as u32;
            let packet = Packet {
                track: index,
                dts_ticks: pts.saturating_add(at(i)),
                pts_ticks: pts.saturating_add(at(i)),
                duration_ticks: per_frame,
                keyframe: block.keyframe,
                data,
            };
            st.unused_pts.push(Reverse(packet.pts_ticks));
            st.held.push_back(packet);
        }
        self.release(out, false);
        Ok(())
    }

    /// A frame as a packet payload: header-stripped bytes restored, Annex B made
    /// length-prefixed.
    fn payload(&self, index: usize, frame: Bytes) -> Payload {
        let entry = &self.state[index].entry;
        let data = match &entry.header_strip {
            Some(prefix) => Payload::from_parts(vec![prefix.clone(), frame]),
            None => Payload::from(frame),
        };
        if entry.annexb() {
            let whole = data.contiguous();
            if h264::is_annexb(&whole) {
                let mut buf = BytesMut::with_capacity(whole.len() + 16);
                h264::annexb_to_length_prefixed(&whole, &mut buf);
                return Payload::from(buf.freeze());
            }
        }
        data
    }

    /// Releases what can be released; sends the tracks first, once every video track's
    /// decode delay is decided.
    fn release(&mut self, out: &mut Vec<PacketEvent>, end: bool) {
        let Some(tracks) = &self.tracks else { return };
        if !self.tracks_sent {
            let ready = self.state.iter().all(|s| s.window == 1 || s.held.len() > s.window);
            if !ready && !end {
                return;
            }
            let mut tracks: crate::model::Tracks = tracks.as_ref().clone();
            for (t, st) in tracks.iter_mut().zip(&mut self.state) {
                let shift = if st.window > 1 { st.decide_shift() } else { 0 };
                // The smallest presentation time held is the first decode time.
                st.offset = st.unused_pts.peek().map_or(0, |r| (-r.0).max(0));
                let delay = shift + st.offset;
                if delay > 0 {
                    match t.edits.first_mut() {
                        Some(e) => e.media_time_ticks += delay,
                        None => {
                            t.edits = vec![Edit {
                                segment_duration_movie_ticks: 0,
                                media_time_ticks: delay,
                                media_rate_integer: 1,
                            }]
                        }
                    }
                }
            }
            let tracks = Arc::new(tracks);
            out.push(PacketEvent::Tracks(tracks.clone()));
            self.tracks = Some(tracks);
            self.tracks_sent = true;
        }
        let mut packets = Vec::new();
        for (i, st) in self.state.iter_mut().enumerate() {
            let keep = if end { 0 } else { st.window };
            while st.held.len() > keep {
                st.release(&mut packets, end && st.held.len() == 1);
                self.summary.packets[i] += 1;
            }
        }
        for p in packets {
            push_packet(out, p);
        }
    }

    /// The input ended: releases every held packet.
    pub fn finish(&mut self, end: EndState, out: &mut Vec<PacketEvent>) -> SplitSummary {
        self.release(out, true);
        if self.skipped_blocks > 3 {
            self.summary.notes.push(format!("{} damaged blocks skipped in all", self.skipped_blocks));
        }
        if let Some(cut) = &end.cut {
            self.summary
                .notes
                .push(format!("input cut inside an element at offset {}; its bytes were dropped", cut.offset));
        }
        self.summary.end = end;
        std::mem::take(&mut self.summary)
    }
}

/// A frame's duration from its codec, when the codec says: Opus from its TOC, AC-3,
/// E-AC-3 and MPEG audio from their frame headers (frames laced without a DefaultDuration
/// are spaced by it, as FFmpeg spaces them).
/// The duration in ticks is `num / den`.
fn frame_duration(entry: &TrackEntry, data: &Payload, timescale: u32) -> Option<(u64, u64)> {
    let first = data.parts().first()?;
    let (samples, rate) = match entry.codec_id.as_str() {
        "A_OPUS" => (u64::from(opus::packet_duration_48k(first)?), 48_000),
        "A_AC3" => (1536, entry.sampling_frequency as u64),
        "A_EAC3" => (
            u64::from(crate::codecs::ac3::Eac3Header::parse(first).ok()?.blocks) * 256,
            entry.sampling_frequency as u64,
        ),
        "A_MPEG/L3" | "A_MPEG/L2" | "A_MPEG/L1" => (mpeg_audio_samples(first)?, entry.sampling_frequency as u64),
        _ => return None,
    };
    if rate == 0 {
        return None;
    }
    Some((samples.checked_mul(u64::from(timescale))?, rate))
}

/// Samples in an MPEG-1/2/2.5 audio frame, from its header (ISO/IEC 11172-3, 13818-3).
fn mpeg_audio_samples(frame: &[u8]) -> Option<u64> {
    let (&b0, &b1) = (frame.first()?, frame.get(1)?);
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
        return None;
    }
    let mpeg1 = (b1 >> 3) & 3 == 3;
    match (b1 >> 1) & 3 {
        3 => Some(384),
        2 => Some(1152),
        1 => Some(if mpeg1 { 1152 } else { 576 }),
        _ => None,
    }
}
