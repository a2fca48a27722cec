//! Cutting the `mdat` of an MP4 whose `moov` is missing (a recorder that crashed, or one
//! still recording) into packets, with the track layout of a reference recording made with
//! the same settings.
//!
//! Muxers write packets in decode-time order across tracks: the file holds, one after the
//! other, runs of packets of one track. FFmpeg and most recorders interleave by decode time
//! minus the edit list's media time, so the scanner keeps a clock per track and expects
//! next the track whose clock is earliest. (Others write chunks of a second or more per
//! track, GStreamer's mp4mux and Android's MediaMuxer among them: audio runs longer than
//! the clocks predict are then split in windows.) It checks that expectation against the
//! bytes:
//!
//! - video (H.264/HEVC) packets are access units of length-prefixed NAL units
//!   ([`access_unit`]), which carry their own lengths and say where a picture ends;
//! - PCM packets have the reference's packet size;
//! - AAC and Opus frames carry no length: a run of them ends where the next video access
//!   unit starts, and is split into frames by their syntax and the reference's size
//!   statistics ([`audio::split_run`]).
//!
//! When the expected track does not fit, the others are tried; when none does, bytes are
//! skipped up to the next place where packets fit again, and the summary says where.
//! Presentation times of video come from picture order counts; the reference gives frame
//! durations, the initial composition delay and the edit list.
//!
//! Unconsumed bytes are copied once into a parse buffer (parsing needs them contiguous
//! across input reads); packets are zero-copy slices of that buffer. The buffer holds at
//! most one access unit or audio run plus a read, so memory does not grow with the input.

pub mod audio;
pub mod layout;
mod runs;

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use self::audio::{frame_start, split_run, FrameStart, RunEnd, Scratch};
use self::layout::{Framing, ScanLayout, TrackLayout};
use crate::codecs::access_unit::AuRules;
use crate::codecs::access_unit::{access_unit, starts_like_access_unit, AuParse};
use crate::codecs::poc::{H264PocState, HevcPocState, PresentationOrder};
use crate::codecs::{h264, hevc, opus, CodecConfig};
use crate::model::{Packet, Payload};

/// Longest audio run considered: frames of unframed tracks between two self-delimiting
/// packets (or per window, when no track is self-delimiting).
const MAX_RUN_FRAMES: usize = 32;
/// Frames kept back from a window of an audio-only stream, to be split again with what
/// follows them.
const RUN_OVERLAP: usize = 8;
/// Most bytes searched for a place where packets fit again before giving up on them.
const MAX_RESYNC_BYTES: usize = 16 << 20;
/// Skipped regions listed one by one in the summary; more are only counted.
const MAX_LISTED_SKIPS: usize = 20;

/// Packets that must fit, with every track represented and no byte skipped, before any is
/// handed out: a reference made with other codecs or settings fails here, before anything
/// is written.
const CONFIRM_PACKETS: u64 = 48;

/// Why the media cannot be split with this layout.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScanError {
    #[error(
        "the media at offset {offset} fits no track of the reference \
         ({tracks}): the reference was not made with the stream's codecs and settings"
    )]
    NoFit { offset: u64, tracks: String },
    #[error(
        "track {track}: the slice header at offset {offset} does not parse with the reference's \
         parameter sets ({reason}): the reference was not made with the stream's settings"
    )]
    SliceHeader { track: usize, offset: u64, reason: String },
    #[error(
        "track {track}: the stream's own parameter sets (at offset {offset}) say {stream}, the \
         reference says {reference}: the reference was not made with the stream's settings"
    )]
    ParameterSets { track: usize, offset: u64, stream: String, reference: String },
}

