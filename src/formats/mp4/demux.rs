//! Packet splitting for MP4: cuts `mdat` payload into packets using the `moov` sample
//! tables (progressive files) or each `moof` (fragmented files).
//!
//! Media bytes are held only until the packets they belong to are cut, except while the
//! index has not been seen yet (a `moov` after the media, read from a stream): then they
//! are buffered up to a limit, and past it the input is refused with the way out.

use std::collections::VecDeque;

use super::boxes::Mp4Error;
use super::moof::{parse_moof, FragSample};
use super::moov::{parse_movie, Movie};
use super::sample_table::{SampleCursor, SampleInfo};
use super::scan::{MdatScanner, ScanError};
use crate::formats::{push_packet, ContainerEvent, ElementKind, EndState, PacketEvent, SplitSummary};
use crate::model::{Chunk, Packet, Payload, TrackSet};

/// Default for [`Mp4Splitter::new`]'s buffer limit: media held while waiting for an index.
pub const DEFAULT_BUFFER_LIMIT: u64 = 1 << 30;

/// Errors of the splitter beyond malformed boxes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SplitError {
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
    #[error(
        "buffered {buffered} bytes of media waiting for the 'moov' index, over the limit of {limit}: \
         the index comes after the media and the input is a stream; give the input as a file \
         (livemux then reads the index first) or raise the buffer limit"
    )]
    BufferLimit { buffered: u64, limit: u64 },
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// Where a sample's bytes are relative to the buffer.
enum Fetch {
    Ready(Payload),
    NotYet,
    /// Not in any media box we were given, or already released.
    Missing,
}

/// Media payload held until it is cut into packets.
#[derive(Default)]
struct MediaBuffer {
    chunks: VecDeque<Chunk>,
    bytes: u64,
}

impl MediaBuffer {
    fn push(&mut self, chunk: Chunk) {
        self.bytes += chunk.data.len() as u64;
        self.chunks.push_back(chunk);
    }

    fn end(&self) -> u64 {
        self.chunks.back().map_or(0, Chunk::end)
    }

    fn fetch(&self, offset: u64, size: u32) -> Fetch {
        let end = offset + size as u64;
        let i = self.chunks.partition_point(|c| c.end() <= offset);
        let Some(first) = self.chunks.get(i) else {
            return Fetch::NotYet;
        };
        if first.offset > offset {
            return Fetch::Missing;
        }
        let start = (offset - first.offset) as usize;
        if end <= first.end() {
            return Fetch::Ready(first.data.slice(start..start + size as usize).into());
        }
        // Spans chunks: slices of each, once all of it is here.
        if self.end() < end {
            return Fetch::NotYet;
        }
        let mut parts = vec![first.data.slice(start..)];
        let mut at = first.end();
        for c in self.chunks.range(i + 1..) {
            if c.offset != at {
                return Fetch::Missing;
            }
            let take = ((end - c.offset) as usize).min(c.data.len());
            parts.push(c.data.slice(..take));
            at = c.offset + take as u64;
            if at >= end {
                break;
            }
        }
        Fetch::Ready(Payload::from_parts(parts))
    }

    /// Drops what lies wholly before `offset`.
    fn release_before(&mut self, offset: u64) {
        while self.chunks.front().is_some_and(|c| c.end() <= offset) {
            let c = self.chunks.pop_front().unwrap();
            self.bytes -= c.data.len() as u64;
        }
    }
}

struct TableTrack {
    cursor: SampleCursor,
    next: Option<SampleInfo>,
}

/// Cuts MP4 media into packets. Feed it `codecpar-extract`'s events in order.
pub struct Mp4Splitter {
    tracks: Option<TrackSet>,
    movie: Option<Movie>,
    /// Movie track index -> output track index.
    map: Vec<Option<usize>>,
    table: Vec<TableTrack>,
    next_dts: Vec<i64>,
    fragments: VecDeque<Vec<FragSample>>,
    media: MediaBuffer,
    buffer_limit: u64,
    summary: SplitSummary,
    /// Set when the media has no index and is scanned instead.
    scanner: Option<MdatScanner>,
}

