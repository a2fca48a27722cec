//! AV1: the `av1C` configuration record, OBU framing and sequence header parsing.
//!
//! - [`Av1Config`] is the AV1CodecConfigurationRecord of "AV1 Codec ISO Media File Format
//!   Binding" (AV1-ISOBMFF) §2.3, configOBUs included.
//! - [`obus`] walks a low-overhead bitstream (AV1 specification §5.2, OBU syntax §5.3,
//!   leb128 §4.10.5); [`parse_sequence_header`] reads `sequence_header_obu()` (§5.5)
//!   including `color_config()` (§5.5.2), enough to build an `av1C` and get the frame size.
//! - [`is_keyframe`] reads the start of the first frame header (§5.9.2) of a temporal unit.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::bits::BitReader;
use super::{CodecError, Dimensions};

pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
pub const OBU_FRAME_HEADER: u8 = 3;
pub const OBU_TILE_GROUP: u8 = 4;
pub const OBU_METADATA: u8 = 5;
pub const OBU_FRAME: u8 = 6;
pub const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
pub const OBU_PADDING: u8 = 15;

const WHAT_AV1C: &str = "av1C";
const WHAT_OBU: &str = "AV1 OBU";
const WHAT_SEQ: &str = "AV1 sequence header";

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

/// An operating point of a sequence header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatingPoint {
    pub idc: u16,
    pub seq_level_idx: u8,
    pub seq_tier: u8,
}

/// `color_config()` (AV1 §5.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorConfig {
    pub bit_depth: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub mono_chrome: bool,
    pub color_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
    pub color_range: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub separate_uv_delta_q: bool,
}

/// The fields of `sequence_header_obu()` (AV1 §5.5) that livemux uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceHeader {
    pub seq_profile: u8,
    pub still_picture: bool,
    pub reduced_still_picture_header: bool,
    pub timing_info_present: bool,
    pub decoder_model_info_present: bool,
    pub operating_points: Vec<OperatingPoint>,
    pub max_frame_width: u32,
    pub max_frame_height: u32,
    pub frame_id_numbers_present: bool,
    pub enable_order_hint: bool,
    pub color: ColorConfig,
    pub film_grain_params_present: bool,
}

/// uvlc() of AV1 §4.10.3.
fn read_uvlc(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let mut leading_zeros = 0u32;
    while !r.read_bit()? {
        leading_zeros += 1;
        if leading_zeros >= 32 {
            return Ok(u32::MAX);
        }
    }
    let value = r.read_bits(leading_zeros)?;
    Ok((u64::from(value) + (1u64 << leading_zeros) - 1).min(u64::from(u32::MAX)) as u32)
}