/// What the scanner made of the media.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Packets emitted per track.
    pub packets: Vec<u64>,
    /// (offset, length) of bytes that fit no track, the first [`MAX_LISTED_SKIPS`].
    pub skipped: Vec<(u64, u64)>,
    pub skipped_regions: u64,
    pub skipped_bytes: u64,
    /// Audio runs with more than one valid split.
    pub ambiguous_runs: u64,
    /// Bytes at the end that held no complete packet.
    pub cut_tail: Option<(u64, u64)>,
    /// Video tracks whose presentation times fell back to decode time plus a fixed delay.
    pub no_poc: Vec<usize>,
    /// (track, offset, length) of PCM packets shorter than the reference's, cut where a
    /// video access unit starts inside the usual size: the audio ended there.
    pub short_packets: Vec<(usize, u64, u64)>,
}

impl ScanSummary {
    /// One line per finding, for the run's report.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "recovered without an index: {}",
            self.packets
                .iter()
                .enumerate()
                .map(|(i, n)| format!("track {}: {n} packets", i + 1))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        if self.skipped_regions > 0 {
            let listed: Vec<String> = self.skipped.iter().map(|(o, n)| format!("{n} at offset {o}")).collect();
            notes.push(format!(
                "{} bytes in {} places fit no track and were skipped: {}{}",
                self.skipped_bytes,
                self.skipped_regions,
                listed.join(", "),
                if self.skipped_regions as usize > listed.len() { ", ..." } else { "" }
            ));
        }
        if self.ambiguous_runs > 0 {
            notes.push(format!(
                "{} audio runs could be split into frames in more than one way; the likeliest was used",
                self.ambiguous_runs
            ));
        }
        if let Some((offset, len)) = self.cut_tail {
            notes.push(format!("the last {len} bytes (from offset {offset}) hold no complete packet; dropped"));
        }
        for (t, offset, len) in &self.short_packets {
            notes.push(format!(
                "track {}: a video access unit starts inside the audio packet at offset {offset}: its audio ends \
                 there, and only the {len} bytes before it were kept as a packet",
                t + 1
            ));
        }
        for t in &self.no_poc {
            notes.push(format!(
                "track {}: picture order counts unreadable; presentation times are decode times plus the \
                 reference's delay",
                t + 1
            ));
        }
        notes
    }
}

enum PocState {
    H264(H264PocState),
    Hevc(HevcPocState),
    /// Unreadable: presentation time is decode time plus the initial delay.
    None,
}

struct VideoState {
    poc: PocState,
    order: PresentationOrder,
    /// Queue positions of this track's packets waiting for a presentation index.
    waiting: VecDeque<u64>,
    length_size: u8,
}

struct TrackState {
    /// Decode time of the next packet.
    next_dts: i64,
    last_start: Option<FrameStart>,
    video: Option<VideoState>,
}

/// Whether an access unit starts at some position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Yes,
    /// It begins like one; its end has not arrived yet.
    Incomplete,
    No,
}

/// What one attempt to cut packets at the current position gave.
enum Step {
    /// Packets were cut.
    Cut,
    /// More bytes are needed to tell.
    NeedMore,
    /// The bytes here do not fit this track.
    NoFit,
}

/// Cuts the media of an MP4 without an index into packets. Sans-IO: feed it the payload of
/// each `mdat` in order with [`MdatScanner::push`], then call [`MdatScanner::finish`].
pub struct MdatScanner {
    layout: ScanLayout,
    tracks: Vec<TrackState>,
    /// Bytes not cut yet, starting at input offset `pos`.
    buf: BytesMut,
    pos: u64,
    /// Where the current media box ends, when its size is known.
    region_end: Option<u64>,
    /// Packets cut, in file order, waiting for the presentation time of a video packet.
    queue: VecDeque<Packet>,
    /// Queue position of `queue[0]`.
    queue_base: u64,
    summary: ScanSummary,
    /// The first error, reported by the next call.
    error: Option<ScanError>,
    /// Enough packets fitted to trust the layout (see [`CONFIRM_PACKETS`]).
    confirmed: bool,
    scratch: Scratch,
}

