//! Incremental Matroska/WebM reader: bytes in (any chunking), elements out.
//!
//! Made for live input: a Segment and Clusters of unknown size (both the 1-byte and the
//! 8-byte marker) end where an element that cannot be their child begins, so nothing
//! needs the end of the file. Level-1 metadata (Info, Tracks, Tags, Cues...) and each
//! block element are handed out whole; an element that lies inside one input chunk is a
//! slice of it, one that straddles chunks is copied once into its own buffer.
//!
//! Damaged input (a lost upload chunk, overwritten bytes): a reader made with
//! [`MkvReader::resynchronising`] does not stop at the first invalid element inside a
//! Segment but searches forward, at most [`MAX_RESYNC_SCAN`] bytes, for a Cluster ID with
//! a plausible size followed by a Timestamp (or Cues, Tags, a new EBML header), drops the
//! bytes before it and says which in [`MkvReader::notes`].
//!
//! Hand-written rather than on a crate: matroska-demuxer and its peers read finished
//! files through `Read + Seek` and stop at unknown sizes; a live reader must tell "need
//! more bytes" from "invalid at offset X" and resume where it stopped.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::ebml::{parse_header, Header, HeaderParse, MkvError, MAX_HEADER_LEN};
use super::ids;
use crate::formats::{ContainerEvent, Cut, ElementKind, EndState, MetaUnit, Region};
use crate::model::Chunk;

mod resync;

/// Largest metadata element read whole (Tracks with big CodecPrivate, Tags, Cues).
pub const MAX_META_ELEMENT: u64 = 64 << 20;
/// Largest Attachments element read (for a cover picture); larger ones are skipped.
pub const MAX_ATTACHMENTS: u64 = 16 << 20;
/// Largest block element (one coded frame, or a laced group of them).
pub const MAX_BLOCK_ELEMENT: u64 = 256 << 20;
/// Most bytes of consecutive blocks handed out as one item.
const MAX_BLOCK_RUN: usize = 4 << 20;
/// Most bytes passed over looking for a Cluster after damaged data before giving up with
/// the error that started the search.
pub const MAX_RESYNC_SCAN: u64 = 64 << 20;
/// Bytes searched at a time while resynchronising.
const RESYNC_WINDOW: usize = 64 << 10;
/// Notes kept about damaged stretches (more are counted).
const MAX_RESYNC_NOTES: usize = 20;

/// The whole elements in `data` (which starts at input offset `offset`), in order.
pub fn elements(offset: u64, data: &Bytes) -> impl Iterator<Item = Result<Element, MkvError>> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let at = offset + pos as u64;
        let h = match parse_header(&data[pos..], at) {
            Ok(HeaderParse::Header(h)) => h,
            Ok(HeaderParse::NeedMore) => {
                pos = data.len();
                return Some(Err(MkvError::invalid("element", at, "cut short")));
            }
            Err(e) => {
                pos = data.len();
                return Some(Err(e));
            }
        };
        match h.total().filter(|&t| t <= (data.len() - pos) as u64) {
            Some(total) => {
                let e = Element {
                    id: h.id,
                    offset: at,
                    header_len: h.header_len,
                    data: data.slice(pos..pos + total as usize),
                };
                pos += total as usize;
                Some(Ok(e))
            }
            None => {
                pos = data.len();
                Some(Err(MkvError::invalid("element", at, "runs past the bytes at hand")))
            }
        }
    })
}

/// One element of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub id: u32,
    /// Offset of the element's header in the input.
    pub offset: u64,
    pub header_len: usize,
    /// The whole element, header included.
    pub data: Bytes,
}

impl Element {
    pub fn body(&self) -> &[u8] {
        &self.data[self.header_len..]
    }

    pub fn body_offset(&self) -> u64 {
        self.offset + self.header_len as u64
    }
}