/// Parses the payload of a sequence header OBU (without the OBU header).
pub fn parse_sequence_header(payload: &[u8]) -> Result<SequenceHeader, CodecError> {
    let mut r = BitReader::new(payload, WHAT_SEQ);
    let seq_profile = r.read_u8(3)?;
    if seq_profile > 2 {
        return Err(CodecError::Invalid { what: WHAT_SEQ, reason: format!("seq_profile {seq_profile} is reserved") });
    }
    let still_picture = r.read_bit()?;
    let reduced_still_picture_header = r.read_bit()?;
    let mut timing_info_present = false;
    let mut decoder_model_info_present = false;
    let mut operating_points = Vec::new();
    if reduced_still_picture_header {
        let seq_level_idx = r.read_u8(5)?;
        operating_points.push(OperatingPoint { idc: 0, seq_level_idx, seq_tier: 0 });
    } else {
        timing_info_present = r.read_bit()?;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.skip_bits(64)?; // num_units_in_display_tick, time_scale
            if r.read_bit()? {
                // equal_picture_interval
                read_uvlc(&mut r)?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.read_bit()?;
            if decoder_model_info_present {
                buffer_delay_length = r.read_bits(5)? as usize + 1;
                r.skip_bits(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.read_bit()?;
        let count = r.read_bits(5)? + 1;
        for _ in 0..count {
            let idc = r.read_bits(12)? as u16;
            let seq_level_idx = r.read_u8(5)?;
            let seq_tier = if seq_level_idx > 7 { r.read_u8(1)? } else { 0 };
            if decoder_model_info_present && r.read_bit()? {
                // operating_parameters_info(): decoder/encoder buffer delay, low_delay_mode_flag
                r.skip_bits(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay_present && r.read_bit()? {
                r.skip_bits(4)?;
            }
            operating_points.push(OperatingPoint { idc, seq_level_idx, seq_tier });
        }
    }
    let frame_width_bits = r.read_bits(4)? + 1;
    let frame_height_bits = r.read_bits(4)? + 1;
    let max_frame_width = u64::from(r.read_bits(frame_width_bits)?) + 1;
    let max_frame_height = u64::from(r.read_bits(frame_height_bits)?) + 1;
    let frame_id_numbers_present = !reduced_still_picture_header && r.read_bit()?;
    if frame_id_numbers_present {
        r.skip_bits(4 + 3)?;
    }
    r.skip_bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    let mut enable_order_hint = false;
    if !reduced_still_picture_header {
        r.skip_bits(4)?; // interintra, masked compound, warped motion, dual filter
        enable_order_hint = r.read_bit()?;
        if enable_order_hint {
            r.skip_bits(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let seq_choose_screen_content_tools = r.read_bit()?;
        let seq_force_screen_content_tools = if seq_choose_screen_content_tools { 2 } else { r.read_u8(1)? };
        if seq_force_screen_content_tools > 0 && !r.read_bit()? {
            r.skip_bits(1)?; // seq_force_integer_mv
        }
        if enable_order_hint {
            r.skip_bits(3)?; // order_hint_bits_minus_1
        }
    }
    r.skip_bits(3)?; // enable_superres, enable_cdef, enable_restoration
    let color = parse_color_config(&mut r, seq_profile)?;
    let film_grain_params_present = r.read_bit()?;
    Ok(SequenceHeader {
        seq_profile,
        still_picture,
        reduced_still_picture_header,
        timing_info_present,
        decoder_model_info_present,
        operating_points,
        // At most 2^16: frame_width_bits is at most 16.
        max_frame_width: max_frame_width as u32,
        max_frame_height: max_frame_height as u32,
        frame_id_numbers_present,
        enable_order_hint,
        color,
        film_grain_params_present,
    })
}

fn parse_color_config(r: &mut BitReader<'_>, seq_profile: u8) -> Result<ColorConfig, CodecError> {
    let high_bitdepth = r.read_bit()?;
    let twelve_bit = seq_profile == 2 && high_bitdepth && r.read_bit()?;
    let bit_depth = match (high_bitdepth, twelve_bit) {
        (_, true) => 12,
        (true, false) => 10,
        (false, _) => 8,
    };
    let mono_chrome = seq_profile != 1 && r.read_bit()?;
    let (mut color_primaries, mut transfer_characteristics, mut matrix_coefficients) = (2, 2, 2);
    if r.read_bit()? {
        color_primaries = r.read_u8(8)?;
        transfer_characteristics = r.read_u8(8)?;
        matrix_coefficients = r.read_u8(8)?;
    }
    let mut cc = ColorConfig {
        bit_depth,
        high_bitdepth,
        twelve_bit,
        mono_chrome,
        color_primaries,
        transfer_characteristics,
        matrix_coefficients,
        color_range: false,
        subsampling_x: true,
        subsampling_y: true,
        chroma_sample_position: 0,
        separate_uv_delta_q: false,
    };
    if mono_chrome {
        cc.color_range = r.read_bit()?;
        return Ok(cc);
    }
    if color_primaries == 1 && transfer_characteristics == 13 && matrix_coefficients == 0 {
        // sRGB: 4:4:4, full range
        cc.color_range = true;
        cc.subsampling_x = false;
        cc.subsampling_y = false;
    } else {
        cc.color_range = r.read_bit()?;
        match seq_profile {
            0 => {}
            1 => {
                cc.subsampling_x = false;
                cc.subsampling_y = false;
            }
            _ if bit_depth == 12 => {
                cc.subsampling_x = r.read_bit()?;
                cc.subsampling_y = cc.subsampling_x && r.read_bit()?;
            }
            _ => cc.subsampling_y = false,
        }
        if cc.subsampling_x && cc.subsampling_y {
            cc.chroma_sample_position = r.read_u8(2)?;
        }
    }
    cc.separate_uv_delta_q = r.read_bit()?;
    Ok(cc)
}

/// Parses a whole sequence header OBU (header included).
fn sequence_header_of_obu(obu: &[u8]) -> Result<(Obu, SequenceHeader), CodecError> {
    let parsed = parse_obu(obu)?;
    if parsed.obu_type != OBU_SEQUENCE_HEADER {
        return Err(CodecError::Invalid {
            what: WHAT_SEQ,
            reason: format!("OBU type is {}, expected {OBU_SEQUENCE_HEADER}", parsed.obu_type),
        });
    }
    let sh = parse_sequence_header(&obu[parsed.payload.clone()])?;
    Ok((parsed, sh))
}

/// Builds an `av1C` from a sequence header OBU (header included). The OBU becomes the
/// record's configOBUs, given a size field if it had none (AV1-ISOBMFF §2.3).
pub fn config_from_sequence_header(obu: &[u8]) -> Result<Av1Config, CodecError> {
    let (parsed, sh) = sequence_header_of_obu(obu)?;
    let config_obus = if parsed.has_size_field {
        Bytes::copy_from_slice(&obu[parsed.range.clone()])
    } else {
        let header_len = parsed.payload.start;
        let mut v = Vec::with_capacity(obu.len() + 5);
        v.push(obu[0] | 0x02);
        v.extend_from_slice(&obu[1..header_len]);
        write_leb128(&mut v, parsed.payload.len() as u32);
        v.extend_from_slice(&obu[parsed.payload]);
        Bytes::from(v)
    };
    let op0 = sh.operating_points.first().copied().unwrap_or(OperatingPoint { idc: 0, seq_level_idx: 0, seq_tier: 0 });
    Ok(Av1Config {
        seq_profile: sh.seq_profile,
        seq_level_idx_0: op0.seq_level_idx,
        seq_tier_0: op0.seq_tier,
        high_bitdepth: sh.color.high_bitdepth,
        twelve_bit: sh.color.twelve_bit,
        monochrome: sh.color.mono_chrome,
        chroma_subsampling_x: sh.color.subsampling_x,
        chroma_subsampling_y: sh.color.subsampling_y,
        chroma_sample_position: sh.color.chroma_sample_position,
        initial_presentation_delay_minus_one: None,
        config_obus,
    })
}

/// `max_frame_width_minus_1 + 1` and `max_frame_height_minus_1 + 1` of a sequence header
/// OBU (header included).
pub fn dimensions_from_sequence_header(obu: &[u8]) -> Result<Dimensions, CodecError> {
    let (_, sh) = sequence_header_of_obu(obu)?;
    Ok(Dimensions { width: sh.max_frame_width, height: sh.max_frame_height })
}

/// Whether a temporal unit starts with a shown key frame (the AV1-ISOBMFF sync sample
/// condition), judged from its first frame header. A sequence header in the unit is used
/// for `reduced_still_picture_header`; without one, a full header is assumed. A frame
/// that shows an existing frame counts as not a key frame. `None` when no frame header
/// is found or the unit is malformed before it. Best effort.
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

/// The AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Av1Config {
    pub seq_profile: u8,
    pub seq_level_idx_0: u8,
    pub seq_tier_0: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    /// `initial_presentation_delay_minus_one` when `initial_presentation_delay_present`.
    pub initial_presentation_delay_minus_one: Option<u8>,
    /// configOBUs: the sequence header OBU and possibly metadata OBUs, each with a size
    /// field.
    pub config_obus: Bytes,
}

impl Av1Config {
    /// Parses an `av1C` payload, copying the configOBUs.
    pub fn parse(rec: &[u8]) -> Result<Self, CodecError> {
        parse_av1c(rec, Bytes::copy_from_slice(rec.get(4..).unwrap_or_default()))
    }

    /// Like [`Av1Config::parse`], but `config_obus` is a slice of `rec`.
    pub fn parse_bytes(rec: &Bytes) -> Result<Self, CodecError> {
        parse_av1c(rec, if rec.len() >= 4 { rec.slice(4..) } else { Bytes::new() })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(4 + self.config_obus.len());
        out.put_u8(0x81);
        out.put_u8((self.seq_profile & 7) << 5 | (self.seq_level_idx_0 & 0x1f));
        out.put_u8(
            (self.seq_tier_0 & 1) << 7
                | u8::from(self.high_bitdepth) << 6
                | u8::from(self.twelve_bit) << 5
                | u8::from(self.monochrome) << 4
                | u8::from(self.chroma_subsampling_x) << 3
                | u8::from(self.chroma_subsampling_y) << 2
                | (self.chroma_sample_position & 3),
        );
        out.put_u8(match self.initial_presentation_delay_minus_one {
            Some(d) => 0x10 | (d & 0x0f),
            None => 0,
        });
        out.put_slice(&self.config_obus);
        out.freeze()
    }

    /// The range of the sequence header OBU within `config_obus`.
    pub fn sequence_header_obu(&self) -> Option<Range<usize>> {
        sequence_header_from_obus(&self.config_obus)
    }

    /// Maximum frame size from the sequence header in configOBUs.
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        let range = self.sequence_header_obu().ok_or_else(|| CodecError::Invalid {
            what: WHAT_AV1C,
            reason: "configOBUs hold no sequence header".into(),
        })?;
        dimensions_from_sequence_header(&self.config_obus[range])
    }
}

fn parse_av1c(rec: &[u8], config_obus: Bytes) -> Result<Av1Config, CodecError> {
    if rec.len() < 4 {
        return Err(CodecError::Truncated { what: WHAT_AV1C, len: rec.len(), need: 4 });
    }
    if rec.iter().all(|&b| b == 0) {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: "record is all zeros".into() });
    }
    if rec[0] & 0x80 == 0 {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: "marker bit is 0".into() });
    }
    let version = rec[0] & 0x7f;
    if version != 1 {
        return Err(CodecError::Unsupported { what: WHAT_AV1C, reason: format!("version {version}") });
    }
    let seq_profile = rec[1] >> 5;
    if seq_profile > 2 {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: format!("seq_profile {seq_profile} is reserved") });
    }
    // configOBUs must be whole OBUs.
    for obu in obus(&config_obus) {
        obu.map_err(|e| CodecError::Invalid { what: WHAT_AV1C, reason: format!("configOBUs: {e}") })?;
    }
    let b = rec[2];
    Ok(Av1Config {
        seq_profile,
        seq_level_idx_0: rec[1] & 0x1f,
        seq_tier_0: b >> 7,
        high_bitdepth: b & 0x40 != 0,
        twelve_bit: b & 0x20 != 0,
        monochrome: b & 0x10 != 0,
        chroma_subsampling_x: b & 0x08 != 0,
        chroma_subsampling_y: b & 0x04 != 0,
        chroma_sample_position: b & 3,
        initial_presentation_delay_minus_one: (rec[3] & 0x10 != 0).then_some(rec[3] & 0x0f),
        config_obus,
    })
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz, invalid_with, BitWriter};
    use super::*;

    // `av1C` records FFmpeg wrote for libaom / rav1e output, with what ffprobe reports.
    /// libaom, 1000x562 4:2:0 8-bit, Main, level 4 (3.0).
    const AV1C_420: &[u8] =
        &[0x81, 0x04, 0x0c, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xcf, 0xcf, 0x18, 0x9b, 0x5f, 0x20, 0x08];
    /// libaom, 998x562 4:4:4 10-bit, High.
    const AV1C_444_10: &[u8] =
        &[0x81, 0x24, 0x40, 0x00, 0x0a, 0x0b, 0x20, 0x00, 0x00, 0x24, 0xcf, 0xcb, 0x18, 0x9b, 0x5f, 0x28, 0x40];
    /// libaom, 320x240 4:2:2 12-bit, Professional.
    const AV1C_422_12: &[u8] =
        &[0x81, 0x40, 0x68, 0x00, 0x0a, 0x0b, 0x40, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x62, 0x20];
    /// libaom, 320x240 monochrome.
    const AV1C_MONO: &[u8] =
        &[0x81, 0x00, 0x1c, 0x00, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x2a];
    /// rav1e, 642x362 4:2:0, level 31.
    const AV1C_RAV1E: &[u8] = &[
        0x81, 0x1f, 0x0c, 0x00, 0x0a, 0x0e, 0x00, 0x00, 0x00, 0xfa, 0x62, 0x81, 0xb4, 0x88, 0x42, 0xa2, 0x04, 0x04,
        0x04, 0x28,
    ];
    /// Starts of libaom temporal units: key frame (with sequence header), inter frame.
    const TU_KEY: &[u8] = &[
        0x12, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xcf, 0xcf, 0x18, 0x9b, 0x5f, 0x20, 0x08, 0x32, 0xf4, 0x70,
        0x14, 0x00, 0xa0, 0xf8, 0x10, 0xd8,
    ];
    const TU_INTER: &[u8] = &[0x12, 0x00, 0x32, 0xf5, 0x2c, 0x32, 0x01, 0xe0, 0x40, 0x00];
    /// rav1e temporal unit with only a frame header showing an existing frame.
    const TU_SHOW_EXISTING: &[u8] = &[0x12, 0x00, 0x1a, 0x01, 0xc8];

    const ALL: [(&[u8], u32, u32); 5] = [
        (AV1C_420, 1000, 562),
        (AV1C_444_10, 998, 562),
        (AV1C_422_12, 320, 240),
        (AV1C_MONO, 320, 240),
        (AV1C_RAV1E, 642, 362),
    ];

    #[test]
    fn leb128() {
        assert_eq!(read_leb128(&[0x05]).unwrap(), (5, 1));
        assert_eq!(read_leb128(&[0xf5, 0x2c]).unwrap(), (5749, 2));
        assert_eq!(read_leb128(&[0x80, 0x80, 0x00]).unwrap(), (0, 3));
        assert_eq!(read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap(), (u32::MAX, 5));
        assert!(matches!(read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Err(CodecError::Invalid { .. })));
        assert!(matches!(read_leb128(&[0x80; 8]), Err(CodecError::Invalid { .. })));
        assert!(matches!(read_leb128(&[0x80]), Err(CodecError::Truncated { .. })));
        for v in [0u32, 127, 128, 5749, u32::MAX] {
            let mut out = Vec::new();
            write_leb128(&mut out, v);
            assert_eq!(read_leb128(&out).unwrap(), (v, out.len()));
        }
    }

    #[test]
    fn obu_walking() {
        let list: Vec<_> = obus(TU_KEY).collect();
        assert_eq!(list[0].as_ref().unwrap().obu_type, OBU_TEMPORAL_DELIMITER);
        assert_eq!(list[1].as_ref().unwrap().range, 2..15);
        assert_eq!(list[1].as_ref().unwrap().payload, 4..15);
        // The frame OBU claims 14452 bytes: one error, then the end.
        assert_eq!(list.len(), 3);
        assert!(matches!(list[2], Err(CodecError::Truncated { .. })));
        assert_eq!(sequence_header_from_obus(TU_KEY), Some(2..15));
        assert_eq!(sequence_header_from_obus(TU_INTER), None);
        // The forbidden bit.
        assert_eq!(sequence_header_from_obus(&[0x92, 0x00]), None);
        // Extension header and an OBU without a size field.
        let obu = parse_obu(&[0x0c, 0x68, 0xaa, 0xbb]).unwrap();
        assert_eq!((obu.obu_type, obu.temporal_id, obu.spatial_id), (1, 3, 1));
        assert_eq!((obu.payload, obu.has_size_field), (2..4, false));
    }

    #[test]
    fn real_sequence_headers() {
        for (rec, width, height) in ALL {
            let cfg = Av1Config::parse(rec).unwrap();
            assert_eq!(cfg.dimensions().unwrap(), Dimensions { width, height });
            // Rebuilding the record from its sequence header gives FFmpeg's bytes.
            let rebuilt = config_from_sequence_header(&cfg.config_obus).unwrap();
            assert_eq!(rebuilt, cfg);
            assert_eq!(&rebuilt.to_bytes()[..], rec);
        }
        let sh = parse_sequence_header(&AV1C_422_12[6..]).unwrap();
        assert_eq!((sh.color.bit_depth, sh.color.subsampling_x, sh.color.subsampling_y), (12, true, false));
        let sh = parse_sequence_header(&AV1C_MONO[6..]).unwrap();
        assert!(sh.color.mono_chrome);
        let sh = parse_sequence_header(&AV1C_RAV1E[6..]).unwrap();
        assert_eq!(sh.operating_points[0].seq_level_idx, 31);
    }

    /// A sequence header with timing and decoder model info, two operating points (the
    /// first at a level that has a tier bit) and 12-bit 4:2:0 in profile 2.
    fn synthetic_sequence_header(reduced: bool) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(3, 2);
        w.bit(false);
        w.bit(reduced);
        if reduced {
            w.bits(5, 9);
        } else {
            w.bit(true); // timing_info_present
            w.bits(32, 1001);
            w.bits(32, 60000);
            w.bit(true); // equal_picture_interval
            w.bits(3, 0b011); // uvlc 2
            w.bit(true); // decoder_model_info_present
            w.bits(5, 9); // buffer_delay_length_minus_1
            w.bits(32, 1);
            w.bits(5, 3);
            w.bits(5, 3);
            w.bit(true); // initial_display_delay_present
            w.bits(5, 1); // two operating points
            for (level, tier) in [(13u64, true), (5, false)] {
                w.bits(12, 0x101);
                w.bits(5, level);
                if level > 7 {
                    w.bit(tier);
                }
                w.bit(true); // decoder_model_present_for_this_op
                w.bits(10, 7);
                w.bits(10, 7);
                w.bit(false);
                w.bit(true);
                w.bits(4, 9);
            }
        }
        w.bits(4, 11);
        w.bits(4, 11);
        w.bits(12, 3839);
        w.bits(12, 2159);
        if !reduced {
            w.bit(true); // frame_id_numbers_present
            w.bits(7, 0);
        }
        w.bits(3, 0b111);
        if !reduced {
            w.bits(4, 0);
            w.bit(true); // enable_order_hint
            w.bits(2, 0);
            w.bit(false); // seq_choose_screen_content_tools
            w.bit(true); // seq_force_screen_content_tools
            w.bit(false); // seq_choose_integer_mv
            w.bit(true); // seq_force_integer_mv
            w.bits(3, 6);
        }
        w.bits(3, 0);
        // color_config: high_bitdepth, twelve_bit, not mono, BT.2020 PQ
        w.bit(true);
        w.bit(true);
        w.bit(false);
        w.bit(true);
        w.bits(8, 9);
        w.bits(8, 16);
        w.bits(8, 9);
        w.bit(true); // color_range
        w.bit(true); // subsampling_x
        w.bit(true); // subsampling_y
        w.bits(2, 2); // chroma_sample_position
        w.bit(false);
        w.bit(true); // film grain
        w.finish_rbsp()
    }

    fn as_obu(payload: &[u8], size_field: bool) -> Vec<u8> {
        let mut v = vec![if size_field { 0x0a } else { 0x08 }];
        if size_field {
            write_leb128(&mut v, payload.len() as u32);
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn synthetic_sequence_header_fields() {
        let sh = parse_sequence_header(&synthetic_sequence_header(false)).unwrap();
        assert!(sh.timing_info_present && sh.decoder_model_info_present && sh.frame_id_numbers_present);
        assert_eq!(sh.operating_points.len(), 2);
        assert_eq!(sh.operating_points[0], OperatingPoint { idc: 0x101, seq_level_idx: 13, seq_tier: 1 });
        assert_eq!((sh.max_frame_width, sh.max_frame_height), (3840, 2160));
        assert_eq!(sh.color.bit_depth, 12);
        assert_eq!((sh.color.color_primaries, sh.color.transfer_characteristics), (9, 16));
        assert!(sh.film_grain_params_present);
        let cfg = config_from_sequence_header(&as_obu(&synthetic_sequence_header(false), true)).unwrap();
        assert_eq!((cfg.seq_profile, cfg.seq_level_idx_0, cfg.seq_tier_0), (2, 13, 1));
        assert!(cfg.high_bitdepth && cfg.twelve_bit && !cfg.monochrome);
        assert_eq!(cfg.chroma_sample_position, 2);
        let sh = parse_sequence_header(&synthetic_sequence_header(true)).unwrap();
        assert!(sh.reduced_still_picture_header);
        assert_eq!(sh.operating_points[0].seq_level_idx, 9);
        assert_eq!((sh.max_frame_width, sh.max_frame_height), (3840, 2160));
    }

    #[test]
    fn sequence_header_without_size_field_gets_one() {
        let payload = &AV1C_420[6..];
        let cfg = config_from_sequence_header(&as_obu(payload, false)).unwrap();
        assert_eq!(&cfg.to_bytes()[..], AV1C_420);
        assert_eq!(
            dimensions_from_sequence_header(&as_obu(payload, false)).unwrap(),
            Dimensions { width: 1000, height: 562 }
        );
        assert!(matches!(config_from_sequence_header(&[0x12, 0x00]), Err(CodecError::Invalid { .. })));
    }

    #[test]
    fn keyframes() {
        assert_eq!(is_keyframe(TU_KEY), Some(true));
        assert_eq!(is_keyframe(TU_INTER), Some(false));
        assert_eq!(is_keyframe(TU_SHOW_EXISTING), Some(false));
        assert_eq!(is_keyframe(&[0x12, 0x00]), None);
        assert_eq!(is_keyframe(&[]), None);
        // A hidden key frame is not a sync sample.
        assert_eq!(is_keyframe(&[0x12, 0x00, 0x32, 0x01, 0x00]), Some(false));
        // Reduced still picture header: every frame is a key frame.
        let mut tu = as_obu(&synthetic_sequence_header(true), true);
        tu.extend([0x32, 0x01, 0xff]);
        assert_eq!(is_keyframe(&tu), Some(true));
    }

    #[test]
    fn av1c_parse_and_rejections() {
        let cfg = Av1Config::parse(AV1C_444_10).unwrap();
        assert_eq!((cfg.seq_profile, cfg.seq_level_idx_0, cfg.high_bitdepth), (1, 4, true));
        assert!(!cfg.chroma_subsampling_x && !cfg.chroma_subsampling_y);
        let shared = Bytes::from_static(AV1C_444_10);
        assert_eq!(Av1Config::parse_bytes(&shared).unwrap(), cfg);
        // No configOBUs is fine for the record, but gives no dimensions.
        let bare = Av1Config::parse(&AV1C_420[..4]).unwrap();
        assert!(bare.config_obus.is_empty() && bare.dimensions().is_err());
        let err = |v: &[u8]| Av1Config::parse(v).unwrap_err();
        assert!(invalid_with(&err(&[0; 17]), "all zeros"));
        assert!(invalid_with(&err(&[0x01, 0x04, 0x0c, 0]), "marker"));
        assert!(matches!(err(&[0x82, 0x04, 0x0c, 0]), CodecError::Unsupported { .. }));
        assert!(invalid_with(&err(&[0x81, 0xe4, 0x0c, 0]), "seq_profile"));
        let mut v = AV1C_420.to_vec();
        v[3] = 0x1a;
        assert_eq!(Av1Config::parse(&v).unwrap().initial_presentation_delay_minus_one, Some(10));
        assert_eq!(&Av1Config::parse(&v).unwrap().to_bytes()[..], &v[..]);
    }

    #[test]
    fn av1c_truncations_fail() {
        for (rec, _, _) in ALL {
            // Every cut is either in the header or a partial configOBU; only the cut right
            // after the header (a record without configOBUs) is valid.
            assert_truncations_fail(&rec[..4], Av1Config::parse);
            for n in 5..rec.len() {
                assert!(matches!(Av1Config::parse(&rec[..n]), Err(CodecError::Invalid { .. })));
            }
            let obu = &rec[4..];
            assert_truncations_fail(obu, config_from_sequence_header);
            assert_truncations_fail(obu, dimensions_from_sequence_header);
        }
        let payload = synthetic_sequence_header(false);
        // Payload cuts: the trailing bits byte may go, anything earlier must fail.
        assert_truncations_fail(&payload[..payload.len() - 1], parse_sequence_header);
    }

    #[test]
    fn av1_fuzz() {
        for (rec, _, _) in ALL {
            fuzz(rec, |d| Av1Config::parse(d).map(|c| c.dimensions()));
            fuzz(&rec[4..], config_from_sequence_header);
        }
        fuzz(&synthetic_sequence_header(false), parse_sequence_header);
        fuzz(TU_KEY, is_keyframe);
        fuzz(TU_KEY, sequence_header_from_obus);
        fuzz(TU_KEY, |d| obus(d).count());
    }
}