impl MdatScanner {
    pub fn new(layout: ScanLayout) -> Self {
        let tracks = layout
            .tracks
            .iter()
            .map(|t| TrackState {
                next_dts: 0,
                last_start: None,
                video: match &t.framing {
                    Framing::Nal { rules, config } => Some(VideoState {
                        poc: match config {
                            CodecConfig::H264 { avcc, .. } => {
                                H264PocState::from_avcc(avcc).map_or(PocState::None, PocState::H264)
                            }
                            CodecConfig::Hevc { hvcc, .. } => {
                                HevcPocState::from_hvcc(hvcc).map_or(PocState::None, PocState::Hevc)
                            }
                            _ => PocState::None,
                        },
                        order: PresentationOrder::new(),
                        waiting: VecDeque::new(),
                        length_size: rules.length_size,
                    }),
                    _ => None,
                },
            })
            .collect();
        let summary = ScanSummary { packets: vec![0; layout.tracks.len()], ..Default::default() };
        MdatScanner {
            layout,
            tracks,
            buf: BytesMut::new(),
            pos: 0,
            region_end: None,
            queue: VecDeque::new(),
            queue_base: 0,
            summary,
            error: None,
            confirmed: false,
            scratch: Scratch::default(),
        }
    }

    /// A media box starts at `payload_offset`; `end` is where it ends, when known. What
    /// is left of the previous one is cut as complete.
    pub fn media_start(
        &mut self,
        payload_offset: u64,
        end: Option<u64>,
        out: &mut Vec<Packet>,
    ) -> Result<(), ScanError> {
        if !self.buf.is_empty() {
            self.drain(true, out);
            self.drop_tail();
        }
        self.buf.clear();
        self.pos = payload_offset;
        self.region_end = end;
        self.error.clone().map_or(Ok(()), Err)
    }

    /// Media payload bytes at input offset `offset` (contiguous with what came before).
    pub fn push(&mut self, offset: u64, data: &[u8], out: &mut Vec<Packet>) -> Result<(), ScanError> {
        if self.buf.is_empty() {
            self.pos = offset;
        }
        self.buf.extend_from_slice(data);
        let complete = self.region_end.is_some_and(|end| self.pos + self.buf.len() as u64 >= end);
        self.drain(complete, out);
        self.error.clone().map_or(Ok(()), Err)
    }

    /// The input ended: cuts what is complete and reports.
    pub fn finish(&mut self, out: &mut Vec<Packet>) -> Result<ScanSummary, ScanError> {
        self.drain(true, out);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        // A short input: what fitted is all there is.
        self.confirmed = true;
        self.drop_tail();
        for (t, state) in self.tracks.iter_mut().enumerate() {
            if let Some(v) = &mut state.video {
                v.order.finish();
                resolve(t, &self.layout.tracks[t], v, &mut self.queue, self.queue_base);
            }
        }
        self.release(out);
        Ok(std::mem::take(&mut self.summary))
    }

    fn drop_tail(&mut self) {
        if !self.buf.is_empty() {
            self.summary.cut_tail = Some((self.pos, self.buf.len() as u64));
            self.pos += self.buf.len() as u64;
            self.buf.clear();
        }
    }

    /// Cuts as many packets as the buffered bytes allow.
    fn drain(&mut self, at_end: bool, out: &mut Vec<Packet>) {
        while !self.buf.is_empty() && self.error.is_none() {
            let order = self.expected_order();
            let (mut step, before) = (Step::NoFit, self.pos);
            for &t in &order {
                step = self.step(t, at_end);
                if !matches!(step, Step::NoFit) {
                    break;
                }
            }
            match step {
                Step::Cut if self.pos > before => {}
                // Nothing consumed: a bug, but stopping beats spinning on a live stream.
                Step::Cut => {
                    debug_assert!(false, "a cut at offset {before} consumed no byte");
                    break;
                }
                Step::NeedMore => break,
                // The input ends inside a packet: what is left is its first part.
                Step::NoFit if at_end && self.cut_packet_starts_here() => break,
                Step::NoFit => {
                    if !self.check_confirmed() {
                        self.error = Some(ScanError::NoFit { offset: self.pos, tracks: self.layout.describe() });
                        break;
                    }
                    if !self.resync(at_end) {
                        break;
                    }
                }
            }
        }
        self.release(out);
    }

