//! The one parse of HEVC sequence and picture parameter sets (ITU-T H.265 §7.3.2.2,
//! §7.3.2.3) and the store of parsed sets by id ([`ParameterSets`]).
//!
//! [`Sps`] is read in two phases. The first, through the bit depths, gives the record's
//! profile and the display size and must succeed. The second gives what slice headers and
//! POC derivation need (`log2_max_pic_order_cnt_lsb`, the CTB size): it is kept as a
//! `Result` in [`Sps::slice_fields`], so a record whose SPS is damaged past the bit depths
//! is still accepted for remuxing, while POC derivation and the slice check report why they
//! cannot use it. All limits are the named constants below.

use std::sync::Arc;

use super::{nal_type, NAL_PPS, NAL_SPS};
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::{CodecError, Dimensions};

const WHAT_SPS: &str = "HEVC SPS";
const WHAT_PPS: &str = "HEVC PPS";

/// `sps_seq_parameter_set_id` is 0..=15 (§7.4.3.2.1).
pub const MAX_SPS_ID: u32 = 15;
/// `pps_pic_parameter_set_id` is 0..=63 (§7.4.3.3.1).
pub const MAX_PPS_ID: u32 = 63;
/// `sps_max_sub_layers_minus1` is 0..=6.
pub const MAX_SUB_LAYERS_MINUS1: u8 = 6;
/// `bit_depth_*_minus8` is 0..=8 (16-bit video).
pub const MAX_BIT_DEPTH_MINUS8: u32 = 8;
/// `log2_max_pic_order_cnt_lsb_minus4` is 0..=12.
pub const MAX_LOG2_POC_LSB_MINUS4: u32 = 12;
/// CtbLog2SizeY is 4..=6 (16x16 to 64x64 coding tree blocks).
pub const CTB_LOG2_SIZES: std::ops::RangeInclusive<u32> = 4..=6;

/// The general part of `profile_tier_level()` (H.265 §7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    /// general_profile_space.
    pub general_profile_space: u8,
    /// High tier.
    pub general_tier_flag: bool,
    /// general_profile_idc (1 Main, 2 Main 10, 4 range extensions, ...).
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flag[32], MSB first.
    pub general_profile_compatibility_flags: u32,
    /// 48 bits: progressive/interlaced/non-packed/frame-only flags and the rest.
    pub general_constraint_indicator_flags: u64,
    /// general_level_idc (thirty times the level number).
    pub general_level_idc: u8,
}

/// The SPS fields after the bit depths that slice segment headers and POC derivation need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceFields {
    /// log2(MaxPicOrderCntLsb): the bits of `slice_pic_order_cnt_lsb`.
    pub log2_max_poc_lsb: u32,
    /// CtbLog2SizeY.
    pub ctb_log2_size: u32,
    /// PicSizeInCtbsY.
    pub pic_size_in_ctbs: u64,
}

/// A parsed HEVC SPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// sps_max_sub_layers_minus1 + 1.
    pub max_sub_layers: u8,
    /// sps_temporal_id_nesting_flag.
    pub temporal_id_nesting: bool,
    /// The general profile, tier and level.
    pub ptl: ProfileTierLevel,
    /// sps_seq_parameter_set_id, 0..=[`MAX_SPS_ID`].
    pub seq_parameter_set_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// 4:4:4 coded as three separate colour planes.
    pub separate_colour_plane: bool,
    /// Coded width.
    pub pic_width_in_luma_samples: u32,
    /// Coded height.
    pub pic_height_in_luma_samples: u32,
    /// left, right, top, bottom `conf_win_*_offset`, in chroma units.
    pub conformance_window: [u32; 4],
    /// Luma bit depth less 8.
    pub bit_depth_luma_minus8: u8,
    /// Chroma bit depth less 8.
    pub bit_depth_chroma_minus8: u8,
    /// Display size after the conformance window.
    pub dims: Dimensions,
    /// The fields slice headers need, or why they could not be read.
    pub slice_fields: Result<SliceFields, CodecError>,
}

