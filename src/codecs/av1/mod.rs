//! AV1: the `av1C` configuration record, OBU framing and sequence header parsing.
//!
//! - [`Av1Config`] is the AV1CodecConfigurationRecord of "AV1 Codec ISO Media File Format
//!   Binding" (AV1-ISOBMFF) §2.3, configOBUs included.
//! - [`obus`] walks a low-overhead bitstream (AV1 specification §5.2, OBU syntax §5.3,
//!   leb128 §4.10.5); [`parse_sequence_header`] reads `sequence_header_obu()` (§5.5)
//!   including `color_config()` (§5.5.2), enough to build an `av1C` and get the frame size.
//! - [`is_keyframe`] reads the start of the first frame header (§5.9.2) of a temporal unit.
//!
//! Split by concern: OBU framing here, [`seq`] (sequence header), [`config`] (`av1C`).
//! Bits are read with [`super::bits`].

pub mod config;
pub mod seq;
#[cfg(test)]
mod tests;

use std::ops::Range;

pub use self::config::Av1Config;
#[cfg(any(test, feature = "internals"))]
pub use self::seq::parse_sequence_header;
pub use self::seq::{config_from_sequence_header, dimensions_from_sequence_header};
#[cfg(any(test, feature = "internals"))]
use super::bits::BitReader;
use super::CodecError;

pub const OBU_SEQUENCE_HEADER: u8 = 1;
#[cfg(test)]
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
#[cfg(any(test, feature = "internals"))]
pub const OBU_FRAME_HEADER: u8 = 3;
#[cfg(any(test, feature = "internals"))]
pub const OBU_FRAME: u8 = 6;

const WHAT_OBU: &str = "AV1 OBU";

/// Reads a leb128 value (AV1 §4.10.5): at most 8 bytes, value at most 2^32 - 1.
/// Returns the value and the number of bytes it took.
pub fn read_leb128(data: &[u8]) -> Result<(u32, usize), CodecError> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(i).ok_or(CodecError::Truncated { what: WHAT_OBU, len: data.len(), need: i + 1 })?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).map(|v| (v, i + 1)).map_err(|_| CodecError::Invalid {
                what: WHAT_OBU,
                reason: format!("leb128 value {value} exceeds 2^32 - 1"),
            });
        }
    }
    Err(CodecError::Invalid { what: WHAT_OBU, reason: "leb128 value longer than 8 bytes".into() })
}

/// Appends `value` as leb128 in the fewest bytes.
pub fn write_leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One OBU located in a buffer. Ranges are relative to the buffer given to [`obus`] or
/// [`parse_obu`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obu {
    pub obu_type: u8,
    pub temporal_id: u8,
    pub spatial_id: u8,
    pub has_size_field: bool,
    /// The whole OBU: header, size field and payload.
    pub range: Range<usize>,
    pub payload: Range<usize>,
}

/// Parses the OBU at the start of `data`. Without `obu_has_size_field` the OBU runs to
/// the end of `data`.
pub fn parse_obu(data: &[u8]) -> Result<Obu, CodecError> {
    parse_obu_inner(data, false)
}

/// With `clamp`, a payload that runs past the end of `data` is cut to what is there.
fn parse_obu_inner(data: &[u8], clamp: bool) -> Result<Obu, CodecError> {
    let header = *data.first().ok_or(CodecError::Truncated { what: WHAT_OBU, len: 0, need: 1 })?;
    if header & 0x80 != 0 {
        return Err(CodecError::Invalid { what: WHAT_OBU, reason: "obu_forbidden_bit is set".into() });
    }
    let obu_type = (header >> 3) & 0x0f;
    let has_extension = header & 0x04 != 0;
    let has_size_field = header & 0x02 != 0;
    let (mut temporal_id, mut spatial_id) = (0, 0);
    let mut pos = 1;
    if has_extension {
        let ext = *data.get(1).ok_or(CodecError::Truncated { what: WHAT_OBU, len: data.len(), need: 2 })?;
        temporal_id = ext >> 5;
        spatial_id = (ext >> 3) & 3;
        pos = 2;
    }
    let payload = if has_size_field {
        let (size, n) = read_leb128(&data[pos..])?;
        let start = pos + n;
        let mut end = start.saturating_add(size as usize);
        if clamp {
            end = end.min(data.len());
        }
        if end > data.len() {
            return Err(CodecError::Truncated { what: WHAT_OBU, len: data.len(), need: end });
        }
        start..end
    } else {
        pos..data.len()
    };
    Ok(Obu { obu_type, temporal_id, spatial_id, has_size_field, range: 0..payload.end, payload })
}

/// Iterator over the OBUs of a low-overhead bitstream; a malformed OBU yields one error
/// and ends the iteration.
#[derive(Clone, Debug)]
pub struct Obus<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

/// Iterates over the OBUs in `data`.
pub fn obus(data: &[u8]) -> Obus<'_> {
    Obus { data, pos: 0, done: false }
}

impl Iterator for Obus<'_> {
    type Item = Result<Obu, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        match parse_obu(&self.data[self.pos..]) {
            Ok(mut obu) => {
                let base = self.pos;
                obu.range = base + obu.range.start..base + obu.range.end;
                obu.payload = base + obu.payload.start..base + obu.payload.end;
                self.pos = obu.range.end;
                Some(Ok(obu))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The range of the first sequence header OBU (type 1) in a low-overhead OBU stream,
/// header and size field included. `None` when there is none or the stream is malformed
/// before it.
pub fn sequence_header_from_obus(data: &[u8]) -> Option<Range<usize>> {
    for obu in obus(data) {
        let obu = obu.ok()?;
        if obu.obu_type == OBU_SEQUENCE_HEADER {
            return Some(obu.range);
        }
    }
    None
}

/// Whether a temporal unit starts with a shown key frame (the AV1-ISOBMFF sync sample
/// condition), judged from its first frame header. A sequence header in the unit is used
/// for `reduced_still_picture_header`; without one, a full header is assumed. A frame
/// that shows an existing frame counts as not a key frame. `None` when no frame header
/// is found or the unit is malformed before it. Best effort.
#[cfg(any(test, feature = "internals"))]
pub fn is_keyframe(temporal_unit: &[u8]) -> Option<bool> {
    let mut reduced_still_picture_header = false;
    let mut pos = 0;
    while pos < temporal_unit.len() {
        // A truncated OBU is still good enough to read a frame header's first bits.
        let rest = &temporal_unit[pos..];
        let obu = parse_obu_inner(rest, true).ok()?;
        let payload = &rest[obu.payload];
        match obu.obu_type {
            OBU_SEQUENCE_HEADER => {
                reduced_still_picture_header = parse_sequence_header(payload).ok()?.reduced_still_picture_header;
            }
            OBU_FRAME_HEADER | OBU_FRAME => {
                if reduced_still_picture_header {
                    return Some(true);
                }
                let mut r = BitReader::new(payload, "AV1 frame header");
                if r.read_bit().ok()? {
                    return Some(false); // show_existing_frame
                }
                let frame_type = r.read_bits(2).ok()?;
                let show_frame = r.read_bit().ok()?;
                return Some(frame_type == 0 && show_frame);
            }
            _ => {}
        }
        pos += obu.range.end;
    }
    None
}
