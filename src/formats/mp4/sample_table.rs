//! A track's sample tables (stts, ctts, stss, stsz/stz2, stsc, stco/co64), kept as the
//! bytes of the `moov` they came from and walked with a cursor, so that indexing a long
//! recording costs no per-sample allocation.

use bytes::Bytes;

use super::boxes::{Mp4Error, Reader, MAX_SAMPLE_SIZE};

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn be64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_be_bytes(a)
}

/// Most audio frames in one packet when uncompressed audio is grouped.
pub const PCM_PACKET_FRAMES: u32 = 1024;

/// Sample sizes: one for all, or a table of 4, 8 or 16-bit (stz2) entries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sizes {
    Constant(u32),
    Table { data: Bytes, bits: u8 },
}

/// The sample tables of one track, validated so that every entry the cursor reads exists.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SampleTable {
    pub sample_count: u32,
    stts: Bytes,
    ctts: Option<Bytes>,
    stss: Option<Bytes>,
    sizes: Option<Sizes>,
    stsc: Bytes,
    chunk_offsets: Bytes,
    co64: bool,
    /// Each chunk is read as one sample (uncompressed audio, see [`SampleTable::group_chunks`]).
    grouped: bool,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes::Constant(0)
    }
}

/// Where a table's entries start in `moov` bytes, checked against the entry count.
fn entries(
    src: &Bytes,
    body_start: usize,
    r: &mut Reader<'_>,
    entry: usize,
    field: &str,
) -> Result<(Bytes, u32), Mp4Error> {
    let count = r.u32()?;
    let n = r.check_entries(count as u64, entry, field)?;
    let start = body_start + r.position();
    Ok((src.slice(start..start + n * entry), count))
}

impl SampleTable {
    pub fn chunk_count(&self) -> usize {
        self.chunk_offsets.len() / if self.co64 { 8 } else { 4 }
    }

    /// Uncompressed audio in QuickTime files stores one sample per audio frame (a few
    /// bytes each); packets are runs of up to [`PCM_PACKET_FRAMES`] frames of a chunk
    /// instead, as FFmpeg makes them. A
    /// constant size of 1 is QuickTime's "see the sound description": `frame_bytes` then.
    pub fn group_chunks(&mut self, frame_bytes: u32) {
        if let Some(Sizes::Constant(c)) = &mut self.sizes {
            if *c == 1 && frame_bytes > 1 {
                *c = frame_bytes;
            }
            self.grouped = true;
        }
    }

    /// Builds the table from the children of an `stbl` box. `src` holds the bytes the
    /// children were read from, starting at absolute offset `src_offset`.
    pub fn parse(src: &Bytes, src_offset: u64, stbl: &Reader<'_>) -> Result<Self, Mp4Error> {
        let mut t = SampleTable::default();
        let mut have_sizes = false;
        for child in stbl.children() {
            let child = child?;
            let body_start = (child.offset - src_offset) as usize + child.header_len;
            let mut r = child.reader();
            match &child.fourcc.0 {
                b"stts" => {
                    r.full_header()?;
                    t.stts = entries(src, body_start, &mut r, 8, "stts entry_count")?.0;
                }
                b"ctts" => {
                    r.full_header()?;
                    t.ctts = Some(entries(src, body_start, &mut r, 8, "ctts entry_count")?.0);
                }
                b"stss" => {
                    r.full_header()?;
                    t.stss = Some(entries(src, body_start, &mut r, 4, "stss entry_count")?.0);
                }
                b"stsz" => {
                    r.full_header()?;
                    let constant = r.u32()?;
                    if constant != 0 {
                        t.sample_count = r.u32()?;
                        t.sizes = Some(Sizes::Constant(constant));
                    } else {
                        let (data, count) = entries(src, body_start, &mut r, 4, "stsz sample_count")?;
                        t.sample_count = count;
                        t.sizes = Some(Sizes::Table { data, bits: 32 });
                    }
                    have_sizes = true;
                }
                b"stz2" => {
                    r.full_header()?;
                    r.skip(3)?;
                    let bits = r.u8()?;
                    if !matches!(bits, 4 | 8 | 16) {
                        return Err(r.error(format!("field_size {bits} is not 4, 8 or 16")));
                    }
                    let count = r.u32()?;
                    let need = (count as u64 * bits as u64).div_ceil(8);
                    if need > r.remaining() as u64 {
                        return Err(r.error(format!("{count} sizes of {bits} bits do not fit")));
                    }
                    let start = body_start + r.position();
                    t.sample_count = count;
                    t.sizes = Some(Sizes::Table { data: src.slice(start..start + need as usize), bits });
                    have_sizes = true;
                }
                b"stsc" => {
                    r.full_header()?;
                    t.stsc = entries(src, body_start, &mut r, 12, "stsc entry_count")?.0;
                }
                b"stco" => {
                    r.full_header()?;
                    t.chunk_offsets = entries(src, body_start, &mut r, 4, "stco entry_count")?.0;
                    t.co64 = false;
                }
                b"co64" => {
                    r.full_header()?;
                    t.chunk_offsets = entries(src, body_start, &mut r, 8, "co64 entry_count")?.0;
                    t.co64 = true;
                }
                _ => {}
            }
        }
        if !have_sizes {
            t.sample_count = 0;
        }
        t.check_stsc();
        // What FFmpeg refuses too ("contradictionary STSC and STCO"): after the repair, the
        // last entry starts past the chunk table, so entries and chunks do not match.
        if let Some(last) = (t.stsc.len() / 12).checked_sub(1) {
            let first = be32(&t.stsc, last * 12);
            if first as u64 > t.chunk_count() as u64 {
                return Err(Mp4Error::invalid(
                    "'stsc' box",
                    stbl.offset(),
                    format!(
                        "its last entry starts at chunk {first}, but the chunk table has {} chunks",
                        t.chunk_count()
                    ),
                ));
            }
        }
        Ok(t)
    }

