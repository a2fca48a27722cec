//! EBML, the binary format under Matroska (RFC 8794): variable-length integers, element
//! headers, typed element bodies, and the same for writing.

use std::fmt;

use bytes::{BufMut, BytesMut};

/// Longest element ID livemux reads (Matroska's EBMLMaxIDLength).
pub const MAX_ID_LEN: usize = 4;
/// Longest size field (Matroska's EBMLMaxSizeLength).
pub const MAX_SIZE_LEN: usize = 8;
/// Longest element header.
pub const MAX_HEADER_LEN: usize = MAX_ID_LEN + MAX_SIZE_LEN;
/// The 8-byte "unknown size" marker, written for a Segment while it grows.
pub const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Why bytes are not valid Matroska.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkvError {
    #[error("{what} at byte {offset}: {reason}")]
    Invalid { what: String, offset: u64, reason: String },
    #[error("{what} at byte {offset} declares {size} bytes, more than the {limit} livemux accepts")]
    TooLarge { what: String, offset: u64, size: u64, limit: u64 },
}

impl MkvError {
    pub fn invalid(what: impl fmt::Display, offset: u64, reason: impl Into<String>) -> Self {
        MkvError::Invalid { what: what.to_string(), offset, reason: reason.into() }
    }

    pub fn offset(&self) -> u64 {
        match self {
            MkvError::Invalid { offset, .. } | MkvError::TooLarge { offset, .. } => *offset,
        }
    }
}

/// An element header: ID (with its length marker, as written), size, and header length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u32,
    /// `None` for "unknown size" (all value bits set).
    pub size: Option<u64>,
    pub header_len: usize,
}

impl Header {
    /// Total length, when the size is known.
    pub fn total(&self) -> Option<u64> {
        self.size.and_then(|s| s.checked_add(self.header_len as u64))
    }
}

/// Result of reading a header from the bytes at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    Header(Header),
    /// The bytes end inside the header.
    NeedMore,
}

/// Length of a vint from its first byte (1..=8), or `None` for a zero byte.
fn vint_len(first: u8) -> Option<usize> {
    (first != 0).then(|| first.leading_zeros() as usize + 1)
}

/// Reads an element header at `data[0]`, which is at byte `offset` of the input.
pub fn parse_header(data: &[u8], offset: u64) -> Result<HeaderParse, MkvError> {
    let Some(&first) = data.first() else { return Ok(HeaderParse::NeedMore) };
    let id_len = match vint_len(first) {
        Some(n) if n <= MAX_ID_LEN => n,
        _ => return Err(MkvError::invalid("element ID", offset, format!("byte 0x{first:02X} cannot start an ID"))),
    };
    let Some(size_first) = data.get(id_len).copied() else { return Ok(HeaderParse::NeedMore) };
    let size_len = vint_len(size_first)
        .ok_or_else(|| MkvError::invalid("element size", offset + id_len as u64, "a size cannot start with 0x00"))?;
    let header_len = id_len + size_len;
    if data.len() < header_len {
        return Ok(HeaderParse::NeedMore);
    }
    let id = data[..id_len].iter().fold(0u32, |acc, &b| (acc << 8) | b as u32);
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let mut value = (size_first & mask) as u64;
    let mut all_ones = (size_first & mask) == mask;
    for &b in &data[id_len + 1..header_len] {
        value = (value << 8) | b as u64;
        all_ones &= b == 0xFF;
    }
    // A reserved all-ones ID ("0xFF", "0x7FFF"...) is not an element.
    if id_len == 1 && first == 0xFF {
        return Err(MkvError::invalid("element ID", offset, "0xFF is reserved"));
    }
    let size = if all_ones { None } else { Some(value) };
    Ok(HeaderParse::Header(Header { id, size, header_len }))
}

