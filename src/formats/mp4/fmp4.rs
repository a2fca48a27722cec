//! Fragmented MP4 writer: `ftyp` + `moov` (with `mvex`) once, then one `moof` + `mdat` per
//! fragment. A fragment is its `moof` and `mdat` header followed by the packets' own
//! payload slices, which a sink writes with one vectored write: no payload is copied, and
//! after a crash the file holds whole fragments plus at most one partial one, which
//! readers treat as a cut tail.

use bytes::{BufMut, Bytes, BytesMut};

use super::init::{fragmented_header_with, movie_timescale, HeaderLayout, DEFAULT_MOVIE_TIMESCALE};
use super::sidx::{RunningIndex, TrackSpan};
use super::write::{close, open, open_full};
use crate::formats::fragmenter::{FragmentPolicy, Fragmenter};
use crate::formats::timeline::{self, MediaStart, Plan, Timing};
use crate::formats::{MuxError, Muxer};
use crate::model::{Fragment, FragmentKind, IndexUpdate, Packet, Ticks, Track, TrackKind, TrackSet};

/// Sample flags of a sync sample: sample_depends_on = 2 (does not depend on others).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: depends_on = 1, sample_is_non_sync_sample.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// Fragmented MP4 muxer.
pub struct Fmp4Muxer {
    tracks: TrackSet,
    fragmenter: Fragmenter,
    /// Open fragment, per track, in arrival order.
    pending: Vec<Vec<Packet>>,
    sequence: u32,
    /// Bytes emitted so far: the output offset of the next fragment.
    written: u64,
    /// Size of the `free` box reserved after `ftyp` (0: none).
    reserve: u64,
    layout: Option<HeaderLayout>,
    /// Where each track goes on the timeline ([`timeline`]), decided at the first fragment,
    /// and the header (`ftyp`, reserve, `moov`) written with it, which goes out with the
    /// first fragment.
    plan: Option<Plan>,
    header: Option<Bytes>,
    /// Audio packets left out past the end of their edit list.
    trimmed: u64,
    /// Per track: ticks added to every decode time so that the first is not negative
    /// (decided by the track's first packet; presentation times are kept, the difference
    /// goes into the composition offsets).
    dts_shift: Vec<Option<i64>>,
    /// The `sidx` boxes after the `moov`, kept current fragment by fragment ([`super::sidx`]).
    running: Option<RunningIndex>,
}

impl Fmp4Muxer {
    pub fn new(tracks: TrackSet, policy: FragmentPolicy) -> Self {
        Self::with_reserve(tracks, policy, 0)
    }

    /// A muxer whose header holds a `free` box of `reserve` bytes between `ftyp` and `moov`
    /// (see [`fragmented_header_with`](super::init::fragmented_header_with)): room for a regular `moov` at the end.
    pub fn with_reserve(tracks: TrackSet, policy: FragmentPolicy, reserve: u64) -> Self {
        let tracks_len = tracks.len();
        Fmp4Muxer {
            fragmenter: Fragmenter::new(&tracks, policy),
            pending: vec![Vec::new(); tracks.len()],
            tracks,
            sequence: 0,
            written: 0,
            reserve,
            layout: None,
            plan: None,
            header: None,
            trimmed: 0,
            dts_shift: vec![None; tracks_len],
            running: None,
        }
    }

    /// Writes a `sidx` per track after the `moov`, with room for `capacity` fragments, and
    /// keeps it current with each fragment ([`super::sidx`]).
    pub fn with_running_index(mut self, capacity: u32) -> Self {
        let timescales: Vec<u32> = self.tracks.iter().map(|t| t.timescale).collect();
        self.running = Some(RunningIndex::new(&timescales, capacity));
        self
    }

    /// Where the header's boxes went, once [`Muxer::header`] has run.
    pub fn layout(&self) -> Option<HeaderLayout> {
        self.layout
    }

