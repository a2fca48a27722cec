//! Matroska and WebM writer: EBML header, a Segment of unknown size, Info and Tracks, then
//! one Cluster per fragment, each written whole with its size known, so that a crash
//! leaves every complete Cluster readable. Clusters are cut by the same policy as
//! fragmented MP4 ([`crate::formats::fragmenter`]).
//!
//! At a clean stop, [`FragmentKind::Finalize`] fragments carry the plan of
//! [`super::finalize`]: Cues for every video keyframe (or each Cluster's first audio
//! block), Duration, SeekHead and the Segment size, in place. A Void reserved after the
//! Segment header gives the rebuilt header room.

use bytes::{BufMut, Bytes, BytesMut};

use super::block::simple_block_header;
use super::ebml::{put_id, put_master, put_size, put_string, put_uint, put_void, size_len, UNKNOWN_SIZE_8};
use super::finalize::{plan_in_place, Cue, Front, Index};
use super::ids;
use super::tracks::{write_tracks, DEFAULT_TIMESTAMP_SCALE};
use crate::codecs::pcm::swap_byte_order;
use crate::codecs::CodecConfig;
use crate::formats::fragmenter::{FragmentPolicy, Fragmenter};
use crate::formats::timeline::{self, ns_to_ticks, ticks_to_ns, MediaStart, Plan, Timing, TrackPlan};
use crate::formats::{MuxError, Muxer, WriteStep};
use crate::model::{Edit, Fragment, FragmentKind, Packet, Track, TrackKind, TrackSet};

/// Bytes reserved after the Segment header for the SeekHead and Duration of the finalize.
pub const RESERVED_FRONT: usize = 96;
/// Longest span of one Cluster: block timestamps are 16-bit offsets from the Cluster's.
const MAX_CLUSTER_SPAN_MS: i64 = 30_000;

/// Matroska/WebM muxer.
pub struct MkvMuxer {
    tracks: TrackSet,
    webm: bool,
    fragmenter: Fragmenter,
    /// The open Cluster's packets, in arrival order, with their timestamps in ms.
    pending: Vec<(Packet, i64)>,
    /// Smallest and largest timestamp in `pending`.
    pending_span: Option<(i64, i64)>,
    written: u64,
    front: Option<Front>,
    /// The header, held until the first Cluster so that both go out in one write: a
    /// file is then empty or holds at least one complete Cluster.
    header: Option<Bytes>,
    cues: Vec<Cue>,
    end_ms: i64,
    cue_track: Option<(usize, bool)>,
    /// Where each track goes on the timeline ([`timeline`]), decided at the first Cluster.
    plan: Option<Plan>,
    /// Per track, the `CodecDelay` written (ticks): audio the edit list trims at the start,
    /// kept in place (or Opus pre-skip).
    codec_delay: Vec<i64>,
    /// Audio packets dropped because the edit list ends before them.
    trimmed: u64,
}

impl MkvMuxer {
    pub fn new(tracks: TrackSet, policy: FragmentPolicy, webm: bool) -> Self {
        let video = tracks.iter().position(|t| t.kind == TrackKind::Video);
        let cue_track = video
            .map(|v| (v, true))
            .or_else(|| tracks.iter().position(|t| t.kind == TrackKind::Audio).map(|a| (a, false)));
        MkvMuxer {
            fragmenter: Fragmenter::new(&tracks, policy),
            tracks,
            webm,
            pending: Vec::new(),
            pending_span: None,
            written: 0,
            front: None,
            header: None,
            cues: Vec::new(),
            end_ms: 0,
            cue_track,
            plan: None,
            codec_delay: Vec::new(),
            trimmed: 0,
        }
    }