/// Reads a vint that is a value (lacing sizes, block track numbers): `(value, length)`.
pub fn read_vint(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let len = vint_len(first)?;
    if data.len() < len {
        return None;
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let value = data[1..len].iter().fold((first & mask) as u64, |acc, &b| (acc << 8) | b as u64);
    Some((value, len))
}

/// An unsigned integer body (0 to 8 bytes, big-endian).
pub fn read_uint(body: &[u8]) -> Option<u64> {
    (body.len() <= 8).then(|| body.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
}

/// A signed integer body.
pub fn read_int(body: &[u8]) -> Option<i64> {
    let v = read_uint(body)?;
    if body.is_empty() {
        return Some(0);
    }
    let shift = 64 - 8 * body.len() as u32;
    Some(((v << shift) as i64) >> shift)
}

/// A float body (0, 4 or 8 bytes).
pub fn read_float(body: &[u8]) -> Option<f64> {
    match body.len() {
        0 => Some(0.0),
        4 => Some(f32::from_be_bytes(body.try_into().ok()?) as f64),
        8 => Some(f64::from_be_bytes(body.try_into().ok()?)),
        _ => None,
    }
}

/// A string body, up to its first NUL.
pub fn read_string(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// A child element read from a complete master element's body.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    pub id: u32,
    /// Absolute offset of the child's header.
    pub offset: u64,
    pub header_len: usize,
    pub body: &'a [u8],
}

impl<'a> Child<'a> {
    /// The whole child, header included.
    pub fn whole(&self, parent_body: &'a [u8], parent_body_offset: u64) -> &'a [u8] {
        let start = (self.offset - parent_body_offset) as usize;
        &parent_body[start..start + self.header_len + self.body.len()]
    }
}

/// The children of a master element whose body is complete. An unknown size or a child
/// that runs past the body is an error (the parent's own size bounds it).
pub fn children(body: &[u8], body_offset: u64) -> Children<'_> {
    Children { body, pos: 0, base: body_offset }
}

pub struct Children<'a> {
    body: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, MkvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.body.len() {
            return None;
        }
        let offset = self.base + self.pos as u64;
        let rest = &self.body[self.pos..];
        let h = match parse_header(rest, offset) {
            Ok(HeaderParse::Header(h)) => h,
            Ok(HeaderParse::NeedMore) => {
                self.pos = self.body.len();
                return Some(Err(MkvError::invalid("element", offset, "header cut by the end of its parent")));
            }
            Err(e) => {
                self.pos = self.body.len();
                return Some(Err(e));
            }
        };
        let size = match h.size {
            Some(s) if s <= (rest.len() - h.header_len) as u64 => s as usize,
            _ => {
                self.pos = self.body.len();
                return Some(Err(MkvError::invalid(
                    format!("element 0x{:X}", h.id),
                    offset,
                    "size runs past the end of its parent",
                )));
            }
        };
        self.pos += h.header_len + size;
        Some(Ok(Child { id: h.id, offset, header_len: h.header_len, body: &rest[h.header_len..h.header_len + size] }))
    }
}

// ---- writing ----

