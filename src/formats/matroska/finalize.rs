//! Making a Matroska file seekable in place: Duration, Cues and SeekHead, written in an
//! order in which every intermediate state is a valid file.
//!
//! The file's *front* — everything before the first Cluster's body: EBML header, Segment
//! header, SeekHead, Info, Tracks, the first Cluster's header — is small (well under one
//! 4 KiB page) and is rebuilt as a whole: EBML header fields equal to their defaults are
//! dropped, the Segment and the first Cluster get known sizes in short size fields, Info
//! gains a Duration, and a SeekHead points at the Cues. Browser files reserve no space,
//! and these savings make room without moving a byte of media; a file livemux wrote
//! reserves a Void for it.
//!
//! Write order (each step durable before the next, see [`crate::io::Apply`]):
//! 1. (A file cut inside an element) truncate to the end of the last complete element.
//!    A Cluster with a declared size that the cut tore keeps its complete blocks: its
//!    size field is rewritten (same length) to end at the last of them, after the
//!    truncation, so that the Cues do not land inside it; one cut before its first block
//!    is truncated away whole. (Unknown-size Clusters get their sizes in this step too.)
//! 2. Append the Cues wrapped in a Void: readers skip it, the file is as before.
//! 3. Write the new front in one write at offset 0. Its SeekHead points at the Cues
//!    inside the Void, which SeekHead-following readers find; the positions in the Cues
//!    are already relative to the new Segment start.
//! 4. Shrink the wrapping Void to its own header: the Cues become a top-level element.
//!
//! When the rebuilt front does not fit, the caller rewrites the file through a temporary
//! file instead (see [`crate::finalize`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::block::parse_block;
use super::ebml::{children, id_len, put_element, put_float, put_id, put_size, put_uint, put_void, size_len, MkvError};
use super::ids;
use super::reader::{elements, Element, MkvItem, MkvReader};
use super::tracks::{parse_tracks, SegmentInfo, TrackEntry, DEFAULT_TIMESTAMP_SCALE};
use crate::formats::{FinalizePlan, WriteStep};
use crate::model::TrackKind;

/// Largest Cluster timestamp or duration used, in timestamp units (2^53): sums of a few
/// of them cannot overflow.
const MAX_TIME: i64 = 1 << 53;

/// Bytes of the Void header that hides the Cues until the last step (ID + 8-byte size).
const HIDING_VOID_HEADER: usize = 9;

/// What the front of the file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Front {
    /// The EBML header element, whole.
    pub ebml_header: Bytes,
    /// The Info element, whole.
    pub info: Bytes,
    /// Other level-1 elements before the first Cluster (Tracks, Tags...), whole, in order.
    /// SeekHead, Void and CRC-32 are left out: the new front replaces them.
    pub others: Vec<Bytes>,
    /// Offset of the first Cluster and the length of its header.
    pub first_cluster: u64,
    pub first_cluster_header_len: usize,
    /// Where the first Cluster ends.
    pub first_cluster_end: u64,
}

/// One cue: a keyframe's time and where its Cluster starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cue {
    /// In timestamp units.
    pub time: u64,
    pub track: u64,
    /// Absolute offset of the Cluster.
    pub cluster_offset: u64,
}

/// What finalizing needs to know about the media.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    /// In timestamp units.
    pub duration: f64,
    pub cues: Vec<Cue>,
    /// End of the last complete element: the Segment's new end, before the Cues.
    pub end: u64,
    /// Clusters after the first whose size is unknown: (offset, size field length, end).
    pub unsized_clusters: Vec<(u64, usize, u64)>,
}

/// The rebuilt front does not fit in the space the old one used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rebuilt header needs {needed} bytes but the file has {available} before its first cluster's data")]
pub struct NoRoom {
    pub needed: usize,
    pub available: usize,
}