    /// Tracks by how early their next packet is due: decode time minus media time, in
    /// seconds, ties to the lower track.
    fn expected_order(&self) -> Vec<usize> {
        let clocks: Vec<i64> = self.tracks.iter().map(|t| t.next_dts).collect();
        let mut order: Vec<usize> = (0..self.tracks.len()).collect();
        // A stable sort keeps ties in track order.
        order.sort_by(|&a, &b| self.due_cmp(a, clocks[a], b, clocks[b]));
        order
    }

    /// Compares when packets of two tracks are due (decode time minus media time), exactly:
    /// each side's ticks are scaled by the other's timescale.
    fn due_cmp(&self, a: usize, dts_a: i64, b: usize, dts_b: i64) -> std::cmp::Ordering {
        let (la, lb) = (&self.layout.tracks[a], &self.layout.tracks[b]);
        // In i128: the reference's media times are input values.
        let at = (i128::from(dts_a) - i128::from(la.media_time_ticks)) * i128::from(lb.timescale);
        let bt = (i128::from(dts_b) - i128::from(lb.media_time_ticks)) * i128::from(la.timescale);
        at.cmp(&bt).then(a.cmp(&b))
    }

    /// The unframed audio frames due before the next self-delimiting packet, starting with
    /// `first`, as their tracks; and whether a self-delimiting packet (rather than the
    /// window's end) closes them.
    fn predicted_run(&self, first: usize) -> (Vec<usize>, bool) {
        let mut clocks: Vec<i64> = self.tracks.iter().map(|t| t.next_dts).collect();
        let mut seq = vec![first];
        clocks[first] += i64::from(self.layout.tracks[first].packet_ticks);
        while seq.len() < MAX_RUN_FRAMES {
            let t = (0..clocks.len())
                .min_by(|&a, &b| self.due_cmp(a, clocks[a], b, clocks[b]))
                .expect("at least one track");
            if self.layout.tracks[t].framing.self_delimiting() {
                return (seq, true);
            }
            seq.push(t);
            clocks[t] += i64::from(self.layout.tracks[t].packet_ticks);
        }
        (seq, false)
    }

    fn step(&mut self, t: usize, at_end: bool) -> Step {
        match &self.layout.tracks[t].framing {
            Framing::Nal { rules, .. } => match access_unit(&self.buf, rules, at_end) {
                AuParse::Unit { len, keyframe } => {
                    self.cut(t, len, keyframe, None);
                    Step::Cut
                }
                AuParse::NeedMore => Step::NeedMore,
                AuParse::NotAnAccessUnit => Step::NoFit,
            },
            &Framing::Pcm { packet_bytes, frame_bytes } => {
                if self.buf.len() < packet_bytes as usize && !at_end {
                    return Step::NeedMore;
                }
                self.pcm_packet(t, packet_bytes as usize, frame_bytes as usize, at_end)
            }
            Framing::Aac { .. } | Framing::Opus { .. } => self.audio_run(t, at_end),
        }
    }

    /// Whether the buffered bytes hold a whole access unit of a video track, or, at the end
    /// of the input, begin like one whose end was cut off.
    fn video_starts_here(&self, at_end: bool) -> bool {
        self.layout.tracks.iter().any(|l| match &l.framing {
            Framing::Nal { rules, .. } => match access_unit(&self.buf, rules, at_end) {
                AuParse::Unit { .. } => true,
                AuParse::NotAnAccessUnit | AuParse::NeedMore => at_end && starts_like_access_unit(&self.buf, rules),
            },
            _ => false,
        })
    }

    /// Whether the buffered bytes begin like a packet of some track whose end was cut off.
    fn cut_packet_starts_here(&self) -> bool {
        self.layout.tracks.iter().any(|l| match &l.framing {
            Framing::Nal { rules, .. } => starts_like_access_unit(&self.buf, rules),
            Framing::Pcm { packet_bytes, .. } => self.buf.len() < *packet_bytes as usize,
            Framing::Aac { .. } | Framing::Opus { .. } => frame_start(&self.buf, l).is_some(),
        })
    }