    /// A packet's block timestamp in ms: its presentation time on the planned timeline
    /// plus the track's `CodecDelay` (which readers take off again), rounded to the nearest
    /// ms; `None` for audio that starts past the end of the track's edit.
    /// Before the plan is decided, the packet's own presentation time (used only to bound a
    /// Cluster's span).
    fn timestamp_ms(&self, p: &Packet) -> Option<i64> {
        let t = &self.tracks[p.track];
        let Some(plan) = &self.plan else {
            return Some(round_ms(ticks_to_ns(p.pts_ticks as i128, t.timescale)));
        };
        let tp = &plan.tracks[p.track];
        let pts = p.pts_ticks.saturating_sub(tp.media_shift);
        if t.kind == TrackKind::Audio && trimmed_whole(tp, pts) {
            return None;
        }
        let delay = self.codec_delay.get(p.track).copied().unwrap_or(0);
        Some(round_ms(tp.presentation_ns(pts) + ticks_to_ns(delay as i128, t.timescale)))
    }

    /// Decides the plan from the first Cluster's packets, and builds the header with it.
    fn decide(&mut self) -> Result<(), MuxError> {
        let mut starts: Vec<Option<MediaStart>> = vec![None; self.tracks.len()];
        for (p, _) in &self.pending {
            let s = starts[p.track].get_or_insert(MediaStart { first_dts: p.dts_ticks, first_pts: p.pts_ticks });
            s.first_pts = s.first_pts.min(p.pts_ticks);
        }
        let plan = timeline::plan(self.tracks.iter().map(Timing::from), &starts);
        // Per track, the first audio kept: the edit may trim part of it, which CodecDelay says.
        let mut first_kept: Vec<Option<i64>> = vec![None; self.tracks.len()];
        for (p, _) in &self.pending {
            let tp = &plan.tracks[p.track];
            let pts = p.pts_ticks.saturating_sub(tp.media_shift);
            if !trimmed_whole(tp, pts) {
                let f = first_kept[p.track].get_or_insert(pts);
                *f = (*f).min(pts);
            }
        }
        self.codec_delay = self
            .tracks
            .iter()
            .zip(&plan.tracks)
            .zip(&first_kept)
            .map(|((t, tp), first)| {
                if t.kind != TrackKind::Audio {
                    return 0;
                }
                let trim = first.map_or(0, |f| tp.start_trim(f));
                match &t.codec {
                    CodecConfig::Opus { head } if trim == 0 => {
                        ns_to_ticks(ticks_to_ns(head.pre_skip as i128, 48_000), t.timescale) as i64
                    }
                    _ => trim,
                }
            })
            .collect();
        let tracks: Vec<Track> = self
            .tracks
            .iter()
            .zip(&self.codec_delay)
            .map(|(t, &delay)| {
                let mut t = t.clone();
                t.edits = if delay > 0 {
                    vec![Edit { segment_duration_movie_ticks: 0, media_time_ticks: delay, media_rate_integer: 1 }]
                } else {
                    Vec::new()
                };
                t
            })
            .collect();
        self.plan = Some(plan);
        self.build_header(&tracks)
    }

    fn build_header(&mut self, tracks: &[Track]) -> Result<(), MuxError> {
        let mut buf = BytesMut::with_capacity(1024);
        let doc_type = if self.webm { "webm" } else { "matroska" };
        let mut ebml = BytesMut::new();
        put_master(&mut ebml, ids::EBML, |b| {
            put_string(b, ids::DOC_TYPE, doc_type);
            put_uint(b, ids::DOC_TYPE_VERSION, 4);
            put_uint(b, ids::DOC_TYPE_READ_VERSION, 2);
        });
        buf.put_slice(&ebml);
        put_id(&mut buf, ids::SEGMENT);
        buf.put_slice(&UNKNOWN_SIZE_8);
        put_void(&mut buf, RESERVED_FRONT);
        let mut info = BytesMut::new();
        put_master(&mut info, ids::INFO, |b| {
            put_uint(b, ids::TIMESTAMP_SCALE, DEFAULT_TIMESTAMP_SCALE);
            put_string(b, ids::MUXING_APP, "livemux");
            put_string(b, ids::WRITING_APP, concat!("livemux ", env!("CARGO_PKG_VERSION")));
            super::meta::put_info(b, &self.tracks.movie);
        });
        buf.put_slice(&info);
        let mut tracks_buf = BytesMut::new();
        write_tracks(&mut tracks_buf, tracks, self.webm)?;
        buf.put_slice(&tracks_buf);
        let mut tags = BytesMut::new();
        super::meta::put_tags(&mut tags, &self.tracks.movie);
        super::meta::put_attachments(&mut tags, &self.tracks.movie);
        buf.put_slice(&tags);
        self.front = Some(Front {
            ebml_header: ebml.freeze(),
            info: info.freeze(),
            others: [tracks_buf.freeze(), tags.freeze()].into_iter().filter(|e| !e.is_empty()).collect(),
            first_cluster: 0,
            first_cluster_header_len: 0,
            first_cluster_end: 0,
        });
        self.header = Some(buf.freeze());
        Ok(())
    }

