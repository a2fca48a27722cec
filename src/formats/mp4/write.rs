//! Helpers to write boxes into a `BytesMut`: open a box, write its body, close it (which
//! back-patches the size).

use bytes::{BufMut, BytesMut};

use super::boxes::{Child, Mp4Error, Reader};

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

/// Writes `edts` with one `elst` entry per (segment duration, media time, rate), in
/// version 1 when a value needs 64 bits.
pub fn write_edts(buf: &mut BytesMut, edits: &[(u64, i64, i16)]) {
    let v1 = edits.iter().any(|&(d, m, _)| d > u32::MAX as u64 || m > i32::MAX as i64 || m < i32::MIN as i64);
    let edts = open(buf, b"edts");
    let elst = open_full(buf, b"elst", v1 as u8, 0);
    buf.put_u32(edits.len() as u32);
    for &(d, m, rate) in edits {
        if v1 {
            buf.put_u64(d);
            buf.put_i64(m);
        } else {
            buf.put_u32(d as u32);
            buf.put_i32(m as i32);
        }
        buf.put_i16(rate);
        buf.put_u16(0);
    }
    close(buf, elst);
    close(buf, edts);
}

/// Rewrites an `mvhd`, `tkhd` or `mdhd` box with a new duration and, for `mvhd`/`mdhd`,
/// optionally a new timescale; the rest of the box is copied. Version 1 when a time needs
/// 64 bits or the box was version 1 already.
pub fn rewrite_timed(
    out: &mut BytesMut,
    child: &Child<'_>,
    timescale: Option<u32>,
    duration: u64,
) -> Result<(), Mp4Error> {
    let mut r = child.reader();
    let (version, flags) = r.full_header()?;
    let time = |r: &mut Reader<'_>| if version == 1 { r.u64() } else { r.u32().map(u64::from) };
    let (created, modified) = (time(&mut r)?, time(&mut r)?);
    // tkhd: track_ID and a reserved word; mvhd and mdhd: the timescale.
    let mut fields = vec![r.u32()?];
    if child.fourcc.0 == *b"tkhd" {
        fields.push(r.u32()?);
    } else if let Some(ts) = timescale {
        fields[0] = ts;
    }
    time(&mut r)?;
    let rest = r.bytes(r.remaining())?;
    let v1 = version == 1 || [created, modified, duration].iter().any(|&t| t > u32::MAX as u64);
    let start = open_full(out, &child.fourcc.0, v1 as u8, flags);
    let put = |out: &mut BytesMut, v: u64| if v1 { out.put_u64(v) } else { out.put_u32(v as u32) };
    put(out, created);
    put(out, modified);
    fields.iter().for_each(|&f| out.put_u32(f));
    put(out, duration);
    out.put_slice(rest);
    close(out, start);
    Ok(())
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
