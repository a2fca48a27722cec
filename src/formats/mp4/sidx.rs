//! The running index of a `--to mp4` recording: one `sidx` per track, kept current while
//! it records, so that a player can open and seek a recording that is still running or
//! was killed without reading every `moof`.
//!
//! Measured before it was written (`bench/sidx.sh`, a 1-hour fragmented file of 3600
//! fragments): without an index, `ffprobe` opens it with 3670 reads and 1880 seeks (every
//! `moof` is read) and Chromium's `<video>` fetches most of the file before it can play;
//! with a `sidx` per track, 7 reads and 3 seeks. FFmpeg (and so Chromium) uses a `sidx`
//! only when its references run exactly to the end of the file, and needs one per track:
//! with a `sidx` for the video alone, seeks lose the audio. So the index counts every
//! complete fragment, and no more.
//!
//! # Layout
//!
//! ```text
//!  ftyp | free (reserve) | moov | sidx (track 1) | sidx (track 2) ... | moof mdat | ...
//!                                 |<- 40-byte header ->|<- capacity x 12-byte entries ->|
//! ```
//!
//! Each box is written once with the header (after a small `free` box where needed so
//! that no `reference_count` straddles two sectors), sized for `capacity` entries (readers
//! skip a box's unused tail). FFmpeg refuses a file with a `sidx` that counts nothing, so
//! the boxes are built as `free` boxes and become `sidx` boxes counting the first fragment
//! in the header's bytes, which go out with that fragment in one write; a header that goes
//! out alone (its first fragment had no packet left) keeps them `free`, and the index is
//! not used. Every box references every fragment (the whole `moof` + `mdat`), with the
//! track's own duration in it (0 when the fragment has none of the track's samples);
//! `first_offset` of each box skips the boxes after it, so that every box's references
//! start at the first `moof`. Times start at 0, where the muxer puts the output timeline; a
//! gap before a track's fragment is counted in that fragment, so a subsegment never starts
//! after its first sample.
//!
//! # Write order, per fragment
//!
//! 1. The entries (12 bytes in each box, past its `reference_count`: no reader looks at
//!    them yet), then the fragment after the previous one, then the fragment's durability
//!    barrier (the output's fsync, which covers both).
//! 2. The `reference_count` of each box (2 bytes, inside one sector).
//!
//! A crash at any point leaves a valid file: before step 2 lands, each box counts the
//! fragments before this one, which a reader takes as an index that does not reach the end
//! of the file and reads the rest by scanning. Step 2 is not fsynced on its own: the next
//! fragment's barrier carries it, so the index costs no fsync. After a power cut one box
//! may count one fragment more than another; each is valid alone. When a box is full, or
//! a fragment is too large for an entry (2 GiB) or too long (2^32 ticks), the index stops
//! there: it stays valid and a reader scans past it. At a clean stop the boxes become
//! part of the `mdat` of the regular MP4 (see [`super::finalize`]) like the old `moov`.

use bytes::{BufMut, Bytes, BytesMut};

use super::init::SECTOR;
use super::write::{close, open_full};
use crate::model::IndexUpdate;

/// Bytes of a version-1 `sidx` before its entries.
const HEADER: u64 = 40;
/// Offset of the box type.
const TYPE_AT: u64 = 4;
/// Offset of `reference_count` in a `sidx`.
const COUNT_AT: u64 = 38;
/// Bytes of one reference.
const ENTRY: u64 = 12;
/// Most entries a box can count (`reference_count` is 16 bits).
pub const MAX_ENTRIES: u32 = u16::MAX as u32;
/// Largest `referenced_size` (31 bits).
const MAX_SIZE: u64 = (1 << 31) - 1;

/// One fragment's share of track `t`: the end of its samples on the track's decode
/// timeline (`None`: the fragment has none), and whether the first is a sync sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackSpan {
    pub end_ticks: Option<u64>,
    pub starts_with_sync: bool,
}

/// The `sidx` boxes of a recording and what they count.
#[derive(Debug)]
pub struct RunningIndex {
    /// Per track: (timescale, offset of its box once placed, end of what it counts in ticks).
    tracks: Vec<(u32, u64, u64)>,
    capacity: u32,
    count: u32,
    /// Why the index stopped counting, once it did.
    stopped: Option<String>,
}

impl RunningIndex {
    /// An index of the tracks with these timescales, with room for `capacity` fragments
    /// (at most [`MAX_ENTRIES`]).
    pub fn new(timescales: &[u32], capacity: u32) -> Self {
        RunningIndex {
            tracks: timescales.iter().map(|&ts| (ts, 0, 0)).collect(),
            capacity: capacity.clamp(1, MAX_ENTRIES),
            count: 0,
            stopped: None,
        }
    }

