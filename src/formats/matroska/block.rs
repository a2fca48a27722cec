//! SimpleBlock and BlockGroup: the frames, timestamps and flags of one block, with Xiph,
//! EBML and fixed-size lacing. Frames are slices of the block's bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::ebml::{children, read_int, read_uint, read_vint, MkvError};
use super::ids;
use super::reader::Element;

/// One block, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub track: u64,
    /// Relative to the Cluster's Timestamp, in timestamp units.
    pub relative_timestamp: i16,
    pub keyframe: bool,
    pub frames: Vec<Bytes>,
    /// BlockDuration, in timestamp units.
    pub duration: Option<u64>,
    /// DiscardPadding, in nanoseconds.
    pub discard_padding_ns: Option<i64>,
}

/// Parses a SimpleBlock or BlockGroup element.
pub fn parse_block(e: &Element) -> Result<Block, MkvError> {
    match e.id {
        ids::SIMPLE_BLOCK => {
            let body = e.data.slice(e.header_len..);
            let (block, flags) = parse_block_body(&body, e.body_offset())?;
            Ok(Block { keyframe: flags & 0x80 != 0, ..block })
        }
        ids::BLOCK_GROUP => {
            let mut block = None;
            let mut duration = None;
            let mut referenced = false;
            let mut discard = None;
            for c in children(e.body(), e.body_offset()) {
                let c = c?;
                match c.id {
                    ids::BLOCK => {
                        let start = (c.offset - e.offset) as usize + c.header_len;
                        let body = e.data.slice(start..start + c.body.len());
                        block = Some(parse_block_body(&body, c.offset + c.header_len as u64)?.0);
                    }
                    ids::BLOCK_DURATION => duration = read_uint(c.body),
                    ids::REFERENCE_BLOCK => referenced = true,
                    ids::DISCARD_PADDING => discard = read_int(c.body),
                    _ => {}
                }
            }
            let block = block.ok_or_else(|| MkvError::invalid("BlockGroup", e.offset, "holds no Block"))?;
            Ok(Block { keyframe: !referenced, duration, discard_padding_ns: discard, ..block })
        }
        other => Err(MkvError::invalid(format!("element 0x{other:X}"), e.offset, "not a block")),
    }
}

/// The common part of SimpleBlock and Block: track, timestamp, flags, frames.
fn parse_block_body(body: &Bytes, offset: u64) -> Result<(Block, u8), MkvError> {
    let bad = |at: usize, reason: &str| MkvError::invalid("block", offset + at as u64, reason.to_string());
    let (track, n) = read_vint(body).ok_or_else(|| bad(0, "track number cut short"))?;
    if body.len() < n + 3 {
        return Err(bad(n, "header cut short"));
    }
    let relative_timestamp = i16::from_be_bytes([body[n], body[n + 1]]);
    let flags = body[n + 2];
    let mut pos = n + 3;
    let lacing = (flags >> 1) & 3;
    let frames = if lacing == 0 {
        vec![body.slice(pos..)]
    } else {
        let count = *body.get(pos).ok_or_else(|| bad(pos, "lace count missing"))? as usize + 1;
        pos += 1;
        let mut sizes = Vec::with_capacity(count);
        // Sizes come from the input: their running sum must stay within the block, checked
        // at each step so that no sum can wrap.
        let mut known = 0usize;
        let mut add = |sizes: &mut Vec<usize>, size: u64, at: usize| -> Result<(), MkvError> {
            let total = usize::try_from(size).ok().and_then(|s| known.checked_add(s));
            match total {
                Some(t) if t <= body.len() => {
                    known = t;
                    sizes.push(size as usize);
                    Ok(())
                }
                _ => Err(bad(at, "lace sizes exceed the block")),
            }
        };
        match lacing {
            1 => {
                // Xiph: each size is a run of 255s and a last byte below 255.
                for _ in 0..count - 1 {
                    let mut size = 0u64;
                    let start = pos;
                    loop {
                        let b = *body.get(pos).ok_or_else(|| bad(pos, "Xiph lace sizes cut short"))?;
                        pos += 1;
                        size += b as u64;
                        if b != 255 {
                            break;
                        }
                    }
                    add(&mut sizes, size, start)?;
                }
            }
            3 => {
                // EBML: the first size, then signed differences.
                let mut first = 0;
                if count > 1 {
                    let rest = body.get(pos..).unwrap_or_default();
                    let (value, l) = read_vint(rest).ok_or_else(|| bad(pos, "EBML lace sizes cut short"))?;
                    add(&mut sizes, value, pos)?;
                    first = value;
                    pos += l;
                }
                // `first` is at most the block length (checked above), a difference at
                // most 2^56: no i64 arithmetic below can overflow.
                let mut size = first as i64;
                for _ in 1..count.saturating_sub(1) {
                    let rest = body.get(pos..).unwrap_or_default();
                    let (raw, l) = read_vint(rest).ok_or_else(|| bad(pos, "EBML lace sizes cut short"))?;
                    let bias = (1i64 << (7 * l - 1)) - 1;
                    size = size
                        .checked_add(raw as i64 - bias)
                        .filter(|&s| s >= 0)
                        .ok_or_else(|| bad(pos, "negative EBML lace size"))?;
                    add(&mut sizes, size as u64, pos)?;
                    pos += l;
                }
            }
            _ => {
                let left = body.len().checked_sub(pos).ok_or_else(|| bad(pos, "lace count past the block"))?;
                let each = left / count;
                if each * count != left {
                    return Err(bad(pos, "fixed-size lacing does not divide the block evenly"));
                }
                for _ in 0..count - 1 {
                    add(&mut sizes, each as u64, pos)?;
                }
            }
        }
        let last = pos
            .checked_add(known)
            .and_then(|end| body.len().checked_sub(end))
            .ok_or_else(|| bad(pos, "lace sizes exceed the block"))?;
        sizes.push(last);
        let mut frames = Vec::with_capacity(count);
        for size in sizes {
            frames.push(body.slice(pos..pos + size));
            pos += size;
        }
        frames
    };
    let block = Block { track, relative_timestamp, keyframe: false, frames, duration: None, discard_padding_ns: None };
    Ok((block, flags))
}

