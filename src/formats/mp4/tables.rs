//! Building the sample tables of a regular (non-fragmented) MP4: `stts`, `ctts`, `stss`,
//! `stsz`, `stsc` and `stco`/`co64`, from samples pushed one at a time into chunks.
//!
//! Memory is what the final tables need: run-length `stts`/`ctts`, one word per sample for
//! sizes, one entry per chunk, and one byte per sample for `sdtp` only once a sample carries
//! dependency information that `stss` cannot say. Nothing per sample is kept beyond that,
//! so the index of a 10-hour recording costs a few megabytes.

use bytes::{BufMut, BytesMut};

use super::write::{close, open_full};

/// One chunk: where its samples start, how many there are, which sample entry they use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub offset: u64,
    pub samples: u32,
    /// 1-based index into `stsd`.
    pub description: u32,
}

/// The sample tables of one track, as they grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableBuilder {
    /// (count, delta) runs.
    stts: Vec<(u32, u32)>,
    /// (count, offset) runs; empty while every offset is zero.
    ctts: Vec<(u32, i32)>,
    /// 1-based numbers of sync samples.
    stss: Vec<u32>,
    sizes: Vec<u32>,
    chunks: Vec<ChunkEntry>,
    duration: u64,
    /// `sdtp` bytes, one per sample; empty until [`TableBuilder::set_dependency`] is given
    /// a byte that says more than "sync or not" (then earlier samples read as unknown, 0).
    sdtp: Vec<u8>,
}

/// Whether an `sdtp` byte (is_leading, sample_depends_on, sample_is_depended_on,
/// sample_has_redundancy, two bits each) says anything beyond sample_depends_on, which
/// `stss` already carries.
pub fn sdtp_needed(byte: u8) -> bool {
    byte & 0xCF != 0
}

fn push_run<T: PartialEq + Copy>(runs: &mut Vec<(u32, T)>, value: T) {
    match runs.last_mut() {
        Some((n, v)) if *v == value && *n < u32::MAX => *n += 1,
        _ => runs.push((1, value)),
    }
}