    fn box_len(&self) -> u64 {
        HEADER + ENTRY * u64::from(self.capacity)
    }

    /// The boxes, counting nothing and so typed `free`, for the file at `offset` (right
    /// before the first `moof`).
    /// A `free` box goes first where a `reference_count` would otherwise straddle two
    /// sectors (its 2-byte write must reach the disk whole).
    pub fn boxes(&mut self, offset: u64) -> Bytes {
        let box_len = self.box_len();
        let n = self.tracks.len() as u64;
        let straddles = |start: u64| (0..n).any(|i| (start + i * box_len + COUNT_AT) % SECTOR == SECTOR - 1);
        let mut pad = 0;
        while straddles(offset + pad) {
            pad += 8;
        }
        let mut buf = BytesMut::with_capacity((pad + n * box_len) as usize);
        if pad > 0 {
            buf.put_u32(pad as u32);
            buf.put_slice(b"free");
            buf.put_bytes(0, pad as usize - 8);
        }
        for (i, (timescale, at, _)) in self.tracks.iter_mut().enumerate() {
            *at = offset + pad + i as u64 * box_len;
            let start = open_full(&mut buf, b"free", 1, 0);
            buf.put_u32(i as u32 + 1);
            buf.put_u32(*timescale);
            buf.put_u64(0); // earliest_presentation_time
            buf.put_u64((n - 1 - i as u64) * box_len); // first_offset: the boxes after this one
            buf.put_u16(0);
            buf.put_u16(0); // reference_count
            buf.put_bytes(0, (ENTRY * u64::from(self.capacity)) as usize);
            close(&mut buf, start);
        }
        buf.freeze()
    }

    /// The writes that add a fragment of `size` bytes (its `moof` and `mdat`) with these
    /// spans (one per track); nothing once the index has stopped. Those of the first
    /// fragment also make the boxes `sidx` boxes: they belong in the header's bytes.
    pub fn add(&mut self, size: u64, spans: &[TrackSpan]) -> IndexUpdate {
        let mut update = IndexUpdate::default();
        if self.stopped.is_some() || spans.len() != self.tracks.len() {
            return update;
        }
        if self.count >= self.capacity {
            self.stopped = Some(format!("it has room for {} fragments", self.capacity));
            return update;
        }
        if size > MAX_SIZE {
            self.stopped = Some(format!("fragment {} is larger than 2 GiB", self.count + 1));
            return update;
        }
        let mut entries = Vec::with_capacity(spans.len());
        for (&(_, _, counted), span) in self.tracks.iter().zip(spans) {
            let end = span.end_ticks.unwrap_or(counted).max(counted);
            let Ok(duration) = u32::try_from(end - counted) else {
                self.stopped = Some(format!("fragment {} lasts more than 2^32 ticks", self.count + 1));
                return update;
            };
            entries.push((end, duration, span.end_ticks.is_some() && span.starts_with_sync));
        }
        let entry_at = HEADER + ENTRY * u64::from(self.count);
        self.count += 1;
        for (track, (end, duration, sync)) in self.tracks.iter_mut().zip(entries) {
            track.2 = end;
            let mut e = BytesMut::with_capacity(ENTRY as usize);
            e.put_u32(size as u32); // reference_type 0: media
            e.put_u32(duration);
            // starts_with_SAP, SAP_type 1 (a sync sample), SAP_delta_time 0.
            e.put_u32(if sync { 0x9000_0000 } else { 0 });
            update.prepare.push((track.1 + entry_at, e.freeze()));
            update.publish.push((track.1 + COUNT_AT, Bytes::copy_from_slice(&(self.count as u16).to_be_bytes())));
            if self.count == 1 {
                update.publish.push((track.1 + TYPE_AT, Bytes::from_static(b"sidx")));
            }
        }
        update
    }

    /// Stops the index for good (`why` for the note).
    pub fn stop(&mut self, why: &str) {
        self.stopped.get_or_insert_with(|| why.to_string());
    }