    /// Entries whose first_chunk does not increase (Firefox wrote a run of `(1, 1, 1)`
    /// entries), or whose samples_per_chunk or description index is 0, are repaired as
    /// FFmpeg does, from the last entry back: a bad last entry is raised to follow the one
    /// before it (or dropped when it has no samples), any other takes the next entry's values
    /// for the chunk before that entry. A valid table is kept as its bytes; a repaired one
    /// costs one copy of the `stsc` (already bounded by the box size). A table that still
    /// names chunks the chunk table lacks is refused by the caller.
    fn check_stsc(&mut self) {
        let n = self.stsc.len() / 12;
        let entry = |b: &[u8], i: usize| (be32(b, i * 12), be32(b, i * 12 + 4), be32(b, i * 12 + 8));
        let valid = (0..n).all(|i| {
            let (first, count, id) = entry(&self.stsc, i);
            first as u64 > i as u64 && count > 0 && id > 0 && (i == 0 || first > be32(&self.stsc, (i - 1) * 12))
        });
        if valid {
            return;
        }
        let mut e: Vec<(u32, u32, u32)> = (0..n).map(|i| entry(&self.stsc, i)).collect();
        let mut len = n;
        for i in (0..n).rev() {
            let (first, count, id) = e[i];
            // first_chunk is 1-based and at least the entry's own number (i + 1).
            let first_min = (i as u64 + 1).min(u32::MAX as u64) as u32;
            let bad = (i + 1 < len && first >= e[i + 1].0)
                || (i > 0 && first <= e[i - 1].0)
                || first < first_min
                || count == 0
                || id == 0;
            if !bad {
                continue;
            }
            if i + 1 >= len {
                if count == 0 && i > 0 {
                    len -= 1;
                    continue;
                }
                let mut f = first.max(first_min);
                if i > 0 && f <= e[i - 1].0 {
                    f = e[i - 1].0.saturating_add(1);
                }
                e[i] = (f, count.max(1), id.max(1));
            } else {
                // The next entry is valid (repaired before this one) and starts at 2 or later.
                let next = e[i + 1];
                e[i] = (next.0.saturating_sub(1).max(1), next.1, next.2);
            }
        }
        e.truncate(len);
        let mut out = Vec::with_capacity(len * 12);
        for (f, c, d) in e {
            out.extend_from_slice(&f.to_be_bytes());
            out.extend_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&d.to_be_bytes());
        }
        self.stsc = Bytes::from(out);
    }

    fn size(&self, i: u32) -> u32 {
        match &self.sizes {
            None => 0,
            Some(Sizes::Constant(c)) => *c,
            Some(Sizes::Table { data, bits: 32 }) => be32(data, i as usize * 4),
            Some(Sizes::Table { data, bits: 16 }) => {
                u16::from_be_bytes([data[i as usize * 2], data[i as usize * 2 + 1]]) as u32
            }
            Some(Sizes::Table { data, bits: 8 }) => data[i as usize] as u32,
            Some(Sizes::Table { data, .. }) => {
                let b = data[i as usize / 2];
                (if i.is_multiple_of(2) { b >> 4 } else { b & 15 }) as u32
            }
        }
    }

    fn chunk_offset(&self, c: usize) -> u64 {
        if self.co64 {
            be64(&self.chunk_offsets, c * 8)
        } else {
            be32(&self.chunk_offsets, c * 4) as u64
        }
    }

    /// Sum of all sample durations (saturating: a table cannot describe more than
    /// 2^32 samples of under 2^32 ticks, but the sum of its entries can still wrap).
    pub fn total_duration(&self) -> u64 {
        let mut total = 0u64;
        let mut left = self.sample_count as u64;
        for i in 0..self.stts.len() / 8 {
            let n = (be32(&self.stts, i * 8) as u64).min(left);
            total = total.saturating_add(n * be32(&self.stts, i * 8 + 4) as u64);
            left -= n;
        }
        total
    }

    /// Iterates every sample in decode order.
    pub fn samples(&self) -> SampleIter<'_> {
        SampleIter { t: self, c: SampleCursor::default() }
    }
}