/// The EBML header without the fields that equal their defaults.
fn compact_ebml_header(ebml: &[u8]) -> Result<Bytes, MkvError> {
    let body_start = match super::ebml::parse_header(ebml, 0)? {
        super::ebml::HeaderParse::Header(h) => h.header_len,
        super::ebml::HeaderParse::NeedMore => return Err(MkvError::invalid("EBML header", 0, "cut short")),
    };
    let mut body = BytesMut::new();
    for c in children(&ebml[body_start..], body_start as u64) {
        let c = c?;
        let v = super::ebml::read_uint(c.body);
        let default = match c.id {
            ids::EBML_VERSION | ids::EBML_READ_VERSION => v == Some(1),
            ids::EBML_MAX_ID_LENGTH => v == Some(4),
            ids::EBML_MAX_SIZE_LENGTH => v == Some(8),
            ids::VOID | ids::CRC32 => true,
            _ => false,
        };
        if !default {
            body.put_slice(c.whole(&ebml[body_start..], body_start as u64));
        }
    }
    let mut out = BytesMut::new();
    put_element(&mut out, ids::EBML, &body);
    Ok(out.freeze())
}

/// Info with Duration (as a 4- or 8-byte float), without a default TimestampScale.
fn info_with_duration(info: &[u8], duration: f64, wide: bool) -> Result<Bytes, MkvError> {
    let body_start = match super::ebml::parse_header(info, 0)? {
        super::ebml::HeaderParse::Header(h) => h.header_len,
        super::ebml::HeaderParse::NeedMore => return Err(MkvError::invalid("Info", 0, "cut short")),
    };
    let mut body = BytesMut::new();
    for c in children(&info[body_start..], body_start as u64) {
        let c = c?;
        let drop = match c.id {
            ids::TIMESTAMP_SCALE => super::ebml::read_uint(c.body) == Some(DEFAULT_TIMESTAMP_SCALE),
            ids::DURATION | ids::VOID | ids::CRC32 => true,
            _ => false,
        };
        if !drop {
            body.put_slice(c.whole(&info[body_start..], body_start as u64));
        }
    }
    if wide {
        put_float(&mut body, ids::DURATION, duration);
    } else {
        put_element(&mut body, ids::DURATION, &(duration as f32).to_be_bytes());
    }
    let mut out = BytesMut::new();
    put_element(&mut out, ids::INFO, &body);
    Ok(out.freeze())
}

fn seek_head(entries: &[(u32, u64)]) -> Bytes {
    let mut body = BytesMut::new();
    for &(id, pos) in entries {
        let mut seek = BytesMut::new();
        put_element(&mut seek, ids::SEEK_ID, &id.to_be_bytes()[4 - id_len(id)..]);
        put_uint(&mut seek, ids::SEEK_POSITION, pos);
        put_element(&mut body, ids::SEEK, &seek);
    }
    let mut out = BytesMut::new();
    put_element(&mut out, ids::SEEK_HEAD, &body);
    out.freeze()
}

/// The Cues element, positions relative to `segment_data_start`.
pub fn cues(index: &Index, segment_data_start: u64) -> Bytes {
    let mut body = BytesMut::new();
    for c in &index.cues {
        let mut point = BytesMut::new();
        put_uint(&mut point, ids::CUE_TIME, c.time);
        let mut pos = BytesMut::new();
        put_uint(&mut pos, ids::CUE_TRACK, c.track);
        put_uint(&mut pos, ids::CUE_CLUSTER_POSITION, c.cluster_offset - segment_data_start);
        put_element(&mut point, ids::CUE_TRACK_POSITIONS, &pos);
        put_element(&mut body, ids::CUE_POINT, &point);
    }
    let mut out = BytesMut::new();
    put_element(&mut out, ids::CUES, &body);
    out.freeze()
}

/// A front layout: the bytes, and where the Segment's data starts.
struct Layout {
    bytes: BytesMut,
    segment_data_start: u64,
}