/// Writes a SimpleBlock header (element header included) for one unlaced frame of
/// `frame_len` bytes; the frame itself follows as its own slice.
pub fn simple_block_header(buf: &mut BytesMut, track: u64, relative_timestamp: i16, keyframe: bool, frame_len: usize) {
    let track_len = super::ebml::size_len(track);
    let body_len = track_len + 3 + frame_len;
    super::ebml::put_id(buf, ids::SIMPLE_BLOCK);
    super::ebml::put_size(buf, body_len as u64, super::ebml::size_len(body_len as u64));
    super::ebml::put_size(buf, track, track_len);
    buf.put_i16(relative_timestamp);
    buf.put_u8(if keyframe { 0x80 } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: u32, body: &[u8]) -> Element {
        let mut b = BytesMut::new();
        super::super::ebml::put_element(&mut b, id, body);
        let header_len = b.len() - body.len();
        Element { id, offset: 100, header_len, data: b.freeze() }
    }

    #[test]
    fn lacing_kinds() {
        // Xiph: 3 frames of 2, 256 and 1 bytes.
        let mut body = vec![0x81, 0, 5, 0x82, 2, 2, 255, 1];
        body.extend(vec![7u8; 2 + 256 + 1]);
        let b = parse_block(&element(ids::SIMPLE_BLOCK, &body)).unwrap();
        assert_eq!(b.frames.iter().map(Bytes::len).collect::<Vec<_>>(), [2, 256, 1]);
        assert_eq!(b.relative_timestamp, 5);
        // EBML: 3 frames of 4, 2 and 3 bytes (second size = 4 - 2).
        let mut body = vec![0x82, 0xFF, 0xFE, 0x86, 2, 0x84, 0xBD];
        body.extend([1u8; 9]);
        let b = parse_block(&element(ids::SIMPLE_BLOCK, &body)).unwrap();
        assert_eq!((b.track, b.relative_timestamp, b.keyframe), (2, -2, true));
        assert_eq!(b.frames.iter().map(Bytes::len).collect::<Vec<_>>(), [4, 2, 3]);
        // Fixed: 2 frames of 3 bytes; a remainder is invalid.
        let b = parse_block(&element(ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x04, 1, 1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(b.frames, [Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4, 5, 6])]);
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x04, 1, 1, 2, 3, 4, 5])).is_err());
    }

    #[test]
    fn block_groups_and_damage() {
        let mut body = BytesMut::new();
        super::super::ebml::put_element(&mut body, ids::BLOCK, &[0x81, 0, 10, 0, 9, 9]);
        super::super::ebml::put_uint(&mut body, ids::BLOCK_DURATION, 20);
        super::super::ebml::put_element(&mut body, ids::DISCARD_PADDING, &[0x01, 0x00]);
        let b = parse_block(&element(ids::BLOCK_GROUP, &body)).unwrap();
        assert_eq!((b.keyframe, b.duration, b.discard_padding_ns), (true, Some(20), Some(256)));
        assert_eq!(b.frames, [Bytes::from_static(&[9, 9])]);
        super::super::ebml::put_element(&mut body, ids::REFERENCE_BLOCK, &[0xFF]);
        assert!(!parse_block(&element(ids::BLOCK_GROUP, &body)).unwrap().keyframe);
        for cut in 0..4 {
            let body = [0x81, 0, 0, 0x02][..cut].to_vec();
            assert!(parse_block(&element(ids::SIMPLE_BLOCK, &body)).is_err());
        }
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x02, 3, 200])).is_err());
    }

    /// A block of 256 EBML-laced frames whose 255 coded sizes sum to 2^64 + 10: wrapped,
    /// the sum is 10 and passes a bounds check; the frames then slice far past the block.
    pub(crate) fn wrapping_lace_block() -> Vec<u8> {
        let first = (1u64 << 56) - 2;
        let total = (1u128 << 64) + 10;
        let rest = total - first as u128;
        let (each, extra) = ((rest / 254) as u64, (rest % 254) as u64);
        let mut body = vec![0x81, 0, 0, 0x86, 255];
        body.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]); // 2^56 - 2
                                                                       // The second size as an 8-byte signed difference, then 252 zero differences,
                                                                       // then the last one as a 2-byte difference.
        let raw = (each - first) + ((1u64 << 55) - 1);
        body.push(0x01);
        body.extend(&raw.to_be_bytes()[1..]);
        body.extend(std::iter::repeat_n(0xBFu8, 252));
        let raw = extra + ((1 << 13) - 1);
        body.extend([0x40 | (raw >> 8) as u8, raw as u8]);
        body.extend([0u8; 1500]);
        body
    }

    #[test]
    fn lace_sizes_that_wrap_are_refused() {
        let body = wrapping_lace_block();
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &body)).is_err());
        // 256 frames; a first size of 2^56 - 2 and 254 zero differences.
        let mut body = vec![0x81, 0, 0, 0x06, 255];
        body.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        body.extend(std::iter::repeat_n(0xBFu8, 254));
        body.extend([0u8; 64]);
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &body)).is_err());
        // Sizes each within the block whose sum is not.
        let mut body = vec![0x81, 0, 0, 0x06, 3, 0x80 | 40];
        body.extend([0xBF, 0xBF]);
        body.extend([0u8; 100]);
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &body)).is_err());
        // Xiph sizes of 255 * 255 each.
        let mut body = vec![0x81, 0, 0, 0x02, 254];
        for _ in 0..254 {
            body.extend([255u8; 4]);
            body.push(0);
        }
        assert!(parse_block(&element(ids::SIMPLE_BLOCK, &body)).is_err());
        // Every truncation of a valid laced block is an error or a block, never a panic.
        let mut body = vec![0x82, 0xFF, 0xFE, 0x86, 2, 0x84, 0xBD];
        body.extend([1u8; 9]);
        for cut in 0..body.len() {
            let _ = parse_block(&element(ids::SIMPLE_BLOCK, &body[..cut]));
        }
    }

    #[test]
    fn written_headers_parse() {
        let mut b = BytesMut::new();
        simple_block_header(&mut b, 1, -7, true, 3);
        b.put_slice(&[1, 2, 3]);
        let e = Element { id: ids::SIMPLE_BLOCK, offset: 0, header_len: 2, data: b.freeze() };
        let p = parse_block(&e).unwrap();
        assert_eq!((p.track, p.relative_timestamp, p.keyframe), (1, -7, true));
        assert_eq!(p.frames, [Bytes::from_static(&[1, 2, 3])]);
    }
}