/// One sample as the tables describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfo {
    /// Index in decode order, from 0.
    pub index: u32,
    pub offset: u64,
    pub size: u32,
    pub dts: i64,
    pub cts_offset: i64,
    pub duration: u32,
    pub sync: bool,
    /// 1-based index of the sample description.
    pub description: u32,
}

/// A position in a [`SampleTable`], advanced by [`SampleCursor::next`]. It holds no
/// reference to the table, so it can live beside the table in one struct.
#[derive(Clone, Debug)]
pub struct SampleCursor {
    next: u32,
    dts: i64,
    stts_i: usize,
    stts_left: u32,
    ctts_i: usize,
    ctts_left: u32,
    stss_i: usize,
    stsc_i: usize,
    chunk: usize,
    in_chunk_left: u32,
    offset: u64,
    description: u32,
}

impl Default for SampleCursor {
    fn default() -> Self {
        SampleCursor {
            next: 0,
            dts: 0,
            stts_i: 0,
            stts_left: 0,
            ctts_i: 0,
            ctts_left: 0,
            stss_i: 0,
            stsc_i: 0,
            chunk: usize::MAX,
            in_chunk_left: 0,
            offset: 0,
            description: 1,
        }
    }
}

impl SampleCursor {
    /// Enters the next non-empty chunk; false when the chunk table is exhausted.
    fn next_chunk(&mut self, t: &SampleTable) -> bool {
        let stsc = &t.stsc;
        let entries = stsc.len() / 12;
        loop {
            self.chunk = self.chunk.wrapping_add(1);
            if self.chunk >= t.chunk_count() || entries == 0 {
                return false;
            }
            let c1 = self.chunk as u32 + 1;
            while self.stsc_i + 1 < entries && be32(stsc, (self.stsc_i + 1) * 12) <= c1 {
                self.stsc_i += 1;
            }
            if be32(stsc, self.stsc_i * 12) > c1 {
                // Chunks before the first entry have no samples.
                continue;
            }
            self.in_chunk_left = be32(stsc, self.stsc_i * 12 + 4);
            self.description = be32(stsc, self.stsc_i * 12 + 8);
            self.offset = t.chunk_offset(self.chunk);
            if self.in_chunk_left > 0 {
                return true;
            }
        }
    }