    /// Bytes emitted so far (the offset of the next fragment).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The header as written (with the first fragment), once decided: `ftyp`, the reserve,
    /// `moov` and the running index.
    pub fn header_bytes(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    /// The tracks with the edit lists the timeline plan gives them.
    fn planned_tracks(&self, plan: &Plan) -> Vec<Track> {
        // Lead-ins are written in the movie timescale: at least ms.
        let movie_ts = match movie_timescale(&self.tracks) {
            ts if ts >= DEFAULT_MOVIE_TIMESCALE => ts,
            _ => DEFAULT_MOVIE_TIMESCALE,
        };
        self.tracks
            .iter()
            .zip(&plan.tracks)
            .map(|(t, p)| {
                let mut t = t.clone();
                t.edits = p.mp4_edits(movie_ts);
                // Kept edits are still in the input's movie timescale: the writer rescales them.
                if p.kept_edits.is_none() {
                    t.movie_timescale = movie_ts;
                }
                t
            })
            .collect()
    }

    /// Decides the timeline plan from the packets of the first fragment and builds the
    /// header with it.
    fn decide(&mut self) -> Result<Bytes, MuxError> {
        let starts: Vec<Option<MediaStart>> = self
            .pending
            .iter()
            .map(|packets| {
                let first = packets.first()?;
                let first_pts = packets.iter().map(|p| p.pts_ticks).min()?;
                Some(MediaStart { first_dts: first.dts_ticks, first_pts })
            })
            .collect();
        let plan = timeline::plan(self.tracks.iter().map(Timing::from), &starts);
        let tracks = self.planned_tracks(&plan);
        let (mut data, _) = fragmented_header_with(&tracks, &self.tracks.movie, self.reserve)?;
        if let Some(running) = &mut self.running {
            let boxes = running.boxes(data.len() as u64);
            data = [&data[..], &boxes[..]].concat().into();
        }
        self.plan = Some(plan);
        self.header = Some(data.clone());
        Ok(data)
    }

    /// Moves a packet onto the planned timeline; a track whose first decode time is still
    /// negative is shifted so that it starts at 0 (a `tfdt` cannot be negative), its
    /// presentation times kept through composition offsets (negative where needed, `trun`
    /// version 1).
    fn place(&mut self, mut packet: Packet) -> Result<Packet, MuxError> {
        let media_shift = self.plan.as_ref().map_or(0, |p| p.tracks[packet.track].media_shift);
        let shift =
            *self.dts_shift[packet.track].get_or_insert((-(packet.dts_ticks.saturating_sub(media_shift))).max(0));
        let (track, dts) = (packet.track, packet.dts_ticks);
        let out_of_range = || MuxError::Timing { track, reason: format!("decode time {dts} is out of range") };
        packet.dts_ticks =
            packet.dts_ticks.checked_sub(media_shift).and_then(|d| d.checked_add(shift)).ok_or_else(out_of_range)?;
        packet.pts_ticks = packet.pts_ticks.checked_sub(media_shift).ok_or_else(out_of_range)?;
        Ok(packet)
    }

    fn emit(
        &mut self,
        kind: FragmentKind,
        parts: Vec<Bytes>,
        packets: u32,
        start_ms: Option<i64>,
        duration_ms: u64,
    ) -> Fragment {
        let f = Fragment { kind, offset: self.written, parts, packets, start_ms, duration_ms, index: IndexUpdate::default() };
        self.written += f.len();
        f
    }

    /// Builds `moof` + `mdat` from the open fragment.
    fn flush(&mut self) -> Result<Option<Fragment>, MuxError> {
        if self.pending.iter().all(Vec::is_empty) {
            return Ok(None);
        }
        let header = if self.plan.is_none() { Some(self.decide()?) } else { None };
        self.trim_and_place()?;
        if self.pending.iter().all(Vec::is_empty) {
            self.fragmenter.reset();
            if header.is_some() {
                self.header_alone();
            }
            return Ok(header.map(|h| self.emit(FragmentKind::Header, vec![h], 0, None, 0)));
        }
        self.sequence += 1;
        let payload: usize = self.pending.iter().flatten().map(|p| p.data.len()).sum();
        let count: usize = self.pending.iter().map(Vec::len).sum();
        let mut buf = BytesMut::with_capacity(256 + count * 16);
        let data_offset_fields = self.write_moof(&mut buf)?;
        let moof_len = buf.len();
        let large = payload as u64 + 8 > u32::MAX as u64;
        let mdat_header = if large { 16 } else { 8 };
        self.patch_data_offsets(&mut buf, data_offset_fields, moof_len + mdat_header);
        write_mdat_header(&mut buf, payload, large);
        let (start_ms, duration_ms) = self.lead_span();
        let mut index = self.index_fragment((buf.len() + payload) as u64);
        let mut parts = Vec::with_capacity(count + 2);
        // The first fragment carries the header, index included: its index writes go in
        // there (a write before the fragment would be overwritten by it).
        parts.extend(header.map(|h| {
            let writes = std::mem::take(&mut index.prepare).into_iter().chain(std::mem::take(&mut index.publish));
            with_writes(h, writes)
        }));
        parts.push(buf.freeze());
        parts.extend(self.pending.iter_mut().flat_map(|p| p.drain(..)).flat_map(|p| p.data.into_parts()));
        self.fragmenter.reset();
        let mut fragment = self.emit(FragmentKind::Media, parts, count as u32, start_ms, duration_ms);
        fragment.index = index;
        Ok(Some(fragment))
    }

    /// The header goes out without a fragment: the running index, whose boxes are `free`
    /// until they count one, stays unused.
    fn header_alone(&mut self) {
        if let Some(running) = &mut self.running {
            running.stop("the header went out before any fragment");
        }
    }

    /// The running index's writes for the open fragment, `size` bytes of `moof` and `mdat`.
    fn index_fragment(&mut self, size: u64) -> IndexUpdate {
        let Some(running) = &mut self.running else { return IndexUpdate::default() };
        let spans: Vec<TrackSpan> = self
            .pending
            .iter()
            .map(|packets| TrackSpan {
                end_ticks: packets
                    .last()
                    .and_then(|p| u64::try_from(p.dts_ticks).ok()?.checked_add(u64::from(p.duration_ticks))),
                starts_with_sync: packets.first().is_some_and(|p| p.keyframe),
            })
            .collect();
        running.add(size, &spans)
    }

    /// Drops the audio past the end of each track's edit list (FFmpeg shows it in a
    /// fragmented file) and moves the open fragment's packets onto the output timeline.
    fn trim_and_place(&mut self) -> Result<(), MuxError> {
        for track in 0..self.pending.len() {
            let packets = std::mem::take(&mut self.pending[track]);
            // Audio past the end of the edit list: FFmpeg shows it in a fragmented file.
            let end =
                self.plan.as_ref().and_then(|p| p.tracks[track].media_end.map(|e| (e, p.tracks[track].media_shift)));
            let audio = self.tracks[track].kind == TrackKind::Audio;
            let before = packets.len();
            let kept: Vec<Packet> = packets
                .into_iter()
                .filter(|p| !(audio && end.is_some_and(|(e, shift)| p.pts_ticks.saturating_sub(shift) >= e)))
                .collect();
            self.trimmed += (before - kept.len()) as u64;
            self.pending[track] = kept.into_iter().map(|p| self.place(p)).collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// Writes the `moof` of the open fragment; returns where each non-empty track's
    /// `trun` data offset is, to be filled in once the `mdat` position is known.
    fn write_moof(&self, buf: &mut BytesMut) -> Result<Vec<usize>, MuxError> {
        let moof = open(buf, b"moof");
        let mfhd = open_full(buf, b"mfhd", 0, 0);
        buf.put_u32(self.sequence);
        close(buf, mfhd);
        let mut data_offset_fields = Vec::new();
        for (track, packets) in self.pending.iter().enumerate() {
            if !packets.is_empty() {
                data_offset_fields.push(write_traf(buf, track, packets)?);
            }
        }
        close(buf, moof);
        Ok(data_offset_fields)
    }

    /// Fills in the `trun` data offsets: each track's media follows the previous one's,
    /// from `data_offset` (the first media byte, relative to the `moof`).
    fn patch_data_offsets(&self, buf: &mut BytesMut, fields: Vec<usize>, mut data_offset: usize) {
        let mut fields = fields.into_iter();
        for packets in &self.pending {
            if packets.is_empty() {
                continue;
            }
            let at = fields.next().expect("one field per non-empty track");
            buf[at..at + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
            data_offset += packets.iter().map(|p| p.data.len()).sum::<usize>();
        }
    }

    /// Start and length of the open fragment on the first non-empty track's timeline.
    fn lead_span(&self) -> (Option<i64>, u64) {
        for (i, packets) in self.pending.iter().enumerate() {
            if let (Some(first), Some(last)) = (packets.first(), packets.last()) {
                let ts = self.tracks[i].timescale;
                let start = Ticks::new(first.pts_ticks, ts).as_millis();
                let end = Ticks::new(last.dts_ticks + last.duration_ticks as i64, ts).as_millis();
                let begin = Ticks::new(first.dts_ticks, ts).as_millis();
                return (Some(start), (end - begin).max(0) as u64);
            }
        }
        (None, 0)
    }
}

/// Writes the `traf` of `track`'s `packets` (not empty) in a fragment; returns where its
/// `trun` data offset is.
fn write_traf(buf: &mut BytesMut, track: usize, packets: &[Packet]) -> Result<usize, MuxError> {
    let first = &packets[0];
    if first.dts_ticks < 0 {
        return Err(MuxError::Timing {
            track,
            reason: format!("negative decode time {} cannot start a fragment", first.dts_ticks),
        });
    }
    let traf = open(buf, b"traf");
    let tfhd = open_full(buf, b"tfhd", 0, 0x02_0000);
    buf.put_u32(track as u32 + 1);
    close(buf, tfhd);
    let tfdt = open_full(buf, b"tfdt", 1, 0);
    buf.put_u64(first.dts_ticks as u64);
    close(buf, tfdt);

    let has_cts = packets.iter().any(|p| p.pts_ticks != p.dts_ticks);
    let negative_cts = packets.iter().any(|p| p.pts_ticks < p.dts_ticks);
    let flags = 0x001 | 0x100 | 0x200 | 0x400 | if has_cts { 0x800 } else { 0 };
    let trun = open_full(buf, b"trun", negative_cts as u8, flags);
    buf.put_u32(packets.len() as u32);
    let data_offset_field = buf.len();
    buf.put_u32(0);
    for (i, p) in packets.iter().enumerate() {
        // Durations follow decode times exactly, so that every dts survives.
        let duration = match packets.get(i + 1) {
            Some(next) => u32::try_from(next.dts_ticks - p.dts_ticks).map_err(|_| MuxError::Timing {
                track,
                reason: format!("decode times go from {} to {}", p.dts_ticks, next.dts_ticks),
            })?,
            None => p.duration_ticks,
        };
        buf.put_u32(duration);
        buf.put_u32(p.data.len() as u32);
        buf.put_u32(if p.keyframe { SYNC_FLAGS } else { NON_SYNC_FLAGS });
        if has_cts {
            let cts = p.pts_ticks - p.dts_ticks;
            let cts = i32::try_from(cts).map_err(|_| MuxError::Timing {
                track,
                reason: format!("composition offset {cts} does not fit 32 bits"),
            })?;
            buf.put_i32(cts);
        }
    }
    close(buf, trun);
    close(buf, traf);
    Ok(data_offset_field)
}

/// `data` (at offset 0 of the output) with `writes` made into it.
fn with_writes(data: Bytes, writes: impl Iterator<Item = (u64, Bytes)>) -> Bytes {
    let mut writes = writes.peekable();
    if writes.peek().is_none() {
        return data;
    }
    let mut out = BytesMut::from(&data[..]);
    for (at, bytes) in writes {
        out[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
    }
    out.freeze()
}

/// The header of an `mdat` of `payload` bytes (with a 64-bit size when `large`).
fn write_mdat_header(buf: &mut BytesMut, payload: usize, large: bool) {
    if large {
        buf.put_u32(1);
        buf.put_slice(b"mdat");
        buf.put_u64(payload as u64 + 16);
    } else {
        buf.put_u32(payload as u32 + 8);
        buf.put_slice(b"mdat");
    }
}

impl Muxer for Fmp4Muxer {
    fn header(&mut self) -> Result<Fragment, MuxError> {
        // Built now to report what cannot be written and where the boxes go; written with
        // the first fragment, once the timeline plan is known (the edits change, not the
        // layout before the `moov`).
        let (_, layout) = fragmented_header_with(&self.tracks, &self.tracks.movie, self.reserve)?;
        self.layout = Some(layout);
        Ok(self.emit(FragmentKind::Header, vec![], 0, None, 0))
    }

    fn push(&mut self, packet: Packet) -> Result<Option<Fragment>, MuxError> {
        if packet.track >= self.tracks.len() {
            return Err(MuxError::NoSuchTrack { track: packet.track, tracks: self.tracks.len() });
        }
        let closed =
            if !self.fragmenter.is_empty() && self.fragmenter.cut_before(&packet) { self.flush()? } else { None };
        self.fragmenter.add(&packet);
        self.pending[packet.track].push(packet);
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
        let mut out: Vec<Fragment> = self.flush()?.into_iter().collect();
        if self.plan.is_none() {
            // No packet at all: the header alone.
            let data = self.decide()?;
            self.header_alone();
            out.push(self.emit(FragmentKind::Header, vec![data], 0, None, 0));
        }
        Ok(out)
    }

    fn notes(&self) -> Vec<String> {
        let trimmed = (self.trimmed > 0)
            .then(|| format!("{} audio packets past the end of their edit list were left out", self.trimmed));
        self.dts_shift
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, (*s)?)).filter(|&(_, s)| s > 0))
            .map(|(i, s)| {
                format!(
                    "track {}: decode times start at -{s} ticks; shifted to 0, presentation times unchanged \
                     (negative composition offsets)",
                    i + 1
                )
            })
            .chain(trimmed)
            .chain(self.running.as_ref().and_then(RunningIndex::stopped).map(|why| {
                format!(
                    "the running index (sidx) stopped counting fragments ({why}): a player opens the \
                     unfinished recording by reading every fragment"
                )
            }))
            .collect()
    }
}