impl TableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sample_count(&self) -> u32 {
        self.sizes.len() as u32
    }

    /// Sum of sample durations, in the track's timescale.
    pub fn duration(&self) -> u64 {
        self.duration
    }

    /// Opens a chunk whose first sample is at `offset` in the file.
    pub fn start_chunk(&mut self, offset: u64, description: u32) {
        self.chunks.push(ChunkEntry { offset, samples: 0, description });
    }

    /// Adds a sample to the open chunk (opening one at offset 0 if none is: callers that
    /// care always start a chunk first).
    pub fn push(&mut self, size: u32, duration: u32, cts_offset: i32, sync: bool) {
        if self.chunks.is_empty() {
            self.start_chunk(0, 1);
        }
        let n = self.sizes.len() as u32;
        if cts_offset != 0 && self.ctts.is_empty() && n > 0 {
            self.ctts.push((n, 0));
        }
        if cts_offset != 0 || !self.ctts.is_empty() {
            push_run(&mut self.ctts, cts_offset);
        }
        push_run(&mut self.stts, duration);
        if sync {
            self.stss.push(n + 1);
        }
        self.sizes.push(size);
        self.duration += duration as u64;
        self.chunks.last_mut().expect("a chunk is open").samples += 1;
    }

    /// Records the dependency byte of the last pushed sample (`sdtp` layout; from a fragment
    /// it is `sample_flags >> 20`). Costs nothing until a byte is [`sdtp_needed`].
    pub fn set_dependency(&mut self, byte: u8) {
        let n = self.sizes.len();
        if n == 0 || (self.sdtp.is_empty() && !sdtp_needed(byte)) {
            return;
        }
        self.sdtp.resize(n - 1, 0);
        self.sdtp.push(byte);
    }

    /// Changes the duration of the last sample (known only when the next one arrives, or
    /// at the end of a track).
    pub fn set_last_duration(&mut self, duration: u32) {
        let Some(last) = self.stts.last_mut() else { return };
        let old = last.1;
        self.duration = self.duration - old as u64 + duration as u64;
        if last.0 == 1 {
            self.stts.pop();
        } else {
            last.0 -= 1;
        }
        push_run(&mut self.stts, duration);
    }

    fn co64(&self) -> bool {
        self.chunks.last().is_some_and(|c| c.offset > u32::MAX as u64)
    }

    fn stsc(&self) -> Vec<(u32, u32, u32)> {
        let mut runs: Vec<(u32, u32, u32)> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            if runs.last().is_some_and(|&(_, n, d)| n == c.samples && d == c.description) {
                continue;
            }
            runs.push((i as u32 + 1, c.samples, c.description));
        }
        runs
    }

    /// The size every sample has, when there is one and `stsz` can say it: a
    /// `sample_size` of 0 means "a table follows", so samples that are all empty still get
    /// the table (of zeros).
    fn constant_size(&self) -> Option<u32> {
        let first = *self.sizes.first()?;
        (first != 0 && self.sizes.iter().all(|&s| s == first)).then_some(first)
    }

    fn all_sync(&self) -> bool {
        self.stss.len() == self.sizes.len()
    }

    /// Bytes [`TableBuilder::write`] produces.
    pub fn encoded_len(&self) -> usize {
        let stts = 16 + 8 * self.stts.len();
        let ctts = if self.ctts.is_empty() { 0 } else { 16 + 8 * self.ctts.len() };
        let stss = if self.all_sync() { 0 } else { 16 + 4 * self.stss.len() };
        let stsz = 20 + if self.constant_size().is_some() { 0 } else { 4 * self.sizes.len() };
        let stsc = 16 + 12 * self.stsc().len();
        let stco = 16 + if self.co64() { 8 } else { 4 } * self.chunks.len();
        let sdtp = if self.sdtp.is_empty() { 0 } else { 12 + self.sizes.len() };
        stts + ctts + stss + stsz + stsc + stco + sdtp
    }

    /// Writes the tables (the children of `stbl` after `stsd`).
    pub fn write(&self, buf: &mut BytesMut) {
        let b = open_full(buf, b"stts", 0, 0);
        buf.put_u32(self.stts.len() as u32);
        for &(n, d) in &self.stts {
            buf.put_u32(n);
            buf.put_u32(d);
        }
        close(buf, b);

        if !self.ctts.is_empty() {
            let negative = self.ctts.iter().any(|&(_, o)| o < 0);
            let b = open_full(buf, b"ctts", negative as u8, 0);
            buf.put_u32(self.ctts.len() as u32);
            for &(n, o) in &self.ctts {
                buf.put_u32(n);
                buf.put_i32(o);
            }
            close(buf, b);
        }

        if !self.all_sync() {
            let b = open_full(buf, b"stss", 0, 0);
            buf.put_u32(self.stss.len() as u32);
            self.stss.iter().for_each(|&s| buf.put_u32(s));
            close(buf, b);
        }

        if !self.sdtp.is_empty() {
            let b = open_full(buf, b"sdtp", 0, 0);
            buf.put_slice(&self.sdtp);
            buf.put_bytes(0, self.sizes.len() - self.sdtp.len());
            close(buf, b);
        }

        let b = open_full(buf, b"stsz", 0, 0);
        match self.constant_size() {
            Some(size) => {
                buf.put_u32(size);
                buf.put_u32(self.sizes.len() as u32);
            }
            None => {
                buf.put_u32(0);
                buf.put_u32(self.sizes.len() as u32);
                self.sizes.iter().for_each(|&s| buf.put_u32(s));
            }
        }
        close(buf, b);

        let stsc = self.stsc();
        let b = open_full(buf, b"stsc", 0, 0);
        buf.put_u32(stsc.len() as u32);
        for (first, n, d) in stsc {
            buf.put_u32(first);
            buf.put_u32(n);
            buf.put_u32(d);
        }
        close(buf, b);

        let co64 = self.co64();
        let b = open_full(buf, if co64 { b"co64" } else { b"stco" }, 0, 0);
        buf.put_u32(self.chunks.len() as u32);
        for c in &self.chunks {
            if co64 {
                buf.put_u64(c.offset);
            } else {
                buf.put_u32(c.offset as u32);
            }
        }
        close(buf, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::mp4::boxes::Reader;
    use crate::formats::mp4::sample_table::SampleTable;
    use crate::formats::mp4::FourCc;
    use bytes::Bytes;

    fn read_back(t: &TableBuilder) -> Vec<(u64, u32, i64, i64, u32, bool)> {
        let mut buf = BytesMut::new();
        t.write(&mut buf);
        assert_eq!(buf.len(), t.encoded_len());
        let src = Bytes::from(buf);
        let r = Reader::new(&src, 0, FourCc::new(b"stbl"));
        let table = SampleTable::parse(&src, 0, &r).unwrap();
        table
            .samples()
            .map(|s| s.unwrap())
            .map(|s| (s.offset, s.size, s.dts, s.cts_offset, s.duration, s.sync))
            .collect()
    }

    #[test]
    fn tables_read_back_sample_for_sample() {
        let mut t = TableBuilder::new();
        t.start_chunk(1000, 1);
        t.push(10, 512, 0, true);
        t.push(11, 512, 1024, false);
        t.start_chunk(5_000_000_000, 1);
        t.push(12, 512, -512, false);
        t.push(13, 100, 0, true);
        t.set_last_duration(400);
        let s = read_back(&t);
        assert_eq!(
            s,
            [
                (1000, 10, 0, 0, 512, true),
                (1010, 11, 512, 1024, 512, false),
                (5_000_000_000, 12, 1024, -512, 512, false),
                (5_000_000_012, 13, 1536, 0, 400, true),
            ]
        );
        assert_eq!(t.duration(), 1936);
    }

    #[test]
    fn sdtp_only_when_it_says_more_than_stss() {
        let mut t = TableBuilder::new();
        t.start_chunk(0, 1);
        t.push(1, 10, 0, true);
        t.set_dependency(0x20);
        t.push(1, 10, 0, false);
        t.set_dependency(0x10);
        let before = t.encoded_len();
        let mut buf = BytesMut::new();
        t.write(&mut buf);
        assert!(!buf.windows(4).any(|w| w == b"sdtp"));
        // A disposable sample (sample_is_depended_on = 2): sdtp appears, earlier samples unknown.
        t.push(1, 10, 0, false);
        t.set_dependency(0x18);
        t.push(1, 10, 0, false);
        assert_eq!(t.encoded_len(), before + 12 + 4);
        let mut buf = BytesMut::new();
        t.write(&mut buf);
        assert_eq!(buf.len(), t.encoded_len());
        let at = buf.windows(4).position(|w| w == b"sdtp").unwrap();
        assert_eq!(&buf[at + 8..at + 12], &[0x00, 0x00, 0x18, 0x00]);
        let _ = read_back(&t);
    }

    #[test]
    fn constant_sizes_and_all_sync_are_compact() {
        let mut t = TableBuilder::new();
        for c in 0..3 {
            t.start_chunk(100 + c * 1000, 1);
            for _ in 0..4 {
                t.push(6, 1024, 0, true);
            }
        }
        let s = read_back(&t);
        assert_eq!(s.len(), 12);
        assert_eq!(s[5].0, 1106);
        // stts 1 run, stsz constant, stsc 1 run, no stss, no ctts.
        assert_eq!(t.encoded_len(), 24 + 20 + 28 + 28);
    }

    #[test]
    fn empty_samples_get_a_table_of_zeros() {
        // sample_size 0 means "a table follows": samples that are all 0 bytes cannot use
        // the constant form, or readers take the next box for the table.
        let mut t = TableBuilder::new();
        t.start_chunk(100, 1);
        for _ in 0..3 {
            t.push(0, 1000, 0, true);
        }
        let mut buf = BytesMut::new();
        t.write(&mut buf);
        assert_eq!(buf.len(), t.encoded_len());
        let at = buf.windows(4).position(|w| w == b"stsz").unwrap() - 4;
        assert_eq!(u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()), 20 + 12);
        assert_eq!(&buf[at + 12..at + 32], &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let s = read_back(&t);
        assert_eq!(s.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), [(100, 0), (100, 0), (100, 0)]);
    }
}