    /// Why the index stopped counting fragments, if it did (for a note).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(end: u64) -> TrackSpan {
        TrackSpan { end_ticks: Some(end), starts_with_sync: true }
    }

    #[test]
    fn boxes_reference_the_first_moof_and_entries_follow_the_count() {
        let mut index = RunningIndex::new(&[90_000, 48_000], 3);
        let boxes = index.boxes(1000);
        assert_eq!(boxes.len() as u64, 2 * (40 + 36));
        // first_offset of the first box skips the second; the second's is 0.
        assert_eq!(u64::from_be_bytes(boxes[28..36].try_into().unwrap()), 76);
        assert_eq!(u64::from_be_bytes(boxes[76 + 28..76 + 36].try_into().unwrap()), 0);

        assert_eq!(&boxes[4..8], b"free", "counting nothing, the boxes are free boxes");
        let u = index.add(500, &[span(90_000), TrackSpan { end_ticks: None, starts_with_sync: false }]);
        assert_eq!(u.prepare[0].0, 1000 + 40);
        assert_eq!(&u.prepare[0].1[..], &[0, 0, 1, 244, 0, 1, 95, 144, 0x90, 0, 0, 0]);
        assert_eq!(&u.prepare[1].1[4..], &[0, 0, 0, 0, 0, 0, 0, 0], "no audio: duration 0, no SAP");
        let sidx = Bytes::from_static(b"sidx");
        let one = Bytes::from_static(&[0, 1]);
        assert_eq!(u.publish, vec![(1038, one.clone()), (1004, sidx.clone()), (1076 + 38, one), (1080, sidx)]);
        let mut file = vec![0u8; 1000];
        file.extend_from_slice(&boxes);
        let apply = |file: &mut Vec<u8>, writes: &[(u64, Bytes)]| {
            for (at, data) in writes {
                file[*at as usize..*at as usize + data.len()].copy_from_slice(data);
            }
        };
        apply(&mut file, &u.prepare);
        assert_eq!(&file[1004..1008], b"free", "prepared entries are not counted");
        apply(&mut file, &u.publish);
        // A gap is counted in the fragment after it.
        let u = index.add(600, &[span(270_000), span(96_000)]);
        apply(&mut file, &u.prepare);
        apply(&mut file, &u.publish);
        assert_eq!(read(&file[1000..]), (1, 90_000, 76, vec![(500, 90_000, true), (600, 180_000, true)]));
        assert_eq!(read(&file[1076..]), (2, 48_000, 0, vec![(500, 0, false), (600, 96_000, true)]));
    }

    /// A version-1 `sidx` as the standard lays it out: reference_ID, timescale,
    /// first_offset and the counted references (size, duration, starts with a SAP).
    fn read(b: &[u8]) -> (u32, u32, u64, Vec<(u32, u32, bool)>) {
        let u32_at = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!((&b[4..8], b[8]), (&b"sidx"[..], 1));
        let count = u16::from_be_bytes(b[38..40].try_into().unwrap()) as usize;
        let refs = (0..count).map(|i| 40 + 12 * i).map(|at| (u32_at(at), u32_at(at + 4), u32_at(at + 8) >> 31 == 1));
        (u32_at(12), u32_at(16), u64::from_be_bytes(b[28..36].try_into().unwrap()), refs.collect())
    }

    #[test]
    fn no_count_straddles_two_sectors() {
        let mut padded = 0;
        for offset in 400..520 {
            let mut index = RunningIndex::new(&[90_000, 48_000, 48_000], 7);
            let boxes = index.boxes(offset);
            let u = index.add(10, &[span(1), span(1), span(1)]);
            // The counts; the type changes only in the header, written with the fragment.
            for (at, data) in u.publish.iter().filter(|(_, d)| d.len() == 2) {
                assert_eq!(at / SECTOR, (at + data.len() as u64 - 1) / SECTOR, "offset {offset}");
            }
            let first = u32::from_be_bytes(boxes[..4].try_into().unwrap()) as usize;
            if first < 40 {
                assert_eq!(&boxes[first + 4..first + 8], b"free");
                padded += 1;
            }
        }
        assert!(padded > 0, "some offset needs the free box");
    }

    #[test]
    fn a_full_or_overflowing_index_stops_and_says_why() {
        let mut index = RunningIndex::new(&[1000], 1);
        index.boxes(0);
        assert!(!index.add(10, &[span(1)]).is_empty());
        assert!(index.add(10, &[span(2)]).is_empty());
        assert_eq!(index.stopped(), Some("it has room for 1 fragments"));

        let mut index = RunningIndex::new(&[1000], 4);
        index.boxes(0);
        assert!(index.add(MAX_SIZE + 1, &[span(1)]).is_empty());
        assert!(index.stopped().unwrap().contains("2 GiB"));

        let mut index = RunningIndex::new(&[1000], 4);
        index.boxes(0);
        assert!(index.add(10, &[span(u64::from(u32::MAX) + 1)]).is_empty());
        assert!(index.stopped().unwrap().contains("2^32"));
    }
}
