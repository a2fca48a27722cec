//! Packet splitting for MP4: cuts `mdat` payload into packets using the `moov` sample
//! tables (progressive files) or each `moof` (fragmented files).
//!
//! Media bytes are held only until the packets they belong to are cut, except while the
//! index has not been seen yet (a `moov` after the media, read from a stream): then they
//! are buffered up to a limit, and past it the input is refused with the way out.
//!
//! Cheap checks catch payload damaged inside a valid layout: the length-prefixed NAL
//! units of an H.264/HEVC sample must add up to the sample's size, and a sample must lie
//! within the media data. A failed check is a note naming the track, the sample and its
//! offset (the first few word for word, then a count); the sample is kept or, when its
//! bytes are not there at all, skipped, and the recording goes on.

use std::collections::VecDeque;
use std::sync::Arc;

use super::boxes::{Mp4Error, DAMAGED};
use super::moof::{parse_moof, FragSample};
use super::moov::{parse_movie, Movie};
use super::sample_table::{SampleCursor, SampleInfo};
use super::scan::{MdatScanner, ScanError};
use crate::codecs::{h264::AvcConfig, hevc::HvcConfig, CodecConfig};
use crate::formats::{push_packet, ContainerEvent, ElementKind, EndState, PacketEvent, SplitSummary};
use crate::model::{Chunk, Packet, Payload, TrackSet};

/// Default for [`Mp4Splitter::new`]'s buffer limit: media held while waiting for an index.
pub const DEFAULT_BUFFER_LIMIT: u64 = 1 << 30;

/// Notes of one kind about damaged samples given word for word; past this they are counted.
pub const MAX_SAMPLE_NOTES: usize = 5;

/// Notes of one kind, the first few in full and the rest counted.
#[derive(Default)]
struct NoteLimiter {
    notes: Vec<String>,
    more: u64,
}

impl NoteLimiter {
    fn push(&mut self, note: impl FnOnce() -> String) {
        if self.notes.len() < MAX_SAMPLE_NOTES {
            self.notes.push(note());
        } else {
            self.more += 1;
        }
    }

    fn drain_into(&mut self, out: &mut Vec<String>, what: &str) {
        out.append(&mut self.notes);
        if self.more > 0 {
            out.push(format!("... and {} more {what}", std::mem::take(&mut self.more)));
        }
    }
}

/// Whether the length-prefixed NAL units of `data` (prefixes of `len_size` bytes) fill it
/// exactly; otherwise, where the walk went wrong.
pub fn check_nal_lengths(data: &Payload, len_size: usize) -> Result<(), String> {
    let total = data.len() as u64;
    let parts = data.parts();
    // Reads the big-endian prefix at `at`, across parts.
    let prefix = |at: u64| -> u64 {
        let mut v = 0u64;
        let mut base = 0u64;
        let mut need = at;
        let mut got = 0;
        for p in parts {
            let plen = p.len() as u64;
            while got < len_size && need < base + plen {
                v = (v << 8) | u64::from(p[(need - base) as usize]);
                need += 1;
                got += 1;
            }
            base += plen;
            if got == len_size {
                break;
            }
        }
        v
    };
    let mut pos = 0u64;
    let mut units = 0u32;
    while pos < total {
        if total - pos < len_size as u64 {
            return Err(format!(
                "after {units} NAL units at byte {pos}, {} bytes are left, too few for a {len_size}-byte length",
                total - pos
            ));
        }
        let len = prefix(pos);
        if len == 0 {
            // What zeroed bytes (a hole, pages never flushed) look like.
            return Err(format!("NAL unit {units} at byte {pos} has length 0"));
        }
        let end = pos + len_size as u64 + len;
        if end > total {
            return Err(format!(
                "NAL unit {units} at byte {pos} claims {len} bytes, past the sample's end ({} bytes left)",
                total - pos - len_size as u64
            ));
        }
        pos = end;
        units += 1;
    }
    Ok(())
}

/// The NAL length size of an H.264/HEVC track.
fn nal_length_size(codec: &CodecConfig) -> Option<usize> {
    let n = match codec {
        CodecConfig::H264 { avcc, .. } => AvcConfig::parse(avcc).ok()?.nal_length_size,
        CodecConfig::Hevc { hvcc, .. } => HvcConfig::parse(hvcc).ok()?.nal_length_size,
        _ => return None,
    };
    matches!(n, 1 | 2 | 4).then_some(n as usize)
}

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
        let Some(end) = offset.checked_add(size as u64) else {
            return Fetch::Missing;
        };
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