/// Bytes of an ID as written (its marker bits are part of the value).
pub fn id_len(id: u32) -> usize {
    match id {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

pub fn put_id(buf: &mut BytesMut, id: u32) {
    let n = id_len(id);
    buf.put_slice(&id.to_be_bytes()[4 - n..]);
}

/// Shortest vint length for a size (all-ones values are reserved for "unknown").
pub fn size_len(size: u64) -> usize {
    (1..=8).find(|&n| size < (1u64 << (7 * n)) - 1).unwrap_or(8)
}

/// Writes `size` as a vint of exactly `len` bytes (`len` must be at least [`size_len`]).
pub fn put_size(buf: &mut BytesMut, size: u64, len: usize) {
    debug_assert!((1..=8).contains(&len) && size < (1u64 << (7 * len)) - 1);
    let v = size | (1u64 << (7 * len));
    buf.put_slice(&v.to_be_bytes()[8 - len..]);
}

/// Shortest encoding of an unsigned integer body.
pub fn uint_len(v: u64) -> usize {
    ((64 - v.leading_zeros() as usize).div_ceil(8)).max(1)
}

/// Writes a whole element with the given body.
pub fn put_element(buf: &mut BytesMut, id: u32, body: &[u8]) {
    put_id(buf, id);
    put_size(buf, body.len() as u64, size_len(body.len() as u64));
    buf.put_slice(body);
}

pub fn put_uint(buf: &mut BytesMut, id: u32, v: u64) {
    let n = uint_len(v);
    put_element(buf, id, &v.to_be_bytes()[8 - n..]);
}

pub fn put_float(buf: &mut BytesMut, id: u32, v: f64) {
    put_element(buf, id, &v.to_be_bytes());
}

pub fn put_string(buf: &mut BytesMut, id: u32, s: &str) {
    put_element(buf, id, s.as_bytes());
}

/// Writes a master element whose body `fill` writes.
pub fn put_master(buf: &mut BytesMut, id: u32, fill: impl FnOnce(&mut BytesMut)) {
    let mut body = BytesMut::new();
    fill(&mut body);
    put_element(buf, id, &body);
}

/// Writes a Void element of exactly `total` bytes (at least 2).
pub fn put_void(buf: &mut BytesMut, total: usize) {
    debug_assert!(total >= 2);
    let len = (1..=8).find(|&n| total > n && ((total - 1 - n) as u64) < (1u64 << (7 * n)) - 1).unwrap_or(8);
    buf.put_u8(super::ids::VOID as u8);
    put_size(buf, (total - 1 - len) as u64, len);
    buf.put_bytes(0, total - 1 - len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_sizes_and_unknown_sizes() {
        let h = parse_header(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F], 0).unwrap();
        assert_eq!(h, HeaderParse::Header(Header { id: 0x1A45DFA3, size: Some(31), header_len: 5 }));
        let h = parse_header(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 0).unwrap();
        assert_eq!(h, HeaderParse::Header(Header { id: 0x18538067, size: None, header_len: 12 }));
        assert_eq!(parse_header(&[0x1F, 0x43, 0xB6, 0x75, 0xFF], 0).unwrap(), {
            HeaderParse::Header(Header { id: 0x1F43B675, size: None, header_len: 5 })
        });
        assert_eq!(parse_header(&[0x1F, 0x43, 0xB6], 0).unwrap(), HeaderParse::NeedMore);
        assert_eq!(parse_header(&[0x1F, 0x43, 0xB6, 0x75, 0x01, 0], 0).unwrap(), HeaderParse::NeedMore);
        assert!(parse_header(&[0x00, 0x81], 7).is_err_and(|e| e.offset() == 7));
        assert!(parse_header(&[0x08, 0, 0, 0, 0, 0x81], 0).is_err());
        assert!(parse_header(&[0xA3, 0x00], 3).is_err_and(|e| e.offset() == 4));
    }

    #[test]
    fn writing_reads_back() {
        for size in [0u64, 1, 126, 127, 16382, 16383, 1 << 40] {
            let mut b = BytesMut::new();
            put_id(&mut b, 0xA3);
            put_size(&mut b, size, size_len(size));
            let HeaderParse::Header(h) = parse_header(&b, 0).unwrap() else { panic!() };
            assert_eq!((h.id, h.size), (0xA3, Some(size)), "size {size}");
        }
        let mut b = BytesMut::new();
        put_uint(&mut b, 0x2AD7B1, 1_000_000);
        assert_eq!(&b[..], &[0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        assert_eq!(read_int(&[0xFF, 0xFE]), Some(-2));
        for total in [2usize, 3, 9, 10, 130, 200, 20000] {
            let mut b = BytesMut::new();
            put_void(&mut b, total);
            assert_eq!(b.len(), total);
            let HeaderParse::Header(h) = parse_header(&b, 0).unwrap() else { panic!() };
            assert_eq!(h.total(), Some(total as u64));
        }
    }
}
