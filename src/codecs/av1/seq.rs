//! The AV1 sequence header OBU (AV1 specification §5.5, `color_config()` §5.5.2): enough
//! to build an `av1C` and get the frame size.

use bytes::Bytes;

use super::{parse_obu, write_leb128, Av1Config, Obu, OBU_SEQUENCE_HEADER};
use crate::codecs::bits::BitReader;
use crate::codecs::{CodecError, Dimensions};

const WHAT_SEQ: &str = "AV1 sequence header";

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