    /// Skips bytes up to the next place where some track's packet fits. False when the
    /// buffered bytes hold none yet.
    fn resync(&mut self, at_end: bool) -> bool {
        let limit = self.buf.len().min(MAX_RESYNC_BYTES);
        let mut found = None;
        'search: for p in 1..limit {
            for l in &self.layout.tracks {
                let fits = match &l.framing {
                    Framing::Nal { rules, .. } => {
                        matches!(access_unit(&self.buf[p..], rules, at_end), AuParse::Unit { .. })
                    }
                    Framing::Aac { .. } | Framing::Opus { .. } => {
                        // Only where no video can anchor the search.
                        !self.layout.tracks.iter().any(|l| l.framing.self_delimiting())
                            && frame_start(&self.buf[p..], l).is_some()
                    }
                    Framing::Pcm { .. } => false,
                };
                if fits {
                    found = Some(p);
                    break 'search;
                }
            }
        }
        let skip = match found {
            Some(p) => p,
            None if at_end || self.buf.len() >= MAX_RESYNC_BYTES => self.buf.len(),
            None => return false,
        };
        self.summary.skipped_regions += 1;
        self.summary.skipped_bytes += skip as u64;
        if self.summary.skipped.len() < MAX_LISTED_SKIPS {
            self.summary.skipped.push((self.pos, skip as u64));
        }
        self.buf.advance(skip);
        self.pos += skip as u64;
        true
    }

    /// Cuts the first `len` buffered bytes as a packet of track `t`.
    fn cut(&mut self, t: usize, len: usize, keyframe: bool, start: Option<FrameStart>) {
        self.cut_timed(t, len, keyframe, start, None);
    }

    /// [`MdatScanner::cut`] with a duration other than the track's usual one.
    fn cut_timed(&mut self, t: usize, len: usize, keyframe: bool, start: Option<FrameStart>, ticks: Option<u32>) {
        let data: Bytes = self.buf.split_to(len).freeze();
        self.pos += len as u64;
        let layout = &self.layout.tracks[t];
        let state = &mut self.tracks[t];
        let dts = state.next_dts;
        let duration = match (ticks, &layout.framing) {
            (Some(ticks), _) => ticks,
            (None, Framing::Opus { .. }) => opus::packet_duration_48k(&data)
                .map(|d| (u64::from(d) * u64::from(layout.timescale) / 48_000) as u32)
                .unwrap_or(layout.packet_ticks),
            _ => layout.packet_ticks,
        };
        state.next_dts += i64::from(duration);
        if start.is_some() {
            state.last_start = start;
        }
        self.summary.packets[t] += 1;
        let queue_pos = self.queue_base + self.queue.len() as u64;
        let mut pts = dts;
        if let Some(v) = &mut state.video {
            let nals: Vec<&[u8]> = h264::length_prefixed(&data, v.length_size).filter_map(Result::ok).collect();
            if let Some(e) = check_parameter_sets(t, self.pos - len as u64, &nals, layout) {
                self.error.get_or_insert(e);
            }
            let poc = match &mut v.poc {
                PocState::H264(s) => s.picture(&nals).map(|p| p.map(|p| (p, s.last_was_reset()))),
                PocState::Hevc(s) => s.picture(&nals).map(|p| p.map(|p| (p, s.last_was_reset()))),
                PocState::None => Ok(None),
            };
            let poc = match poc {
                Err(e) if !self.confirmed => {
                    let offset = self.pos - len as u64;
                    self.error.get_or_insert(ScanError::SliceHeader { track: t + 1, offset, reason: e.to_string() });
                    None
                }
                other => other.ok().flatten(),
            };
            match poc {
                Some((poc, reset)) => {
                    v.order.push(poc, reset);
                    v.waiting.push_back(queue_pos);
                }
                None => {
                    if !matches!(v.poc, PocState::None) {
                        v.poc = PocState::None;
                        self.summary.no_poc.push(t);
                    }
                    pts = dts.saturating_add(layout.first_cts_ticks);
                }
            }
        }
        self.queue.push_back(Packet {
            track: t,
            dts_ticks: dts,
            pts_ticks: pts,
            duration_ticks: duration,
            keyframe,
            data: Payload::from_parts(vec![data]),
        });
        if let Some(v) = &mut self.tracks[t].video {
            resolve(t, layout, v, &mut self.queue, self.queue_base);
        }
    }

    /// Whether enough packets fitted to trust the layout.
    fn check_confirmed(&mut self) -> bool {
        let p = &self.summary.packets;
        self.confirmed |= p.iter().sum::<u64>() >= CONFIRM_PACKETS && p.iter().all(|&n| n > 0);
        self.confirmed
    }

    /// Hands out the queued packets whose timing is final, once the layout is confirmed.
    fn release(&mut self, out: &mut Vec<Packet>) {
        if !self.check_confirmed() {
            return;
        }
        let until =
            self.tracks.iter().filter_map(|s| s.video.as_ref()?.waiting.front().copied()).min().unwrap_or(u64::MAX);
        while self.queue_base < until {
            let Some(p) = self.queue.pop_front() else { break };
            self.queue_base += 1;
            out.push(p);
        }
    }
}