impl Mp4Splitter {
    pub fn new(buffer_limit: u64) -> Self {
        Mp4Splitter {
            tracks: None,
            movie: None,
            map: Vec::new(),
            table: Vec::new(),
            next_dts: Vec::new(),
            fragments: VecDeque::new(),
            media: MediaBuffer::default(),
            buffer_limit,
            summary: SplitSummary::default(),
            scanner: None,
        }
    }

    /// Takes one event; appends what it can cut to `out`.
    pub fn handle(&mut self, ev: ContainerEvent, out: &mut Vec<PacketEvent>) -> Result<(), SplitError> {
        if let Some(scanner) = &mut self.scanner {
            let mut packets = Vec::new();
            match ev {
                ContainerEvent::MediaStart(r) => {
                    let payload = r.offset + u64::from(r.header_len);
                    scanner.media_start(payload, r.size.map(|s| r.offset + s), &mut packets)?;
                }
                ContainerEvent::Media(chunk) => scanner.push(chunk.offset, &chunk.data, &mut packets)?,
                // Held back until the first packets fit (see `MdatScanner`), so that nothing
                // is written for a reference that does not match.
                ContainerEvent::Tracks(tracks) => self.tracks = Some(tracks),
                _ => {}
            }
            self.emit_scanned(packets, out);
            return Ok(());
        }
        match ev {
            ContainerEvent::Unindexed(layout) => self.scanner = Some(MdatScanner::new((*layout).clone())),
            ContainerEvent::Tracks(tracks) => {
                self.summary.packets = vec![0; tracks.len()];
                self.tracks = Some(tracks.clone());
                out.push(PacketEvent::Tracks(tracks));
                self.setup();
            }
            ContainerEvent::Meta(m) => match m.kind {
                ElementKind::Mp4(f) if f.0 == *b"moov" && self.movie.is_none() => {
                    self.movie = Some(parse_movie(&m.data, m.offset, m.header_len)?);
                    self.setup();
                }
                ElementKind::Mp4(f) if f.0 == *b"moof" => {
                    let Some(movie) = &self.movie else {
                        return Err(Mp4Error::invalid("'moof' box", m.offset, "fragment before any 'moov'").into());
                    };
                    let samples = parse_moof(&m.data, m.offset, m.header_len, movie, &mut self.next_dts)?;
                    self.fragments.push_back(samples);
                }
                _ => {}
            },
            ContainerEvent::Media(chunk) => self.media.push(chunk),
            ContainerEvent::End(_) | ContainerEvent::Container(_) => {}
            ContainerEvent::Skipped(_) | ContainerEvent::MediaStart(_) => {}
        }
        self.drain(out)?;
        if self.media.bytes > self.buffer_limit {
            return Err(SplitError::BufferLimit { buffered: self.media.bytes, limit: self.buffer_limit });
        }
        Ok(())
    }

    /// Passes on scanned packets, after the held-back tracks.
    fn emit_scanned(&mut self, packets: Vec<Packet>, out: &mut Vec<PacketEvent>) {
        if packets.is_empty() {
            return;
        }
        if let Some(tracks) = self.tracks.take() {
            out.push(PacketEvent::Tracks(tracks));
        }
        for p in packets {
            push_packet(out, p);
        }
    }

    /// Once both the tracks and the moov are known, prepares the table cursors.
    fn setup(&mut self) {
        let (Some(tracks), Some(movie)) = (&self.tracks, &self.movie) else {
            return;
        };
        if !self.map.is_empty() {
            return;
        }
        self.map = movie.tracks.iter().map(|mt| tracks.iter().position(|t| t.input_id == mt.track_id as u64)).collect();
        self.table = movie
            .tracks
            .iter()
            .map(|mt| {
                let mut cursor = SampleCursor::default();
                let next = cursor.next(&mt.table).and_then(Result::ok);
                TableTrack { cursor, next }
            })
            .collect();
        self.next_dts = movie.tracks.iter().map(|t| t.table.total_duration() as i64).collect();
    }

    fn ready(&self) -> bool {
        self.tracks.is_some() && !self.map.is_empty()
    }

