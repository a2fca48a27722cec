//! Box headers, a bounds-checked reader, and the limits every parser here enforces.

use std::fmt;

/// Largest metadata box (moov, moof...) read into memory. A 10-hour recording's moov is a
/// few tens of MiB; anything past this is treated as damage.
pub const MAX_META_BOX: u64 = 512 << 20;
/// Largest `moof`.
pub const MAX_MOOF: u64 = 64 << 20;
/// Deepest box nesting followed.
pub const MAX_DEPTH: usize = 12;
/// Most tracks in one movie.
pub const MAX_TRACKS: usize = 64;
/// Most samples in one track fragment run, and in all the runs of one `moof`.
pub const MAX_TRUN_SAMPLES: u32 = 1 << 20;
/// Largest single sample accepted (a 4K intra frame is a few MiB).
pub const MAX_SAMPLE_SIZE: u32 = 256 << 20;

/// The kind of a [`crate::formats::ContainerEvent::Skipped`] region that is damaged input
/// rather than a box: no real box is named with characters other than letters, digits and
/// spaces, so this cannot clash with one.
pub const DAMAGED: FourCc = FourCc(*b"????");

/// A box type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const fn new(b: &[u8; 4]) -> Self {
        FourCc(*b)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// Everything that can be wrong with MP4 input. Offsets are absolute input offsets.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Mp4Error {
    #[error("invalid {what} at byte offset {offset}: {reason}")]
    Invalid { what: String, offset: u64, reason: String },
    #[error("{what} at byte offset {offset} is {size} bytes, over the limit of {limit}")]
    TooLarge { what: String, offset: u64, size: u64, limit: u64 },
    #[error("unsupported {what} at byte offset {offset}: {reason}")]
    Unsupported { what: String, offset: u64, reason: String },
}

impl Mp4Error {
    pub fn invalid(what: impl fmt::Display, offset: u64, reason: impl Into<String>) -> Self {
        Mp4Error::Invalid { what: what.to_string(), offset, reason: reason.into() }
    }

    /// The absolute offset the error points at.
    pub fn offset(&self) -> u64 {
        match self {
            Mp4Error::Invalid { offset, .. }
            | Mp4Error::TooLarge { offset, .. }
            | Mp4Error::Unsupported { offset, .. } => *offset,
        }
    }
}

/// A parsed box header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    pub fourcc: FourCc,
    pub header_len: u32,
    /// Total size including the header; `None` for size 0 ("to the end of the file").
    pub size: Option<u64>,
}

/// Result of looking at the bytes where a box header should be.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderParse {
    Header(BoxHeader),
    NeedMore,
}

/// Parses a box header at the start of `data`, which starts at absolute `offset`.
pub fn parse_header(data: &[u8], offset: u64) -> Result<HeaderParse, Mp4Error> {
    if data.len() < 8 {
        return Ok(HeaderParse::NeedMore);
    }
    let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let fourcc = FourCc([data[4], data[5], data[6], data[7]]);
    let (size, header_len) = match size32 {
        0 => (None, 8),
        1 => {
            if data.len() < 16 {
                return Ok(HeaderParse::NeedMore);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[8..16]);
            (Some(u64::from_be_bytes(b)), 16)
        }
        n => (Some(n as u64), 8),
    };
    let header_len = if fourcc.0 == *b"uuid" { header_len + 16 } else { header_len };
    if let Some(size) = size {
        if size < header_len as u64 {
            return Err(Mp4Error::invalid(
                format!("'{fourcc}' box"),
                offset,
                format!("size {size} is smaller than its {header_len}-byte header"),
            ));
        }
    }
    if data.len() < header_len as usize {
        return Ok(HeaderParse::NeedMore);
    }
    Ok(HeaderParse::Header(BoxHeader { fourcc, header_len, size }))
}

/// Top-level box types that may open an MP4 or MOV file.
pub fn is_plausible_top_level(fourcc: &[u8]) -> bool {
    matches!(
        fourcc,
        b"ftyp" | b"styp" | b"moov" | b"mdat" | b"free" | b"skip" | b"wide" | b"pnot" | b"uuid" | b"moof" | b"sidx"
    )
}

/// A bounds-checked big-endian reader over a box body. Every read names what it reads so
/// errors point at the field; `base` is the absolute offset of `data[0]`.
#[derive(Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    what: FourCc,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], base: u64, what: FourCc) -> Self {
        Reader { data, pos: 0, base, what }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn error(&self, reason: impl Into<String>) -> Mp4Error {
        Mp4Error::invalid(format!("'{}' box", self.what), self.offset(), reason)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        if self.remaining() < n {
            return Err(self.error(format!("needs {n} more bytes, only {} left in the box", self.remaining())));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(drop)
    }

    pub fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Mp4Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, Mp4Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self) -> Result<i32, Mp4Error> {
        Ok(self.u32()? as i32)
    }

    pub fn u64(&mut self) -> Result<u64, Mp4Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn fourcc(&mut self) -> Result<FourCc, Mp4Error> {
        let b = self.bytes(4)?;
        Ok(FourCc([b[0], b[1], b[2], b[3]]))
    }

    /// Version and flags of a full box.
    pub fn full_header(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    /// Checks that `count` entries of `entry_size` bytes fit in what is left, so that a
    /// lying count cannot make a caller allocate or loop past the data.
    pub fn check_entries(&self, count: u64, entry_size: usize, field: &str) -> Result<usize, Mp4Error> {
        let need = count.saturating_mul(entry_size as u64);
        if need > self.remaining() as u64 {
            return Err(self.error(format!(
                "{field} = {count} entries of {entry_size} bytes, but only {} bytes remain",
                self.remaining()
            )));
        }
        Ok(count as usize)
    }

    /// Iterates the child boxes of the rest of the data.
    pub fn children(&self) -> Children<'a> {
        Children { data: &self.data[self.pos..], pos: 0, base: self.offset() }
    }
}

