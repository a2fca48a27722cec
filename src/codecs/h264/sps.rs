//! The one parse of H.264 sequence and picture parameter sets (ITU-T H.264 §7.3.2.1.1,
//! §7.3.2.2) and the store of parsed sets by id ([`ParameterSets`]).
//!
//! [`Sps`] carries every field the rest of livemux reads: the record's profile and bit
//! depths, the display size, and what slice headers and picture order count derivation
//! depend on (`log2_max_frame_num`, the POC type and its fields, `frame_mbs_only`,
//! `separate_colour_plane`, MBAFF). [`super::super::poc`] and [`super::super::slices`] take
//! these parsed structs; neither reads an SPS or PPS itself. All limits are the named
//! constants below. A value that sizes nothing and enters no arithmetic here
//! (`max_num_ref_frames`, `weighted_bipred_idc`, the PPS QP fields) is kept as coded, so a
//! record with one still gives its profile, display size and picture order counts; the
//! slice header check refuses it ([`Sps::check_slice_limits`], [`Pps::check_slice_limits`]).

use std::sync::Arc;


use super::{nal_type, profile_has_chroma_info, NAL_PPS, NAL_SPS};
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::{CodecError, Dimensions};

const WHAT_SPS: &str = "H.264 SPS";
const WHAT_PPS: &str = "H.264 PPS";

/// SPS ids: `seq_parameter_set_id` is 0..=31 (§7.4.2.1.1).
pub const MAX_SPS_ID: u32 = 31;
/// PPS ids: `pic_parameter_set_id` is 0..=255 (§7.4.2.2).
pub const MAX_PPS_ID: u32 = 255;
/// `log2_max_frame_num_minus4` and `log2_max_pic_order_cnt_lsb_minus4` are 0..=12.
pub const MAX_LOG2_MINUS4: u32 = 12;
/// `num_ref_frames_in_pic_order_cnt_cycle` is 0..=255.
pub const MAX_POC_CYCLE: u32 = 255;
/// `max_num_ref_frames` is 0..=MaxDpbFrames, at most 16 (§A.3.1; FFmpeg refuses more too).
/// The parse keeps a larger value (it sizes nothing and the record and display size do not
/// depend on it); [`Sps::check_slice_limits`] refuses it.
pub const MAX_NUM_REF_FRAMES: u32 = 16;
/// `bit_depth_*_minus8` is 0..=6 (14-bit video).
pub const MAX_BIT_DEPTH_MINUS8: u32 = 6;
/// `num_ref_idx_l*_default_active_minus1` is 0..=31.
pub const MAX_REF_IDX_MINUS1: u32 = 31;
/// `num_slice_groups_minus1` is 0..=7; livemux supports one slice group.
pub const MAX_SLICE_GROUPS_MINUS1: u32 = 7;


/// A parsed H.264 SPS, as far as the frame cropping rectangle (VUI is not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// constraint_set0..5_flag and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    /// level_idc (ten times the level number).
    pub level_idc: u8,
    /// seq_parameter_set_id, 0..=[`MAX_SPS_ID`].
    pub seq_parameter_set_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// 4:4:4 coded as three separate colour planes.
    pub separate_colour_plane: bool,
    /// Luma bit depth less 8.
    pub bit_depth_luma_minus8: u8,
    /// Chroma bit depth less 8.
    pub bit_depth_chroma_minus8: u8,
    /// log2(MaxFrameNum) less 4; see [`Sps::log2_max_frame_num`].
    pub log2_max_frame_num_minus4: u8,
    /// How picture order counts are coded: 0, 1 or 2 (§8.2.1).
    pub pic_order_cnt_type: u8,
    /// POC type 0 only (0 otherwise).
    pub log2_max_pic_order_cnt_lsb_minus4: u8,
    /// POC type 1 only (false / 0 / empty otherwise).
    pub delta_pic_order_always_zero: bool,
    /// offset_for_non_ref_pic (POC type 1).
    pub offset_for_non_ref_pic: i32,
    /// offset_for_top_to_bottom_field (POC type 1).
    pub offset_for_top_to_bottom_field: i32,
    /// offset_for_ref_frame[] of the POC cycle (POC type 1), at most [`MAX_POC_CYCLE`].
    pub offset_for_ref_frame: Vec<i32>,
    /// max_num_ref_frames as coded (see [`Sps::check_slice_limits`]).
    pub max_num_ref_frames: u32,
    /// gaps_in_frame_num_value_allowed_flag.
    pub gaps_in_frame_num_allowed: bool,
    /// Coded width in macroblocks.
    pub pic_width_in_mbs: u32,
    /// Coded height in map units (macroblock pairs when not frame_mbs_only).
    pub pic_height_in_map_units: u32,
    /// Only frames (no field or MBAFF coding).
    pub frame_mbs_only: bool,
    /// Macroblock-adaptive frame/field coding (MBAFF).
    pub mb_adaptive_frame_field: bool,
    /// left, right, top, bottom `frame_crop_*_offset`, in crop units.
    pub crop: [u32; 4],
    /// Display size after cropping.
    pub dims: Dimensions,
}