    fn emit(
        &mut self,
        kind: FragmentKind,
        parts: Vec<Bytes>,
        packets: u32,
        start_ms: Option<i64>,
        dur: u64,
    ) -> Fragment {
        let f = Fragment { kind, offset: self.written, parts, packets, start_ms, duration_ms: dur, index: Default::default() };
        self.written += f.len();
        f
    }

    fn flush(&mut self) -> Result<Option<Fragment>, MuxError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        if self.plan.is_none() {
            self.decide()?;
            let pending = std::mem::take(&mut self.pending);
            for (p, _) in pending {
                match self.timestamp_ms(&p) {
                    Some(ms) => self.pending.push((p, ms)),
                    None => self.trimmed += 1,
                }
            }
            if self.pending.is_empty() {
                self.fragmenter.reset();
                self.pending_span = None;
                return Ok(None);
            }
        }
        let cluster_ms = self.pending.iter().map(|(_, t)| *t).min().unwrap_or(0).max(0);
        // The plan may have moved a track by more than a block's 16-bit offset can say:
        // what lies too far after the Cluster's start waits for the next Cluster.
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, ms)| ms.saturating_sub(cluster_ms) <= MAX_CLUSTER_SPAN_MS);
        self.pending = now;
        let mut parts = Vec::with_capacity(self.pending.len() * 2 + 2);
        parts.extend(self.header.take());
        let cluster_offset = self.written + parts.first().map_or(0, |h| h.len() as u64);
        let mut head = BytesMut::with_capacity(64);
        let mut body_len = 0usize;
        let mut timestamp = BytesMut::new();
        put_uint(&mut timestamp, ids::TIMESTAMP, cluster_ms as u64);
        body_len += timestamp.len();
        let mut blocks: Vec<(BytesMut, Vec<Bytes>)> = Vec::with_capacity(self.pending.len());
        let mut cued = false;
        for (p, ms) in self.pending.drain(..) {
            let rel = ms.saturating_sub(cluster_ms).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
            let mut h = BytesMut::with_capacity(16);
            simple_block_header(&mut h, p.track as u64 + 1, rel, p.keyframe, p.data.len());
            body_len += h.len() + p.data.len();
            if let Some((track, video)) = self.cue_track {
                if p.track == track && ((video && p.keyframe) || (!video && !cued)) && ms >= 0 {
                    self.cues.push(Cue { time: ms as u64, track: track as u64 + 1, cluster_offset });
                    cued = true;
                }
            }
            let t = &self.tracks[p.track];
            let dur_ms = (p.duration_ticks as i64 * 1000) / t.timescale.max(1) as i64;
            self.end_ms = self.end_ms.max(ms.saturating_add(dur_ms));
            blocks.push((h, p.data.into_parts()));
        }
        put_id(&mut head, ids::CLUSTER);
        put_size(&mut head, body_len as u64, size_len(body_len as u64));
        head.put_slice(&timestamp);
        let count = blocks.len() as u32;
        for (h, payload) in blocks {
            head.put_slice(&h);
            parts.push(std::mem::take(&mut head).freeze());
            parts.extend(payload);
        }
        if !head.is_empty() {
            parts.push(head.freeze());
        }
        if self.front.as_ref().is_some_and(|f| f.first_cluster_end == 0) {
            let f = self.front.as_mut().expect("checked");
            f.first_cluster = cluster_offset;
            f.first_cluster_header_len = 4 + size_len(body_len as u64);
            f.first_cluster_end = cluster_offset + f.first_cluster_header_len as u64 + body_len as u64;
        }
        self.fragmenter.reset();
        self.pending_span = later.iter().fold(None, |span, (_, ms)| {
            Some(span.map_or((*ms, *ms), |(lo, hi): (i64, i64)| (lo.min(*ms), hi.max(*ms))))
        });
        self.pending = later;
        let dur = (self.end_ms - cluster_ms).max(0) as u64;
        Ok(Some(self.emit(FragmentKind::Media, parts, count, Some(cluster_ms), dur)))
    }
}