fn parse_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<ProfileTierLevel, CodecError> {
    let general_profile_space = r.read_u8(2)?;
    let general_tier_flag = r.read_bit()?;
    let general_profile_idc = r.read_u8(5)?;
    let general_profile_compatibility_flags = r.read_bits(32)?;
    let hi = u64::from(r.read_bits(16)?);
    let lo = u64::from(r.read_bits(32)?);
    let general_level_idc = r.read_u8(8)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    let n = usize::from(max_sub_layers_minus1.min(MAX_SUB_LAYERS_MINUS1));
    for i in 0..n {
        profile_present[i] = r.read_bit()?;
        level_present[i] = r.read_bit()?;
    }
    if n > 0 {
        r.skip_bits(2 * (8 - n))?; // reserved_zero_2bits
    }
    for i in 0..n {
        if profile_present[i] {
            r.skip_bits(88)?;
        }
        if level_present[i] {
            r.skip_bits(8)?;
        }
    }
    Ok(ProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags: hi << 32 | lo,
        general_level_idc,
    })
}

/// Parses an SPS NAL unit (with its 2-byte header): through the bit depths (required),
/// then the slice header fields into [`Sps::slice_fields`].
pub fn parse_sps(sps_nal: &[u8]) -> Result<Sps, CodecError> {
    if sps_nal.len() < 2 {
        return Err(CodecError::Truncated { what: WHAT_SPS, len: sps_nal.len(), need: 2 });
    }
    if nal_type(sps_nal[0]) != NAL_SPS {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("NAL type is {}, expected {NAL_SPS}", nal_type(sps_nal[0])),
        });
    }
    let rbsp = unescape_rbsp(&sps_nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let _vps_id = r.read_u8(4)?;
    let max_sub_layers_minus1 = r.read_u8(3)?;
    if max_sub_layers_minus1 > MAX_SUB_LAYERS_MINUS1 {
        return Err(r.invalid(format!(
            "sps_max_sub_layers_minus1 is {max_sub_layers_minus1}, at most {MAX_SUB_LAYERS_MINUS1} allowed"
        )));
    }
    let temporal_id_nesting = r.read_bit()?;
    let ptl = parse_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", MAX_SPS_ID)?;
    let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
    let separate_colour_plane = chroma_format_idc == 3 && r.read_bit()?;
    let width = r.read_ue()?;
    let height = r.read_ue()?;
    let mut conformance_window = [0u32; 4];
    if r.read_bit()? {
        for c in &mut conformance_window {
            *c = r.read_ue()?;
        }
    }
    let bit_depth_luma_minus8 = r.read_ue_max("bit_depth_luma_minus8", MAX_BIT_DEPTH_MINUS8)? as u8;
    let bit_depth_chroma_minus8 = r.read_ue_max("bit_depth_chroma_minus8", MAX_BIT_DEPTH_MINUS8)? as u8;
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let dims = window_dimensions(width, height, conformance_window, chroma_array_type)?;
    let slice_fields = read_slice_fields(&mut r, max_sub_layers_minus1, width, height);
    Ok(Sps {
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        ptl,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        pic_width_in_luma_samples: width,
        pic_height_in_luma_samples: height,
        conformance_window,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        dims,
        slice_fields,
    })
}

/// The display size: the coded size less the conformance window (§7.4.3.2.1).
fn window_dimensions(
    width: u32,
    height: u32,
    window: [u32; 4],
    chroma_array_type: u8,
) -> Result<Dimensions, CodecError> {
    let (sub_width, sub_height): (u64, u64) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let [left, right, top, bottom] = window.map(u64::from);
    let crop_w = (left + right) * sub_width;
    let crop_h = (top + bottom) * sub_height;
    if width == 0 || height == 0 || crop_w >= u64::from(width) || crop_h >= u64::from(height) {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("conformance window {window:?} leaves nothing of the {width}x{height} picture"),
        });
    }
    Ok(Dimensions { width: (u64::from(width) - crop_w) as u32, height: (u64::from(height) - crop_h) as u32 })
}

/// log2_max_pic_order_cnt_lsb_minus4 .. the coding block sizes.
fn read_slice_fields(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
    width: u32,
    height: u32,
) -> Result<SliceFields, CodecError> {
    let log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", MAX_LOG2_POC_LSB_MINUS4)? + 4;
    let ordering_info_present = r.read_bit()?;
    let layers = if ordering_info_present { max_sub_layers_minus1 + 1 } else { 1 };
    for _ in 0..layers {
        r.read_ue()?; // sps_max_dec_pic_buffering_minus1
        r.read_ue()?; // sps_max_num_reorder_pics
        r.read_ue()?; // sps_max_latency_increase_plus1
    }
    let log2_min_cb = r.read_ue_max("log2_min_luma_coding_block_size_minus3", 3)? + 3;
    let ctb_log2_size = log2_min_cb + r.read_ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    if !CTB_LOG2_SIZES.contains(&ctb_log2_size) {
        return Err(r.invalid(format!("CTB size 2^{ctb_log2_size} is outside 16..=64")));
    }
    let ctb = 1u64 << ctb_log2_size;
    let pic_size_in_ctbs = u64::from(width).div_ceil(ctb) * u64::from(height).div_ceil(ctb);
    Ok(SliceFields { log2_max_poc_lsb, ctb_log2_size, pic_size_in_ctbs })
}