impl Sps {
    /// log2(MaxFrameNum): the bits of `frame_num` in a slice header.
    pub fn log2_max_frame_num(&self) -> u32 {
        u32::from(self.log2_max_frame_num_minus4) + 4
    }

    /// log2(MaxPicOrderCntLsb): the bits of `pic_order_cnt_lsb` (POC type 0).
    pub fn log2_max_poc_lsb(&self) -> u32 {
        u32::from(self.log2_max_pic_order_cnt_lsb_minus4) + 4
    }

    /// ChromaArrayType (§7.4.2.1.1).
    pub fn chroma_array_type(&self) -> u8 {
        if self.separate_colour_plane {
            0
        } else {
            self.chroma_format_idc
        }
    }

    /// PicSizeInMbs of a frame (both fields of a field pair).
    pub fn frame_size_in_mbs(&self) -> u64 {
        let field_factor = if self.frame_mbs_only { 1 } else { 2 };
        u64::from(self.pic_width_in_mbs) * u64::from(self.pic_height_in_map_units) * field_factor
    }

    /// The ranges the slice header check needs on top of the parse: `max_num_ref_frames`
    /// at most [`MAX_NUM_REF_FRAMES`]. The parse itself keeps larger values, so a record
    /// with one still gives its profile and display size (as it always did).
    pub fn check_slice_limits(&self) -> Result<(), CodecError> {
        if self.max_num_ref_frames > MAX_NUM_REF_FRAMES {
            return Err(CodecError::Invalid {
                what: WHAT_SPS,
                reason: format!(
                    "max_num_ref_frames is {}, at most {MAX_NUM_REF_FRAMES} allowed",
                    self.max_num_ref_frames
                ),
            });
        }
        Ok(())
    }

    /// QpBdOffsetY (§7.4.2.1.1).
    pub fn qp_bd_offset_y(&self) -> i32 {
        6 * i32::from(self.bit_depth_luma_minus8)
    }
}

/// Parses an SPS NAL unit (with its 1-byte header) as far as the cropping rectangle.
pub fn parse_sps(sps_nal: &[u8]) -> Result<Sps, CodecError> {
    #[cfg(any(test, feature = "internals"))]
    crate::parse_count::count(crate::parse_count::Parsed::Sps);
    let header = *sps_nal.first().ok_or(CodecError::Truncated { what: WHAT_SPS, len: 0, need: 4 })?;
    if nal_type(header) != NAL_SPS {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("NAL type is {}, expected {NAL_SPS}", nal_type(header)),
        });
    }
    let rbsp = unescape_rbsp(&sps_nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let mut sps = Sps {
        profile_idc: r.read_u8(8)?,
        constraint_flags: r.read_u8(8)?,
        level_idc: r.read_u8(8)?,
        seq_parameter_set_id: r.read_ue_max("seq_parameter_set_id", MAX_SPS_ID)?,
        chroma_format_idc: 1,
        separate_colour_plane: false,
        bit_depth_luma_minus8: 0,
        bit_depth_chroma_minus8: 0,
        log2_max_frame_num_minus4: 0,
        pic_order_cnt_type: 0,
        log2_max_pic_order_cnt_lsb_minus4: 0,
        delta_pic_order_always_zero: false,
        offset_for_non_ref_pic: 0,
        offset_for_top_to_bottom_field: 0,
        offset_for_ref_frame: Vec::new(),
        max_num_ref_frames: 0,
        gaps_in_frame_num_allowed: false,
        pic_width_in_mbs: 0,
        pic_height_in_map_units: 0,
        frame_mbs_only: true,
        mb_adaptive_frame_field: false,
        crop: [0; 4],
        dims: Dimensions::default(),
    };
    if profile_has_chroma_info(sps.profile_idc) {
        read_chroma_info(&mut r, &mut sps)?;
    }
    read_poc_fields(&mut r, &mut sps)?;
    read_frame_size(&mut r, &mut sps)?;
    sps.dims = cropped_dimensions(&sps)?;
    Ok(sps)
}