    /// Cuts one sample whose bytes have all arrived (or never will) into a packet.
    fn cut(&mut self, track: usize, s: &SampleInfo, out: &mut Vec<PacketEvent>) {
        let data = match self.media.fetch(s.offset, s.size) {
            Fetch::Ready(data) => data,
            Fetch::NotYet | Fetch::Missing => {
                self.summary.notes.push(format!(
                    "track {}: sample {} at offset {} is outside the media data; skipped",
                    track + 1,
                    s.index,
                    s.offset
                ));
                return;
            }
        };
        let Some(out_track) = self.map[track] else { return };
        self.summary.packets[out_track] += 1;
        let packet = Packet {
            track: out_track,
            dts_ticks: s.dts,
            pts_ticks: s.dts + s.cts_offset,
            duration_ticks: s.duration,
            keyframe: s.sync,
            data,
        };
        push_packet(out, packet);
    }

    fn drain(&mut self, out: &mut Vec<PacketEvent>) -> Result<(), SplitError> {
        if !self.ready() {
            return Ok(());
        }
        self.drain_table(out)?;
        self.drain_fragments(out);
        self.release();
        Ok(())
    }

    /// Cuts the samples the moov indexes, in file order across tracks, as far as the
    /// buffered bytes go.
    fn drain_table(&mut self, out: &mut Vec<PacketEvent>) -> Result<(), SplitError> {
        while let Some((t, info)) =
            self.table.iter().enumerate().filter_map(|(i, tt)| tt.next.map(|s| (i, s))).min_by_key(|(_, s)| s.offset)
        {
            if self.media.end() < info.offset + info.size as u64 {
                return Ok(());
            }
            self.cut(t, &info, out);
            let movie = self.movie.as_ref().expect("ready() checked the movie");
            let tt = &mut self.table[t];
            tt.next = tt.cursor.next(&movie.tracks[t].table).transpose()?;
        }
        Ok(())
    }

    /// Cuts each fragment once all of its bytes are here.
    fn drain_fragments(&mut self, out: &mut Vec<PacketEvent>) {
        while let Some(frag) = self.fragments.front() {
            let end = frag.iter().map(|s| s.info.offset + s.info.size as u64).max().unwrap_or(0);
            if self.media.end() < end {
                return;
            }
            let frag = self.fragments.pop_front().expect("front() was Some");
            for FragSample { track, info, .. } in frag {
                self.cut(track, &info, out);
            }
            out.push(PacketEvent::Boundary);
            self.media.release_before(end);
        }
    }

    /// Drops media no pending sample needs.
    fn release(&mut self) {
        if !self.fragments.is_empty() {
            return;
        }
        let keep_from = self.table.iter().filter_map(|t| t.next.map(|s| s.offset)).min();
        match keep_from {
            Some(offset) => self.media.release_before(offset),
            // A fragmented file: the next moof says what it needs.
            None if self.movie.as_ref().is_some_and(|m| m.fragmented) => {}
            None => self.media.release_before(u64::MAX),
        }
    }

    /// The input ended: reports what could not be cut.
    pub fn finish(&mut self, end: EndState, out: &mut Vec<PacketEvent>) -> Result<SplitSummary, SplitError> {
        if let Some(scanner) = &mut self.scanner {
            let mut packets = Vec::new();
            let scan = scanner.finish(&mut packets)?;
            self.emit_scanned(packets, out);
            if let Some(tracks) = self.tracks.take() {
                out.push(PacketEvent::Tracks(tracks));
            }
            self.summary.packets = scan.packets.clone();
            self.summary.notes.extend(scan.notes());
        }
        for (i, tt) in self.table.iter().enumerate() {
            if let (Some(s), Some(out)) = (tt.next, self.map.get(i).copied().flatten()) {
                let total = self.movie.as_ref().map_or(0, |m| m.tracks[i].table.sample_count);
                self.summary.notes.push(format!(
                    "track {}: {} of {} samples lie past the end of the input (from offset {}); dropped",
                    out + 1,
                    total - s.index,
                    total,
                    s.offset
                ));
            }
        }
        for frag in self.fragments.drain(..) {
            if let Some(first) = frag.first() {
                self.summary.notes.push(format!(
                    "incomplete last fragment ({} samples from offset {}) dropped",
                    frag.len(),
                    first.info.offset
                ));
            }
        }
        self.summary.end = end;
        Ok(std::mem::take(&mut self.summary))
    }
}