/// Builds the front for one choice of options, or `None` if it cannot fill the region
/// exactly.
fn layout(
    front: &Front,
    index: &Index,
    ebml: &Bytes,
    info: &Bytes,
    full_seek_head: bool,
    segment_size_len: usize,
) -> Option<Layout> {
    let region = (front.first_cluster + front.first_cluster_header_len as u64) as usize;
    let segment_data_start = (ebml.len() + 4 + segment_size_len) as u64;
    let cues_start = index.end + HIDING_VOID_HEADER as u64;
    let cues_len = cues(index, segment_data_start).len() as u64;
    let segment_size = cues_start + cues_len - segment_data_start;
    if size_len(segment_size) > segment_size_len {
        return None;
    }
    // A Segment whose Clusters cannot all be sized in place keeps an unknown size.
    let unknown = index.unsized_clusters.iter().any(|&(o, l, e)| size_len(e - o - 4 - l as u64) > l);
    if unknown && segment_size_len != 8 {
        return None;
    }
    let cluster_size =
        front.first_cluster_end.checked_sub(front.first_cluster + front.first_cluster_header_len as u64)?;
    let cluster_header_len = 4 + size_len(cluster_size);
    // Positions depend on the SeekHead's own length: iterate to a fixed point.
    let mut seek_len = 0;
    for _ in 0..4 {
        let mut entries = Vec::new();
        if full_seek_head {
            let mut pos = seek_len as u64;
            entries.push((ids::INFO, pos));
            pos += info.len() as u64;
            for e in &front.others {
                if element_id(e) == ids::TRACKS {
                    entries.push((ids::TRACKS, pos));
                }
                pos += e.len() as u64;
            }
        }
        entries.push((ids::CUES, cues_start - segment_data_start));
        let head = seek_head(&entries);
        if head.len() == seek_len {
            let mut bytes = BytesMut::with_capacity(region);
            bytes.put_slice(ebml);
            put_id(&mut bytes, ids::SEGMENT);
            if unknown {
                bytes.put_slice(&super::ebml::UNKNOWN_SIZE_8);
            } else {
                put_size(&mut bytes, segment_size, segment_size_len);
            }
            bytes.put_slice(&head);
            bytes.put_slice(info);
            for e in &front.others {
                bytes.put_slice(e);
            }
            let used = bytes.len() + cluster_header_len;
            let slack = region.checked_sub(used)?;
            // Fill the gap with a Void, or with a longer cluster size field.
            let mut cluster_size_len = cluster_header_len - 4;
            match slack {
                0 => {}
                1..=7 if cluster_size_len + slack <= 8 => cluster_size_len += slack,
                n if n >= 2 => put_void(&mut bytes, n),
                _ => return None,
            }
            put_id(&mut bytes, ids::CLUSTER);
            put_size(&mut bytes, cluster_size, cluster_size_len);
            debug_assert_eq!(bytes.len(), region);
            return Some(Layout { bytes, segment_data_start });
        }
        seek_len = head.len();
    }
    None
}

fn element_id(e: &[u8]) -> u32 {
    match super::ebml::parse_header(e, 0) {
        Ok(super::ebml::HeaderParse::Header(h)) => h.id,
        _ => 0,
    }
}

/// The rebuilt front and the Cues, positioned for it.
pub struct Rebuilt {
    pub front: Bytes,
    pub cues: Bytes,
    pub notes: Vec<String>,
}