    /// The next sample of `t` (the table this cursor was made for), in decode order.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self, t: &SampleTable) -> Option<Result<SampleInfo, Mp4Error>> {
        if self.next >= t.sample_count {
            return None;
        }
        if self.in_chunk_left == 0 && !self.next_chunk(t) {
            // The chunk table ends before the sample count: the rest has no data.
            self.next = t.sample_count;
            return None;
        }
        let index = self.next;
        let size = t.size(index);
        if size > MAX_SAMPLE_SIZE {
            self.next = t.sample_count;
            return Some(Err(Mp4Error::TooLarge {
                what: format!("sample {index}"),
                offset: self.offset,
                size: size as u64,
                limit: MAX_SAMPLE_SIZE as u64,
            }));
        }
        let duration = self.next_duration(t);
        let cts_offset = self.next_cts_offset(t);
        let sync = self.is_sync(t, index);
        let mut info = SampleInfo {
            index,
            offset: self.offset,
            size,
            dts: self.dts,
            cts_offset,
            duration,
            sync,
            description: self.description,
        };
        if let Err(e) = self.advance(t, &info) {
            return Some(Err(e));
        }
        if t.grouped {
            if let Err(e) = self.group_chunk(t, &mut info) {
                return Some(Err(e));
            }
        }
        Some(Ok(info))
    }

    /// The duration of the next sample in stts order: the last stts entry repeats if the
    /// table is short.
    #[inline]
    fn next_duration(&mut self, t: &SampleTable) -> u32 {
        while self.stts_left == 0 && self.stts_i < t.stts.len() / 8 {
            self.stts_left = be32(&t.stts, self.stts_i * 8);
            self.stts_i += 1;
        }
        let duration = if self.stts_i > 0 { be32(&t.stts, (self.stts_i - 1) * 8 + 4) } else { 0 };
        self.stts_left = self.stts_left.saturating_sub(1);
        duration
    }

    /// The composition offset of the next sample in ctts order (0 without a ctts).
    #[inline]
    fn next_cts_offset(&mut self, t: &SampleTable) -> i64 {
        let Some(ctts) = &t.ctts else { return 0 };
        while self.ctts_left == 0 && self.ctts_i < ctts.len() / 8 {
            self.ctts_left = be32(ctts, self.ctts_i * 8);
            self.ctts_i += 1;
        }
        let mut cts_offset = 0;
        if self.ctts_i > 0 {
            // Version 0 is unsigned in the spec, but writers store negative values
            // there too; reading both as signed is what players do.
            cts_offset = be32(ctts, (self.ctts_i - 1) * 8 + 4) as i32 as i64;
        }
        self.ctts_left = self.ctts_left.saturating_sub(1);
        cts_offset
    }

    /// Whether sample `index` is a sync sample (all are without an stss); indexes
    /// must come in increasing order.
    #[inline]
    fn is_sync(&mut self, t: &SampleTable, index: u32) -> bool {
        let Some(stss) = &t.stss else { return true };
        while self.stss_i < stss.len() / 4 && be32(stss, self.stss_i * 4) < index + 1 {
            self.stss_i += 1;
        }
        self.stss_i < stss.len() / 4 && be32(stss, self.stss_i * 4) == index + 1
    }

    /// Moves past the sample `info`, checking that its end stays in range; on error the
    /// cursor is exhausted.
    #[inline]
    fn advance(&mut self, t: &SampleTable, info: &SampleInfo) -> Result<(), Mp4Error> {
        let (Some(next_offset), Some(next_dts), Some(_pts)) = (
            self.offset.checked_add(info.size as u64),
            self.dts.checked_add(info.duration as i64),
            self.dts.checked_add(info.cts_offset),
        ) else {
            self.next = t.sample_count;
            return Err(Mp4Error::invalid(
                "sample table",
                self.offset,
                format!(
                    "sample {} (offset {}, {} bytes, decode time {}) runs past 2^63 ticks or 2^64 bytes",
                    info.index, self.offset, info.size, self.dts
                ),
            ));
        };
        self.dts = next_dts;
        self.offset = next_offset;
        self.in_chunk_left -= 1;
        self.next += 1;
        Ok(())
    }

    /// Grouped (constant-size PCM) tables: folds the rest of the chunk, up to
    /// [`PCM_PACKET_FRAMES`] samples in all, into the sample `info` just read.
    fn group_chunk(&mut self, t: &SampleTable, info: &mut SampleInfo) -> Result<(), Mp4Error> {
        let (index, size) = (info.index, info.size);
        let n = self.in_chunk_left.min(t.sample_count - self.next).min(PCM_PACKET_FRAMES - 1);
        let bytes = n as u64 * size as u64;
        let total = info.size as u64 + bytes;
        if total > MAX_SAMPLE_SIZE as u64 {
            return Err(Mp4Error::TooLarge {
                what: format!("chunk of samples from {index}"),
                offset: info.offset,
                size: total,
                limit: MAX_SAMPLE_SIZE as u64,
            });
        }
        // Constant-size audio has one duration per stts entry run; step through them.
        let mut ticks = info.duration as u64;
        for _ in 0..n {
            ticks += self.next_duration(t) as u64;
        }
        info.size = total as u32;
        info.duration = ticks.min(u32::MAX as u64) as u32;
        let (Some(dts), Some(offset)) = (info.dts.checked_add(ticks as i64), self.offset.checked_add(bytes)) else {
            self.next = t.sample_count;
            return Err(Mp4Error::invalid(
                "sample table",
                info.offset,
                format!("chunk of samples from {index} runs past 2^63 ticks or 2^64 bytes"),
            ));
        };
        self.dts = dts;
        self.offset = offset;
        self.in_chunk_left -= n;
        self.next += n;
        Ok(())
    }
}

