//! Helpers to write boxes into a `BytesMut`: open a box, write its body, close it (which
//! back-patches the size).

use bytes::{BufMut, BytesMut};

/// Writes a box header with a placeholder size; returns where the box starts.
pub fn open(buf: &mut BytesMut, fourcc: &[u8; 4]) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    start
}

/// Writes a full-box header with a placeholder size; returns where the box starts.
pub fn open_full(buf: &mut BytesMut, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = open(buf, fourcc);
    buf.put_u32(((version as u32) << 24) | (flags & 0x00FF_FFFF));
    start
}

/// Patches the size of the box opened at `start`.
pub fn close(buf: &mut BytesMut, start: usize) {
    let size = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a whole box with the given body.
pub fn leaf(buf: &mut BytesMut, fourcc: &[u8; 4], body: &[u8]) {
    let start = open(buf, fourcc);
    buf.put_slice(body);
    close(buf, start);
}

/// The identity transformation matrix of mvhd and tkhd.
pub const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

pub fn put_matrix(buf: &mut BytesMut) {
    for v in UNITY_MATRIX {
        buf.put_u32(v);
    }
}

/// Packs an ISO 639-2/T code as mdhd stores it.
pub fn pack_language(lang: [u8; 3]) -> u16 {
    if !lang.iter().all(|c| c.is_ascii_lowercase()) {
        return pack_language(*b"und");
    }
    lang.iter().fold(0u16, |acc, &c| (acc << 5) | (c - 0x60) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_patched() {
        let mut b = BytesMut::new();
        let outer = open(&mut b, b"moov");
        leaf(&mut b, b"free", &[1, 2, 3]);
        close(&mut b, outer);
        assert_eq!(&b[..4], &[0, 0, 0, 19]);
        assert_eq!(&b[8..12], &[0, 0, 0, 11]);
    }

    #[test]
    fn language_packing() {
        assert_eq!(pack_language(*b"und"), 0x55C4);
        assert_eq!(pack_language(*b"eng"), 0x15C7);
        assert_eq!(pack_language([0, 0, 0]), 0x55C4);
    }
}