/// Chooses the richest front that fits the region before the first Cluster's data.
pub fn rebuild_front(front: &Front, index: &Index) -> Result<Result<Rebuilt, NoRoom>, MkvError> {
    let ebml = compact_ebml_header(&front.ebml_header)?;
    let region = (front.first_cluster + front.first_cluster_header_len as u64) as usize;
    let mut smallest = usize::MAX;
    for (full, wide) in [(true, true), (true, false), (false, true), (false, false)] {
        let info = info_with_duration(&front.info, index.duration, wide)?;
        for segment_size_len in (1..=8).rev() {
            if let Some(l) = layout(front, index, &ebml, &info, full, segment_size_len) {
                let mut notes = Vec::new();
                if !full {
                    notes.push("the SeekHead lists the Cues only (no room for Info and Tracks entries)".into());
                }
                let cues = cues(index, l.segment_data_start);
                return Ok(Ok(Rebuilt { front: l.bytes.freeze(), cues, notes }));
            }
            let minimal =
                ebml.len() + 4 + segment_size_len + info.len() + front.others.iter().map(Bytes::len).sum::<usize>();
            smallest = smallest.min(minimal + 30);
        }
    }
    Ok(Err(NoRoom { needed: smallest, available: region }))
}

/// The in-place plan: truncate if needed, hidden Cues, new front, Cues revealed.
pub fn plan_in_place(front: &Front, index: &Index, file_len: u64) -> Result<Result<FinalizePlan, NoRoom>, MkvError> {
    let rebuilt = match rebuild_front(front, index)? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let mut steps = Vec::new();
    if file_len > index.end {
        steps.push(WriteStep::Truncate { len: index.end });
    }
    // Give every unknown-size Cluster its size, each in its own 8-byte field: readers
    // warn about unknown-size children of a known-size Segment.
    for &(offset, field_len, end) in &index.unsized_clusters {
        let size = end - offset - 4 - field_len as u64;
        let mut field = BytesMut::new();
        put_size(&mut field, size, field_len);
        steps.push(WriteStep::Write { offset: offset + 4, data: field.freeze() });
    }
    let mut hidden = BytesMut::with_capacity(HIDING_VOID_HEADER + rebuilt.cues.len());
    hidden.put_u8(ids::VOID as u8);
    put_size(&mut hidden, rebuilt.cues.len() as u64, 8);
    hidden.put_slice(&rebuilt.cues);
    steps.push(WriteStep::Write { offset: index.end, data: hidden.freeze() });
    steps.push(WriteStep::Write { offset: 0, data: rebuilt.front.clone() });
    let mut reveal = BytesMut::new();
    put_void(&mut reveal, HIDING_VOID_HEADER);
    steps.push(WriteStep::Write { offset: index.end, data: reveal.freeze() });
    let mut notes = rebuilt.notes;
    notes.push(format!(
        "Duration, SeekHead and {} cue points added in place ({} header bytes rewritten, Cues appended)",
        index.cues.len(),
        rebuilt.front.len()
    ));
    Ok(Ok(FinalizePlan { steps, notes }))
}

/// Reads a Matroska file (bytes pushed in order) for what finalizing needs: the front
/// elements, every Cluster's position, keyframe times, and where the complete data ends.
#[derive(Default)]
pub struct Scanner {
    reader: MkvReader,
    ebml: Option<Bytes>,
    info: Option<Bytes>,
    others: Vec<Bytes>,
    entries: Vec<TrackEntry>,
    scale: Option<u64>,
    first_cluster: Option<(u64, usize)>,
    first_cluster_end: Option<u64>,
    /// Unknown-size Clusters after the first: (offset, size field length); ends follow.
    open_sized: Vec<(u64, usize)>,
    unsized_ends: Vec<u64>,
    cluster_offset: u64,
    cluster_timestamp: u64,
    /// The track whose keyframes are cue points, and whether it is video.
    cue_track: Option<(u64, bool)>,
    cued_cluster: Option<u64>,
    cues: Vec<Cue>,
    /// Per track number: last timestamp and last gap.
    last: Vec<(u64, i64, i64)>,
    end_time: f64,
    has_cues: bool,
    has_seek_head: bool,
    has_duration: bool,
    /// Start of a trailing Void (hidden Cues of an interrupted finalize).
    trailing_void: Option<u64>,
    /// The last Cluster seen, to find one torn by the end of the file.
    last_cluster: Option<OpenCluster>,
}