/// What the reader found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MkvItem {
    /// The EBML header, whole.
    EbmlHeader(Element),
    /// A Segment begins; its children follow.
    SegmentStart { offset: u64, header_len: usize, size: Option<u64> },
    /// A level-1 element read whole (Info, Tracks, Tags, Cues, SeekHead, Chapters...).
    Meta(Element),
    /// A Cluster begins; its Timestamp and blocks follow.
    ClusterStart { offset: u64, header_len: usize, size: Option<u64> },
    /// A Cluster's Timestamp element, whole, and its value.
    ClusterTimestamp { element: Element, timestamp: u64 },
    /// One or more whole SimpleBlock/BlockGroup elements, back to back (as many as the
    /// input chunk at hand holds): read them with [`elements`].
    Blocks { offset: u64, data: Bytes },
    /// Bytes passed over: Void, CRC-32, elements livemux does not use.
    Skipped { id: u32, offset: u64, len: u64 },
}

impl MkvItem {
    /// The item as a container event, as `probe` passes it on.
    pub fn into_event(self) -> ContainerEvent {
        fn meta(e: Element) -> ContainerEvent {
            ContainerEvent::Meta(MetaUnit {
                kind: ElementKind::Ebml(e.id),
                offset: e.offset,
                header_len: e.header_len as u32,
                data: e.data,
            })
        }
        fn region(id: u32, offset: u64, header_len: usize, size: Option<u64>) -> Region {
            Region {
                kind: ElementKind::Ebml(id),
                offset,
                header_len: header_len as u32,
                size: size.map(|s| s.saturating_add(header_len as u64)),
            }
        }
        match self {
            MkvItem::EbmlHeader(e) | MkvItem::Meta(e) => meta(e),
            MkvItem::ClusterTimestamp { element, .. } => meta(element),
            MkvItem::SegmentStart { offset, header_len, size } => {
                ContainerEvent::Skipped(region(ids::SEGMENT, offset, header_len, size))
            }
            MkvItem::ClusterStart { offset, header_len, size } => {
                ContainerEvent::MediaStart(region(ids::CLUSTER, offset, header_len, size))
            }
            MkvItem::Blocks { offset, data } => ContainerEvent::Media(Chunk { offset, data }),
            MkvItem::Skipped { id, offset, len } => {
                ContainerEvent::Skipped(Region { kind: ElementKind::Ebml(id), offset, header_len: 0, size: Some(len) })
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// Before the EBML header, or between segments.
    Top,
    Segment {
        end: Option<u64>,
    },
    Cluster {
        end: Option<u64>,
        segment_end: Option<u64>,
    },
}

/// The reader. Push chunks with [`MkvReader::push`], take items with [`MkvReader::poll`].
#[derive(Debug)]
pub struct MkvReader {
    /// Unconsumed input, in order; `queue[0]` starts at `offset`.
    queue: VecDeque<Bytes>,
    queued: u64,
    offset: u64,
    level: Level,
    /// Bytes still to drop from the front (an element being skipped).
    skipping: u64,
    /// The element whose bytes are being passed over, for [`EndState`].
    open: Option<(u32, u64, Option<u64>)>,
    seen_header: bool,
    /// Whether damaged data inside a Segment is skipped up to the next Cluster.
    resync_enabled: bool,
    /// The search for a place to resume, while one runs.
    resync: Option<Resync>,
    /// Where the last search resumed: an error there again starts one byte further.
    resumed_at: Option<u64>,
    notes: Vec<String>,
    damaged: u64,
}

/// A search for the next level-1 element after damaged data.
#[derive(Debug)]
struct Resync {
    /// First byte skipped.
    start: u64,
    error: MkvError,
}

impl Default for MkvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MkvReader {
    pub fn new() -> Self {
        MkvReader {
            queue: VecDeque::new(),
            queued: 0,
            offset: 0,
            level: Level::Top,
            skipping: 0,
            open: None,
            seen_header: false,
            resync_enabled: false,
            resync: None,
            resumed_at: None,
            notes: Vec::new(),
            damaged: 0,
        }
    }

    /// A reader that skips damaged data inside a Segment (a lost upload chunk, overwritten
    /// bytes) up to the next Cluster, Cues, Tags or EBML header, instead of stopping, and
    /// says which bytes it skipped in [`MkvReader::notes`]. At most [`MAX_RESYNC_SCAN`]
    /// bytes are searched after each damage.
    pub fn resynchronising() -> Self {
        MkvReader { resync_enabled: true, ..Self::new() }
    }

    /// What the reader has to say about the input: damaged stretches skipped.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        if self.damaged > MAX_RESYNC_NOTES as u64 {
            notes.push(format!("{} damaged stretches skipped in all", self.damaged));
        }
        if let Some(r) = &self.resync {
            notes.push(format!(
                "damaged data from byte {} to the end of the input ({} bytes) skipped: {}",
                r.start,
                self.input_end().saturating_sub(r.start),
                r.error
            ));
        }
        notes
    }

    /// Offset one past the last byte pushed.
    pub fn input_end(&self) -> u64 {
        self.offset + self.queued
    }

    /// Offset of the next byte to be read.
    #[cfg(any(test, feature = "internals"))]
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Adds input bytes (contiguous with the previous ones).
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.queued += data.len() as u64;
            self.queue.push_back(data);
        }
    }

    /// Makes the first `n` queued bytes contiguous in `queue[0]`, copying only the bytes
    /// that straddle chunks. `false` when fewer than `n` bytes are queued.
    fn ensure(&mut self, n: usize) -> bool {
        if (self.queued as usize) < n {
            return false;
        }
        if n == 0 || self.queue[0].len() >= n {
            return true;
        }
        let mut merged = BytesMut::with_capacity(n);
        while merged.len() < n {
            let front = self.queue.pop_front().expect("enough bytes queued");
            let take = (n - merged.len()).min(front.len());
            merged.extend_from_slice(&front[..take]);
            if take < front.len() {
                self.queue.push_front(front.slice(take..));
            }
        }
        self.queue.push_front(merged.freeze());
        true
    }

    /// The queued bytes at the front, up to `n` of them, contiguous where possible.
    fn peek(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.queued as usize);
        self.ensure(n);
        self.queue.front().map_or(&[][..], |b| &b[..n.min(b.len())])
    }

    /// Takes `n` bytes (which [`MkvReader::ensure`] made contiguous).
    fn take(&mut self, n: usize) -> Bytes {
        let front = self.queue.front_mut().expect("ensured");
        let out = front.split_to(n);
        if front.is_empty() {
            self.queue.pop_front();
        }
        self.queued -= n as u64;
        self.offset += n as u64;
        out
    }

    /// Drops up to `skipping` bytes from the front.
    fn drop_skipped(&mut self) {
        while self.skipping > 0 {
            let Some(front) = self.queue.front_mut() else { return };
            let n = (front.len() as u64).min(self.skipping) as usize;
            let _ = front.split_to(n);
            if front.is_empty() {
                self.queue.pop_front();
            }
            self.queued -= n as u64;
            self.offset += n as u64;
            self.skipping -= n as u64;
        }
    }

    /// The next item, `Ok(None)` when more input is needed.
    pub fn poll(&mut self) -> Result<Option<MkvItem>, MkvError> {
        loop {
            self.drop_skipped();
            if self.skipping > 0 {
                return Ok(None);
            }
            if self.resync.is_some() {
                if self.scan()? {
                    continue;
                }
                return Ok(None);
            }
            self.open = None;
            // Leave a Cluster or Segment whose known size is used up.
            match self.level {
                Level::Cluster { end: Some(end), segment_end } if self.offset >= end => {
                    self.level = Level::Segment { end: segment_end };
                    continue;
                }
                Level::Segment { end: Some(end) } if self.offset >= end => {
                    self.level = Level::Top;
                    continue;
                }
                _ => {}
            }
            let offset = self.offset;
            let head = self.peek(MAX_HEADER_LEN);
            let parsed = match parse_header(head, offset) {
                Ok(HeaderParse::Header(h)) => self.element(h, offset),
                Ok(HeaderParse::NeedMore) => return Ok(None),
                Err(e) => Err(e),
            };
            match parsed {
                Ok(Some(item)) => return Ok(Some(item)),
                Ok(None) => {}
                Err(e) if self.resync_enabled && self.level != Level::Top => {
                    self.open = None;
                    self.skipping = 0;
                    self.resync = Some(Resync { start: self.offset.min(e.offset()), error: e });
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.open.is_some() {
                // Waiting for the rest of an element.
                return Ok(None);
            }
        }
    }

    /// Handles the element whose header is at the front. `Ok(None)` with `self.open` set
    /// means its bytes are not all here yet.
    fn element(&mut self, h: Header, offset: u64) -> Result<Option<MkvItem>, MkvError> {
        let name = |id: u32| format!("element 0x{id:X}");
        match self.level {
            Level::Top => match h.id {
                ids::EBML => {
                    let e = self.whole(h, offset, MAX_META_ELEMENT, "EBML header")?;
                    Ok(e.map(|e| {
                        self.seen_header = true;
                        MkvItem::EbmlHeader(e)
                    }))
                }
                ids::SEGMENT if self.seen_header => {
                    self.take(h.header_len);
                    let end = h.size.map(|s| offset + h.header_len as u64 + s);
                    self.level = Level::Segment { end };
                    Ok(Some(MkvItem::SegmentStart { offset, header_len: h.header_len, size: h.size }))
                }
                ids::VOID | ids::CRC32 if self.seen_header => self.skip(h, offset),
                _ if !self.seen_header => {
                    Err(MkvError::invalid(name(h.id), offset, "expected the EBML header (0x1A45DFA3)"))
                }
                _ => Err(MkvError::invalid(name(h.id), offset, "expected a Segment")),
            },
            Level::Segment { end } => match h.id {
                ids::CLUSTER => {
                    self.take(h.header_len);
                    let cluster_end = h.size.map(|s| offset + h.header_len as u64 + s);
                    self.level = Level::Cluster { end: cluster_end, segment_end: end };
                    Ok(Some(MkvItem::ClusterStart { offset, header_len: h.header_len, size: h.size }))
                }
                ids::VOID | ids::CRC32 => self.skip(h, offset),
                ids::SEEK_HEAD | ids::INFO | ids::TRACKS | ids::CUES | ids::TAGS | ids::CHAPTERS => {
                    let e = self.whole(h, offset, MAX_META_ELEMENT, "metadata element")?;
                    Ok(e.map(MkvItem::Meta))
                }
                // Attachments small enough to hold are read (a cover picture), others skipped.
                ids::ATTACHMENTS if h.size.is_some_and(|s| s <= MAX_ATTACHMENTS) => {
                    let e = self.whole(h, offset, MAX_ATTACHMENTS, "Attachments")?;
                    Ok(e.map(MkvItem::Meta))
                }
                ids::ATTACHMENTS => self.skip(h, offset),
                ids::EBML if end.is_none() => {
                    // A new stream after an unknown-size segment (a recorder restarted).
                    self.level = Level::Top;
                    Ok(None)
                }
                _ => Err(MkvError::invalid(name(h.id), offset, "not an element a Segment can hold")),
            },
            Level::Cluster { end, segment_end } => {
                if !ids::is_cluster_child(h.id) {
                    if end.is_some() {
                        return Err(MkvError::invalid(name(h.id), offset, "not an element a Cluster can hold"));
                    }
                    // An unknown-size Cluster ends where its next sibling (or parent's) begins.
                    self.level = Level::Segment { end: segment_end };
                    return Ok(None);
                }
                if let (Some(end), Some(total)) = (end, h.total()) {
                    if offset + total > end {
                        return Err(MkvError::invalid(name(h.id), offset, "runs past the end of its Cluster"));
                    }
                }
                match h.id {
                    ids::SIMPLE_BLOCK | ids::BLOCK_GROUP => self.blocks(h, offset, end),
                    ids::TIMESTAMP => {
                        let e = self.whole(h, offset, 8 + MAX_HEADER_LEN as u64, "cluster Timestamp")?;
                        match e {
                            None => Ok(None),
                            Some(e) => {
                                let timestamp = super::ebml::read_uint(e.body()).ok_or_else(|| {
                                    MkvError::invalid("cluster Timestamp", offset, "more than 8 bytes")
                                })?;
                                Ok(Some(MkvItem::ClusterTimestamp { element: e, timestamp }))
                            }
                        }
                    }
                    _ => self.skip(h, offset),
                }
            }
        }
    }

    /// The whole element, once all its bytes are here.
    fn whole(&mut self, h: Header, offset: u64, limit: u64, what: &str) -> Result<Option<Element>, MkvError> {
        let size = h.size.ok_or_else(|| MkvError::invalid(what, offset, "unknown size where a size is required"))?;
        if size > limit {
            return Err(MkvError::TooLarge { what: what.to_string(), offset, size, limit });
        }
        let total = h.header_len + size as usize;
        if !self.ensure(total) {
            self.open = Some((h.id, offset, Some(offset + total as u64)));
            return Ok(None);
        }
        let data = self.take(total);
        Ok(Some(Element { id: h.id, offset, header_len: h.header_len, data }))
    }

    /// The block at the front, with the whole blocks that follow it in the same chunk.
    fn blocks(&mut self, h: Header, offset: u64, cluster_end: Option<u64>) -> Result<Option<MkvItem>, MkvError> {
        let size = h.size.ok_or_else(|| MkvError::invalid("block", offset, "unknown size where a size is required"))?;
        if size > MAX_BLOCK_ELEMENT {
            return Err(MkvError::TooLarge { what: "block".into(), offset, size, limit: MAX_BLOCK_ELEMENT });
        }
        let mut run = h.header_len + size as usize;
        if !self.ensure(run) {
            self.open = Some((h.id, offset, Some(offset + run as u64)));
            return Ok(None);
        }
        let front = &self.queue[0];
        while run < front.len() && run < MAX_BLOCK_RUN {
            let at = offset + run as u64;
            let Ok(HeaderParse::Header(next)) = parse_header(&front[run..], at) else { break };
            let Some(total) = next.total().filter(|&t| t <= MAX_BLOCK_ELEMENT) else { break };
            let fits = run as u64 + total <= front.len() as u64 && cluster_end.is_none_or(|e| at + total <= e);
            if !matches!(next.id, ids::SIMPLE_BLOCK | ids::BLOCK_GROUP) || !fits {
                break;
            }
            run += total as usize;
        }
        let data = self.take(run);
        Ok(Some(MkvItem::Blocks { offset, data }))
    }

    /// Passes over an element without holding its bytes.
    fn skip(&mut self, h: Header, offset: u64) -> Result<Option<MkvItem>, MkvError> {
        let total = h.total().ok_or_else(|| {
            MkvError::invalid(format!("element 0x{:X}", h.id), offset, "unknown size cannot be skipped")
        })?;
        self.skipping = total;
        self.open = Some((h.id, offset, Some(offset + total)));
        self.drop_skipped();
        Ok(Some(MkvItem::Skipped { id: h.id, offset, len: total }))
    }

    /// How the input ended: cut inside an element, or cleanly.
    pub fn finish(&self) -> EndState {
        let input_len = self.input_end();
        if let Some(r) = &self.resync {
            let cut = Cut { kind: None, offset: r.start, declared_end: None };
            return EndState { input_len, cut: Some(cut) };
        }
        let open = match self.open {
            Some(o) if self.skipping > 0 || self.queued > 0 => Some(o),
            _ if self.queued > 0 => Some((0, self.offset, None)),
            _ => None,
        };
        let cut = open.map(|(id, offset, declared_end)| Cut {
            kind: (id != 0).then_some(ElementKind::Ebml(id)),
            offset,
            declared_end,
        });
        EndState { input_len, cut }
    }
}

#[cfg(test)]
mod tests;