/// Display width and height from an SPS NAL unit (with its header), after the
/// conformance window.
pub fn sps_dimensions(sps_nal: &[u8]) -> Result<Dimensions, CodecError> {
    parse_sps(sps_nal).map(|s| s.dims)
}

/// A parsed HEVC PPS: the fields a slice segment header depends on up to the POC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pps {
    /// pps_pic_parameter_set_id, 0..=[`MAX_PPS_ID`].
    pub pps_pic_parameter_set_id: u32,
    /// The SPS this PPS refers to.
    pub pps_seq_parameter_set_id: u32,
    /// dependent_slice_segments_enabled_flag.
    pub dependent_slice_segments_enabled: bool,
    /// Slice headers carry pic_output_flag.
    pub output_flag_present: bool,
    /// slice_reserved_flag bits in slice headers.
    pub num_extra_slice_header_bits: u32,
}

/// Parses the start of a PPS NAL unit (with its 2-byte header).
pub fn parse_pps(pps_nal: &[u8]) -> Result<Pps, CodecError> {
    if pps_nal.len() < 3 {
        return Err(CodecError::Truncated { what: WHAT_PPS, len: pps_nal.len(), need: 3 });
    }
    let t = nal_type(pps_nal[0]);
    if t != NAL_PPS {
        return Err(CodecError::Invalid { what: WHAT_PPS, reason: format!("NAL type is {t}, expected {NAL_PPS}") });
    }
    let rbsp = unescape_rbsp(&pps_nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_PPS);
    Ok(Pps {
        pps_pic_parameter_set_id: r.read_ue_max("pps_pic_parameter_set_id", MAX_PPS_ID)?,
        pps_seq_parameter_set_id: r.read_ue_max("pps_seq_parameter_set_id", MAX_SPS_ID)?,
        dependent_slice_segments_enabled: r.read_bit()?,
        output_flag_present: r.read_bit()?,
        num_extra_slice_header_bits: r.read_bits(3)?,
    })
}

/// The active parameter sets of a stream by id, each parsed once: from a record, then
/// replaced by in-band units as a decoder would. Cloning shares the parsed sets.
#[derive(Clone, Debug, Default)]
pub struct ParameterSets {
    sps: Vec<(u32, Arc<Sps>)>,
    pps: Vec<(u32, Pps)>,
}

impl ParameterSets {
    /// Parses an SPS or PPS NAL unit and stores it under its id; other units are ignored.
    pub fn add(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| nal_type(b)) {
            Some(NAL_SPS) => self.add_sps(Arc::new(parse_sps(nal)?)),
            Some(NAL_PPS) => {
                let pps = parse_pps(nal)?;
                let id = pps.pps_pic_parameter_set_id;
                self.pps.retain(|(i, _)| *i != id);
                self.pps.push((id, pps));
            }
            _ => {}
        }
        Ok(())
    }

    /// Stores an already parsed SPS under its id.
    pub fn add_sps(&mut self, sps: Arc<Sps>) {
        let id = sps.seq_parameter_set_id;
        self.sps.retain(|(i, _)| *i != id);
        self.sps.push((id, sps));
    }

    /// True when no SPS is known.
    pub fn has_no_sps(&self) -> bool {
        self.sps.is_empty()
    }

    /// The PPS with this id and the SPS it refers to, with the SPS's slice header fields;
    /// `what` names the slice in the error.
    pub fn active(&self, pps_id: u32, what: &'static str) -> Result<(&Sps, SliceFields, Pps), CodecError> {
        let pps = self.pps.iter().find(|(i, _)| *i == pps_id).map(|(_, p)| *p).ok_or_else(|| CodecError::Invalid {
            what,
            reason: format!("slice_pic_parameter_set_id {pps_id} is not among the PPSs"),
        })?;
        let sps_id = pps.pps_seq_parameter_set_id;
        let sps = self.sps.iter().find(|(i, _)| *i == sps_id).map(|(_, s)| &**s).ok_or_else(|| {
            CodecError::Invalid { what, reason: format!("PPS {pps_id} refers to SPS {sps_id}, which is not there") }
        })?;
        let fields = sps.slice_fields.clone()?;
        Ok((sps, fields, pps))
    }
}