impl Muxer for MkvMuxer {
    fn header(&mut self) -> Result<Fragment, MuxError> {
        // Built now to report what cannot be written; rebuilt with the `CodecDelay`s of the
        // plan at the first Cluster, and written with it.
        let tracks = self.tracks.clone();
        self.build_header(&tracks)?;
        Ok(self.emit(FragmentKind::Header, vec![], 0, None, 0))
    }

    fn push(&mut self, packet: Packet) -> Result<Option<Fragment>, MuxError> {
        if packet.track >= self.tracks.len() {
            return Err(MuxError::NoSuchTrack { track: packet.track, tracks: self.tracks.len() });
        }
        let mut packet = packet;
        if let CodecConfig::Pcm { pcm } = &self.tracks[packet.track].codec {
            // A_PCM/FLOAT/IEEE is little-endian only: big-endian floats are swapped.
            if pcm.float && !pcm.little_endian {
                let width = usize::from(pcm.bits_per_sample / 8);
                packet.data = Bytes::from(swap_byte_order(&packet.data.contiguous(), width)).into();
            }
        }
        let Some(ms) = self.timestamp_ms(&packet) else {
            self.trimmed += 1;
            return Ok(None);
        };
        let too_far = self.pending_span.is_some_and(|(lo, hi)| {
            ms.saturating_sub(lo) > MAX_CLUSTER_SPAN_MS || hi.saturating_sub(ms) > MAX_CLUSTER_SPAN_MS
        });
        let closed = if !self.fragmenter.is_empty() && (self.fragmenter.cut_before(&packet) || too_far) {
            self.flush()?
        } else {
            None
        };
        // The first Cluster decided the plan: this packet's time may have changed with it.
        let Some(ms) = self.timestamp_ms(&packet) else {
            self.trimmed += 1;
            return Ok(closed);
        };
        self.fragmenter.add(&packet);
        self.pending_span = Some(self.pending_span.map_or((ms, ms), |(lo, hi)| (lo.min(ms), hi.max(ms))));
        self.pending.push((packet, ms));
        Ok(closed)
    }

    fn boundary(&mut self) -> Result<Option<Fragment>, MuxError> {
        if self.fragmenter.long_enough() {
            self.flush()
        } else {
            Ok(None)
        }
    }