/// Compares the resolution an in-band SPS gives with the reference's.
fn check_parameter_sets(track: usize, offset: u64, nals: &[&[u8]], layout: &TrackLayout) -> Option<ScanError> {
    let Framing::Nal { config, .. } = &layout.framing else { return None };
    let (reference, stream) = match config {
        CodecConfig::H264 { dims, .. } => {
            let sps = nals.iter().find(|n| n.first().is_some_and(|&b| h264::nal_type(b) == h264::NAL_SPS))?;
            (*dims, h264::sps_dimensions(sps).ok()?)
        }
        CodecConfig::Hevc { dims, .. } => {
            let sps = nals.iter().find(|n| n.first().is_some_and(|&b| hevc::nal_type(b) == hevc::NAL_SPS))?;
            (*dims, hevc::sps_dimensions(sps).ok()?)
        }
        _ => return None,
    };
    (reference != stream).then(|| ScanError::ParameterSets {
        track: track + 1,
        offset,
        stream: format!("{}x{}", stream.width, stream.height),
        reference: format!("{}x{}", reference.width, reference.height),
    })
}

/// Splits the frames of a run the input ends in: the most frames of `seq` that are followed
/// by the start of another (the one the cut left incomplete). The last of them is dropped
/// too: the incomplete frame may hold bytes that look like a boundary, making its first
/// part pass for a frame.
fn split_cut_run(
    data: &[u8],
    seq: &[usize],
    layouts: &[TrackLayout],
    last: &[Option<FrameStart>],
    scratch: &mut Scratch,
) -> Option<audio::Split> {
    scratch.prepare(data, seq, layouts);
    let mut split = (1..seq.len())
        .rev()
        .find_map(|k| split_run(data, &seq[..k], Some(k), RunEnd::Then(seq[k]), layouts, last, scratch))?;
    split.frames.pop();
    Some(split)
}

/// Gives queued packets of video track `t` their presentation times as far as known.
fn resolve(t: usize, layout: &TrackLayout, v: &mut VideoState, queue: &mut VecDeque<Packet>, base: u64) {
    while let Some(rank) = v.order.pop() {
        let Some(at) = v.waiting.pop_front() else { break };
        let Some(i) = at.checked_sub(base).and_then(|i| usize::try_from(i).ok()) else { continue };
        if let Some(p) = queue.get_mut(i) {
            debug_assert_eq!(p.track, t);
            // The reference's composition offset is an input value: saturate, never wrap.
            let rank = i64::try_from(rank).unwrap_or(i64::MAX);
            p.pts_ticks = rank.saturating_mul(i64::from(layout.packet_ticks)).saturating_add(layout.first_cts_ticks);
        }
    }
}

#[cfg(test)]
mod tests;