/// The last Cluster read, and what the scan knew before it began.
#[derive(Clone, Copy, Debug)]
struct OpenCluster {
    offset: u64,
    header_len: usize,
    /// Where its declared size ends it.
    declared_end: Option<u64>,
    has_timestamp: bool,
    has_blocks: bool,
    end_time_before: f64,
}

/// What [`Scanner::finish`] found.
pub enum Scanned {
    /// Duration, Cues and SeekHead are all there.
    AlreadyFinal,
    Found {
        front: Front,
        index: Index,
        input_len: u64,
    },
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: Bytes) -> Result<(), MkvError> {
        self.reader.push(data);
        while let Some(item) = self.reader.poll()? {
            self.trailing_void = None;
            match item {
                MkvItem::EbmlHeader(e) => {
                    if self.ebml.is_some() {
                        return Err(MkvError::invalid(
                            "EBML header",
                            e.offset,
                            "a second segment (chained files) cannot be finalized",
                        ));
                    }
                    self.ebml = Some(e.data);
                }
                MkvItem::Meta(e) if self.first_cluster.is_some() => {
                    self.close_unsized(e.offset);
                    self.has_cues |= e.id == ids::CUES;
                    self.has_seek_head |= e.id == ids::SEEK_HEAD;
                }
                MkvItem::Meta(e) => match e.id {
                    ids::INFO => {
                        let info = SegmentInfo::parse(e.body(), e.body_offset())?;
                        self.scale = Some(info.timestamp_scale);
                        self.has_duration = info.duration.is_some();
                        self.info = Some(e.data);
                    }
                    ids::SEEK_HEAD => self.has_seek_head = true,
                    ids::CUES => self.has_cues = true,
                    id => {
                        if id == ids::TRACKS {
                            self.entries = parse_tracks(e.body(), e.body_offset())?;
                            let video = self.entries.iter().find(|t| t.kind() == TrackKind::Video);
                            let lead = video.or_else(|| self.entries.iter().find(|t| t.kind() == TrackKind::Audio));
                            self.cue_track = lead.map(|t| (t.number, t.kind() == TrackKind::Video));
                        }
                        if self.first_cluster.is_none() {
                            self.others.push(e.data);
                        }
                    }
                },
                MkvItem::ClusterStart { offset, header_len, size } => {
                    if self.open_sized.len() > self.unsized_ends.len() {
                        self.unsized_ends.push(offset);
                    }
                    if size.is_none() && self.first_cluster.is_some() && header_len > 4 {
                        self.open_sized.push((offset, header_len - 4));
                    }
                    if self.first_cluster.is_none() {
                        self.first_cluster = Some((offset, header_len));
                    } else if self.first_cluster_end.is_none() {
                        self.first_cluster_end = Some(offset);
                    }
                    self.cluster_offset = offset;
                    self.cluster_timestamp = 0;
                    self.last_cluster = Some(OpenCluster {
                        offset,
                        header_len,
                        declared_end: size.and_then(|s| offset.checked_add(header_len as u64)?.checked_add(s)),
                        has_timestamp: false,
                        has_blocks: false,
                        end_time_before: self.end_time,
                    });
                }
                MkvItem::ClusterTimestamp { timestamp, .. } => {
                    self.cluster_timestamp = timestamp;
                    if let Some(c) = self.last_cluster.as_mut() {
                        c.has_timestamp = true;
                    }
                }
                MkvItem::Blocks { offset, data } => {
                    if let Some(c) = self.last_cluster.as_mut() {
                        c.has_blocks = true;
                    }
                    for e in elements(offset, &data) {
                        self.block(&e?);
                    }
                }
                MkvItem::Skipped { id: ids::VOID, offset, .. } if self.first_cluster.is_some() => {
                    self.trailing_void = Some(offset);
                    self.close_unsized(offset);
                }
                MkvItem::SegmentStart { .. } | MkvItem::Skipped { .. } => {}
            }
        }
        Ok(())
    }

    /// The open unknown-size Cluster ends where a level-1 element begins.
    fn close_unsized(&mut self, at: u64) {
        if self.open_sized.len() > self.unsized_ends.len() {
            self.unsized_ends.push(at);
        }
    }

    fn block(&mut self, e: &Element) {
        let Ok(b) = parse_block(e) else { return };
        // Times come from the input: a block whose time is out of range is left out.
        let time = match i64::try_from(self.cluster_timestamp) {
            Ok(t) if t <= MAX_TIME => t + b.relative_timestamp as i64,
            _ => return,
        };
        let default = self
            .entries
            .iter()
            .find(|t| t.number == b.track)
            .and_then(|t| t.default_duration_ns)
            .map(|ns| (ns / self.scale.unwrap_or(DEFAULT_TIMESTAMP_SCALE)).min(MAX_TIME as u64) as i64);
        let gap = match self.last.iter_mut().find(|l| l.0 == b.track) {
            Some(l) => {
                if time > l.1 {
                    l.2 = time - l.1;
                }
                l.1 = l.1.max(time);
                l.2
            }
            None => {
                self.last.push((b.track, time, 0));
                0
            }
        };
        let each = b.duration.map(|d| d.min(MAX_TIME as u64) as i64).or(default).unwrap_or(gap);
        let duration = each.saturating_mul(b.frames.len().max(1) as i64);
        self.end_time = self.end_time.max(time.saturating_add(duration) as f64);
        if let Some((track, video)) = self.cue_track {
            let new_cluster = self.cued_cluster != Some(self.cluster_offset);
            if b.track == track && ((video && b.keyframe) || (!video && new_cluster)) && time >= 0 {
                self.cues.push(Cue { time: time as u64, track, cluster_offset: self.cluster_offset });
                self.cued_cluster = Some(self.cluster_offset);
            }
        }
    }

    pub fn finish(self) -> Result<Scanned, String> {
        if self.has_cues && self.has_seek_head && self.has_duration {
            return Ok(Scanned::AlreadyFinal);
        }
        let state = self.reader.finish();
        let mut end = state.cut.as_ref().map_or(state.input_len, |c| c.offset);
        if let Some(v) = self.trailing_void {
            end = end.min(v);
        }
        let ebml = self.ebml.ok_or("no EBML header")?;
        let info = self.info.ok_or("no Info element before the first cluster")?;
        let (first_cluster, first_cluster_header_len) = self.first_cluster.ok_or("no cluster: no media")?;
        // A Cluster with a declared size that the end of the file cuts (a crash or a full
        // disk while it was written) must not keep that size: the Cues would land inside
        // it. It ends at its last complete block (its size is rewritten below), or, with
        // none, it goes.
        let mut cues = self.cues;
        let mut end_time = self.end_time;
        let mut open_sized = self.open_sized;
        let mut unsized_ends = self.unsized_ends;
        if let Some(c) = self.last_cluster {
            let torn = c.declared_end.is_some_and(|e| end < e) && end >= c.offset;
            if torn && c.has_timestamp && c.has_blocks {
                if c.offset != first_cluster {
                    open_sized.retain(|&(o, _)| o != c.offset);
                    unsized_ends.truncate(open_sized.len());
                    open_sized.push((c.offset, c.header_len - 4));
                    unsized_ends.push(end);
                }
            } else if torn {
                if c.offset == first_cluster {
                    return Err("the only cluster is cut before its first block: no media".into());
                }
                end = c.offset;
                end_time = c.end_time_before;
                cues.retain(|q| q.cluster_offset < c.offset);
            }
        }
        if self.has_cues {
            return Err("the file has Cues but no SeekHead or Duration: not a layout livemux finalizes".into());
        }
        let front = Front {
            ebml_header: ebml,
            info,
            others: self.others,
            first_cluster,
            first_cluster_header_len,
            first_cluster_end: self.first_cluster_end.unwrap_or(end).min(end),
        };
        if open_sized.len() > unsized_ends.len() {
            unsized_ends.push(end);
        }
        let unsized_clusters = open_sized
            .iter()
            .zip(unsized_ends)
            .filter(|(&(offset, _), e)| offset < end && *e <= end)
            .map(|(&(offset, len), e)| (offset, len, e))
            .collect();
        let index = Index { unsized_clusters, duration: end_time, cues, end };
        Ok(Scanned::Found { front, index, input_len: state.input_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chromium-like front: default EBML fields, unknown-size Segment and Cluster.
    fn chromium_like() -> (Vec<u8>, Front) {
        let ebml = [
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2, 0x81, 0x04, 0x42,
            0xF3, 0x81, 0x08, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm', 0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02,
        ];
        let info = [
            0x15, 0x49, 0xA9, 0x66, 0x99, 0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40, 0x4D, 0x80, 0x86, b'C', b'h', b'r',
            b'o', b'm', b'e', 0x57, 0x41, 0x86, b'C', b'h', b'r', b'o', b'm', b'e',
        ];
        let tracks = [0x16, 0x54, 0xAE, 0x6B, 0x85, 0xAE, 0x83, 0xD7, 0x81, 0x01];
        let mut file = ebml.to_vec();
        file.extend([0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        file.extend(info);
        file.extend(tracks);
        let first_cluster = file.len() as u64;
        file.extend([0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        file.extend([0xE7, 0x81, 0x00, 0xA3, 0x85, 0x81, 0x00, 0x00, 0x80, 0x11]);
        let front = Front {
            ebml_header: Bytes::copy_from_slice(&ebml),
            info: Bytes::copy_from_slice(&info),
            others: vec![Bytes::copy_from_slice(&tracks)],
            first_cluster,
            first_cluster_header_len: 12,
            first_cluster_end: file.len() as u64,
        };
        (file, front)
    }

    #[test]
    fn a_browser_front_is_rebuilt_in_the_same_bytes() {
        let (file, front) = chromium_like();
        let index = Index {
            duration: 1234.0,
            cues: vec![Cue { time: 0, track: 1, cluster_offset: front.first_cluster }],
            end: file.len() as u64,
            unsized_clusters: vec![],
        };
        let plan = plan_in_place(&front, &index, file.len() as u64).unwrap().unwrap();
        assert_eq!(plan.steps.len(), 3);
        let WriteStep::Write { offset: 0, data } = &plan.steps[1] else { panic!() };
        assert_eq!(data.len() as u64, front.first_cluster + 12);
        // Apply and read back with the live reader.
        let mut out = file.clone();
        for s in &plan.steps {
            if let WriteStep::Write { offset, data } = s {
                let o = *offset as usize;
                if out.len() < o + data.len() {
                    out.resize(o + data.len(), 0);
                }
                out[o..o + data.len()].copy_from_slice(data);
            }
        }
        let mut r = super::super::reader::MkvReader::new();
        r.push(Bytes::from(out));
        let mut kinds = vec![];
        while let Some(i) = r.poll().unwrap() {
            kinds.push(match i {
                super::super::reader::MkvItem::Meta(e) => e.id,
                super::super::reader::MkvItem::Blocks { .. } => ids::SIMPLE_BLOCK,
                super::super::reader::MkvItem::ClusterStart { size, .. } => {
                    assert!(size.is_some());
                    ids::CLUSTER
                }
                _ => 0,
            });
        }
        kinds.retain(|&k| k != 0);
        assert_eq!(kinds, [ids::SEEK_HEAD, ids::INFO, ids::TRACKS, ids::CLUSTER, ids::SIMPLE_BLOCK, ids::CUES]);
        assert_eq!(r.finish().cut, None);
    }
}