/// Iterator over a table's samples.
pub struct SampleIter<'a> {
    t: &'a SampleTable,
    c: SampleCursor,
}

impl Iterator for SampleIter<'_> {
    type Item = Result<SampleInfo, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.c.next(self.t)
    }
}

impl SampleCursor {
    /// Index (from 0) in the chunk table of the chunk holding the sample [`SampleCursor::next`]
    /// returned last.
    pub fn chunk(&self) -> usize {
        self.chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 12) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(body);
        v
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn table(children: Vec<u8>) -> Result<SampleTable, Mp4Error> {
        let src = Bytes::from(children);
        let r = Reader::new(&src, 0, crate::formats::mp4::FourCc::new(b"stbl"));
        SampleTable::parse(&src, 0, &r)
    }

    #[test]
    fn walks_chunks_durations_ctts_and_sync() {
        let mut c = full(b"stts", &words(&[2, 3, 10, 1, 20]));
        c.extend(full(b"ctts", &words(&[3, 1, 1, 2, 0, 1, 2])));
        c.extend(full(b"stss", &words(&[2, 1, 3])));
        c.extend(full(b"stsz", &words(&[0, 4, 10, 11, 12, 13])));
        c.extend(full(b"stsc", &words(&[2, 1, 1, 1, 2, 3, 1])));
        c.extend(full(b"stco", &words(&[2, 1000, 2000])));
        let t = table(c).unwrap();
        let s: Vec<_> = t.samples().map(|s| s.unwrap()).collect();
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().map(|s| s.offset).collect::<Vec<_>>(), [1000, 2000, 2011, 2023]);
        assert_eq!(s.iter().map(|s| s.dts).collect::<Vec<_>>(), [0, 10, 20, 30]);
        assert_eq!(s.iter().map(|s| s.duration).collect::<Vec<_>>(), [10, 10, 10, 20]);
        assert_eq!(s.iter().map(|s| s.cts_offset).collect::<Vec<_>>(), [1, 0, 0, 2]);
        assert_eq!(s.iter().map(|s| s.sync).collect::<Vec<_>>(), [true, false, true, false]);
        assert_eq!(t.total_duration(), 50);
    }

    #[test]
    fn lying_counts_are_rejected() {
        let c = full(b"stsz", &words(&[0, 1_000_000, 1]));
        assert!(table(c).is_err());
        let c = full(b"stco", &words(&[u32::MAX]));
        assert!(table(c).is_err());
    }

    #[test]
    fn every_table_count_is_checked_against_its_bytes() {
        for (fourcc, entry) in [(b"stts", 8), (b"ctts", 8), (b"stss", 4), (b"stsc", 12), (b"stco", 4), (b"co64", 8)] {
            // One entry's bytes, a count of two, and a count near 2^32.
            for count in [2, u32::MAX] {
                let mut body = count.to_be_bytes().to_vec();
                body.extend(vec![0u8; entry]);
                let err = table(full(fourcc, &body)).unwrap_err();
                assert!(err.to_string().contains("entries of"), "{}: {err}", String::from_utf8_lossy(fourcc));
            }
        }
        let mut stz2 = vec![0, 0, 0, 16];
        stz2.extend_from_slice(&u32::MAX.to_be_bytes());
        stz2.extend([0u8; 6]);
        assert!(table(full(b"stz2", &stz2)).is_err());
    }

    #[test]
    fn co64_offsets_near_2_64_are_an_error_not_a_wrap() {
        let mut c = full(b"stts", &words(&[1, 3, 1]));
        c.extend(full(b"stsz", &words(&[100, 3])));
        c.extend(full(b"stsc", &words(&[1, 1, 3, 1])));
        let mut co64 = 1u32.to_be_bytes().to_vec();
        co64.extend_from_slice(&(u64::MAX - 150).to_be_bytes());
        c.extend(full(b"co64", &co64));
        let t = table(c).unwrap();
        let s: Vec<_> = t.samples().collect();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].as_ref().unwrap().offset, u64::MAX - 150);
        let err = s[1].as_ref().unwrap_err();
        assert!(err.to_string().contains("2^64"), "{err}");
    }

    #[test]
    fn decode_times_past_2_63_are_an_error_not_a_wrap() {
        // 2^32-1 samples of 2^32-1 ticks would pass 2^63 ticks; also a constant size that
        // claims them without a table must not be walked into a wrap.
        let mut c = full(b"stts", &words(&[1, u32::MAX, u32::MAX]));
        c.extend(full(b"stsz", &words(&[1, u32::MAX])));
        c.extend(full(b"stsc", &words(&[1, 1, u32::MAX, 1])));
        c.extend(full(b"stco", &words(&[1, 0])));
        let t = table(c).unwrap();
        assert_eq!(t.total_duration(), (u32::MAX as u64) * (u32::MAX as u64));
        let mut cursor = SampleCursor { dts: i64::MAX - 10, ..SampleCursor::default() };
        let first = cursor.next(&t).unwrap();
        assert!(first.unwrap_err().to_string().contains("2^63"));
        assert!(cursor.next(&t).is_none(), "the table ends at the error");
        // Summing entries saturates instead of wrapping.
        let mut many = Vec::new();
        for _ in 0..4 {
            many.extend_from_slice(&[u32::MAX, u32::MAX]);
        }
        let mut words_many = vec![4u32];
        words_many.extend(many);
        let mut c = full(b"stts", &words(&words_many));
        c.extend(full(b"stsz", &words(&[1, u32::MAX])));
        let t = table(c).unwrap();
        assert!(t.total_duration() > 0);
    }

    fn stsc_of(t: &SampleTable) -> Vec<u32> {
        (0..t.stsc.len() / 4).map(|i| be32(&t.stsc, i * 4)).collect()
    }

    #[test]
    fn stsc_repaired_as_ffmpeg_does() {
        let stsc = |entries: &[u32]| {
            let mut w = vec![entries.len() as u32 / 3];
            w.extend_from_slice(entries);
            let mut c = full(b"stts", &words(&[1, 6, 1]));
            c.extend(full(b"stsz", &words(&[0, 6, 1, 2, 3, 4, 5, 6])));
            c.extend(full(b"stsc", &words(&w)));
            c.extend(full(b"stco", &words(&[4, 100, 200, 300, 400])));
            table(c).unwrap()
        };
        // Firefox: every entry (1, 1, 1): entry i stands for chunk i + 1.
        let t = stsc(&[1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(stsc_of(&t), [1, 1, 1, 2, 1, 1, 3, 1, 1]);
        let s: Vec<_> = t.samples().map(|s| s.unwrap().offset).collect();
        assert_eq!(s, [100, 200, 300, 400], "one sample per chunk, the last entry repeating");
        // A valid table is kept as it is (no copy).
        let t = stsc(&[1, 2, 1, 3, 1, 1]);
        assert_eq!(stsc_of(&t), [1, 2, 1, 3, 1, 1]);
        // A middle entry with 0 samples takes the next entry's values for the chunk before it;
        // a last entry with 0 samples is dropped.
        let t = stsc(&[1, 1, 1, 2, 0, 1, 3, 2, 1, 4, 0, 1]);
        assert_eq!(stsc_of(&t), [1, 1, 1, 2, 2, 1, 3, 2, 1]);
        let s: Vec<_> = t.samples().map(|s| s.unwrap().offset).collect();
        assert_eq!(s, [100, 200, 202, 300, 304, 400]);
        // A description index of 0 in the last entry becomes 1; a first_chunk of 0 is raised.
        let t = stsc(&[0, 1, 0]);
        assert_eq!(stsc_of(&t), [1, 1, 1]);
        // Huge first_chunk values do not overflow, and entries past the 4 chunks are
        // refused, as FFmpeg does.
        let c = |entries: &[u32]| {
            let mut w = vec![entries.len() as u32 / 3];
            w.extend_from_slice(entries);
            let mut c = full(b"stsc", &words(&w));
            c.extend(full(b"stco", &words(&[4, 100, 200, 300, 400])));
            table(c)
        };
        assert!(c(&[u32::MAX, 1, 1, u32::MAX, 1, 1]).unwrap_err().to_string().contains("has 4 chunks"));
        assert!(c(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]).is_err(), "5 entries for 4 chunks");
        assert!(c(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]).is_ok(), "the empty 5th is dropped");
    }

    #[test]
    fn short_chunk_table_ends_the_track() {
        let mut c = full(b"stts", &words(&[1, 3, 1]));
        c.extend(full(b"stsz", &words(&[5, 3])));
        c.extend(full(b"stsc", &words(&[1, 1, 1, 1])));
        c.extend(full(b"stco", &words(&[1, 8])));
        let t = table(c).unwrap();
        assert_eq!(t.samples().count(), 1);
    }
}