    fn finish(&mut self) -> Result<Vec<Fragment>, MuxError> {
        let mut out: Vec<Fragment> = Vec::new();
        // Each flush writes at least the earliest packet held: this ends.
        while !self.pending.is_empty() {
            out.extend(self.flush()?);
        }
        if self.plan.is_none() {
            self.decide()?;
        }
        if let Some(header) = self.header.take() {
            // No packet at all: the header alone.
            out.push(self.emit(FragmentKind::Header, vec![header], 0, None, 0));
        }
        let Some(front) = self.front.clone().filter(|f| f.first_cluster_end > 0) else { return Ok(out) };
        let index = Index {
            duration: self.end_ms as f64,
            cues: std::mem::take(&mut self.cues),
            end: self.written,
            unsized_clusters: vec![],
        };
        // The reserved Void always leaves room; a front that still does not fit keeps the
        // file as it is (complete, only not indexed).
        if let Ok(Ok(plan)) = plan_in_place(&front, &index, self.written) {
            for step in plan.steps {
                if let WriteStep::Write { offset, data } = step {
                    out.push(Fragment::finalize(offset, data));
                }
            }
        }
        Ok(out)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.trimmed > 0 {
            notes.push(format!("{} audio packets the edit list trims whole were left out", self.trimmed));
        }
        if let Some(plan) = self.plan.as_ref().filter(|p| p.shift_ns != 0) {
            notes.push(format!(
                "every track starts {:.3} s later in the input: that common start is taken off",
                plan.shift_ns as f64 / 1e9
            ));
        }
        notes
    }
}

/// Whether the edit list trims a packet at `pts` (moved media time) whole at its end. What
/// it trims at the start (AAC priming, Opus pre-skip) is kept in place and said with
/// `CodecDelay`: the decoder needs it to decode the first shown samples exactly.
fn trimmed_whole(plan: &TrackPlan, pts: i64) -> bool {
    plan.media_end.is_some_and(|end| pts >= end)
}

/// `ns` in ms, rounded to the nearest.
fn round_ms(ns: i128) -> i64 {
    (ns + 500_000).div_euclid(1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Writes the whole of `fragments` (a test helper's view of what a file sink does).
#[cfg(test)]
fn apply(fragments: &[Fragment]) -> Vec<u8> {
    let steps: Vec<WriteStep> = fragments.iter().map(WriteStep::from_fragment).collect();
    let mut file = Vec::new();
    crate::formats::plan::apply_in_memory(&mut file, &[], &steps);
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::Dimensions;
    use crate::formats::matroska::reader::{elements, MkvItem, MkvReader};
    use crate::model::{ParamOrigin, Track};
    use std::sync::Arc;

    #[test]
    fn clusters_are_whole_and_the_finalized_file_reads_back() {
        let track = Track {
            input_id: 1,
            kind: TrackKind::Video,
            timescale: 1000,
            codec: CodecConfig::Vp8 { dims: Dimensions { width: 64, height: 64 } },
            language: *b"und",
            edits: vec![],
            movie_timescale: 1000,
            origin: ParamOrigin::Stream,
            mp4_sample_entry: None,
            meta: Default::default(),
        };
        let mut m = MkvMuxer::new(Arc::new(vec![track].into()), FragmentPolicy::default(), true);
        let mut frags = vec![m.header().unwrap()];
        for i in 0..90i64 {
            let p = Packet {
                track: 0,
                dts_ticks: i * 40,
                pts_ticks: i * 40,
                duration_ticks: 40,
                keyframe: i % 30 == 0,
                data: Bytes::from(vec![i as u8; 10]).into(),
            };
            frags.extend(m.push(p).unwrap());
        }
        frags.extend(m.finish().unwrap());
        let media: Vec<_> = frags.iter().filter(|f| f.kind == FragmentKind::Media).collect();
        assert_eq!(media.len(), 3);
        assert!(frags[0].is_empty(), "the header goes out with the first cluster");
        let file = apply(&frags);
        let mut r = MkvReader::new();
        r.push(Bytes::from(file));
        let mut blocks = 0;
        let mut cues = false;
        let mut sized = true;
        while let Some(i) = r.poll().unwrap() {
            match i {
                MkvItem::Blocks { offset, data } => blocks += elements(offset, &data).count(),
                MkvItem::Meta(e) if e.id == ids::CUES => cues = true,
                MkvItem::SegmentStart { size, .. } => sized &= size.is_some(),
                _ => {}
            }
        }
        assert_eq!((blocks, cues, sized), (90, true, true));
        assert_eq!(r.finish().cut, None);
    }
}