/// chroma_format_idc .. the scaling matrices, of the profiles that carry them.
fn read_chroma_info(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), CodecError> {
    sps.chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
    if sps.chroma_format_idc == 3 {
        sps.separate_colour_plane = r.read_bit()?;
    }
    sps.bit_depth_luma_minus8 = r.read_ue_max("bit_depth_luma_minus8", MAX_BIT_DEPTH_MINUS8)? as u8;
    sps.bit_depth_chroma_minus8 = r.read_ue_max("bit_depth_chroma_minus8", MAX_BIT_DEPTH_MINUS8)? as u8;
    let _qpprime_y_zero_transform_bypass = r.read_bit()?;
    if r.read_bit()? {
        // seq_scaling_matrix_present_flag
        let lists = if sps.chroma_format_idc == 3 { 12 } else { 8 };
        for i in 0..lists {
            if r.read_bit()? {
                skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
            }
        }
    }
    Ok(())
}

/// log2_max_frame_num_minus4 .. the POC type and its fields.
fn read_poc_fields(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), CodecError> {
    sps.log2_max_frame_num_minus4 = r.read_ue_max("log2_max_frame_num_minus4", MAX_LOG2_MINUS4)? as u8;
    sps.pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
    match sps.pic_order_cnt_type {
        0 => {
            sps.log2_max_pic_order_cnt_lsb_minus4 =
                r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", MAX_LOG2_MINUS4)? as u8;
        }
        1 => {
            sps.delta_pic_order_always_zero = r.read_bit()?;
            sps.offset_for_non_ref_pic = r.read_se()?;
            sps.offset_for_top_to_bottom_field = r.read_se()?;
            let n = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", MAX_POC_CYCLE)?;
            for _ in 0..n {
                sps.offset_for_ref_frame.push(r.read_se()?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// max_num_ref_frames .. the cropping rectangle.
fn read_frame_size(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), CodecError> {
    sps.max_num_ref_frames = r.read_ue()?;
    sps.gaps_in_frame_num_allowed = r.read_bit()?;
    // Both are at most 2^32 - 2, so the sums fit.
    sps.pic_width_in_mbs = r.read_ue()? + 1;
    sps.pic_height_in_map_units = r.read_ue()? + 1;
    sps.frame_mbs_only = r.read_bit()?;
    if !sps.frame_mbs_only {
        sps.mb_adaptive_frame_field = r.read_bit()?;
    }
    let _direct_8x8_inference = r.read_bit()?;
    if r.read_bit()? {
        for c in &mut sps.crop {
            *c = r.read_ue()?;
        }
    }
    Ok(())
}

/// The display size: the coded size less the cropping rectangle (§7.4.2.1.1).
fn cropped_dimensions(sps: &Sps) -> Result<Dimensions, CodecError> {
    let field_factor: u64 = if sps.frame_mbs_only { 1 } else { 2 };
    let width = u64::from(sps.pic_width_in_mbs) * 16;
    let height = u64::from(sps.pic_height_in_map_units) * 16 * field_factor;
    let (crop_unit_x, crop_unit_y): (u64, u64) = match sps.chroma_array_type() {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let crop = sps.crop;
    let crop_w = (u64::from(crop[0]) + u64::from(crop[1])) * crop_unit_x;
    let crop_h = (u64::from(crop[2]) + u64::from(crop[3])) * crop_unit_y;
    if crop_w >= width || crop_h >= height {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("cropping {crop:?} leaves nothing of the {width}x{height} frame"),
        });
    }
    let (w, h) = (width - crop_w, height - crop_h);
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(width), Ok(height)) => Ok(Dimensions { width, height }),
        _ => Err(CodecError::Invalid { what: WHAT_SPS, reason: format!("frame size {w}x{h} is out of range") }),
    }
}

/// scaling_list() of H.264 §7.3.2.1.1.1, values discarded.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.read_se_in("delta_scale", -128, 127)?;
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Display width and height from an SPS NAL unit (with its header byte), after cropping.
pub fn sps_dimensions(sps_nal: &[u8]) -> Result<Dimensions, CodecError> {
    parse_sps(sps_nal).map(|s| s.dims)
}

/// A parsed H.264 PPS: the fields a slice header depends on (§7.3.2.2, as far as
/// `redundant_pic_cnt_present_flag`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pps {
    /// pic_parameter_set_id, 0..=[`MAX_PPS_ID`].
    pub pic_parameter_set_id: u32,
    /// seq_parameter_set_id, 0..=[`MAX_SPS_ID`].
    pub seq_parameter_set_id: u32,
    /// CABAC (true) or CAVLC.
    pub entropy_coding_mode: bool,
    /// Slice headers carry the bottom field POC delta.
    pub bottom_field_pic_order_in_frame_present: bool,
    /// `num_ref_idx_l0/l1_default_active_minus1` + 1.
    pub num_ref_idx_default: [u32; 2],
    /// Explicit weighted prediction for P/SP slices.
    pub weighted_pred: bool,
    /// 0 default, 1 explicit, 2 implicit weighted bi-prediction (3, reserved, is kept and
    /// refused by [`Pps::check_slice_limits`]).
    pub weighted_bipred_idc: u32,
    /// `pic_init_qp_minus26`, `pic_init_qs_minus26` and `chroma_qp_index_offset` as coded
    /// (their ranges are checked by [`Pps::check_slice_limits`]).
    pub qp_fields: [i32; 3],
    /// Slice headers carry deblocking filter controls.
    pub deblocking_filter_control_present: bool,
    /// Slice headers carry redundant_pic_cnt.
    pub redundant_pic_cnt_present: bool,
}

impl Pps {
    /// `26 + pic_init_qp_minus26`, widened so that no coded value overflows.
    pub fn pic_init_qp(&self) -> i64 {
        26 + i64::from(self.qp_fields[0])
    }

    /// The ranges the slice header check needs on top of the parse (§7.4.2.2):
    /// `weighted_bipred_idc` not 3, `pic_init_qp_minus26` in -(26 + 6 *
    /// [`MAX_BIT_DEPTH_MINUS8`])..=25, `pic_init_qs_minus26` in -26..=25,
    /// `chroma_qp_index_offset` in -12..=12. Picture order count derivation reads none of
    /// these, so the parse keeps any value and only the slice check refuses it.
    pub fn check_slice_limits(&self) -> Result<(), CodecError> {
        let invalid = |reason: String| Err(CodecError::Invalid { what: WHAT_PPS, reason });
        if self.weighted_bipred_idc == 3 {
            return invalid("weighted_bipred_idc is 3".into());
        }
        let ranges = [
            ("pic_init_qp_minus26", -(26 + 6 * MAX_BIT_DEPTH_MINUS8 as i32), 25),
            ("pic_init_qs_minus26", -26, 25),
            ("chroma_qp_index_offset", -12, 12),
        ];
        for ((field, min, max), v) in ranges.into_iter().zip(self.qp_fields) {
            if !(min..=max).contains(&v) {
                return invalid(format!("{field} is {v}, outside {min}..={max}"));
            }
        }
        Ok(())
    }
}

/// Parses a PPS NAL unit (with its 1-byte header), keeping the fields only the slice check
/// bounds as coded ([`Pps::check_slice_limits`]). Slice groups (FMO) are unsupported.
pub fn parse_pps(pps_nal: &[u8]) -> Result<Pps, CodecError> {
    let header = *pps_nal.first().ok_or(CodecError::Truncated { what: WHAT_PPS, len: 0, need: 2 })?;
    if nal_type(header) != NAL_PPS {
        return Err(CodecError::Invalid {
            what: WHAT_PPS,
            reason: format!("NAL type is {}, expected {NAL_PPS}", nal_type(header)),
        });
    }
    let rbsp = unescape_rbsp(&pps_nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_PPS);
    let pic_parameter_set_id = r.read_ue_max("pic_parameter_set_id", MAX_PPS_ID)?;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", MAX_SPS_ID)?;
    let entropy_coding_mode = r.read_bit()?;
    let bottom_field_pic_order_in_frame_present = r.read_bit()?;
    let groups = r.read_ue_max("num_slice_groups_minus1", MAX_SLICE_GROUPS_MINUS1)?;
    if groups > 0 {
        return Err(CodecError::Unsupported {
            what: WHAT_PPS,
            reason: format!("{} slice groups (flexible macroblock ordering)", groups + 1),
        });
    }
    let l0 = r.read_ue_max("num_ref_idx_l0_default_active_minus1", MAX_REF_IDX_MINUS1)? + 1;
    let l1 = r.read_ue_max("num_ref_idx_l1_default_active_minus1", MAX_REF_IDX_MINUS1)? + 1;
    let weighted_pred = r.read_bit()?;
    let weighted_bipred_idc = r.read_bits(2)?;
    let qp_fields = [r.read_se()?, r.read_se()?, r.read_se()?];
    let deblocking_filter_control_present = r.read_bit()?;
    r.skip_bits(1)?; // constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.read_bit()?;
    Ok(Pps {
        pic_parameter_set_id,
        seq_parameter_set_id,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present,
        num_ref_idx_default: [l0, l1],
        weighted_pred,
        weighted_bipred_idc,
        qp_fields,
        deblocking_filter_control_present,
        redundant_pic_cnt_present,
    })
}

/// The active parameter sets of a stream by id, each parsed once: from a record, then
/// replaced by in-band units as a decoder would. Cloning shares the parsed sets.
#[derive(Clone, Debug, Default)]
pub struct ParameterSets {
    sps: Vec<(u32, Arc<Sps>)>,
    pps: Vec<(u32, Arc<Pps>)>,
}

impl ParameterSets {
    /// The record's SPS (all of them, or only the first with `first_sps_only`) and PPS,
    /// from what the record has parsed already ([`super::AvcConfig::parameter_sets`],
    /// [`super::AvcConfig::first_sps`]): no SPS is parsed twice.
    pub fn from_config(config: &super::AvcConfig, first_sps_only: bool) -> Result<Self, CodecError> {
        if !first_sps_only {
            return config.parameter_sets().cloned();
        }
        let mut sets = ParameterSets::default();
        sets.add_sps(Arc::clone(config.first_sps()?));
        for nal in &config.pps {
            sets.add(nal)?;
        }
        Ok(sets)
    }

    /// Parses an SPS or PPS NAL unit and stores it under its id; other units are ignored.
    pub fn add(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| nal_type(b)) {
            Some(NAL_SPS) => self.add_sps(Arc::new(parse_sps(nal)?)),
            Some(NAL_PPS) => self.add_pps(Arc::new(parse_pps(nal)?)),
            _ => {}
        }
        Ok(())
    }

    /// Like [`ParameterSets::add`], but a set outside the slice check's limits
    /// ([`Sps::check_slice_limits`], [`Pps::check_slice_limits`]) is refused, not stored.
    pub fn add_checked(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| nal_type(b)) {
            Some(NAL_SPS) => {
                let sps = parse_sps(nal)?;
                sps.check_slice_limits()?;
                self.add_sps(Arc::new(sps));
            }
            Some(NAL_PPS) => {
                let pps = parse_pps(nal)?;
                pps.check_slice_limits()?;
                self.add_pps(Arc::new(pps));
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks every stored set against the slice check's limits.
    pub fn check_slice_limits(&self) -> Result<(), CodecError> {
        self.sps.iter().try_for_each(|(_, s)| s.check_slice_limits())?;
        self.pps.iter().try_for_each(|(_, p)| p.check_slice_limits())
    }

    /// Stores an already parsed PPS under its id.
    pub fn add_pps(&mut self, pps: Arc<Pps>) {
        let id = pps.pic_parameter_set_id;
        self.pps.retain(|(i, _)| *i != id);
        self.pps.push((id, pps));
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

    /// The SPS with this id.
    pub fn sps(&self, id: u32) -> Option<&Arc<Sps>> {
        self.sps.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    /// The PPS with this id.
    pub fn pps(&self, id: u32) -> Option<&Arc<Pps>> {
        self.pps.iter().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// The PPS with this id and the SPS it refers to; `what` names the slice in the error.
    pub fn active(&self, pps_id: u32, what: &'static str) -> Result<(&Arc<Sps>, &Arc<Pps>), CodecError> {
        let pps = self.pps(pps_id).ok_or_else(|| CodecError::Invalid {
            what,
            reason: format!("pic_parameter_set_id {pps_id} is not among the PPSs"),
        })?;
        let sps = self.sps(pps.seq_parameter_set_id).ok_or_else(|| CodecError::Invalid {
            what,
            reason: format!("PPS {pps_id} refers to SPS {}, which is not there", pps.seq_parameter_set_id),
        })?;
        Ok((sps, pps))
    }
}