/// Packets found by scanning media that has no index yet, held back in case the index
/// comes after the media (a progressive file piped in): when it does, its sample tables
/// cut the held media instead, and the scanned packets are dropped unseen.
#[derive(Default)]
struct Hold {
    packets: Vec<Packet>,
    /// Tracks a late `moov` describes (sent by `codecpar-extract` just before it).
    moov_tracks: Option<TrackSet>,
    /// The late `moov`, parsed (sent by `codecpar-extract` just before its tracks).
    moov_movie: Option<Arc<Movie>>,
    /// Seconds of media the held packets span, the longest track's.
    media_secs: f64,
}

/// Cuts MP4 media into packets. Feed it `codecpar-extract`'s events in order.
pub struct Mp4Splitter {
    tracks: Option<TrackSet>,
    movie: Option<Arc<Movie>>,
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
    /// Per output track: the NAL length size of H.264/HEVC, whose samples are checked.
    nal_len: Vec<Option<usize>>,
    /// Per output track: samples cut so far (to name a sample in notes).
    cut_count: Vec<u64>,
    bad_payload: NoteLimiter,
    missing: NoteLimiter,
    /// Set while scanned packets are held back waiting for a late index.
    hold: Option<Hold>,
    /// Scanned packets have gone out: a late index can no longer be used.
    scan_emitted: bool,
    /// Hold scanned packets for a late index (see [`Mp4Splitter::hold_for_late_index`]).
    late_index: bool,
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
            nal_len: Vec::new(),
            cut_count: Vec::new(),
            bad_payload: NoteLimiter::default(),
            missing: NoteLimiter::default(),
            hold: None,
            scan_emitted: false,
            late_index: true,
        }
    }

    /// Whether packets found by scanning media without an index are held (up to the
    /// buffer limit) in case the index comes after the media; on by default.
    pub fn hold_for_late_index(mut self, hold: bool) -> Self {
        self.late_index = hold;
        self
    }

    /// Takes one event; appends what it can cut to `out`.
    pub fn handle(&mut self, ev: ContainerEvent, out: &mut Vec<PacketEvent>) -> Result<(), SplitError> {
        if let Some(scanner) = &mut self.scanner {
            let mut packets = Vec::new();
            match ev {
                ContainerEvent::MediaStart(r) => {
                    let payload = r.offset.saturating_add(u64::from(r.header_len));
                    scanner.media_start(payload, r.size.and_then(|s| r.offset.checked_add(s)), &mut packets)?;
                }
                ContainerEvent::Media(chunk) => {
                    scanner.push(chunk.offset, &chunk.data, &mut packets)?;
                    if self.hold.is_some() {
                        self.media.push(chunk);
                    }
                }
                // The parsed late index, its tracks, then the index itself.
                ContainerEvent::Movie(movie) if self.tracks.is_some() || self.scan_emitted => {
                    if let Some(hold) = &mut self.hold {
                        hold.moov_movie = Some(movie);
                    }
                }
                ContainerEvent::Tracks(tracks) if self.tracks.is_some() || self.scan_emitted => {
                    if let Some(hold) = &mut self.hold {
                        hold.moov_tracks = Some(tracks);
                    }
                }
                // Held back until the first packets fit (see `MdatScanner`), so that nothing
                // is written for a reference that does not match.
                ContainerEvent::Tracks(tracks) => self.tracks = Some(tracks),
                ContainerEvent::Meta(m) if m.kind == ElementKind::Mp4(super::FourCc::new(b"moov")) => {
                    return self.late_moov(&m, out);
                }
                _ => {}
            }
            if self.hold.is_some() {
                self.hold_scanned(packets);
                if self.media.bytes > self.buffer_limit {
                    let note = format!(
                        "held {} bytes of media scanned without an index, waiting for a 'moov' that may come \
                         after it, over the limit of {}: the packets found by scanning are kept, and a 'moov' \
                         that comes later is not used",
                        self.media.bytes, self.buffer_limit
                    );
                    self.release_hold(Some(note), out);
                }
            } else {
                self.emit_scanned(packets, out);
            }
            return Ok(());
        }
        match ev {
            ContainerEvent::Unindexed(layout) => {
                self.scanner = Some(MdatScanner::new((*layout).clone()));
                self.hold = (self.late_index && self.buffer_limit > 0).then(Hold::default);
            }
            ContainerEvent::Tracks(tracks) => {
                self.summary.packets = vec![0; tracks.len()];
                self.nal_len = tracks.iter().map(|t| nal_length_size(&t.codec)).collect();
                self.cut_count = vec![0; tracks.len()];
                self.tracks = Some(tracks.clone());
                out.push(PacketEvent::Tracks(tracks));
                self.setup();
            }
            // Parsed by `codecpar-extract`: the `moov` that follows is not parsed again.
            ContainerEvent::Movie(movie) if self.movie.is_none() => {
                self.movie = Some(movie);
                self.setup();
            }
            ContainerEvent::Fragment(frag) => {
                if self.movie.is_none() {
                    return Err(Mp4Error::invalid("'moof' box", frag.unit.offset, "fragment before any 'moov'").into());
                }
                let frag = Arc::unwrap_or_clone(frag);
                self.next_dts = frag.next_dts;
                self.fragments.push_back(frag.samples);
            }
            ContainerEvent::Meta(m) => match m.kind {
                ElementKind::Mp4(f) if f.0 == *b"moov" && self.movie.is_none() => {
                    self.movie = Some(Arc::new(parse_movie(&m.data, m.offset, m.header_len)?));
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
            ContainerEvent::Skipped(r) if r.kind == ElementKind::Mp4(DAMAGED) => self.flush_damaged(r.offset, out),
            ContainerEvent::End(_) | ContainerEvent::Container(_) | ContainerEvent::Movie(_) => {}
            ContainerEvent::Skipped(_) | ContainerEvent::MediaStart(_) => {}
        }
        self.drain(out)?;
        if self.media.bytes > self.buffer_limit {
            return Err(SplitError::BufferLimit { buffered: self.media.bytes, limit: self.buffer_limit });
        }
        Ok(())
    }

    /// Keeps scanned packets back while a late index may still come.
    fn hold_scanned(&mut self, packets: Vec<Packet>) {
        let (Some(hold), Some(tracks)) = (&mut self.hold, &self.tracks) else { return };
        for p in packets {
            if let Some(t) = tracks.get(p.track).filter(|t| t.timescale > 0) {
                let end = (p.dts_ticks as f64 + f64::from(p.duration_ticks)) / f64::from(t.timescale);
                hold.media_secs = hold.media_secs.max(end);
            }
            hold.packets.push(p);
        }
    }

    /// Seconds of media held back waiting for a late index, while that is the case.
    pub fn held_media_secs(&self) -> Option<f64> {
        self.hold.as_ref().map(|h| h.media_secs)
    }

    /// Stops waiting for a late index: passes on the packets found by scanning (with a
    /// note saying why, if given) and splits the rest by scanning as it comes.
    pub fn release_hold(&mut self, note: Option<String>, out: &mut Vec<PacketEvent>) {
        let Some(hold) = self.hold.take() else { return };
        self.summary.notes.extend(note);
        self.media = MediaBuffer::default();
        self.emit_scanned(hold.packets, out);
    }

    /// A `moov` arrived after media was scanned without one. While the scanned packets
    /// are still held, it replaces them: its tables cut the held media, as for a progressive
    /// file read from a stream. Otherwise it comes too late and is noted.
    fn late_moov(&mut self, m: &crate::formats::MetaUnit, out: &mut Vec<PacketEvent>) -> Result<(), SplitError> {
        let at = m.offset;
        let Some(hold) = self.hold.take() else {
            self.summary.notes.push(format!(
                "a 'moov' index arrived at byte {at} after packets found by scanning the media had been passed on; \
                 it was not used"
            ));
            return Ok(());
        };
        let parsed = match hold.moov_movie.clone() {
            Some(movie) => Ok(movie),
            None => parse_movie(&m.data, m.offset, m.header_len).map(Arc::new),
        };
        let movie = match (&hold.moov_tracks, parsed) {
            (Some(_), Ok(movie)) => movie,
            (_, result) => {
                let why = result.err().map_or("its tracks do not match the reference".into(), |e| e.to_string());
                self.hold = Some(hold);
                let note = format!("a 'moov' index arrived at byte {at} but cannot be used ({why}); the packets found by scanning are kept");
                self.release_hold(Some(note), out);
                return Ok(());
            }
        };
        let tracks = hold.moov_tracks.expect("checked");
        self.summary.notes.push(format!(
            "a 'moov' index arrived at byte {at}, after {} bytes of media: the media was split with it (the \
             reference's layout only stood in while it was awaited)",
            self.media.bytes
        ));
        self.scanner = None;
        self.summary.packets = vec![0; tracks.len()];
        self.nal_len = tracks.iter().map(|t| nal_length_size(&t.codec)).collect();
        self.cut_count = vec![0; tracks.len()];
        self.tracks = Some(tracks.clone());
        out.push(PacketEvent::Tracks(tracks));
        self.movie = Some(movie);
        self.setup();
        self.drain(out)
    }

    /// Passes on scanned packets, after the held-back tracks.
    fn emit_scanned(&mut self, packets: Vec<Packet>, out: &mut Vec<PacketEvent>) {
        if packets.is_empty() {
            return;
        }
        self.scan_emitted = true;
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
        let Some(out_track) = self.map[track] else { return };
        let n = self.cut_count[out_track];
        self.cut_count[out_track] += 1;
        let data = match self.media.fetch(s.offset, s.size) {
            Fetch::Ready(data) => data,
            Fetch::NotYet | Fetch::Missing => {
                self.missing.push(|| {
                    format!(
                        "track {}: sample {n} at byte offset {} ({} bytes) is outside the media data; skipped",
                        out_track + 1,
                        s.offset,
                        s.size
                    )
                });
                return;
            }
        };
        if let Some(len_size) = self.nal_len.get(out_track).copied().flatten() {
            if let Err(why) = check_nal_lengths(&data, len_size) {
                self.bad_payload.push(|| {
                    format!(
                        "track {}: sample {n} at byte offset {} ({} bytes) is damaged: {why}; kept as it is",
                        out_track + 1,
                        s.offset,
                        s.size
                    )
                });
            }
        }
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

    /// Damaged input was skipped from `at` on: the pending fragments get no more bytes.
    /// Their samples that lie wholly before `at` are cut from what arrived; the rest are
    /// dropped (what arrives next belongs to other fragments).
    fn flush_damaged(&mut self, at: u64, out: &mut Vec<PacketEvent>) {
        if !self.ready() {
            return;
        }
        while let Some(frag) = self.fragments.pop_front() {
            let mut dropped = 0;
            let mut first_dropped = None;
            for FragSample { track, info, .. } in &frag {
                let end = info.offset.saturating_add(info.size as u64);
                if end <= at {
                    self.cut(*track, info, out);
                } else {
                    dropped += 1;
                    first_dropped.get_or_insert(info.offset);
                    if let Some(t) = self.map[*track] {
                        self.cut_count[t] += 1;
                    }
                }
            }
            if let Some(from) = first_dropped {
                self.summary.notes.push(format!(
                    "damaged input: {dropped} of the {} samples of a fragment lie at or after byte {from}, in bytes \
                     that are missing or damaged (damage found at byte {at}); dropped",
                    frag.len()
                ));
            }
            out.push(PacketEvent::Boundary);
        }
        self.media.release_before(at);
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
            if self.media.end() < info.offset.saturating_add(info.size as u64) {
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
            let end = frag.iter().map(|s| s.info.offset.saturating_add(s.info.size as u64)).max().unwrap_or(0);
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
        self.release_hold(None, out);
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
        self.missing.drain_into(&mut self.summary.notes, "samples outside the media data skipped");
        self.bad_payload.drain_into(&mut self.summary.notes, "damaged samples kept");
        self.summary.end = end;
        Ok(std::mem::take(&mut self.summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn payload(parts: &[&[u8]]) -> Payload {
        Payload::from_parts(parts.iter().map(|p| Bytes::copy_from_slice(p)).collect())
    }

    #[test]
    fn nal_lengths_must_fill_the_sample_exactly() {
        let good: &[u8] = &[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41];
        assert_eq!(check_nal_lengths(&payload(&[good]), 4), Ok(()));
        // Split anywhere, even inside a length.
        for cut in 1..good.len() {
            assert_eq!(check_nal_lengths(&payload(&[&good[..cut], &good[cut..]]), 4), Ok(()), "cut {cut}");
        }
        // A length past the end, a tail too short for a length, a sample cut short.
        assert!(check_nal_lengths(&payload(&[&[0, 0, 0, 9, 1, 2]]), 4).unwrap_err().contains("claims 9 bytes"));
        assert!(check_nal_lengths(&payload(&[&[0, 0, 0, 1, 1, 0, 0]]), 4).unwrap_err().contains("too few"));
        assert!(check_nal_lengths(&payload(&[&good[..good.len() - 1]]), 4).is_err());
        assert_eq!(check_nal_lengths(&payload(&[&[0, 1, 7]]), 2), Ok(()));
        assert_eq!(check_nal_lengths(&payload(&[]), 4), Ok(()));
    }

    #[test]
    fn media_fetch_near_2_64_is_missing_not_a_wrap() {
        let mut m = MediaBuffer::default();
        m.push(Chunk::new(0, Bytes::from_static(b"abcdef")));
        assert!(matches!(m.fetch(u64::MAX - 2, 10), Fetch::Missing));
        assert!(matches!(m.fetch(1, 3), Fetch::Ready(_)));
    }

    #[test]
    fn notes_are_limited_and_counted() {
        let mut l = NoteLimiter::default();
        for i in 0..12 {
            l.push(|| format!("note {i}"));
        }
        let mut out = Vec::new();
        l.drain_into(&mut out, "things");
        assert_eq!(out.len(), MAX_SAMPLE_NOTES + 1);
        assert_eq!(out.last().unwrap(), "... and 7 more things");
    }
}