/// A child box: its header and body.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    pub fourcc: FourCc,
    /// Absolute offset of the box start.
    pub offset: u64,
    pub header_len: usize,
    /// The whole box.
    pub data: &'a [u8],
}

impl<'a> Child<'a> {
    pub fn body(&self) -> &'a [u8] {
        &self.data[self.header_len..]
    }

    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.body(), self.offset + self.header_len as u64, self.fourcc)
    }

    /// Range of the box within the buffer its parent was read from, given the parent's start.
    pub fn range_in(&self, buffer_offset: u64) -> std::ops::Range<usize> {
        let start = (self.offset - buffer_offset) as usize;
        start..start + self.data.len()
    }
}

/// Iterator over the boxes packed in a byte range. A box whose size runs past the range is
/// an error (inside a complete parent there is no "need more").
pub struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let offset = self.base + self.pos as u64;
        // QuickTime allows a 4-byte zero terminator at the end of some containers.
        if rest.len() < 8 {
            self.pos = self.data.len();
            if rest.iter().all(|&b| b == 0) {
                return None;
            }
            return Some(Err(Mp4Error::invalid("box", offset, "trailing bytes too short for a box")));
        }
        let header = match parse_header(rest, offset) {
            Ok(HeaderParse::Header(h)) => h,
            Ok(HeaderParse::NeedMore) => {
                self.pos = self.data.len();
                return Some(Err(Mp4Error::invalid("box", offset, "header cut by the end of its parent")));
            }
            Err(e) => {
                self.pos = self.data.len();
                return Some(Err(e));
            }
        };
        let size = header.size.unwrap_or(rest.len() as u64);
        if size > rest.len() as u64 {
            self.pos = self.data.len();
            return Some(Err(Mp4Error::invalid(
                format!("'{}' box", header.fourcc),
                offset,
                format!("size {size} runs past the end of its parent ({} bytes left)", rest.len()),
            )));
        }
        let size = size as usize;
        self.pos += size;
        Some(Ok(Child { fourcc: header.fourcc, offset, header_len: header.header_len as usize, data: &rest[..size] }))
    }
}

/// Finds the first child of the given type.
pub fn find_child<'a>(reader: &Reader<'a>, fourcc: &[u8; 4]) -> Result<Option<Child<'a>>, Mp4Error> {
    for child in reader.children() {
        let child = child?;
        if child.fourcc.0 == *fourcc {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_more_then_parses() {
        let b = [0, 0, 0, 16, b'f', b't', b'y', b'p'];
        for n in 0..8 {
            assert_eq!(parse_header(&b[..n], 0).unwrap(), HeaderParse::NeedMore);
        }
        let HeaderParse::Header(h) = parse_header(&b, 0).unwrap() else { panic!() };
        assert_eq!(h.size, Some(16));
        assert_eq!(h.header_len, 8);
    }

    #[test]
    fn large_size_and_size_zero() {
        let mut b = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        b.extend_from_slice(&(1u64 << 33).to_be_bytes());
        assert_eq!(parse_header(&b[..12], 0).unwrap(), HeaderParse::NeedMore);
        let HeaderParse::Header(h) = parse_header(&b, 0).unwrap() else { panic!() };
        assert_eq!((h.size, h.header_len), (Some(1 << 33), 16));
        let HeaderParse::Header(h) = parse_header(&[0, 0, 0, 0, b'm', b'd', b'a', b't'], 0).unwrap() else { panic!() };
        assert_eq!(h.size, None);
    }

    #[test]
    fn size_smaller_than_header_is_invalid_with_offset() {
        let err = parse_header(&[0, 0, 0, 4, b'm', b'o', b'o', b'v'], 100).unwrap_err();
        assert_eq!(err.offset(), 100);
    }

    #[test]
    fn children_reject_overrun() {
        let data = [0, 0, 0, 20, b'a', b'b', b'c', b'd', 0, 0];
        let r = Reader::new(&data, 0, FourCc::new(b"test"));
        let items: Vec<_> = r.children().collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }

    #[test]
    fn reader_checks_entry_counts() {
        let data = [0u8; 16];
        let r = Reader::new(&data, 0, FourCc::new(b"stsz"));
        assert!(r.check_entries(4, 4, "sample_count").is_ok());
        assert!(r.check_entries(5, 4, "sample_count").is_err());
        assert!(r.check_entries(u64::MAX, 4, "sample_count").is_err());
    }
}
